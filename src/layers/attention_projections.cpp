#include "layers/attention_projections.h"

#include <cmath>

#include "kernels/cpu/gemm.h"
#include "ops/linear.h"
#include "reformer/rng.h"

namespace reformer {

QkvSelfAttention::QkvSelfAttention(int64_t hidden, int64_t heads, int64_t head_size, bool causal, float dropout,
                                   QkvAttentionWeights weights, QkvAttentionGrads grads,
                                   std::shared_ptr<QkvWorkspace> ws)
    : hidden_(hidden), heads_(heads), head_size_(head_size), causal_(causal), dropout_(dropout), w_(weights),
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

void QkvSelfAttention::compute(const float* x, const AttentionCall& call) {
  REFORMER_CHECK(call.batch > 0 && call.length > 0, "attention call needs batch > 0 and length > 0, got batch ",
                 call.batch, ", length ", call.length);
  const int64_t rows = call.batch * call.length, hd = heads_ * head_size_;
  for (Tensor* t : {&ws_->q, &ws_->k, &ws_->v, &ws_->o}) t->ensure({call.batch, call.length, hd}, MemCategory::Workspace);
  ws_->lse.ensure({call.batch, heads_, call.length}, MemCategory::Workspace);
  linear_forward(ws_->q.data(), x, w_.query, nullptr, rows, hidden_, hd);
  // Keys are scaled by 1/sqrt(d) inside the GEMM; queries are not scaled (spec 2).
  gemm(false, true, rows, hd, hidden_, 1.f / std::sqrt(static_cast<float>(head_size_)), x, hidden_, w_.key, hidden_,
       0.f, ws_->k.data(), hd);
  linear_forward(ws_->v.data(), x, w_.value, nullptr, rows, hidden_, hd);
  attend(ws_->o.data(), ws_->lse.data(), ws_->q.data(), ws_->k.data(), ws_->v.data(), call);
}

void QkvSelfAttention::forward(float* out, const float* x, const AttentionCall& call) {
  compute(x, call);
  linear_forward(out, ws_->o.data(), w_.output, nullptr, call.batch * call.length, heads_ * head_size_, hidden_);
}

void QkvSelfAttention::backward(float* dx, float* out, const float* dout, const float* x, const AttentionCall& call) {
  REFORMER_CHECK(g_.query && g_.key && g_.value && g_.output, "attention backward needs all weight gradients");
  compute(x, call);
  const int64_t rows = call.batch * call.length, hd = heads_ * head_size_;
  for (Tensor* t : {&ws_->dq, &ws_->dk, &ws_->dv, &ws_->dO}) t->ensure({call.batch, call.length, hd}, MemCategory::Workspace);
  // dout is read here only, x only by the weight gradients below: out may alias dout and dx may
  // alias x (the model's memory plan, attention.h).
  linear_backward(ws_->dO.data(), g_.output, nullptr, dout, ws_->o.data(), w_.output, rows, hd, hidden_);
  if (out) linear_forward(out, ws_->o.data(), w_.output, nullptr, rows, hd, hidden_);
  attend_backward(ws_->dq.data(), ws_->dk.data(), ws_->dv.data(), ws_->dO.data(), ws_->o.data(), ws_->lse.data(), ws_->q.data(), ws_->k.data(),
                  ws_->v.data(), call);
  // k = x Wk^T * s: the key path's gradients carry the same scale s.
  const float s = 1.f / std::sqrt(static_cast<float>(head_size_));
  linear_backward(nullptr, g_.query, nullptr, ws_->dq.data(), x, w_.query, rows, hidden_, hd);  // dWq += dq^T x
  gemm(true, false, hd, hidden_, rows, s, ws_->dk.data(), hd, x, hidden_, 1.f, g_.key, hidden_);
  linear_backward(nullptr, g_.value, nullptr, ws_->dv.data(), x, w_.value, rows, hidden_, hd);
  gemm(false, false, rows, hidden_, hd, 1.f, ws_->dq.data(), hd, w_.query, hidden_, 0.f, dx, hidden_);  // dx = dq Wq
  gemm(false, false, rows, hidden_, hd, s, ws_->dk.data(), hd, w_.key, hidden_, 1.f, dx, hidden_);
  gemm(false, false, rows, hidden_, hd, 1.f, ws_->dv.data(), hd, w_.value, hidden_, 1.f, dx, hidden_);
}

int64_t QkvSelfAttention::workspace_bytes() const {
  int64_t bytes = core_workspace_bytes();
  for (const Tensor* t : {&ws_->q, &ws_->k, &ws_->v, &ws_->o, &ws_->lse, &ws_->dq, &ws_->dk, &ws_->dv, &ws_->dO})
    bytes += t->numel() * static_cast<int64_t>(sizeof(float));
  return bytes;
}

}  // namespace reformer
