#include "model/model_impl.h"

#include <algorithm>
#include <cstring>
#include <map>

#include "kernels/cpu/gemm.h"
#include "layers/full_attention.h"
#include "layers/local_attention.h"
#include "model/heads.h"
#include "model/model_layer.h"
#include "ops/activation.h"
#include "ops/axial_position.h"
#include "ops/cross_entropy.h"
#include "ops/dropout.h"
#include "ops/embedding.h"
#include "ops/layernorm.h"
#include "ops/linear.h"
#include "ops/parallel.h"
#include "reformer/parameters.h"
#include "reformer/rng.h"

namespace reformer {
namespace {

uint64_t name_hash(const std::string& s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

void add_into(float* y, const float* x, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void copy(float* y, const float* x, int64_t n) { copy_elementwise(y, x, n); }

// The attention branch's streamed input LN(x), x: (rows, D), computed chunk by chunk as the layer
// reads it; the statistics of the rows read land in mean/rstd (for LN's backward).
RowReader layernorm_rows(const float* x, const float* w, const float* b, float* mean, float* rstd, int64_t D,
                         float eps) {
  return [=](float* dst, int64_t r0, int64_t rows) {  // bf16: with the rows' operand copy (row_stream.h)
    layernorm_forward(dst, mean + r0, rstd + r0, x + r0 * D, w, b, rows, D, eps, gemm_operand_bf16_slot(dst, rows, D));
  };
}

// The branch output's writer: y += dropout(F) (Y1 = X1 + F), or y -= dropout(F) in the reversible
// backward (X1 = Y1 - F); the mask is keyed by absolute element index, so chunking cannot change it.
// With y_in, y = y_in + dropout(F) instead (y_in is not modified).
RowWriter dropout_rows_into(float* y, bool subtract, float p, uint64_t seed, uint64_t stream, int64_t D,
                            const float* y_in = nullptr) {
  return [=](float* f, int64_t r0, int64_t rows) {
    dropout_add(y + r0 * D, f, rows * D, subtract, p, seed, stream, static_cast<uint64_t>(r0 * D),
                y_in ? y_in + r0 * D : nullptr);  // one pass
  };
}

}  // namespace

ModelImpl::ModelImpl(const ReformerConfig& config, uint64_t init_seed) : config_(config) {
  config_.validate();
  const float std_init = static_cast<float>(config_.initializer_range);

  // Every parameter of reformer/parameters.h (the one list of names, shapes and initialisations),
  // with its gradient; the code below binds the model's pointers to them by name.
  std::map<std::string, std::pair<Tensor*, Tensor*>> made;
  for (const ParameterShape& spec : parameter_shapes(config_)) {
    auto p = std::make_unique<Tensor>(spec.shape, MemCategory::Parameters);
    auto g = std::make_unique<Tensor>();  // a view into the gradient arena (bind_grad_arena)
    const bool axial = spec.init == ParameterInit::AxialNormal;
    if (axial || spec.init == ParameterInit::Normal)
      rng_fill_normal(p->data(), p->numel(), init_seed, rng_stream(RngPurpose::Init, {name_hash(spec.name)}), 0.f,
                      axial ? static_cast<float>(config_.axial_norm_std) : std_init);
    else
      p->fill(spec.init == ParameterInit::Ones ? 1.f : 0.f);
    params_.push_back({spec.name, p.get(), g.get()});
    made[spec.name] = {p.get(), g.get()};
    storage_.push_back(std::move(p));
    storage_.push_back(std::move(g));
  }
  auto add = [&](const std::string& name) { return made.at(name); };

  std::tie(word_emb_, word_emb_g_) = add("reformer.embeddings.word_embeddings.weight");
  if (config_.axial_pos_embds) {
    for (size_t a = 0; a < config_.axial_pos_shape.size(); ++a) {
      auto [w, g] = add("reformer.embeddings.position_embeddings.weights." + std::to_string(a));
      pos_w_.push_back(w);
      pos_g_.push_back(g);
    }
  } else {
    auto [w, g] = add("reformer.embeddings.position_embeddings.embedding.weight");
    pos_w_.push_back(w);
    pos_g_.push_back(g);
  }
  for (int64_t i = 0; i < config_.num_layers(); ++i) {
    auto L = std::make_unique<Layer>();
    const AttentionKindSpec& kind = attention_kind(config_.attn_layers[i]);
    L->kind = kind.kind;
    const std::string p = "reformer.encoder.layers." + std::to_string(i) + ".";
    std::tie(L->ln_w, L->ln_wg) = add(p + "attention.layer_norm.weight");
    std::tie(L->ln_b, L->ln_bg) = add(p + "attention.layer_norm.bias");
    for (const char* n : kind.projections) {
      auto [w, g] = add(p + "attention.self_attention." + n + ".weight");
      L->attn_w.push_back(w);
      L->attn_g.push_back(g);
    }
    auto [wo, go] = add(p + "attention.output.dense.weight");
    L->attn_w.push_back(wo);
    L->attn_g.push_back(go);
    std::tie(L->ff_ln_w, L->ff_ln_wg) = add(p + "feed_forward.layer_norm.weight");
    std::tie(L->ff_ln_b, L->ff_ln_bg) = add(p + "feed_forward.layer_norm.bias");
    std::tie(L->ff_w1, L->ff_w1g) = add(p + "feed_forward.dense.dense.weight");
    std::tie(L->ff_b1, L->ff_b1g) = add(p + "feed_forward.dense.dense.bias");
    std::tie(L->ff_w2, L->ff_w2g) = add(p + "feed_forward.output.dense.weight");
    std::tie(L->ff_b2, L->ff_b2g) = add(p + "feed_forward.output.dense.bias");
    layers_.push_back(std::move(L));
  }
  std::tie(final_ln_w_, final_ln_wg_) = add("reformer.encoder.layer_norm.weight");
  std::tie(final_ln_b_, final_ln_bg_) = add("reformer.encoder.layer_norm.bias");
  const ModelClass cls = config_.model_class();
  if (is_language_model(cls)) {
    std::tie(head_w_, head_wg_) = add("lm_head.decoder.weight");
    // HF ties lm_head.bias to lm_head.decoder.bias: one tensor, saved under both names.
    std::tie(head_b_, head_bg_) = add("lm_head.decoder.bias");
  } else {
    task_ = std::make_unique<TaskHead>();
    task_->cls = cls;
    if (cls == ModelClass::SequenceClassification) {  // HF ReformerClassificationHead
      std::tie(task_->w1, task_->w1g) = add("classifier.dense.weight");
      std::tie(task_->b1, task_->b1g) = add("classifier.dense.bias");
      std::tie(task_->w2, task_->w2g) = add("classifier.out_proj.weight");
      std::tie(task_->b2, task_->b2g) = add("classifier.out_proj.bias");
    } else if (cls == ModelClass::QuestionAnswering) {
      std::tie(task_->w1, task_->w1g) = add("qa_outputs.weight");
      std::tie(task_->b1, task_->b1g) = add("qa_outputs.bias");
    }
  }
  bind_grad_arena();
  if (!config_.num_buckets.empty()) build_layers(config_.num_buckets);
}

int grad_group_index(const std::string& name, int64_t num_layers) {
  const std::string layer_prefix = "reformer.encoder.layers.";
  if (name.rfind("reformer.embeddings.", 0) == 0) return static_cast<int>(num_layers) + 1;
  if (name.rfind(layer_prefix, 0) == 0) return static_cast<int>(num_layers - std::stoll(name.substr(layer_prefix.size())));
  return 0;
}

void ModelImpl::bind_grad_arena() {
  // Groups in the order the backward finalises them (grad_group_index).
  const int n = static_cast<int>(config_.num_layers());
  auto group_of = [&](const std::string& name) { return grad_group_index(name, n); };
  constexpr int64_t kAlign = kGradAlignFloats;
  std::vector<int64_t> offset(params_.size());
  std::vector<std::pair<int64_t, int64_t>> ranges(n + 2);
  int64_t total = 0;
  for (int g = 0; g < n + 2; ++g) {
    ranges[g].first = total;
    for (size_t i = 0; i < params_.size(); ++i) {
      if (group_of(params_[i].name) != g) continue;
      offset[i] = total;
      total += (params_[i].param->numel() + kAlign - 1) / kAlign * kAlign;
    }
    ranges[g].second = total - ranges[g].first;
  }
  grad_arena_ = Tensor::zeros({total}, MemCategory::Gradients);
  for (size_t i = 0; i < params_.size(); ++i)
    *params_[i].grad = Tensor::view(grad_arena_.data() + offset[i], params_[i].param->shape());
  grad_groups_.clear();
  for (int g = 0; g < n + 2; ++g)
    grad_groups_.push_back({g == 0 ? "head" : g == n + 1 ? "embeddings" : "layer." + std::to_string(n - g),
                            grad_arena_.data() + ranges[g].first, ranges[g].second});
}

ModelImpl::~ModelImpl() = default;

void ModelImpl::build_layers(const std::vector<int64_t>& buckets) {
  const ReformerConfig& c = config_;
  const int64_t D = c.hidden_size, H = c.num_attention_heads, d = c.attention_head_size;
  const Activation act = parse_activation(c.hidden_act);
  // One workspace per kind of layer, shared by all layers of that kind (they run one at a time).
  if (!lsh_ws_) {
    // LSH and local/full layers share one set of (B, L, H*d) projection buffers.
    qkv_ws_ = std::make_shared<QkvWorkspace>();
    lsh_ws_ = LshSelfAttention::make_workspace(qkv_ws_);
    ff_ws_ = std::make_shared<FeedForwardWorkspace>();
  }
  if (attention_row_chunk_ > 0) qkv_ws_->rows.chunk = attention_row_chunk_;
  for (int64_t i = 0; i < c.num_layers(); ++i) {
    Layer& L = *layers_[i];
    if (L.kind == AttentionKind::Lsh) {
      LshAttentionConfig a;
      a.hidden = D; a.heads = H; a.head_size = d;
      a.chunk_length = c.lsh_attn_chunk_length;
      a.chunks_before = c.lsh_num_chunks_before;
      a.chunks_after = c.lsh_num_chunks_after;
      a.num_hashes = static_cast<int>(num_hashes_override_ ? num_hashes_override_ : c.num_hashes);
      a.num_buckets = buckets;
      a.causal = c.is_decoder;
      a.dropout = static_cast<float>(c.lsh_attention_probs_dropout_prob);
      auto lsh = std::make_unique<LshSelfAttention>(
          a, LshAttentionWeights{L.attn_w[0]->data(), L.attn_w[1]->data(), L.attn_w[2]->data()},
          LshAttentionGrads{L.attn_g[0]->data(), L.attn_g[1]->data(), L.attn_g[2]->data()}, lsh_ws_);
      L.lsh = lsh.get();
      if (!L.rotations.empty()) L.lsh->set_rotations(L.rotations.data());
      L.attn = std::move(lsh);
    } else {
      const QkvAttentionWeights w{L.attn_w[0]->data(), L.attn_w[1]->data(), L.attn_w[2]->data(), L.attn_w[3]->data()};
      const QkvAttentionGrads g{L.attn_g[0]->data(), L.attn_g[1]->data(), L.attn_g[2]->data(), L.attn_g[3]->data()};
      if (L.kind == AttentionKind::Local) {
        LocalAttentionConfig a;
        a.hidden = D; a.heads = H; a.head_size = d;
        a.chunk_length = c.local_attn_chunk_length;
        a.chunks_before = c.local_num_chunks_before;
        a.chunks_after = c.local_num_chunks_after;
        a.causal = c.is_decoder;
        a.dropout = static_cast<float>(c.local_attention_probs_dropout_prob);
        L.attn = std::make_unique<LocalSelfAttention>(a, w, g, qkv_ws_);
      } else {
        // "full" (our extension): exact blockwise attention with local attention's weights and
        // dropout probability.
        FullAttentionConfig a;
        a.hidden = D; a.heads = H; a.head_size = d;
        a.causal = c.is_decoder;
        a.dropout = static_cast<float>(c.local_attention_probs_dropout_prob);
        a.block_length = attention_kind(AttentionKind::Full).block_length;
        L.attn = std::make_unique<FullSelfAttention>(a, w, g, qkv_ws_);
      }
    }
    L.ff = std::make_unique<FeedForward>(
        D, c.feed_forward_size, act, static_cast<float>(c.layer_norm_eps), c.chunk_size_feed_forward,
        FeedForwardWeights{L.ff_ln_w->data(), L.ff_ln_b->data(), L.ff_w1->data(), L.ff_b1->data(), L.ff_w2->data(), L.ff_b2->data()},
        FeedForwardGrads{L.ff_ln_wg->data(), L.ff_ln_bg->data(), L.ff_w1g->data(), L.ff_b1g->data(), L.ff_w2g->data(), L.ff_b2g->data()},
        ff_ws_);
  }
  built_buckets_ = buckets;
}

void ModelImpl::ensure_layers(int64_t L) {
  // HF resolves an unset num_buckets once, from the first sequence that is hashed (longer than a
  // chunk), and writes it into the config (spec 1.2, 9.7); shorter sequences never hash.
  std::vector<int64_t> buckets = config_.num_buckets;
  if (buckets.empty()) {
    buckets = config_.auto_num_buckets(std::max(L, config_.lsh_attn_chunk_length));
    if (L > config_.lsh_attn_chunk_length) config_.num_buckets = buckets;
  }
  if (layers_.empty() || !layers_[0]->ff || buckets != built_buckets_) build_layers(buckets);
}

void ModelImpl::prepare(int64_t B, int64_t L, bool training, bool backward) {
  config_.validate_length(L, training);
  ensure_layers(L);
  const int64_t D = config_.hidden_size;
  const Shape s{B, L, D};
  // The model's only (B, L, D) buffers: the two streams and, for a backward, their gradients. The
  // attention branch streams its input and output (row_stream.h), the FF branch works in chunks.
  for (Tensor* t : {&x1_, &x2_}) t->ensure(s, MemCategory::Activations);
  if (backward)
    for (Tensor* t : {&dx1_, &dx2_}) t->ensure(s, MemCategory::Activations);
  ln_mean_.ensure({B * L}, MemCategory::Activations);
  ln_rstd_.ensure({B * L}, MemCategory::Activations);
}

NamedParameter* ModelImpl::find_parameter(const std::string& name) {
  for (auto& p : params_)
    if (p.name == name) return &p;
  return nullptr;
}

int64_t ModelImpl::num_parameters() const {
  int64_t n = 0;
  for (const auto& p : params_) n += p.param->numel();
  return n;
}

void ModelImpl::zero_grad() { zero_elementwise(grad_arena_.data(), grad_arena_.numel()); }

void ModelImpl::set_num_hashes(int64_t n) {
  REFORMER_CHECK(n >= 0, "num_hashes = ", n, " must be positive (0 = back to the config's)");
  num_hashes_override_ = n;
  for (auto& L : layers_)
    if (L->lsh) L->lsh->set_num_hashes(static_cast<int>(n > 0 ? n : config_.num_hashes));
}

void ModelImpl::set_attention_row_chunk(int64_t rows) {
  REFORMER_CHECK(rows > 0, "attention row chunk ", rows, " must be positive");
  attention_row_chunk_ = rows;
  if (qkv_ws_) qkv_ws_->rows.chunk = rows;
}

void ModelImpl::set_rotations(int layer, const float* rotations) {
  REFORMER_CHECK(layer >= 0 && layer < config_.num_layers() && layers_[layer]->kind == AttentionKind::Lsh, "set_rotations: layer ",
                 layer, " is not an LSH layer");
  Layer& L = *layers_[layer];
  if (!rotations) {
    L.rotations.clear();
    if (L.lsh) L.lsh->clear_rotations();
    return;
  }
  std::vector<int64_t> buckets = config_.num_buckets.empty() ? built_buckets_ : config_.num_buckets;
  REFORMER_CHECK(!buckets.empty(), "set_rotations: num_buckets is unset; set it in the config first");
  int64_t cols = 0;
  for (int64_t f : buckets) cols += f / 2;
  const int64_t nh = num_hashes_override_ ? num_hashes_override_ : config_.num_hashes;
  L.rotations.assign(rotations, rotations + config_.num_attention_heads * config_.attention_head_size * nh * cols);
  if (L.lsh) L.lsh->set_rotations(L.rotations.data());
}

AttentionCall ModelImpl::attention_call(const Batch& batch, const StepOptions& opt, int layer) const {
  AttentionCall call;
  call.batch = batch.batch;
  call.length = batch.length;
  call.pad_mask = batch.attention_mask;
  call.training = opt.training;
  call.seed = opt.seed;
  call.step = opt.step;
  call.layer = layer;
  return call;
}

FeedForwardCall ModelImpl::ff_call(const Batch& batch, const StepOptions& opt, int layer) const {
  FeedForwardCall call;
  call.rows = batch.batch * batch.length;
  call.training = opt.training;
  call.dropout = static_cast<float>(config_.hidden_dropout_prob);
  call.seed = opt.seed;
  call.step = opt.step;
  call.layer = layer;
  return call;
}

FeedForwardCall ModelImpl::stored_ff_call(const Batch& batch, const StepOptions& opt, size_t l, bool kept) {
  FeedForwardCall call = ff_call(batch, opt, static_cast<int>(l));
  if (!kept) return call;
  StoredLayer& s = saved_[l];
  const Shape shape{batch.batch, batch.length, config_.feed_forward_size};
  s.ff_a.ensure(shape, MemCategory::Activations);
  call.kept_a = s.ff_a.data();
  if (layers_[l]->ff->needs_h()) {
    s.ff_h.ensure(shape, MemCategory::Activations);
    call.kept_h = s.ff_h.data();
  }
  return call;
}

float ModelImpl::hidden_dropout(const StepOptions& opt) const {
  return opt.training ? static_cast<float>(config_.hidden_dropout_prob) : 0.f;
}

// Position-embedding dropout mask (training only). HF applies dropout2d to the axial table viewed
// as (B, n_last, ..., D): per (batch, index along the last axis) the whole slab is dropped
// (spec 4). For the learned table HF drops elementwise.
void ModelImpl::position_dropout(float* pos, int64_t B, int64_t L, const StepOptions& opt) const {
  const float p = hidden_dropout(opt);
  if (p == 0.f) return;
  const int64_t D = config_.hidden_size;
  const uint64_t stream = rng_stream(RngPurpose::EmbeddingDropout, {opt.step, 1});
  if (!config_.axial_pos_embds) {
    dropout_forward(pos, pos, B * L * D, p, opt.seed, stream, 0);
    return;
  }
  const int64_t n_last = config_.axial_pos_shape.back();
  const float scale = 1.f / (1.f - p);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < B * L; ++r) {
    const int64_t b = r / L, t = r % L;
    const bool keep = rng_keep(opt.seed, stream, static_cast<uint64_t>(b * n_last + t % n_last), p);
    float* row = pos + r * D;
    for (int64_t j = 0; j < D; ++j) row[j] = keep ? row[j] * scale : 0.f;
  }
}

void ModelImpl::embed(const Batch& batch, const StepOptions& opt) {
  const int64_t B = batch.batch, L = batch.length, D = config_.hidden_size, n = B * L * D;
  embedding_forward(x1_.data(), batch.ids, word_emb_->data(), B * L, config_.vocab_size, D);
  dropout_forward(x1_.data(), x1_.data(), n, hidden_dropout(opt), opt.seed,
                  rng_stream(RngPurpose::EmbeddingDropout, {opt.step, 0}), 0);
  float* pos = x2_.data();  // free until X2 = X1 below
  zero_elementwise(pos, n);
  add_positions(pos, B, L);
  position_dropout(pos, B, L, opt);
  add_into(x1_.data(), pos, n);
  copy(x2_.data(), x1_.data(), n);
  dump("embeddings", x1_.data(), {B, L, D});
}

void ModelImpl::add_positions(float* x, int64_t B, int64_t L) const {
  const int64_t D = config_.hidden_size;
  if (config_.axial_pos_embds) {
    std::vector<const float*> w;
    for (Tensor* t : pos_w_) w.push_back(t->data());
    axial_position_forward(x, w.data(), AxialShape{config_.axial_pos_shape, config_.axial_pos_embds_dim}, B, L);
  } else {
    learned_position_forward(x, pos_w_[0]->data(), B, L, D, config_.max_position_embeddings);
  }
}

void ModelImpl::embed_backward(const Batch& batch, const StepOptions& opt) {
  const int64_t B = batch.batch, L = batch.length, D = config_.hidden_size, n = B * L * D;
  // dE = dX1 + dX2, through the position dropout mask into the position weights, and through the
  // word-embedding dropout mask into the word embedding.
  add_into(dx1_.data(), dx2_.data(), n);
  float* dpos = dx2_.data();  // dX2 is spent
  copy(dpos, dx1_.data(), n);
  const float p = hidden_dropout(opt);
  // Position dropout multiplies by a fixed mask (keep / (1 - p) or 0), so its backward is the same
  // masking applied to the gradient.
  position_dropout(dpos, B, L, opt);
  if (config_.axial_pos_embds) {
    std::vector<float*> g;
    for (Tensor* t : pos_g_) g.push_back(t->data());
    axial_position_backward(g.data(), dpos, AxialShape{config_.axial_pos_shape, config_.axial_pos_embds_dim}, B, L);
  } else {
    learned_position_backward(pos_g_[0]->data(), dpos, B, L, D, config_.max_position_embeddings);
  }
  dropout_backward(dx1_.data(), dx1_.data(), n, p, opt.seed, rng_stream(RngPurpose::EmbeddingDropout, {opt.step, 0}), 0);
  embedding_backward(word_emb_g_->data(), dx1_.data(), batch.ids, B * L, config_.vocab_size, D);
}

void ModelImpl::run_layers(const Batch& batch, const StepOptions& opt, bool keep_inputs,
                               const std::function<void(int)>& after_attention) {
  const int64_t B = batch.batch, L = batch.length, D = config_.hidden_size;
  const float eps = static_cast<float>(config_.layer_norm_eps);
  if (keep_inputs) saved_.resize(layers_.size());
  // Where the layer's input X1 is: the stream, or the stored layer below's Y1 (which its attention
  // wrote into its own copy; the stream's X1 is then free and the next layer writes its Y1 there).
  const float* x1_in = x1_.data();
  for (size_t l = 0; l < layers_.size(); ++l) {
    Layer& layer = *layers_[l];
    const int li = static_cast<int>(l);
    // Each layer keeps what the plan says (LayerKeep: everything, X2 alone, or nothing) and frees
    // whatever more it kept under an earlier plan.
    const LayerKeep what = keep_inputs ? layer_keep(l) : LayerKeep::nothing;
    const bool keep = what == LayerKeep::all;
    if (keep_inputs && !keep) {
      Tensor x2 = std::move(saved_[l].x2);
      saved_[l] = StoredLayer();
      if (what == LayerKeep::input) saved_[l].x2 = std::move(x2);
    }
    if (what != LayerKeep::nothing) saved_[l].x2.ensure({B, L, D}, MemCategory::Activations);
    // Y1 = X1 + dropout(Attn(LN_a(X2))), row chunk by row chunk: LN_a(X2) is computed as the
    // attention reads it, and its output is added to X1 as it is written (row_stream.h), into the
    // stream or, for a stored layer that keeps Y1, into its copy (no copy pass).
    float* y1 = x1_.data();
    if (keep && layer_keeps_y1(l)) {
      saved_[l].y1.ensure({B, L, D}, MemCategory::Activations);
      y1 = saved_[l].y1.data();
    } else if (keep) {
      saved_[l].y1 = Tensor();  // a copy an earlier plan kept
    }
    const uint64_t stream = hidden_dropout_stream(opt.step, li, DropoutSite::AttentionOutput);
    AttentionCall call = attention_call(batch, opt, li);
    if (keep) call.kept = &saved_[l].attn;  // its projections, for its backward
    layer.attn->forward(
        layernorm_rows(x2_.data(), layer.ln_w->data(), layer.ln_b->data(), ln_mean_.data(), ln_rstd_.data(), D, eps),
        dropout_rows_into(y1, /*subtract=*/false, hidden_dropout(opt), opt.seed, stream, D, x1_in), call);
    x1_in = y1;
    if (after_attention) after_attention(li);
    // Y2 = X2 + FF(Y1), chunk by chunk into X2 (no full-size FF output); a stored layer keeps FF's
    // hidden activations for its backward. A layer that keeps X2 writes Y2 into its copy's buffer
    // instead, and the two trade places: X2 is kept without a copy pass.
    if (what != LayerKeep::nothing) {
      layer.ff->forward_add(x2_.data(), y1, stored_ff_call(batch, opt, l, keep), saved_[l].x2.data());
      std::swap(x2_, saved_[l].x2);
    } else {
      layer.ff->forward_add(x2_.data(), y1, stored_ff_call(batch, opt, l, keep));
    }
    dump("layer." + std::to_string(l) + ".y1", y1, {B, L, D});
    dump("layer." + std::to_string(l) + ".y2", x2_.data(), {B, L, D});
  }
  // The top layer keeps no copy of Y1 (layer_keeps_y1): its Y1 is in the stream, as the head reads it.
  REFORMER_CHECK(x1_in == x1_.data(), "the top layer's Y1 is not in the stream");
}

void ModelImpl::backward_layers(const Batch& batch, const StepOptions& opt) {
  const int64_t D = config_.hidden_size;
  const float eps = static_cast<float>(config_.layer_norm_eps);
  for (size_t l = layers_.size(); l-- > 0;) {
    Layer& layer = *layers_[l];
    const int li = static_cast<int>(l);
    const bool stored = layer_stored(l), kept_x2 = layer_keep(l) != LayerKeep::nothing, keeps_y1 = layer_keeps_y1(l);
    // A layer hands the layer below its input X1 unless that one keeps its own Y1 (a stored layer
    // under this stored one) or there is none (the embeddings' backward reads no stream):
    // X1 = Y1 - F needs F recomputed (the output projection) and a pass over X1. The top stored
    // layer under a reversible one keeps no Y1 and gets it so, in the stream.
    // A stored layer with a reversible layer below hands it X2 from the copy and X1 = Y1 - F from
    // Y1 (its copy, if it keeps one) and the recomputed F (as a reversible layer would). The copies
    // trade places with the streams instead of being copied into them: the streams' Y1 and Y2 are
    // not read again, and the next forward writes every copy before it reads one.
    const bool reconstruct_x1 = l > 0 && !layer_keeps_y1(l - 1);
    if (keeps_y1 && reconstruct_x1) std::swap(x1_, saved_[l].y1);
    // FF half: (x1_ holds Y1, x2_ holds Y2). dY1' = dY1 + dFF/dY1^T dY2; X2 = Y2 - FF(Y1), both
    // chunk by chunk in place (FeedForward::backward_add), unless the layer kept X2.
    const float* y1 = keeps_y1 && !reconstruct_x1 ? saved_[l].y1.data() : x1_.data();
    layer.ff->backward_add(dx1_.data(), kept_x2 ? nullptr : x2_.data(), dx2_.data(), y1,
                           stored_ff_call(batch, opt, l, stored));
    if (kept_x2) std::swap(x2_, saved_[l].x2);
    // Attention half, row chunk by row chunk (row_stream.h): the attention reads LN_a(X2) (which
    // leaves LN's statistics for the backward) and dropout^T dY1'; it hands back the recomputed F,
    // subtracted from Y1 (X1 = Y1 - F), and dA, taken through LN_a's backward into dX2
    // (dX2 = dY2 + LN_a^T dA; dX1 = dY1').
    const float p = hidden_dropout(opt);
    const uint64_t stream = hidden_dropout_stream(opt.step, li, DropoutSite::AttentionOutput);
    const RowReader attn_input =
        layernorm_rows(x2_.data(), layer.ln_w->data(), layer.ln_b->data(), ln_mean_.data(), ln_rstd_.data(), D, eps);
    const RowReader attn_output_grad = [&](float* dst, int64_t r0, int64_t rows) {
      dropout_backward(dst, dx1_.data() + r0 * D, rows * D, p, opt.seed, stream, static_cast<uint64_t>(r0 * D),
                       gemm_operand_bf16_slot(dst, rows, D));  // bf16: with the rows' operand copy
    };
    const RowWriter subtract_from_x1 = dropout_rows_into(x1_.data(), /*subtract=*/true, p, opt.seed, stream, D);
    const RowWriter input_grad_to_dx2 = [&](float* da, int64_t r0, int64_t rows) {
      // LN statistics of these rows were left by attn_input, which read them just before.
      layernorm_backward(dx2_.data() + r0 * D, layer.ln_wg->data(), layer.ln_bg->data(), da, x2_.data() + r0 * D,
                         ln_mean_.data() + r0, ln_rstd_.data() + r0, layer.ln_w->data(), rows, D, /*accumulate=*/true);
    };
    AttentionCall call = attention_call(batch, opt, li);
    if (stored) call.kept = &saved_[l].attn;
    layer.attn->backward(attn_input, attn_output_grad, input_grad_to_dx2, reconstruct_x1 ? &subtract_from_x1 : nullptr,
                         call);
    grads_ready(static_cast<int>(layers_.size() - l));  // layer l's group (bind_grad_arena)
  }
}

LossStats ModelImpl::head(const Batch& batch, const StepOptions& opt, bool grads, float* logits_out) {
  const int64_t B = batch.batch, L = batch.length, D = config_.hidden_size, V = config_.vocab_size;
  const int64_t rows = B * L, D2 = 2 * D;
  const int64_t chunk = std::min(rows, config_.chunk_size_lm_head > 0 ? config_.chunk_size_lm_head : kDefaultHeadChunk);
  // HF's causal-LM loss: logits[:, t] predicts labels[:, t + 1]; the last position predicts nothing.
  // ReformerForMaskedLM's loss is unshifted: logits[:, t] against labels[:, t].
  const bool shift = config_.model_class() == ModelClass::LMHead;
  targets_.resize(rows);
  const int32_t* labels = batch.labels ? batch.labels : batch.ids;
  double count = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t t = r % L;
    targets_[r] = !shift ? labels[r] : t + 1 < L ? labels[r + 1] : kIgnoreIndex;
    count += targets_[r] != kIgnoreIndex;
  }
  const float scale = opt.loss_scale > 0.f ? opt.loss_scale : (count > 0 ? static_cast<float>(1.0 / count) : 0.f);
  head_cat_.ensure({chunk, D2}, MemCategory::Workspace);
  head_norm_.ensure({chunk, D2}, MemCategory::Workspace);
  if (grads) head_dcat_.ensure({chunk, D2}, MemCategory::Workspace);
  head_logits_.ensure({chunk, V}, MemCategory::Workspace);
  head_mean_.ensure({chunk}, MemCategory::Workspace);
  head_rstd_.ensure({chunk}, MemCategory::Workspace);
  const FinalNorm ln{final_ln_w_->data(), final_ln_b_->data(), final_ln_wg_->data(), final_ln_bg_->data(), D,
                     static_cast<float>(config_.layer_norm_eps)};
  const DropoutKey drop{hidden_dropout(opt), opt.seed,
                        hidden_dropout_stream(opt.step, static_cast<int>(layers_.size()), DropoutSite::FinalNorm)};
  LossStats stats;
  for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const int64_t nr = std::min(chunk, rows - r0);
    float* cat = head_cat_.data();
    float* norm = head_norm_.data();
    sequence_output_rows(norm, cat, head_mean_.data(), head_rstd_.data(), x1_.data(), x2_.data(), ln, drop, r0, nr, 1);
    float* logits = logits_out ? logits_out + r0 * V : head_logits_.data();
    linear_forward(logits, norm, head_w_->data(), head_b_->data(), nr, D2, V);
    // With gradients, dlogits takes the logits' place (or the workspace, when the caller keeps them).
    float* dlogits = grads ? head_logits_.data() : nullptr;
    const CrossEntropyStats ce = grads ? cross_entropy_forward_backward(dlogits, logits, targets_.data() + r0, nr, V, scale)
                                       : cross_entropy_forward(logits, targets_.data() + r0, nr, V);
    stats.loss_sum += ce.loss_sum;
    stats.count += ce.count;
    stats.correct += ce.correct;
    if (!grads) continue;
    float* dnorm = head_dcat_.data();
    linear_backward(dnorm, head_wg_->data(), head_bg_->data(), dlogits, norm, head_w_->data(), nr, D2, V);
    sequence_output_rows_backward(dx1_.data(), dx2_.data(), dnorm, cat, head_mean_.data(), head_rstd_.data(), ln, drop, r0,
                                  nr, 1);
  }
  return stats;
}

