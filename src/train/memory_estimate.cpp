#include "reformer/memory_estimate.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>

#include "core/checked_math.h"
#include "reformer/attention_kinds.h"
#include "reformer/limits.h"
#include "layers/feed_forward.h"
#include "layers/row_stream.h"
#include "model/heads.h"
#include "ops/activation.h"
#include "reformer/error.h"
#include "reformer/model.h"
#include "train/option_spec.h"
#include "train/progress.h"

namespace reformer {
namespace {

constexpr int64_t kFloat = sizeof(float);

// Every product and sum of sizes below is checked (core/checked_math.h): a plan too large for 64 bits
// is an Error, not a wrapped (small or negative) estimate.
const char* const kWhat = "the training memory estimate";
int64_t mul(std::initializer_list<int64_t> f) { return checked_product(f, kWhat); }
int64_t sum(std::initializer_list<int64_t> t) { return checked_sum(t, kWhat); }

// The bucket factors an LSH layer uses at length L (HF's automatic choice when the config has none).
std::vector<int64_t> bucket_factors(const ReformerConfig& c, int64_t L) {
  return c.num_buckets.empty() ? c.auto_num_buckets(L) : c.num_buckets;
}

// Attention memory of a training step besides the projections (attention_projection_bytes). All LSH
// layers share one per-thread scratch; each layer keeps only its own small chunk scratch
// (local/full), rotations and saved buckets (LSH).
struct AttentionBytes {
  int64_t shared = 0, per_layer = 0, per_layer_activations = 0;
};

AttentionBytes qkv_attention_bytes(const ReformerConfig& c, const AttentionKindSpec& kind, int64_t L, int threads) {
  const int64_t d = c.attention_head_size;
  // Chunked (local): a chunk of queries against its chunks before and after; full: one block of each.
  const int64_t chunk = kind.chunk_length ? c.*kind.chunk_length : kind.block_length;
  const int64_t keys = kind.chunk_length ? mul({chunk, sum({1, c.*kind.chunks_before, c.*kind.chunks_after})}) : chunk;
  const int64_t rows = std::min(chunk, L), cols = std::min(keys, L);
  AttentionBytes a;
  a.per_layer = mul({threads, sum({mul({2, cols, d}), mul({2, rows, cols}), mul({rows, d}), 2 * cols}), kFloat});
  return a;
}

AttentionBytes lsh_attention_bytes(const ReformerConfig& c, int64_t B, int64_t L, int threads, bool backward) {
  const int64_t H = c.num_attention_heads, d = c.attention_head_size;
  const bool hashed = L > c.lsh_attn_chunk_length;
  const int64_t nh = hashed ? c.num_hashes : 1;
  const int64_t chunk = hashed ? c.lsh_attn_chunk_length : L;
  const int64_t extra = hashed ? sum({c.lsh_num_chunks_before, c.lsh_num_chunks_after}) : 0;
  const int64_t slots = mul({nh, L}), window = mul({chunk, sum({1, extra})});
  int64_t buckets = 1, rotation_columns = 0;
  for (int64_t f : bucket_factors(c, L)) {
    buckets = mul({buckets, f});
    rotation_columns = sum({rotation_columns, f / 2});
  }
  // Per thread: sorted positions, logsumexps and weights, the slot outputs (several rounds only),
  // one chunk's queries, outputs, keys, values and scores (with a backward: their gradients), sort
  // counts.
  const int64_t grad = backward ? 2 : 1;
  const int64_t per_thread = sum({mul({slots, (nh > 1 ? d : 0) + 4}), mul({2, chunk, window}), mul({2 * grad, chunk, d}),
                                  mul({2 * grad, window, d}), mul({2, window}), backward ? chunk : 0,
                                  mul({nh + 1, buckets})});
  AttentionBytes a;
  a.shared = mul({std::min<int64_t>(threads, mul({B, H})), per_thread, kFloat});
  a.per_layer = hashed ? mul({H, d, nh, rotation_columns, kFloat}) : 0;  // the drawn rotations
  a.per_layer_activations = hashed ? mul({B, H, nh, L, static_cast<int64_t>(sizeof(int32_t))}) : 0;
  return a;
}

// One set of projection buffers serves every attention layer. A training step needs six (B, L, H*d)
// (LSH: qk, v, o, dO, dqk, dv; local/full: q/dq, k, v, o/dO, dk, dv) and local/full layers add the
// (B, H, L) logsumexp and -dO.o; a forward needs qk, v, o (LSH) or q, k, v, o and the logsumexp
// (local/full). Plus the row-chunk scratch of the streamed branch input/output (row_stream.h).
int64_t attention_projection_bytes(const ReformerConfig& c, int64_t B, int64_t L, bool backward) {
  const int64_t H = c.num_attention_heads, Hd = mul({H, c.attention_head_size});
  const bool qkv = std::any_of(c.attn_layers.begin(), c.attn_layers.end(), [](const std::string& t) { return !attention_kind(t).hashed; });
  const int64_t projections = backward ? 6 : qkv ? 4 : 3, logsumexps = !qkv ? 0 : backward ? 2 : 1;
  const int64_t row_chunk = std::min(mul({B, L}), kRowChunk);
  return mul({sum({mul({projections, B, L, Hd}), mul({logsumexps, B, H, L}), mul({row_chunk, sum({2 * c.hidden_size, Hd})})}),
              kFloat});
}

// The chunk's LN(x), its statistics, the hidden layer before and after the activation; with a
// backward, the gradients of the output and of the hidden layer.
int64_t feed_forward_bytes(const ReformerConfig& c, int64_t B, int64_t L, bool backward) {
  const int64_t rows = feed_forward_block_rows(c.chunk_size_feed_forward, mul({B, L}));
  const int64_t F = c.feed_forward_size, D = c.hidden_size;
  // FeedForward::prepare, per row: LN(x) and its two statistics, the activation a (and, unless
  // ReLU, the pre-activation h), the output rows; with a backward, dout and dh.
  const int64_t hidden = parse_activation(c.hidden_act) == Activation::Relu ? 1 : 2;
  return mul({rows, sum({2 * D + 2, hidden * F, backward ? D + F : 0}), kFloat});
}

int64_t optimizer_floats(const std::vector<ParameterShape>& shapes, const std::string& spec) {
  OptionSpec o(spec, "optimizer");
  int64_t total = 0;
  if (o.kind() == "adam") {
    for (const auto& p : shapes) total = sum({total, mul({2, shape_numel(p.shape)})});
    return total;
  }
  REFORMER_CHECK(o.kind() == "adafactor", "unknown optimizer \"", o.kind(), "\"; use adam or adafactor");
  const bool factored = o.flag("factored", true);
  const bool momentum = o.number("beta1", 0.0) > 0;
  for (const auto& p : shapes) {
    const int64_t n = shape_numel(p.shape);
    if (factored && p.shape.size() >= 2) total = sum({total, n / p.shape.back(), n / p.shape[p.shape.size() - 2]});
    else total = sum({total, n});
    if (momentum) total = sum({total, n});
  }
  return total;
}

}  // namespace

AllReducePlan allreduce_plan(const ReformerConfig& config) {
  const int64_t n = config.num_layers();
  std::vector<int64_t> group_floats(static_cast<size_t>(n + 2), 0);
  for (const auto& p : parameter_shapes(config)) {
    const int64_t padded = mul({(shape_numel(p.shape) + kGradAlignFloats - 1) / kGradAlignFloats, kGradAlignFloats});
    int64_t& g = group_floats[static_cast<size_t>(grad_group_index(p.name, n))];
    g = sum({g, padded});
  }
  AllReducePlan plan;
  plan.groups = n + 2;
  for (int64_t f : group_floats) {
    plan.bytes = sum({plan.bytes, mul({f, kFloat})});
    plan.largest_group_bytes = std::max(plan.largest_group_bytes, mul({f, kFloat}));
  }
  return plan;
}


namespace {

// The memory of one pass over `batch` sequences of `length` tokens: a training step (backward,
// with an optimizer) or a forward (no backward: the loss of an evaluation, or logits).
MemoryEstimate estimate_pass_memory(const ReformerConfig& c, int64_t B, int64_t L, const std::string* optimizer,
                                    int threads, const std::vector<LayerKeep>& plan) {
  const bool backward = optimizer != nullptr;
  REFORMER_CHECK(static_cast<int64_t>(plan.size()) <= c.num_layers(), "a layer plan of ", plan.size(),
                 " layers for a model of ", c.num_layers());
  REFORMER_CHECK(B >= 1 && B <= limits::kMaxBatch, "batch ", B, " must be between 1 and ", limits::kMaxBatch);
  REFORMER_CHECK(threads >= 1 && threads <= limits::kMaxThreads, "threads ", threads, " must be between 1 and ",
                 limits::kMaxThreads);
  c.validate_length(L, /*training=*/backward);
  const auto shapes = parameter_shapes(c);
  MemoryEstimate m;
  int64_t params = 0, largest = 0;
  for (const auto& p : shapes) {
    params = sum({params, shape_numel(p.shape)});
    largest = std::max(largest, shape_numel(p.shape));
  }
  m.parameters = mul({params, kFloat});
  // The gradient arena (each tensor padded to 64 bytes): every model holds one, even one that only
  // runs forward.
  m.gradients = allreduce_plan(c).bytes;
  if (backward) m.optimizer_state = mul({optimizer_floats(shapes, *optimizer), kFloat});
  const int64_t D = c.hidden_size, rows = mul({B, L});
  // What the layers keep (the plan): activations, and the stored layers' projections on top of the
  // shared set (workspace; an upper bound, since the shared set re-allocates a buffer only when a
  // later layer needs it, and above the top stored layer none may).
  StoredLayerBytes kept;
  for (size_t l = 0; l < plan.size(); ++l) {
    const StoredLayerBytes b = planned_layer_bytes(c, B, L, plan, static_cast<int64_t>(l));
    kept.activations = sum({kept.activations, b.activations});
    kept.workspace = sum({kept.workspace, b.workspace});
  }
  // The two streams (B, L, D) and, with a backward, their gradients; layer-norm statistics.
  m.activations = sum({mul({sum({mul({backward ? 4 : 2, rows, D}), mul({2, rows})}), kFloat}), kept.activations});
  // The LM head's row chunk: concat and normalized (2D wide each), with a backward the concat's
  // gradient (2D), the logits, LN statistics.
  const int64_t head_rows = std::min(rows, c.chunk_size_lm_head > 0 ? c.chunk_size_lm_head : kDefaultHeadChunk);
  m.workspace = sum({mul({head_rows, sum({(backward ? 6 : 4) * D, c.vocab_size, 2}), kFloat}),
                     feed_forward_bytes(c, B, L, backward), attention_projection_bytes(c, B, L, backward)});
  m.workspace = sum({m.workspace, kept.workspace});
  if (backward && OptionSpec(*optimizer, "optimizer").kind() == "adafactor")
    m.workspace = sum({m.workspace, mul({largest, kFloat})});  // its update buffer
  bool has_lsh = false;
  for (const auto& type : c.attn_layers) {
    // All LSH layers share one scratch (counted once); each other layer has its own.
    const AttentionKindSpec& kind = attention_kind(type);
    const AttentionBytes a =
        kind.hashed ? lsh_attention_bytes(c, B, L, threads, backward) : qkv_attention_bytes(c, kind, L, threads);
    if (!has_lsh || !kind.hashed) m.workspace = sum({m.workspace, a.shared});
    has_lsh = has_lsh || kind.hashed;
    m.workspace = sum({m.workspace, a.per_layer});
    m.activations = sum({m.activations, a.per_layer_activations});
  }
  return m;
}

}  // namespace

MemoryEstimate estimate_training_memory(const ReformerConfig& c, int64_t B, int64_t L, const std::string& optimizer,
                                        int threads, const std::vector<LayerKeep>& plan) {
  return estimate_pass_memory(c, B, L, &optimizer, threads, plan);
}

MemoryEstimate estimate_training_memory(const ReformerConfig& c, int64_t B, int64_t L, const std::string& optimizer,
                                        int threads, int64_t stored_layers) {
  REFORMER_CHECK(stored_layers >= 0 && stored_layers <= c.num_layers(), "stored layers ", stored_layers,
                 " must be between 0 and the model's ", c.num_layers(), " layers");
  return estimate_pass_memory(c, B, L, &optimizer, threads,
                              std::vector<LayerKeep>(static_cast<size_t>(stored_layers), LayerKeep::all));
}

MemoryEstimate estimate_forward_memory(const ReformerConfig& c, int64_t B, int64_t L, int threads, bool logits) {
  MemoryEstimate m = estimate_pass_memory(c, B, L, nullptr, threads, {});
  if (logits) m.outputs = mul({B, L, c.vocab_size, kFloat});
  return m;
}

int64_t available_memory() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  int64_t kib = 0;
  std::string unit;
  while (in >> key >> kib >> unit)
    if (key == "MemAvailable:") return checked_mul(kib, int64_t{1024}, "available memory");
  return memory_budget(0);
}

