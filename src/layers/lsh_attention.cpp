#include "layers/lsh_attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/parallel_errors.h"
#include "kernels/cpu/chunk_attention.h"
#include "kernels/cpu/lsh_hash.h"
#include "kernels/cpu/lsh_sort.h"
#include "layers/lsh_key.h"
#include "layers/lsh_workspace.h"
#include "reformer/rng.h"

namespace reformer {

// Geometry of one call. The short path (L <= c) is the hashed path with one round, the identity
// permutation and a single chunk of length L that sees only itself.
struct LshSelfAttention::Plan {
  int64_t B, L, nh, c, before, after;
  int64_t n_slots, n_chunks, window, n_pad;
  bool hashed;
  bool padding_bucket;  // HF: only if the pad mask actually contains a zero (whole batch)
  int64_t nb_eff;
};

std::shared_ptr<LshWorkspace> LshSelfAttention::make_workspace(std::shared_ptr<QkvWorkspace> pool) {
  auto ws = std::make_shared<LshWorkspace>();
  ws->pool = pool ? std::move(pool) : std::make_shared<QkvWorkspace>();
  return ws;
}

namespace {

constexpr MemCategory kWs = MemCategory::Workspace;

void add_row(float* dst, const float* src, int64_t d) {
  for (int64_t j = 0; j < d; ++j) dst[j] += src[j];
}

float dot_row(const float* a, const float* b, int64_t d) {
  float s = 0.f;
  for (int64_t j = 0; j < d; ++j) s += a[j] * b[j];
  return s;
}

}  // namespace

LshSelfAttention::LshSelfAttention(const LshAttentionConfig& config, LshAttentionWeights weights,
                                   LshAttentionGrads grads, std::shared_ptr<LshWorkspace> ws)
    : AttentionLayer(config.hidden), cfg_(config), w_(weights), g_(grads), num_hashes_(config.num_hashes),
      ws_(ws ? std::move(ws) : make_workspace()) {
  REFORMER_CHECK(cfg_.hidden > 0 && cfg_.heads > 0 && cfg_.head_size > 0, "LSH attention: hidden ", cfg_.hidden,
                 ", heads ", cfg_.heads, ", head_size ", cfg_.head_size, " must all be positive");
  REFORMER_CHECK(cfg_.chunk_length > 0, "LSH attention: chunk_length ", cfg_.chunk_length, " must be positive");
  REFORMER_CHECK(cfg_.chunks_before >= 0 && cfg_.chunks_after >= 0, "LSH attention: chunks_before ",
                 cfg_.chunks_before, " and chunks_after ", cfg_.chunks_after, " must be >= 0");
  REFORMER_CHECK(cfg_.dropout >= 0.f && cfg_.dropout < 1.f, "LSH attention: dropout ", cfg_.dropout,
                 " must be in [0, 1)");
  lsh_check_bucket_factors(cfg_.num_buckets);
  set_num_hashes(config.num_hashes);
  rot_cols_ = lsh_rotation_columns(cfg_.num_buckets);
  total_buckets_ = lsh_total_buckets(cfg_.num_buckets);
}

LshSelfAttention::~LshSelfAttention() = default;

void LshSelfAttention::set_num_hashes(int num_hashes) {
  REFORMER_CHECK(num_hashes >= 1, "LSH attention: num_hashes ", num_hashes, " must be >= 1");
  num_hashes_ = num_hashes;
}

void LshSelfAttention::set_rotations(const float* rotations) {
  const int64_t n = cfg_.heads * cfg_.head_size * num_hashes_ * rot_cols_;
  rotations_.ensure(n, kWs);
  std::memcpy(rotations_.data(), rotations, static_cast<size_t>(n) * sizeof(float));
  injected_ = true;
  injected_hashes_ = num_hashes_;
}

void LshSelfAttention::clear_rotations() { injected_ = false; }

int64_t LshSelfAttention::workspace_bytes() const {
  int64_t total = static_cast<int64_t>(rotations_.bytes() + buckets_.bytes());
  for (const Tensor* t : {&ws_->qk(), &ws_->v(), &ws_->o(), &ws_->dO(), &ws_->dqk(), &ws_->dv(), &ws_->rows().in,
                          &ws_->rows().out, &ws_->rows().proj})
    total += t->numel() * static_cast<int64_t>(sizeof(float));
  for (const LshHeadScratch& s : ws_->scratch) total += s.bytes();
  return total;
}

LshSelfAttention::Plan LshSelfAttention::make_plan(const AttentionCall& call) const {
  Plan p{};
  p.B = call.batch;
  p.L = call.length;
  REFORMER_CHECK(p.B >= 1 && p.L >= 1, "LSH attention: batch ", p.B, " and length ", p.L, " must be positive");
  p.hashed = p.L > cfg_.chunk_length;
  if (p.hashed)
    REFORMER_CHECK(p.L % cfg_.chunk_length == 0, "LSH attention: sequence length ", p.L,
                   " is not a multiple of the LSH chunk_length ", cfg_.chunk_length,
                   "; pad the input to a multiple of the chunk length (Hugging Face pads in eval mode)");
  p.nh = p.hashed ? num_hashes_ : 1;
  p.c = p.hashed ? cfg_.chunk_length : p.L;
  p.before = p.hashed ? cfg_.chunks_before : 0;
  p.after = p.hashed ? cfg_.chunks_after : 0;
  p.n_slots = p.nh * p.L;
  REFORMER_CHECK(p.n_slots < std::numeric_limits<int32_t>::max(), "LSH attention: num_hashes * length = ", p.n_slots,
                 " exceeds 32-bit slot indices; use fewer hashes or a shorter sequence");
  p.n_chunks = p.n_slots / p.c;
  p.window = p.c * (1 + p.before + p.after);
  p.n_pad = p.n_slots + (p.before + p.after) * p.c;
  p.padding_bucket = false;
  if (call.pad_mask)
    for (int64_t i = 0; i < p.B * p.L && !p.padding_bucket; ++i) p.padding_bucket = call.pad_mask[i] == 0;
  p.nb_eff = total_buckets_ + (p.padding_bucket ? 1 : 0);
  REFORMER_CHECK(p.nh * p.nb_eff < std::numeric_limits<int32_t>::max(), "LSH attention: num_hashes * num_buckets = ",
                 p.nh * p.nb_eff, " exceeds 32-bit bucket ids");
  return p;
}

void LshSelfAttention::prepare(const Plan& p, bool backward) {
  const int64_t d = cfg_.head_size, Hd = cfg_.heads * d;
  for (Tensor* t : {&ws_->qk(), &ws_->v(), &ws_->o()}) t->ensure({p.B, p.L, Hd}, kWs);
  if (backward)
    for (Tensor* t : {&ws_->dO(), &ws_->dqk(), &ws_->dv()}) t->ensure({p.B, p.L, Hd}, kWs);
  const int threads = static_cast<int>(std::min<int64_t>(omp_get_max_threads(), p.B * cfg_.heads));
  if (static_cast<int>(ws_->scratch.size()) < threads) ws_->scratch.resize(threads);
  for (int i = 0; i < threads; ++i) {
    LshHeadScratch& s = ws_->scratch[i];
    s.spos.ensure(p.n_slots, kWs);
    s.undo.ensure(p.n_slots, kWs);
    if (p.nh > 1) s.o_slot.ensure(p.n_slots * d, kWs);
    s.co.ensure(p.c * d, kWs);
    s.lse.ensure(p.n_slots, kWs);
    s.weight.ensure(p.n_slots, kWs);
    s.chunk.ensure(2 * p.c * p.window, kWs);
    s.cq.ensure(p.c * d, kWs);
    s.ck.ensure(p.window * d, kWs);
    s.cv.ensure(p.window * d, kWs);
    s.ckpos.ensure(p.window, kWs);
    s.ckvalid.ensure(p.window, kWs);
    if (p.hashed) {
      s.counts.ensure(p.nb_eff, kWs);
      s.hash.ensure(lsh_hash_scratch_floats(static_cast<int>(p.nh), cfg_.num_buckets), kWs);
    }
    if (backward) {
      s.cdo.ensure(p.c * d, kWs);
      s.cdlse.ensure(p.c, kWs);
      s.cdq.ensure(p.c * d, kWs);
      s.cdk.ensure(p.window * d, kWs);
      s.cdv.ensure(p.window * d, kWs);
    }
  }
}

void LshSelfAttention::prepare_rotations(const AttentionCall& call) {
  if (injected_) {
    REFORMER_CHECK(injected_hashes_ == num_hashes_, "LSH attention: injected rotations are for ", injected_hashes_,
                   " hash rounds but num_hashes is ", num_hashes_, "; call set_rotations() again or clear_rotations()");
    return;
  }
  rotations_.ensure(cfg_.heads * cfg_.head_size * num_hashes_ * rot_cols_, kWs);
  draw_rotations(rotations_.data(), call);
}

void LshSelfAttention::draw_rotations(float* dst, const AttentionCall& call) const {
  const int64_t per_head = cfg_.head_size * num_hashes_ * rot_cols_;
  if (injected_) {
    REFORMER_CHECK(injected_hashes_ == num_hashes_, "LSH attention: injected rotations are for ", injected_hashes_,
                   " hash rounds but num_hashes is ", num_hashes_, "; call set_rotations() again or clear_rotations()");
    if (dst != rotations_.data())
      std::memcpy(dst, rotations_.data(), static_cast<size_t>(cfg_.heads * per_head) * sizeof(float));
    return;
  }
  for (int64_t h = 0; h < cfg_.heads; ++h)
    rng_fill_normal(dst + h * per_head, per_head, call.seed,
                    rng_stream(RngPurpose::Rotations, {call.step, static_cast<uint64_t>(call.layer), static_cast<uint64_t>(h)}));
}

void LshSelfAttention::project(const RowReader& x, const Plan& p) {
  project_rows(x, p.B * p.L, cfg_.hidden, cfg_.heads * cfg_.head_size,
               {{w_.query_key, ws_->qk().data()}, {w_.value, ws_->v().data()}}, ws_->rows());
}

void LshSelfAttention::output(const RowWriter& out, const Plan& p) {
  output_rows(out, ws_->o().data(), w_.output, p.B * p.L, cfg_.heads * cfg_.head_size, cfg_.hidden, ws_->rows());
}

// Masks and dropout of every chunk of (b, h); the caller sets dropout_base per chunk so that
// forward and backward draw identical masks.
ChunkAttentionOptions LshSelfAttention::chunk_options(const AttentionCall& call, int64_t b, int64_t h) const {
  ChunkAttentionOptions opt;
  opt.causal = cfg_.causal;
  opt.self_mask = true;  // always in LSH (spec 1.7)
  opt.dropout = call.training ? cfg_.dropout : 0.f;
  opt.seed = call.seed;
  opt.stream = rng_stream(RngPurpose::AttentionDropout, {call.step, static_cast<uint64_t>(call.layer),
                                                         static_cast<uint64_t>(b), static_cast<uint64_t>(h)});
  return opt;
}

void LshSelfAttention::check_saved(const Plan& p) const {
  if (!p.hashed) return;
  REFORMER_CHECK(saved_.valid && saved_.batch == p.B && saved_.length == p.L && saved_.num_hashes == p.nh &&
                     saved_.nb_eff == p.nb_eff,
                 "LSH attention: no saved buckets for batch ", p.B, ", length ", p.L, ", num_hashes ", p.nh,
                 ", buckets ", p.nb_eff, "; call forward() with the same call (batch, length, pad mask, num_hashes) first");
}

// Loads chunk q0 / c of the sorted sequence into s: its queries, and its window's normalised keys,
// values, positions and validity (window row `row` is padded row q0 + row, lsh_sort.h). With
// `slide`, s holds the previous chunk's window, whose rows from c on are this window's first rows
// (padded row q0 + row is the previous window's row row + c): they move down, and only the last c
// rows are gathered, so each key is normalised once per pass instead of once per window it is in.
void LshSelfAttention::gather_chunk(const Plan& p, const float* qk, const float* v, const uint8_t* valid, int64_t q0,
                                    bool slide, LshHeadScratch& s) const {
  const int64_t d = cfg_.head_size, Hd = cfg_.heads * d;
  int64_t first = 0;
  if (slide) {
    first = p.window - p.c;
    std::memmove(s.ck.data(), s.ck.data() + p.c * d, static_cast<size_t>(first * d) * sizeof(float));
    std::memmove(s.cv.data(), s.cv.data() + p.c * d, static_cast<size_t>(first * d) * sizeof(float));
    std::memmove(s.ckpos.data(), s.ckpos.data() + p.c, static_cast<size_t>(first) * sizeof(int32_t));
    std::memmove(s.ckvalid.data(), s.ckvalid.data() + p.c, static_cast<size_t>(first));
  }
  for (int64_t row = first; row < p.window; ++row) {
    const int32_t pos = s.spos[lsh_window_source(q0 + row, p.n_chunks, p.c, p.before)];
    s.ckpos[row] = pos;
    s.ckvalid[row] = valid ? valid[pos] : 1;
    std::memcpy(s.cv.data() + row * d, v + pos * Hd, static_cast<size_t>(d) * sizeof(float));
  }
  normalize_keys(s.ck.data() + first * d, qk, Hd, s.ckpos.data() + first, p.window - first, d);
  for (int64_t r = 0; r < p.c; ++r)
    std::memcpy(s.cq.data() + r * d, qk + s.spos[q0 + r] * Hd, static_cast<size_t>(d) * sizeof(float));
}

// Hash (optionally) and sort head h of batch b: s.spos / s.undo (identity when not hashed).
void LshSelfAttention::sort_head(const Plan& p, int64_t b, int64_t h, bool rehash, const uint8_t* valid,
                                 LshHeadScratch& s) {
  const int64_t d = cfg_.head_size, Hd = cfg_.heads * d, L = p.L;
  if (!p.hashed) {
    for (int64_t t = 0; t < L; ++t) s.spos[t] = s.undo[t] = static_cast<int32_t>(t);
    return;
  }
  int32_t* buckets = buckets_.data() + (b * cfg_.heads + h) * p.nh * L;
  if (rehash) {
    const float* qk = ws_->qk().data() + b * L * Hd + h * d;
    lsh_hash(buckets, qk, Hd, rotations_.data() + h * d * p.nh * rot_cols_, valid, p.padding_bucket, L, d,
             static_cast<int>(p.nh), cfg_.num_buckets, s.hash.data());
  }
  lsh_sort(s.spos.data(), s.undo.data(), buckets, L, static_cast<int>(p.nh), p.nb_eff, s.counts.data());
}

// Hash (optionally), sort, gather, attend chunk by chunk, un-sort and combine the rounds into ws_->o().
// Leaves the per-slot outputs, logsumexps and round weights in s for the backward.
void LshSelfAttention::head_forward(const Plan& p, const AttentionCall& call, int64_t b, int64_t h, bool rehash,
                                    LshHeadScratch& s) {
  const int64_t d = cfg_.head_size, Hd = cfg_.heads * d, L = p.L;
  const float* qk = ws_->qk().data() + b * L * Hd + h * d;
  const float* v = ws_->v().data() + b * L * Hd + h * d;
  const uint8_t* valid = call.pad_mask ? call.pad_mask + b * L : nullptr;

  sort_head(p, b, h, rehash, valid, s);

  // One round: the combination below is exact (w = exp(0) = 1, o = o_1), so each chunk's outputs go
  // straight to their positions in o and no per-slot copy is kept.
  const bool single = p.nh == 1;
  float* o = ws_->o().data() + b * L * Hd + h * d;
  ChunkAttentionOptions opt = chunk_options(call, b, h);
  for (int64_t i = 0; i < p.n_chunks; ++i) {
    opt.dropout_base = static_cast<uint64_t>(i * p.c * p.window);
    const int64_t q0 = i * p.c;  // first query slot = first padded key row of the window
    gather_chunk(p, qk, v, valid, q0, /*slide=*/i > 0, s);
    float* out = single ? s.co.data() : s.o_slot.data() + q0 * d;
    chunk_attention_forward(out, d, s.lse.data() + q0, s.cq.data(), d, s.ck.data(), d, s.cv.data(), d,
                            s.spos.data() + q0, s.ckpos.data(), valid ? s.ckvalid.data() : nullptr, p.c, p.window, d,
                            opt, s.chunk.data());
    if (!single) continue;
    for (int64_t r = 0; r < p.c; ++r) {
      std::memcpy(o + s.spos[q0 + r] * Hd, s.co.data() + r * d, static_cast<size_t>(d) * sizeof(float));
      s.weight[q0 + r] = 1.f;
    }
  }
  if (single) return;

  // o[pos] = sum_r w_r o_r, w_r = exp(lse_r - logsumexp_r'(lse_r')) (spec 1.9), computed like HF's
  // fp32 exp(logits - logsumexp) rather than normalised by the sum: the two differ only when every
  // round is self-only (lse near -1e5, where the fp32 ulp is 0.0078).
  for (int64_t pos = 0; pos < L; ++pos) {
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t r = 0; r < p.nh; ++r) mx = std::max(mx, s.lse[s.undo[r * L + pos]]);
    float sum = 0.f;
    for (int64_t r = 0; r < p.nh; ++r) sum += std::exp(s.lse[s.undo[r * L + pos]] - mx);
    const float lse_all = mx + std::log(sum);
    float* orow = o + pos * Hd;
    std::fill(orow, orow + d, 0.f);
    for (int64_t r = 0; r < p.nh; ++r) {
      const int32_t slot = s.undo[r * L + pos];
      const float w = s.weight[slot] = std::exp(s.lse[slot] - lse_all);
      const float* src = s.o_slot.data() + slot * d;
      for (int64_t j = 0; j < d; ++j) orow[j] += w * src[j];
    }
  }
}