LossStats ModelImpl::forward_backward(const Batch& batch, const StepOptions& opt) {
  prepare(batch.batch, batch.length, opt.training, /*backward=*/true);
  embed(batch, opt);
  run_layers(batch, opt, /*keep_inputs=*/true);  // the stored layers (layer_stored) keep theirs
  const LossStats stats = task_ ? task_head(batch, opt, /*loss=*/true, /*grads=*/true, nullptr)
                                : head(batch, opt, /*grads=*/true, nullptr);
  grads_ready(0);
  backward_layers(batch, opt);
  embed_backward(batch, opt);
  grads_ready(static_cast<int>(layers_.size()) + 1);
  return stats;
}

LossStats ModelImpl::evaluate(const Batch& batch, const StepOptions& opt) {
  prepare(batch.batch, batch.length, false, /*backward=*/false);
  embed(batch, opt);
  run_layers(batch, opt, false);
  return task_ ? task_head(batch, opt, /*loss=*/true, /*grads=*/false, nullptr) : head(batch, opt, false, nullptr);
}

void ModelImpl::forward_logits(Tensor& logits, const Batch& batch, const StepOptions& opt) {
  REFORMER_CHECK(!task_, "a ", model_class_name(config_.model_class()),
                 " has no language-model logits; use forward_outputs (reformer logits writes its outputs)");
  prepare(batch.batch, batch.length, false, /*backward=*/false);
  logits.ensure({batch.batch, batch.length, config_.vocab_size}, MemCategory::Activations);
  embed(batch, opt);
  run_layers(batch, opt, false);
  head(batch, opt, false, logits.data());
}

void ModelImpl::forward_outputs(std::map<std::string, Tensor>& outputs, const Batch& batch, const StepOptions& opt) {
  if (!task_) return forward_logits(outputs["logits"], batch, opt);
  prepare(batch.batch, batch.length, false, /*backward=*/false);
  embed(batch, opt);
  run_layers(batch, opt, false);
  task_head(batch, opt, /*loss=*/false, /*grads=*/false, &outputs);
}

bool ModelImpl::reversible() const {
  for (size_t l = 0; l < layers_.size() || l < config_.attn_layers.size(); ++l)
    if (layer_stored(l)) return false;
  return true;
}

int64_t ModelImpl::activation_bytes() const {
  const MemStats s = mem_stats();
  return s.live_of(MemCategory::Activations) + s.live_of(MemCategory::Workspace);
}

void ModelImpl::dump(const std::string& name, const float* data, const Shape& shape) const {
  if (dump_) dump_(name, data, shape);
}

}  // namespace reformer