int64_t StoredLayerBytes::total() const { return checked_sum({activations, workspace}, kWhat); }

StoredLayerBytes stored_layer_bytes(const ReformerConfig& c, int64_t B, int64_t L, int64_t layer) {
  REFORMER_CHECK(layer >= 0 && layer < c.num_layers(), "layer ", layer, " is not one of the model's ", c.num_layers());
  const int64_t rows = mul({B, L}), H = c.num_attention_heads, Hd = mul({H, c.attention_head_size});
  const int64_t hidden_copies = parse_activation(c.hidden_act) == Activation::Relu ? 1 : 2;
  StoredLayerBytes b;
  b.activations = mul({sum({mul({2, rows, c.hidden_size}), mul({hidden_copies, rows, c.feed_forward_size})}), kFloat});
  const bool hashed = attention_kind(c.attn_layers[static_cast<size_t>(layer)]).hashed;
  b.workspace = mul({hashed ? mul({2, rows, Hd}) : sum({mul({4, rows, Hd}), mul({H, rows})}), kFloat});
  return b;
}

StoredLayerBytes kept_layer_bytes(const ReformerConfig& c, int64_t B, int64_t L, int64_t layer, LayerKeep keep) {
  if (keep == LayerKeep::all) return stored_layer_bytes(c, B, L, layer);
  REFORMER_CHECK(layer >= 0 && layer < c.num_layers(), "layer ", layer, " is not one of the model's ", c.num_layers());
  StoredLayerBytes b;
  if (keep == LayerKeep::input) b.activations = mul({B, L, c.hidden_size, kFloat});
  return b;
}