void LshSelfAttention::head_backward(const Plan& p, const AttentionCall& call, int64_t b, int64_t h, LshHeadScratch& s) {
  // One round: each chunk's forward is all its backward needs (w = 1, o_1 = o), so it runs in the
  // chunk loop below on the chunk gathered once for both. More rounds: the combination needs every
  // round's outputs first.
  const bool single = p.nh == 1;
  if (single)
    sort_head(p, b, h, /*rehash=*/false, call.pad_mask ? call.pad_mask + b * p.L : nullptr, s);
  else
    head_forward(p, call, b, h, /*rehash=*/false, s);
  const int64_t d = cfg_.head_size, Hd = cfg_.heads * d, L = p.L;
  const int64_t base = b * L * Hd + h * d;
  const float* qk = ws_->qk().data() + base;
  float* o = ws_->o().data() + base;
  const float* dO = ws_->dO().data() + base;
  const uint8_t* valid = call.pad_mask ? call.pad_mask + b * L : nullptr;

  const float* v = ws_->v().data() + base;
  float* dqk = ws_->dqk().data() + base;
  float* dv = ws_->dv().data() + base;
  for (int64_t pos = 0; pos < L; ++pos) {
    std::fill(dqk + pos * Hd, dqk + pos * Hd + d, 0.f);
    std::fill(dv + pos * Hd, dv + pos * Hd + d, 0.f);
  }
  ChunkAttentionOptions opt = chunk_options(call, b, h);
  for (int64_t i = 0; i < p.n_chunks; ++i) {
    opt.dropout_base = static_cast<uint64_t>(i * p.c * p.window);
    const int64_t q0 = i * p.c;
    gather_chunk(p, qk, v, valid, q0, /*slide=*/i > 0, s);
    if (single) {  // the chunk's forward, as head_forward computes it: its outputs are o's rows
      chunk_attention_forward(s.co.data(), d, s.lse.data() + q0, s.cq.data(), d, s.ck.data(), d, s.cv.data(), d,
                              s.spos.data() + q0, s.ckpos.data(), valid ? s.ckvalid.data() : nullptr, p.c, p.window,
                              d, opt, s.chunk.data());
      for (int64_t r = 0; r < p.c; ++r) {
        std::memcpy(o + s.spos[q0 + r] * Hd, s.co.data() + r * d, static_cast<size_t>(d) * sizeof(float));
        s.weight[q0 + r] = 1.f;
      }
    }
    // Round combination: dO_r = w_r dO, dlse_r = w_r (dO.o_r - dO.o), for the chunk's query slots.
    // One round: w = 1 and o_1 = o, so dlse = 0 and the round's outputs are the chunk's (s.co).
    for (int64_t r = 0; r < p.c; ++r) {
      const int64_t slot = q0 + r, pos = s.spos[slot];
      const float* g = dO + pos * Hd;
      const float w = s.weight[slot];
      float* dst = s.cdo.data() + r * d;
      for (int64_t j = 0; j < d; ++j) dst[j] = w * g[j];
      if (!single) s.cdlse[r] = w * (dot_row(g, s.o_slot.data() + slot * d, d) - dot_row(g, o + pos * Hd, d));
    }
    std::fill(s.cdq.data(), s.cdq.data() + p.c * d, 0.f);
    std::fill(s.cdk.data(), s.cdk.data() + p.window * d, 0.f);
    std::fill(s.cdv.data(), s.cdv.data() + p.window * d, 0.f);
    chunk_attention_backward(s.cdq.data(), d, s.cdk.data(), d, s.cdv.data(), d, s.cdo.data(), d,
                             single ? nullptr : s.cdlse.data(), single ? s.co.data() : s.o_slot.data() + q0 * d, d,
                             s.lse.data() + q0, s.cq.data(), d, s.ck.data(), d,
                             s.cv.data(), d, s.spos.data() + q0, s.ckpos.data(), valid ? s.ckvalid.data() : nullptr,
                             p.c, p.window, d, opt, s.chunk.data());
    // Un-sort: the chunk's queries and its window's keys/values go back to their positions.
    for (int64_t r = 0; r < p.c; ++r) add_row(dqk + s.spos[q0 + r] * Hd, s.cdq.data() + r * d, d);
    for (int64_t row = 0; row < p.window; ++row) add_row(dv + s.ckpos[row] * Hd, s.cdv.data() + row * d, d);
    normalize_keys_backward(dqk, s.cdk.data(), qk, Hd, s.ckpos.data(), p.window, d);
  }
}

