#pragma once
// Full softmax self-attention over all L keys (the paper's baseline), with the weights and
// scaling of local attention (separate Wq, Wk, Wv, Wo; k / sqrt(d); causal and padding masks by
// replacement with -1e9, no self mask). Computed blockwise so memory stays O(L * d): each block of
// queries meets the keys one block at a time through the chunk kernel, and the per-block results
// are combined by their logsumexp (streaming softmax). Causal attention skips key blocks that lie
// wholly after the query block. Time is O(L^2), as for the baseline.
// The backward recomputes each (query block, key block) pair from the saved per-row lse and
// o (flash-attention style: p = exp(s - lse), D = dO . o).
// Dropout (training only): stream (AttentionDropout, {step, layer, b, h}); pair (qb, kb) uses
// random indices from (qb * n_blocks + kb) * block^2 on, element (i, j) at + i * nk + j.
//
// Gradients: weight gradients ACCUMULATE (+=); dx is ASSIGNED (see attention_projections.h).
#include <cstdint>

#include "layers/attention_projections.h"
#include "reformer/tensor.h"

namespace reformer {

struct FullAttentionConfig {
  int64_t hidden = 0;     // D
  int64_t heads = 0;      // H
  int64_t head_size = 0;  // d
  bool causal = false;
  float dropout = 0.f;         // attention-probability dropout
  int64_t block_length = 128;  // rows per query block and per key block
};

using FullAttentionWeights = QkvAttentionWeights;
using FullAttentionGrads = QkvAttentionGrads;

class FullSelfAttention : public QkvSelfAttention {
 public:
  // ws: workspace shared with the model's other local/full layers; nullptr = a private one.
  FullSelfAttention(const FullAttentionConfig& config, FullAttentionWeights weights, FullAttentionGrads grads,
                   std::shared_ptr<QkvWorkspace> ws = nullptr);

 protected:
  void attend(float* o, float* lse, const float* q, const float* k, const float* v, const AttentionCall& call) override;
  void attend_backward(float* q_to_dq, float* dk, float* dv, const float* dO, const float* row_dlse, const float* lse,
                       const float* k, const float* v, const AttentionCall& call) override;
  int64_t core_workspace_bytes() const override;
  // Every earlier position: the cache keeps them all.
  int64_t decode_keep(int64_t capacity) const override { return capacity; }
  int64_t decode_first_key(int64_t) const override { return 0; }

 private:
  // Per-thread scratch of `floats` floats and the positions 0..L-1.
  void ensure_scratch(int64_t floats, int64_t length);

  const int64_t block_;
  Buffer<float> scratch_;
  Buffer<int32_t> positions_;
};

}  // namespace reformer
