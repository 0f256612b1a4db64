#include "layers/attention_projections.h"

#include <cmath>

#include "kernels/cpu/gemm.h"
#include "ops/linear.h"
#include "reformer/rng.h"

namespace reformer {

QkvSelfAttention::QkvSelfAttention(int64_t hidden, int64_t heads, int64_t head_size, bool causal, float dropout,
                                   QkvAttentionWeights weights, QkvAttentionGrads grads)
    : hidden_(hidden), heads_(heads), head_size_(head_size), causal_(causal), dropout_(dropout), w_(weights),
      g_(grads) {
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
  for (Tensor* t : {&q_, &k_, &v_, &o_}) t->ensure({call.batch, call.length, hd}, MemCategory::Workspace);
  lse_.ensure({call.batch, heads_, call.length}, MemCategory::Workspace);
  linear_forward(q_.data(), x, w_.query, nullptr, rows, hidden_, hd);
  // Keys are scaled by 1/sqrt(d) inside the GEMM; queries are not scaled (spec 2).
  gemm(false, true, rows, hd, hidden_, 1.f / std::sqrt(static_cast<float>(head_size_)), x, hidden_, w_.key, hidden_,
       0.f, k_.data(), hd);
  linear_forward(v_.data(), x, w_.value, nullptr, rows, hidden_, hd);
  attend(o_.data(), lse_.data(), q_.data(), k_.data(), v_.data(), call);
}

void QkvSelfAttention::forward(float* out, const float* x, const AttentionCall& call) {
  compute(x, call);
  linear_forward(out, o_.data(), w_.output, nullptr, call.batch * call.length, heads_ * head_size_, hidden_);
}

void QkvSelfAttention::backward(float* dx, float* out, const float* dout, const float* x, const AttentionCall& call) {
  REFORMER_CHECK(g_.query && g_.key && g_.value && g_.output, "attention backward needs all weight gradients");
  compute(x, call);
  const int64_t rows = call.batch * call.length, hd = heads_ * head_size_;
  if (out) linear_forward(out, o_.data(), w_.output, nullptr, rows, hd, hidden_);
  for (Tensor* t : {&dq_, &dk_, &dv_, &do_}) t->ensure({call.batch, call.length, hd}, MemCategory::Workspace);
  linear_backward(do_.data(), g_.output, nullptr, dout, o_.data(), w_.output, rows, hd, hidden_);
  attend_backward(dq_.data(), dk_.data(), dv_.data(), do_.data(), o_.data(), lse_.data(), q_.data(), k_.data(),
                  v_.data(), call);
  // k = x Wk^T * s: the key path's gradients carry the same scale s.
  const float s = 1.f / std::sqrt(static_cast<float>(head_size_));
  linear_backward(dx, g_.query, nullptr, dq_.data(), x, w_.query, rows, hidden_, hd);  // dx = dq Wq
  gemm(true, false, hd, hidden_, rows, s, dk_.data(), hd, x, hidden_, 1.f, g_.key, hidden_);
  gemm(false, false, rows, hidden_, hd, s, dk_.data(), hd, w_.key, hidden_, 1.f, dx, hidden_);
  linear_backward(nullptr, g_.value, nullptr, dv_.data(), x, w_.value, rows, hidden_, hd);
  gemm(false, false, rows, hidden_, hd, 1.f, dv_.data(), hd, w_.value, hidden_, 1.f, dx, hidden_);
}

int64_t QkvSelfAttention::workspace_bytes() const {
  int64_t bytes = core_workspace_bytes();
  for (const Tensor* t : {&q_, &k_, &v_, &o_, &lse_, &dq_, &dk_, &dv_, &do_})
    bytes += t->numel() * static_cast<int64_t>(sizeof(float));
  return bytes;
}

}  // namespace reformer