// One (batch, head) pair per task; gemm() inside runs single-threaded.
void LshSelfAttention::attend_all(const Plan& p, const AttentionCall& call, Pass pass) {
  const int64_t pairs = p.B * cfg_.heads;
  const int threads = static_cast<int>(std::min<int64_t>(omp_get_max_threads(), pairs));
  ParallelErrors errors;  // a failed check inside must not cross the region (core/parallel_errors.h)
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t bh = 0; bh < pairs; ++bh) {
    errors.run([&] {
      LshHeadScratch& s = ws_->scratch[omp_get_thread_num()];
      const int64_t b = bh / cfg_.heads, h = bh % cfg_.heads;
      if (pass == Pass::Backward)
        head_backward(p, call, b, h, s);
      else
        head_forward(p, call, b, h, pass == Pass::Hash, s);
    });
  }
  errors.rethrow();
}

void LshSelfAttention::forward(const RowReader& x, const RowWriter& out, const AttentionCall& call) {
  const Plan p = make_plan(call);
  prepare(p, /*backward=*/false);
  saved_.valid = false;
  if (p.hashed) {
    prepare_rotations(call);
    buckets_.ensure(p.B * cfg_.heads * p.nh * p.L, MemCategory::Activations);
  }
  project(x, p);
  attend_all(p, call, Pass::Hash);
  if (p.hashed) saved_ = Saved{true, p.B, p.L, p.nb_eff, static_cast<int>(p.nh)};
  output(out, p);
  keep(call, {&ws_->qk(), &ws_->v()});  // a stored layer's projections, for its backward
}

