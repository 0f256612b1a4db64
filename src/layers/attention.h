#pragma once
// The attention branch of a Reformer layer, F in Y1 = X1 + F(LN(X2)): projections, attention, and
// the output projection Wo (output dropout is applied by the reversible block, not here).
// Implementations: LshSelfAttention (spec 1), LocalSelfAttention (spec 2), FullSelfAttention (the
// paper's blockwise full-attention baseline).
//
// Gradients: weight gradients ACCUMULATE (+=) into the buffers given at construction; dx is
// ASSIGNED. Scores are never stored: backward() recomputes the forward from x (with the buckets
// and dropout masks saved by forward()) and returns the recomputed output too, which is what the
// reversible backward needs (X1 = Y1 - F).
#include <cstdint>

namespace reformer {

struct AttentionCall {
  int64_t batch = 1;                 // B
  int64_t length = 0;                // L
  const uint8_t* pad_mask = nullptr; // (B, L), 1 = token, 0 = padding; nullptr = no padding mask
  bool training = false;             // attention-probability dropout only when training
  uint64_t seed = 0;                 // keys rotations and dropout: (seed, step, layer, head, round)
  uint64_t step = 0;
  int layer = 0;
};

class AttentionLayer {
 public:
  virtual ~AttentionLayer() = default;
  // x: (B, L, D), the LayerNorm-ed attention input. out: (B, L, D), after Wo. out may alias x (x is
  // fully consumed by the projections before out is written).
  virtual void forward(float* out, const float* x, const AttentionCall& call) = 0;
  // Recomputes the forward exactly as forward() did (same buckets, same dropout masks), writes it
  // to out (nullptr: not needed), and backpropagates dout: dx = dF/dx^T dout, weight grads +=.
  // Must follow a forward() with the same call (LSH reuses that forward's buckets).
  // Aliasing allowed (the model's memory plan uses both): out == dout and dx == x; every read of
  // dout and x happens before out and dx are written.
  virtual void backward(float* dx, float* out, const float* dout, const float* x, const AttentionCall& call) = 0;
  // Bytes of workspace held by the layer (for the memory report).
  virtual int64_t workspace_bytes() const = 0;
};

}  // namespace reformer