StoredLayerBytes planned_layer_bytes(const ReformerConfig& c, int64_t B, int64_t L, const std::vector<LayerKeep>& plan,
                                     int64_t layer) {
  const size_t l = static_cast<size_t>(layer);
  const LayerKeep keep = l < plan.size() ? plan[l] : LayerKeep::nothing;
  StoredLayerBytes b = kept_layer_bytes(c, B, L, layer, keep);
  if (keep == LayerKeep::all && !stored_layer_keeps_y1(plan, l))
    b.activations -= mul({B, L, c.hidden_size, kFloat});  // no copy of Y1
  return b;
}

RecomputeFlops recompute_flops(const ReformerConfig& c, int64_t B, int64_t L, const std::vector<LayerKeep>& plan) {
  // 2 FLOPs per multiply-add, per token: the feed-forward's two products (D x d_ff each), the
  // attention's projections (q, k, v; LSH: qk, v) and its output projection F (all D x H*d).
  const double tokens = static_cast<double>(B) * static_cast<double>(L), D = static_cast<double>(c.hidden_size);
  const double F = static_cast<double>(c.feed_forward_size),
               Hd = static_cast<double>(c.num_attention_heads * c.attention_head_size);
  const double ff_product = tokens * 2.0 * D * F, projection = tokens * 2.0 * D * Hd;
  auto of_plan = [&](const std::vector<LayerKeep>& keep) {
    double flops = 0;
    for (size_t l = 0; l < c.attn_layers.size(); ++l) {
      const LayerKeep k = l < keep.size() ? keep[l] : LayerKeep::nothing;
      const double projections = attention_kind(c.attn_layers[l]).hashed ? 2 : 3;
      if (k != LayerKeep::all) flops += ff_product + projections * projection;  // FF's hidden layer, projections
      if (k == LayerKeep::nothing) flops += ff_product;                          // X2 = Y2 - FF(Y1)
      // X1 = Y1 - F for the layer below, unless that one keeps its Y1 (ModelImpl::backward_layers).
      if (l > 0 && !stored_layer_keeps_y1(keep, l - 1)) flops += projection;
    }
    return flops;
  };
  RecomputeFlops r;
  r.reversible = of_plan({});
  r.saved = r.reversible - of_plan(plan);
  return r;
}

