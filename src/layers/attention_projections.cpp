#include "layers/attention_projections.h"

#include "reformer/rng.h"

namespace reformer {

QkvSelfAttention::QkvSelfAttention(int64_t hidden, int64_t heads, int64_t head_size, bool causal, float dropout,
                                   QkvAttentionWeights weights, QkvAttentionGrads grads,
                                   std::shared_ptr<QkvWorkspace> ws)
    : AttentionLayer(hidden), heads_(heads), head_size_(head_size), causal_(causal), dropout_(dropout), w_(weights),
      g_(grads), ws_(ws ? std::move(ws) : std::make_shared<QkvWorkspace>()) {
  REFORMER_CHECK(hidden > 0 && heads > 0 && head_size > 0, "attention sizes must be positive: hidden ", hidden,
                 ", heads ", heads, ", head_size ", head_size);
  REFORMER_CHECK(dropout >= 0.f && dropout < 1.f, "attention dropout ", dropout, " must be in [0, 1)");
  REFORMER_CHECK(w_.query && w_.key && w_.value && w_.output, "attention weights must all be given (non-null)");
}

ChunkAttentionOptions QkvSelfAttention::chunk_options(const AttentionCall& call, int64_t b, int64_t h) const {
  ChunkAttentionOptions opt;
  opt.causal = causal_;
  if (call.training && dropout_ > 0.f) {
    opt.dropout = dropout_;
    opt.seed = call.seed;
    opt.stream = rng_stream(RngPurpose::AttentionDropout, {call.step, static_cast<uint64_t>(call.layer),
                                                           static_cast<uint64_t>(b), static_cast<uint64_t>(h)});
  }
  return opt;
}

void QkvSelfAttention::compute(const RowReader& x, const AttentionCall& call) {
  REFORMER_CHECK(call.batch > 0 && call.length > 0, "attention call needs batch > 0 and length > 0, got batch ",
                 call.batch, ", length ", call.length);
  const int64_t rows = call.batch * call.length, hd = heads_ * head_size_;
  for (Tensor* t : {&ws_->q, &ws_->k, &ws_->v, &ws_->o}) t->ensure({call.batch, call.length, hd}, MemCategory::Workspace);
  ws_->lse.ensure({call.batch, heads_, call.length}, MemCategory::Workspace);
  // Keys are scaled by 1/sqrt(d) inside the GEMM; queries are not scaled (spec 2).
  project_rows(x, rows, hidden_, hd,
               {{w_.query, ws_->q.data()}, {w_.key, ws_->k.data(), key_scale()}, {w_.value, ws_->v.data()}}, ws_->rows);
  attend(ws_->o.data(), ws_->lse.data(), ws_->q.data(), ws_->k.data(), ws_->v.data(), call);
}

void QkvSelfAttention::forward(const RowReader& x, const RowWriter& out, const AttentionCall& call) {
  compute(x, call);
  output_rows(out, ws_->o.data(), w_.output, call.batch * call.length, heads_ * head_size_, hidden_, ws_->rows);
  keep(call, {&ws_->q, &ws_->k, &ws_->v, &ws_->o, &ws_->lse});  // a stored layer's: for its backward
}

void QkvSelfAttention::backward(const RowReader& x, const RowReader& dout, const RowWriter& dx, const RowWriter* out,
                                const AttentionCall& call) {
  REFORMER_CHECK(g_.query && g_.key && g_.value && g_.output, "attention backward needs all weight gradients");
  // A stored layer's forward left q, k, v, o and lse: no projections and no attention forward again.
  if (!take_kept(call, {&ws_->q, &ws_->k, &ws_->v, &ws_->o, &ws_->lse})) compute(x, call);
  const int64_t B = call.batch, L = call.length, hd = heads_ * head_size_;
  for (Tensor* t : {&ws_->dk, &ws_->dv}) t->ensure({B, L, hd}, MemCategory::Workspace);
  ws_->row_dlse.ensure({B, heads_, L}, MemCategory::Workspace);
  // Memory plan: dO replaces o, and dq replaces q, so the backward needs only two more (B, L, H*d).
  float* dO = ws_->o.data();
  output_backward_rows(dO, ws_->o.data(), ws_->row_dlse.data(), dout, out, w_.output, g_.output, B, L, heads_,
                       head_size_, hidden_, ws_->rows);
  attend_backward(ws_->q.data(), ws_->dk.data(), ws_->dv.data(), dO, ws_->row_dlse.data(), ws_->lse.data(),
                  ws_->k.data(), ws_->v.data(), call);
  const float* dq = ws_->q.data();
  // k = x Wk^T * s: the key path's gradients carry the same scale s.
  project_backward_rows(x, dx, B * L, hidden_, hd,
                        {{w_.query, g_.query, dq}, {w_.key, g_.key, ws_->dk.data(), key_scale()},
                         {w_.value, g_.value, ws_->dv.data()}},
                        ws_->rows);
}

int64_t QkvSelfAttention::workspace_bytes() const {
  int64_t bytes = core_workspace_bytes();
  for (const Tensor* t : {&ws_->q, &ws_->k, &ws_->v, &ws_->o, &ws_->dk, &ws_->dv, &ws_->lse, &ws_->row_dlse,
                          &ws_->rows.in, &ws_->rows.out, &ws_->rows.proj})
    bytes += t->numel() * static_cast<int64_t>(sizeof(float));
  return bytes;
}

}  // namespace reformer
