#pragma once
// The feed-forward branch of a Reformer layer, G in Y2 = X2 + G(Y1) (spec 3.4):
//   LN_f -> Dense(D -> F, bias) -> Dropout -> Activation -> Dense(F -> D, bias) -> Dropout
// (dropout BEFORE the activation, as HF ReformerFeedForwardDense and trax do).
//
// Rows (the flattened B * L positions) are processed in chunks of feed_forward_block_rows(chunk,
// rows) rows (the last chunk may be shorter), so the F-wide activations never exceed that x F. Rows
// are independent, and dropout masks are keyed by the ABSOLUTE row index, so chunking changes only
// the order in which the weight gradients sum their rows. Dropout is elementwise (HF), keyed by
// hidden_dropout_stream(step, layer, site).
//
// Gradients: weight gradients ACCUMULATE (+=) into the buffers given at construction; dx is
// ASSIGNED. backward() recomputes each chunk's forward from x, unless the call keeps the hidden
// rows of a stored layer (FeedForwardCall::kept_a), when only LN(x) is recomputed.
#include <cstdint>
#include <memory>

#include "ops/activation.h"
#include "reformer/tensor.h"

namespace reformer {

// The rows one chunk holds: at most `chunk` (HF chunk_size_feed_forward; 0 = no limit), which bounds
// the memory as in HF, and at most kFeedForwardBlockRows whatever the config says, so that a
// chunk's hidden rows stay in the cache between the first product, the dropout pass and the second
// product (1024 x d_ff 512 floats = 2 MiB for the C&P model; its 16K step ran 1.2-1.6% slower with
// 4096-row chunks, docs/PERFORMANCE.md "Ninth session").
inline constexpr int64_t kFeedForwardBlockRows = 1024;
inline int64_t feed_forward_block_rows(int64_t chunk, int64_t rows) {
  const int64_t cap = chunk > 0 && chunk < kFeedForwardBlockRows ? chunk : kFeedForwardBlockRows;
  return cap < rows ? cap : rows;
}

// w1 (F, D), w2 (D, F): torch layout; b1 (F), b2 (D), ln_w / ln_b (D).
struct FeedForwardWeights {
  const float *ln_w, *ln_b, *w1, *b1, *w2, *b2;
};
// Same shapes; all nullptr for an inference-only layer.
struct FeedForwardGrads {
  float *ln_w, *ln_b, *w1, *b1, *w2, *b2;
};

struct FeedForwardCall {
  int64_t rows = 0;        // B * L
  bool training = false;   // dropout only when training
  float dropout = 0.f;     // HF hidden_dropout_prob
  uint64_t seed = 0;       // dropout key: (seed, step, layer, site)
  uint64_t step = 0;
  int layer = 0;
  // A stored layer's hidden activations, (rows, d_ff) each, owned by the caller (nullptr: none):
  // forward_add writes a = act(dropout(h)) (and, unless the activation is ReLU, h itself) there, and
  // backward_add reads them instead of recomputing the hidden layer (no product, no mask drawn).
  float* kept_a = nullptr;
  float* kept_h = nullptr;
};

// Per-chunk working memory. Layers run one at a time, so a model gives all its feed-forward layers
// one shared workspace and workspace memory does not grow with depth.
struct FeedForwardWorkspace {
  Tensor xn, mean, rstd, h, a;  // forward (recomputed in the backward)
  Tensor dout, dh;              // backward only
  Tensor out;                   // forward_add / backward_add only: one chunk of G(x)
};

class FeedForward {
 public:
  FeedForward(int64_t D, int64_t F, Activation act, float ln_eps, int64_t chunk, FeedForwardWeights w,
              FeedForwardGrads g, std::shared_ptr<FeedForwardWorkspace> ws = nullptr);