LayerPlan plan_stored_layers(const ReformerConfig& c, int64_t B, int64_t L, const std::string& optimizer, int threads,
                             int64_t max_memory) {
  const int64_t layers = c.num_layers();
  const int64_t budget = max_memory > 0 ? max_memory : available_memory();
  const std::vector<LayerKeep> reversible(static_cast<size_t>(layers), LayerKeep::nothing);
  const int64_t base = estimate_training_memory(c, B, L, optimizer, threads, reversible).total();
  const double room = kPlanBudgetShare * static_cast<double>(budget) - static_cast<double>(base);
  // The candidates: the lowest k layers stored, then as many of the next ones keeping X2 as the
  // rest of the room holds. Of those that fit, the one that skips the most recomputation; of equal
  // ones, the one storing more layers (a stored layer also skips its forward's masks and, for
  // local attention, the attention). Storing the layers that fit, then X2 with what is left, is
  // not always it: at 16,384 tokens in a quarter of Hugging Face's memory, three stored C&P layers
  // skip less than two stored and four keeping X2 (and ran 0.9% slower, docs/PERFORMANCE.md).
  LayerPlan best;
  best.keep = reversible;
  best.recompute_flops = recompute_flops(c, B, L, reversible).reversible;
  const double tie = 1e-9 * best.recompute_flops;  // the same FLOPs summed in another order
  for (int64_t k = 0; k <= layers; ++k) {
    std::vector<LayerKeep> keep(static_cast<size_t>(layers), LayerKeep::nothing);
    std::fill(keep.begin(), keep.begin() + k, LayerKeep::all);
    int64_t stored_bytes = 0;  // the k lowest layers', as planned (the top one keeps no Y1)
    for (int64_t l = 0; l < k; ++l) stored_bytes = sum({stored_bytes, planned_layer_bytes(c, B, L, keep, l).total()});
    if (static_cast<double>(stored_bytes) > room) break;
    int64_t bytes = stored_bytes, inputs = 0;
    for (int64_t l = k; l < layers; ++l) {
      const int64_t x2 = kept_layer_bytes(c, B, L, l, LayerKeep::input).total();
      if (static_cast<double>(sum({bytes, x2})) > room) break;
      bytes = sum({bytes, x2});
      keep[static_cast<size_t>(l)] = LayerKeep::input;
      ++inputs;
    }
    const double saved = recompute_flops(c, B, L, keep).saved;
    if (saved >= best.recompute_flops_saved - tie) {  // later candidates store more
      best.keep = keep;
      best.stored_count = k;
      best.input_count = inputs;
      best.kept_bytes = bytes;
      best.recompute_flops_saved = saved;
    }
  }
  best.budget = budget;
  best.estimate = estimate_training_memory(c, B, L, optimizer, threads, best.keep);
  return best;
}