void LshSelfAttention::forward_with_saved_buckets(float* out, const float* x, const AttentionCall& call) {
  const Plan p = make_plan(call);
  check_saved(p);
  prepare(p, /*backward=*/false);
  project(rows_from(x, cfg_.hidden), p);
  attend_all(p, call, Pass::SavedBuckets);
  output(rows_into(out, cfg_.hidden), p);
}

void LshSelfAttention::backward(const RowReader& x, const RowReader& dout, const RowWriter& dx, const RowWriter* out,
                                const AttentionCall& call) {
  const Plan p = make_plan(call);
  check_saved(p);
  // A stored layer's forward left qk and v: no projections again (the heads' attention is
  // recomputed below in any case, chunk by chunk).
  const bool kept = take_kept(call, {&ws_->qk(), &ws_->v()});
  prepare(p, /*backward=*/true);
  if (!kept) project(x, p);
  const int64_t H = cfg_.heads, d = cfg_.head_size, D = cfg_.hidden;
  // dO = dout Wo first (the head backward needs it); o exists only after the head backward has
  // recomputed it, so dWo and the recomputed output take a second pass over dout.
  output_backward_rows(ws_->dO().data(), nullptr, nullptr, dout, nullptr, w_.output, nullptr, p.B, p.L, H, d, D,
                       ws_->rows());
  attend_all(p, call, Pass::Backward);
  output_backward_rows(nullptr, ws_->o().data(), nullptr, dout, out, w_.output, g_.output, p.B, p.L, H, d, D,
                       ws_->rows());
  project_backward_rows(x, dx, p.B * p.L, D, H * d,
                        {{w_.query_key, g_.query_key, ws_->dqk().data()}, {w_.value, g_.value, ws_->dv().data()}},
                        ws_->rows());
}

}  // namespace reformer