  // out, x: (rows, D). out = G(x), not the residual sum. out must not alias x.
  void forward(float* out, const float* x, const FeedForwardCall& call);
  // Recomputes G(x) chunk by chunk with the forward's dropout masks, writes it to out (nullptr: not
  // needed) and backpropagates dout: dx = dG/dx^T dout, weight grads +=. dx must not alias x or dout.
  void backward(float* dx, float* out, const float* dout, const float* x, const FeedForwardCall& call);

  // The reversible block's forms, which need no (rows, D) buffer of their own (the model's memory
  // plan relies on it): forward_add does y += G(x) chunk by chunk (or, with `sum`, writes y + G(x)
  // there and leaves y as it was: a layer that keeps its input X2 needs no copy); backward_add
  // recomputes G(x) chunk by chunk, does y_sub -= G(x) when y_sub is given (X2 = Y2 - G(Y1)) and
  // dx_add += dG/dx^T dout.
  // Element for element the same arithmetic as forward()/backward() followed by the add/subtract.
  void forward_add(float* y, const float* x, const FeedForwardCall& call, float* sum = nullptr);
  void backward_add(float* dx_add, float* y_sub, const float* dout, const float* x, const FeedForwardCall& call);

  // Whether the activation's backward needs h itself (every activation but ReLU): a stored layer
  // then keeps h as well as a (FeedForwardCall::kept_h).
  bool needs_h() const { return act_ != Activation::Relu; }
  // Bytes held by the per-chunk workspace (for the memory report).
  int64_t workspace_bytes() const;

 private:
  int64_t chunk_rows(int64_t rows) const { return feed_forward_block_rows(chunk_, rows); }
  float drop_prob(const FeedForwardCall& call) const { return call.training ? call.dropout : 0.f; }
  // Validates the call and sizes the workspace for one chunk; false when there are no rows.
  bool prepare(const FeedForwardCall& call, bool backward, bool add = false);
  // Rows [r0, r0 + n): xn = LN(x), mean/rstd, h = dropout(xn W1^T + b1), a = act(h), into the
  // workspace or, for a stored layer, into the call's kept rows.
  void hidden(const float* x, int64_t r0, int64_t n, const FeedForwardCall& call);
  // The backward's hidden rows: LN(x) only when the call keeps them, else hidden() again.
  void recompute_hidden(const float* x, int64_t r0, int64_t n, const FeedForwardCall& call);
  // xn = LN(x) for rows [r0, r0 + n), with mean/rstd.
  void normalize(const float* x, int64_t r0, int64_t n);
  // The hidden rows [r0, r0 + n) that hidden() wrote: a and h (h may be a for ReLU: only its sign is read).
  const float* hidden_a(int64_t r0, const FeedForwardCall& call) const;
  const float* hidden_h(int64_t r0, const FeedForwardCall& call) const;

  // o_rows (n x D) = rows [r0, r0 + n) of dropout(a W2^T + b2).
  void output(float* o_rows, int64_t r0, int64_t n, const FeedForwardCall& call);
  // The same output, added into rows [r0, r0 + n) of y (subtracted if subtract) in the dropout's
  // pass; with `sum`, y's rows plus the output go there instead.
  void output_add(float* y, bool subtract, int64_t r0, int64_t n, const FeedForwardCall& call, float* sum = nullptr);
  // dx_rows (n x D) = rows [r0, r0 + n) of dG/dx^T dout (after hidden() for these rows), or += it
  // with accumulate. dout == nullptr: ws_->dout already holds these rows of dout after the output
  // dropout's backward.
  void backward_rows(float* dx_rows, const float* dout, const float* x, int64_t r0, int64_t n, const FeedForwardCall& call,
                     bool accumulate = false);

  int64_t D_, F_;
  Activation act_;
  float eps_;
  int64_t chunk_;
  FeedForwardWeights w_;
  FeedForwardGrads g_;
  std::shared_ptr<FeedForwardWorkspace> ws_;  // per-chunk workspace, reused across chunks, calls and layers
};

}  // namespace reformer