namespace {

// "layer 3", "layers 2-5".
std::string layer_range(int64_t first, int64_t count) {
  if (count == 1) return "layer " + std::to_string(first);
  return "layers " + std::to_string(first) + "-" + std::to_string(first + count - 1);
}

}  // namespace

std::string describe_plan(const LayerPlan& plan) {
  const int64_t n = static_cast<int64_t>(plan.keep.size()), k = plan.stored_count, x = plan.input_count;
  const int64_t reversible = n - k - x;
  if (k == 0 && x == 0) return "all " + std::to_string(n) + " layers reversible";
  std::string s;
  if (k == n) s = "all " + std::to_string(n) + " layers stored";
  if (k > 0 && k < n) s = layer_range(0, k) + " of " + std::to_string(n) + " stored";
  if (x > 0) {
    s += k > 0 ? ", " + layer_range(k, x) : layer_range(0, x) + " of " + std::to_string(n);
    s += x == 1 ? " keeps X2" : " keep X2";
  }
  s += " (" + format_bytes(plan.kept_bytes) + " kept)";
  if (reversible > 0) s += ", " + std::to_string(reversible) + " reversible";
  return s;
}

int64_t MemoryEstimate::total() const {
  return checked_sum({parameters, gradients, optimizer_state, activations, workspace, outputs}, kWhat);
}

int64_t memory_budget(int64_t max_memory) {
  if (max_memory > 0) return max_memory;
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? checked_mul(pages, page, "physical memory") : INT64_MAX;
}

void check_memory_plan(const MemoryEstimate& plan, int64_t max_memory) {
  const int64_t total = plan.total(), budget = memory_budget(max_memory);
  REFORMER_CHECK(total <= budget, "the training step needs about ", total, " bytes (", format_bytes(total), ") but ",
                 max_memory > 0 ? "--max-memory allows " : "this machine has ", budget, " bytes (", format_bytes(budget),
                 "); use a smaller --batch, --seq-len, model or --layers", max_memory > 0 ? ", or raise --max-memory" : "");
}

}  // namespace reformer
