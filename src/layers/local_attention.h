#pragma once
// Local (chunked) self-attention, spec section 2, Hugging Face LocalSelfAttention semantics.
// Positions are cut into chunks of chunk_length; the queries of chunk i attend to the keys of
// chunks i - chunks_before .. i + chunks_after, circular modulo the number of chunks (so without
// a causal mask chunk 0 also sees the last chunk). Causal and padding masks replace scores with
// -1e9; there is no self mask. Like HF, a sequence with L <= chunk_length gets plain attention over
// all L positions; otherwise L must be a multiple of chunk_length.
// Attention-probability dropout (training only): stream (AttentionDropout, {step, layer, b, h});
// in chunk i, element (query r, window slot j) uses index i * c * nk + r * nk + j, nk = window size.
//
// Gradients: weight gradients ACCUMULATE (+=); dx is ASSIGNED (see attention_projections.h).
// Working memory: O(L * d) per head plus per-thread window scratch of O(c * window) floats.
#include <cstdint>

#include "layers/attention_projections.h"
#include "reformer/tensor.h"

namespace reformer {

struct LocalAttentionConfig {
  int64_t hidden = 0;     // D
  int64_t heads = 0;      // H
  int64_t head_size = 0;  // d
  int64_t chunk_length = 64;
  int64_t chunks_before = 1;
  int64_t chunks_after = 0;
  bool causal = false;
  float dropout = 0.f;  // local_attention_probs_dropout_prob
};

using LocalAttentionWeights = QkvAttentionWeights;
using LocalAttentionGrads = QkvAttentionGrads;

class LocalSelfAttention : public QkvSelfAttention {
 public:
  // ws: workspace shared with the model's other local/full layers; nullptr = a private one.
  LocalSelfAttention(const LocalAttentionConfig& config, LocalAttentionWeights weights, LocalAttentionGrads grads,
                    std::shared_ptr<QkvWorkspace> ws = nullptr);

 protected:
  void attend(float* o, float* lse, const float* q, const float* k, const float* v, const AttentionCall& call) override;
  void attend_backward(float* q_to_dq, float* dk, float* dv, const float* dO, const float* row_dlse, const float* lse,
                       const float* k, const float* v, const AttentionCall& call) override;
  int64_t core_workspace_bytes() const override;
  // The query at t sees chunks t/c - chunks_before .. t/c, earlier positions only: the keys
  // [max(0, (t/c - chunks_before) * c), t], at most (chunks_before + 1) * c of them.
  int64_t decode_keep(int64_t capacity) const override;
  int64_t decode_first_key(int64_t t) const override;

 private:
  // Per-thread scratch for one chunk's window (floats, ints, flags per thread).
  void ensure_scratch(int64_t floats, int64_t ints, int64_t flags);

  LocalAttentionConfig config_;
  Buffer<float> scratch_;
  Buffer<int32_t> positions_;
  Buffer<uint8_t> valid_;
};

}  // namespace reformer
