#pragma once
// One block of queries attending to one window of keys: the inner kernel of LSH, local and
// blockwise full attention. Scores are formed, masked, normalised and consumed inside the call and
// never outlive it (the backward recomputes them), so attention memory stays O(L * d).
//
// Masks follow Hugging Face (spec 1.7): values are REPLACED, first causal/padding with kMaskValue,
// then the self mask with kSelfMaskValue (which overrides), so a masked score has zero gradient.
// Probabilities are exp(score - lse) as in HF, so a row with no valid key (lse rounds to
// kMaskValue in fp32) gives p = 1 for every key, o = sum of v, exactly like HF.
// Gradients: dq, dk, dv ACCUMULATE (+=), because key windows overlap; the caller zeroes them.
#include <cstdint>

namespace reformer {

inline constexpr float kMaskValue = -1e9f;      // HF mask_value_float32
inline constexpr float kSelfMaskValue = -1e5f;  // HF self_mask_value_float32

struct ChunkAttentionOptions {
  bool causal = false;     // forbid key position > query position
  bool self_mask = false;  // forbid key position == query position (LSH only)
  // Attention-probability dropout (inverted, applied after the logsumexp). Element (i, j) of the
  // block uses random index dropout_base + i * nk + j of (seed, stream).
  float dropout = 0.f;
  uint64_t seed = 0;
  uint64_t stream = 0;
  uint64_t dropout_base = 0;
};

// q: nq x d (row stride ldq), k and v: nk x d (ldk, ldv), already scaled as the attention wants
// (logit = q . k). qpos/kpos: original positions (for masks). key_valid: nk flags, 0 = padding,
// nullptr = all valid. Outputs o: nq x d (ldo) and lse: nq (logsumexp of the masked scores).
// scratch: at least nq * nk floats.
void chunk_attention_forward(float* o, int64_t ldo, float* lse, const float* q, int64_t ldq,
                             const float* k, int64_t ldk, const float* v, int64_t ldv,
                             const int32_t* qpos, const int32_t* kpos, const uint8_t* key_valid,
                             int64_t nq, int64_t nk, int64_t d, const ChunkAttentionOptions& opt,
                             float* scratch);

// Backward of the same block. do_: upstream gradient of o (ldo_grad); dlse: upstream gradient of
// lse (nullptr = none); o and lse: the forward's outputs for this block. dq/dk/dv accumulate.
// o may be nullptr when the caller has folded the row term into dlse (dlse_i - do_i . o_i): the
// kernel uses o only for that dot product, so callers can drop o and keep dO in its place.
// scratch: at least 2 * nq * nk floats.
void chunk_attention_backward(float* dq, int64_t lddq, float* dk, int64_t lddk, float* dv, int64_t lddv,
                              const float* do_, int64_t ldgo, const float* dlse, const float* o,
                              int64_t ldo, const float* lse, const float* q, int64_t ldq, const float* k,
                              int64_t ldk, const float* v, int64_t ldv, const int32_t* qpos,
                              const int32_t* kpos, const uint8_t* key_valid, int64_t nq, int64_t nk,
                              int64_t d, const ChunkAttentionOptions& opt, float* scratch);

}  // namespace reformer
