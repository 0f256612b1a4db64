#pragma once
// The plumbing shared by attention layers with SEPARATE query, key and value projections (local
// attention, spec 2, and the blockwise full-attention baseline): q = x Wq^T, k = x Wk^T / sqrt(d),
// v = x Wv^T, out = o Wo^T, all without bias, torch layout (out, in), head-major features
// (h * d + j). Activations are kept as (B, L, H*d), so head h of a row is the d floats at h * d
// (row stride H*d): one GEMM per projection covers every batch element and head.
// Subclasses implement only the attention core on these buffers.
//
// Gradients: weight gradients ACCUMULATE (+=) into the grads given at construction; dx is ASSIGNED.
// Working memory: eight (B, L, H*d) workspaces and the (B, H, L) lse, O(L * d) per head, reused
// across calls.
#include <cstdint>
#include <memory>

#include "kernels/cpu/chunk_attention.h"
#include "layers/attention.h"
#include "reformer/tensor.h"

namespace reformer {

// (H*d, D) for query/key/value, (D, H*d) for output.
struct QkvAttentionWeights {
  const float* query;
  const float* key;
  const float* value;
  const float* output;
};
struct QkvAttentionGrads {
  float* query;
  float* key;
  float* value;
  float* output;
};

// Projections and gradients, (B, L, H*d) each, plus the per-row lse (B, H, L). Layers run one at a
// time, so a model gives all its local/full layers one shared workspace and workspace memory does
// not grow with depth.
struct QkvWorkspace {
  Tensor q, k, v, o, lse, dq, dk, dv, dO;
};

class QkvSelfAttention : public AttentionLayer {
 public:
  void forward(float* out, const float* x, const AttentionCall& call) override;
  void backward(float* dx, float* out, const float* dout, const float* x, const AttentionCall& call) override;
  int64_t workspace_bytes() const override;

 protected:
  QkvSelfAttention(int64_t hidden, int64_t heads, int64_t head_size, bool causal, float dropout,
                   QkvAttentionWeights weights, QkvAttentionGrads grads, std::shared_ptr<QkvWorkspace> ws);

  // The attention core. q, k, v, o: (B, L, H*d), k already scaled; lse: (B, H, L), saved for the
  // backward. attend_backward ASSIGNS dq, dk, dv (B, L, H*d) from dout (B, L, H*d), given the
  // forward's o and lse.
  virtual void attend(float* o, float* lse, const float* q, const float* k, const float* v,
                      const AttentionCall& call) = 0;
  virtual void attend_backward(float* dq, float* dk, float* dv, const float* dout, const float* o, const float* lse,
                               const float* q, const float* k, const float* v, const AttentionCall& call) = 0;
  // Bytes of the core's own scratch.
  virtual int64_t core_workspace_bytes() const = 0;

  // Block-kernel options for (batch b, head h): masks, and dropout (only when training) on stream
  // (AttentionDropout, {step, layer, b, h}); the caller sets dropout_base.
  ChunkAttentionOptions chunk_options(const AttentionCall& call, int64_t b, int64_t h) const;

  const int64_t hidden_, heads_, head_size_;
  const bool causal_;
  const float dropout_;

 private:
  // Projections and attention core into q_, k_, v_, o_, lse_.
  void compute(const float* x, const AttentionCall& call);

  QkvAttentionWeights w_;
  QkvAttentionGrads g_;
  std::shared_ptr<QkvWorkspace> ws_;
};

}  // namespace reformer
