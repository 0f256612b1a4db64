#include "layers/feed_forward.h"

#include <algorithm>

#include "kernels/cpu/gemm.h"
#include "ops/dropout.h"
#include "ops/layernorm.h"
#include "ops/linear.h"
#include "ops/parallel.h"

namespace reformer {
namespace {

uint64_t dropout_stream(const FeedForwardCall& call, DropoutSite site) {
  return hidden_dropout_stream(call.step, call.layer, site);
}

}  // namespace

FeedForward::FeedForward(int64_t D, int64_t F, Activation act, float ln_eps, int64_t chunk, FeedForwardWeights w,
                         FeedForwardGrads g, std::shared_ptr<FeedForwardWorkspace> ws)
    : D_(D), F_(F), act_(act), eps_(ln_eps), chunk_(chunk), w_(w), g_(g),
      ws_(ws ? std::move(ws) : std::make_shared<FeedForwardWorkspace>()) {
  REFORMER_CHECK(D > 0 && F > 0, "feed-forward sizes hidden_size ", D, " and feed_forward_size ", F,
                 " must be positive");
  REFORMER_CHECK(chunk >= 0, "chunk_size_feed_forward ", chunk, " must be >= 0 (0 = no chunking)");
  REFORMER_CHECK(w.ln_w && w.ln_b && w.w1 && w.b1 && w.w2 && w.b2, "feed-forward weights must all be given");
}

bool FeedForward::prepare(const FeedForwardCall& call, bool backward, bool add) {
  REFORMER_CHECK(call.rows >= 0, "feed-forward row count ", call.rows, " must be >= 0");
  REFORMER_CHECK(!call.kept_a || !needs_h() || call.kept_h,
                 "a stored feed-forward layer whose activation is not ReLU must keep h as well as a");
  if (call.rows == 0) return false;
  const int64_t c = chunk_rows(call.rows);
  ws_->xn.ensure({c, D_}, MemCategory::Workspace);
  ws_->mean.ensure({c}, MemCategory::Workspace);
  ws_->rstd.ensure({c}, MemCategory::Workspace);
  if (needs_h()) ws_->h.ensure({c, F_}, MemCategory::Workspace);  // ReLU keeps only a (hidden())
  ws_->a.ensure({c, F_}, MemCategory::Workspace);
  if (backward) {
    ws_->dout.ensure({c, D_}, MemCategory::Workspace);
    ws_->dh.ensure({c, F_}, MemCategory::Workspace);
  }
  if (add) ws_->out.ensure({c, D_}, MemCategory::Workspace);
  return true;
}

// In bf16, xn, a, dout and dh are written with their bf16 copies (gemm_operand_bf16_slot) for the
// chunk's products, which then round nothing but the weights.
void FeedForward::normalize(const float* x, int64_t r0, int64_t n) {
  float* xn = ws_->xn.data();
  layernorm_forward(xn, ws_->mean.data(), ws_->rstd.data(), x + r0 * D_, w_.ln_w, w_.ln_b, n, D_, eps_,
                    gemm_operand_bf16_slot(xn, n, D_));
}

void FeedForward::hidden(const float* x, int64_t r0, int64_t n, const FeedForwardCall& call) {
  normalize(x, r0, n);
  float* a = call.kept_a ? call.kept_a + r0 * F_ : ws_->a.data();
  const uint64_t stream = dropout_stream(call, DropoutSite::FeedForwardHidden);
  if (act_ == Activation::Relu) {  // a = relu(dropout(x W1^T + b1)) in a, in one pass after the product
    linear_forward(a, ws_->xn.data(), w_.w1, w_.b1, n, D_, F_);
    dropout_relu_forward(a, a, n * F_, drop_prob(call), call.seed, stream, r0 * F_, gemm_operand_bf16_slot(a, n, F_));
    return;
  }
  float* h = call.kept_h ? call.kept_h + r0 * F_ : ws_->h.data();
  linear_forward(h, ws_->xn.data(), w_.w1, w_.b1, n, D_, F_);
  dropout_forward(h, h, n * F_, drop_prob(call), call.seed, stream, r0 * F_);
  activation_forward(a, h, n * F_, act_);
}

void FeedForward::recompute_hidden(const float* x, int64_t r0, int64_t n, const FeedForwardCall& call) {
  if (call.kept_a) return normalize(x, r0, n);  // the hidden rows were kept: only LN(x) and its statistics
  hidden(x, r0, n, call);
}

const float* FeedForward::hidden_a(int64_t r0, const FeedForwardCall& call) const {
  return call.kept_a ? call.kept_a + r0 * F_ : ws_->a.data();
}

const float* FeedForward::hidden_h(int64_t r0, const FeedForwardCall& call) const {
  // ReLU's backward reads only h > 0, which is a > 0 (a = relu(h)).
  if (!needs_h()) return hidden_a(r0, call);
  return call.kept_h ? call.kept_h + r0 * F_ : ws_->h.data();
}

void FeedForward::output(float* o, int64_t r0, int64_t n, const FeedForwardCall& call) {
  linear_forward(o, hidden_a(r0, call), w_.w2, w_.b2, n, F_, D_);
  dropout_forward(o, o, n * D_, drop_prob(call), call.seed, dropout_stream(call, DropoutSite::FeedForwardOutput),
                  r0 * D_);
}

void FeedForward::output_add(float* y, bool subtract, int64_t r0, int64_t n, const FeedForwardCall& call, float* sum) {
  float* o = ws_->out.data();
  linear_forward(o, hidden_a(r0, call), w_.w2, w_.b2, n, F_, D_);
  dropout_add((sum ? sum : y) + r0 * D_, o, n * D_, subtract, drop_prob(call), call.seed,
              dropout_stream(call, DropoutSite::FeedForwardOutput), r0 * D_, y + r0 * D_);
}

void FeedForward::forward(float* out, const float* x, const FeedForwardCall& call) {
  if (!prepare(call, false)) return;
  const int64_t c = chunk_rows(call.rows);
  for (int64_t r0 = 0; r0 < call.rows; r0 += c) {
    const int64_t n = std::min(c, call.rows - r0);
    const GemmOperandReuse reuse;  // bf16: the copies hidden() writes
    hidden(x, r0, n, call);
    output(out + r0 * D_, r0, n, call);
  }
}

void FeedForward::forward_add(float* y, const float* x, const FeedForwardCall& call, float* sum) {
  if (!prepare(call, false, true)) return;
  const int64_t c = chunk_rows(call.rows);
  for (int64_t r0 = 0; r0 < call.rows; r0 += c) {
    const int64_t n = std::min(c, call.rows - r0);
    const GemmOperandReuse reuse;  // bf16: the copies hidden() writes
    hidden(x, r0, n, call);
    output_add(y, /*subtract=*/false, r0, n, call, sum);  // y += dropout(FF) (or into sum), one pass
  }
}

void FeedForward::backward_add(float* dx_add, float* y_sub, const float* dout, const float* x,
                               const FeedForwardCall& call) {
  REFORMER_CHECK(g_.ln_w && g_.ln_b && g_.w1 && g_.b1 && g_.w2 && g_.b2,
                 "FeedForward::backward_add needs gradient buffers; construct the layer with FeedForwardGrads");
  if (!prepare(call, true, true)) return;
  const int64_t c = chunk_rows(call.rows);
  for (int64_t r0 = 0; r0 < call.rows; r0 += c) {
    const int64_t n = std::min(c, call.rows - r0);
    // bf16: LN(x), the hidden activation and both weights rounded once for the chunk's recomputation and
    // its gradients. None changes after its first product: dout and dh are written before theirs, and
    // dout, rewritten as dLN(x) by the last product, is no product's operand after it.
    const GemmOperandReuse reuse;
    recompute_hidden(x, r0, n, call);
    if (y_sub) {
      // y -= dropout(FF) and dropout^T dout under one draw of the output mask.
      linear_forward(ws_->out.data(), hidden_a(r0, call), w_.w2, w_.b2, n, F_, D_);
      dropout_add_and_backward(y_sub + r0 * D_, ws_->out.data(), ws_->dout.data(), dout + r0 * D_, n * D_,
                               /*subtract=*/true, drop_prob(call), call.seed,
                               dropout_stream(call, DropoutSite::FeedForwardOutput), r0 * D_,
                               gemm_operand_bf16_slot(ws_->dout.data(), n, D_));
    }
    backward_rows(dx_add + r0 * D_, y_sub ? nullptr : dout, x, r0, n, call, /*accumulate=*/true);
  }
}

void FeedForward::backward(float* dx, float* out, const float* dout, const float* x, const FeedForwardCall& call) {
  REFORMER_CHECK(g_.ln_w && g_.ln_b && g_.w1 && g_.b1 && g_.w2 && g_.b2,
                 "FeedForward::backward needs gradient buffers; construct the layer with FeedForwardGrads");
  if (!prepare(call, true)) return;
  const int64_t c = chunk_rows(call.rows);
  for (int64_t r0 = 0; r0 < call.rows; r0 += c) {
    const int64_t n = std::min(c, call.rows - r0);
    const GemmOperandReuse reuse;  // as in backward_add
    recompute_hidden(x, r0, n, call);
    if (out) output(out + r0 * D_, r0, n, call);
    backward_rows(dx + r0 * D_, dout, x, r0, n, call);
  }
}

void FeedForward::backward_rows(float* dx_rows, const float* dout, const float* x, int64_t r0, int64_t n,
                                const FeedForwardCall& call, bool accumulate) {
  const float p = drop_prob(call);
  const uint64_t s_hidden = dropout_stream(call, DropoutSite::FeedForwardHidden);
  const uint64_t s_out = dropout_stream(call, DropoutSite::FeedForwardOutput);
  // Output dropout (unless done: dout == nullptr), then Dense(F -> D).
  if (dout)
    dropout_backward(ws_->dout.data(), dout + r0 * D_, n * D_, p, call.seed, s_out, r0 * D_,
                     gemm_operand_bf16_slot(ws_->dout.data(), n, D_));
  linear_backward(ws_->dh.data(), g_.w2, g_.b2, ws_->dout.data(), hidden_a(r0, call), w_.w2, n, F_, D_);
  // Activation, hidden dropout (both in place), then Dense(D -> F); ws_->dout is free to take dxn.
  if (act_ == Activation::Relu) {
    // h holds the mask: no draw
    relu_dropout_backward_from_output(ws_->dh.data(), hidden_h(r0, call), n * F_, p,
                                      gemm_operand_bf16_slot(ws_->dh.data(), n, F_));
  } else {
    activation_backward(ws_->dh.data(), ws_->dh.data(), hidden_h(r0, call), n * F_, act_);
    dropout_backward(ws_->dh.data(), ws_->dh.data(), n * F_, p, call.seed, s_hidden, r0 * F_);
  }
  linear_backward(ws_->dout.data(), g_.w1, g_.b1, ws_->dh.data(), ws_->xn.data(), w_.w1, n, D_, F_);
  layernorm_backward(dx_rows, g_.ln_w, g_.ln_b, ws_->dout.data(), x + r0 * D_, ws_->mean.data(), ws_->rstd.data(),
                     w_.ln_w, n, D_, accumulate);
}

int64_t FeedForward::workspace_bytes() const {
  int64_t n = 0;
  for (const Tensor* t : {&ws_->xn, &ws_->mean, &ws_->rstd, &ws_->h, &ws_->a, &ws_->dout, &ws_->dh, &ws_->out}) n += t->capacity();
  return n * static_cast<int64_t>(sizeof(float));
}

}  // namespace reformer
