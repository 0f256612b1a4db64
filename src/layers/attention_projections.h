#pragma once
// The plumbing shared by attention layers with SEPARATE query, key and value projections (local
// attention, spec 2, and the blockwise full-attention baseline): q = x Wq^T, k = x Wk^T / sqrt(d),
// v = x Wv^T, out = o Wo^T, all without bias, torch layout (out, in), head-major features
// (h * d + j). Activations are kept as (B, L, H*d), so head h of a row is the d floats at h * d
// (row stride H*d): one GEMM per projection covers every batch element and head.
// Subclasses implement only the attention core on these buffers.
//
// Gradients: weight gradients ACCUMULATE (+=) into the grads given at construction; dx is ASSIGNED.
// Working memory: six (B, L, H*d) buffers (q, k, v, o and the key/value gradients; the query
// gradient replaces q and dO replaces o in the backward), two (B, H) x L rows, and chunk scratch.
#include <cmath>
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

// Projections and gradients, (B, L, H*d) each, the per-row lse and -dO.o (B, H, L), and the row
// scratch of the streamed input/output. Layers run one at a time, so a model gives all its
// attention layers one shared workspace and workspace memory does not grow with depth.
struct QkvWorkspace {
  Tensor q, k, v, o, dk, dv;
  Tensor lse, row_dlse;
  RowScratch rows;
};

class QkvSelfAttention : public AttentionLayer {
 public:
  using AttentionLayer::backward;
  using AttentionLayer::forward;
  void forward(const RowReader& x, const RowWriter& out, const AttentionCall& call) override;
  void backward(const RowReader& x, const RowReader& dout, const RowWriter& dx, const RowWriter* out,
                const AttentionCall& call) override;
  int64_t workspace_bytes() const override;

  // Incremental decoding (layers/qkv_decode.cpp): the cache keeps each head's scaled keys and
  // values of the most recent decode_keep() positions in a ring.
  std::unique_ptr<AttentionCache> make_cache(int64_t capacity, const AttentionCall& call) const override;
  void fill_cache(AttentionCache& cache, const AttentionCall& call, int64_t b, int64_t n) const override;
  void decode(float* out, const float* x, int64_t rows, AttentionCache* const* caches) override;

 protected:
  // Incremental decoding: the positions a cache of `capacity` positions must keep, and the first
  // key position the query at position t attends to (its last key is t itself).
  virtual int64_t decode_keep(int64_t capacity) const = 0;
  virtual int64_t decode_first_key(int64_t t) const = 0;

  QkvSelfAttention(int64_t hidden, int64_t heads, int64_t head_size, bool causal, float dropout,
                   QkvAttentionWeights weights, QkvAttentionGrads grads, std::shared_ptr<QkvWorkspace> ws);

  // The attention core. q, k, v, o: (B, L, H*d), k already scaled; lse: (B, H, L), saved for the
  // backward. attend_backward ASSIGNS dk, dv (B, L, H*d) and REPLACES q by dq (a query row's
  // gradient may be written once every read of that row is done), given dO (B, L, H*d), the
  // forward's lse and row_dlse = -dO.o per (b, h, position) (the chunk kernel's dlse with o = nullptr).
  virtual void attend(float* o, float* lse, const float* q, const float* k, const float* v,
                      const AttentionCall& call) = 0;
  virtual void attend_backward(float* q_to_dq, float* dk, float* dv, const float* dO, const float* row_dlse,
                               const float* lse, const float* k, const float* v, const AttentionCall& call) = 0;
  // Bytes of the core's own scratch.
  virtual int64_t core_workspace_bytes() const = 0;

  // Block-kernel options for (batch b, head h): masks, and dropout (only when training) on stream
  // (AttentionDropout, {step, layer, b, h}); the caller sets dropout_base.
  ChunkAttentionOptions chunk_options(const AttentionCall& call, int64_t b, int64_t h) const;
  float key_scale() const { return 1.f / std::sqrt(static_cast<float>(head_size_)); }

  const int64_t heads_, head_size_;
  const bool causal_;
  const float dropout_;

 private:
  // Projections and attention core into the workspace's q, k, v, o, lse.
  void compute(const RowReader& x, const AttentionCall& call);

  QkvAttentionWeights w_;
  QkvAttentionGrads g_;
  std::shared_ptr<QkvWorkspace> ws_;
};

}  // namespace reformer
