#pragma once
// Slow, obviously-correct attention references in double precision, written per query straight
// from the spec (sections 1.7, 1.8, 2): gather the query's keys, score, mask by replacement,
// logsumexp, exp, dropout, weighted sum of values. Rows whose keys are ALL masked are not
// modelled the HF way (HF's fp32 lse rounds to the mask value, giving p = 1); tests avoid them
// here and check that case explicitly against the kernel.
#include <cstdint>

namespace reformer::test {

// One query block against one key window; the same contract as chunk_attention_forward (dropout
// element (i, j) uses random index dropout_base + i * nk + j). Contiguous rows (stride d).
void reference_block_attention(float* o, float* lse, const float* q, const float* k, const float* v,
                               const int32_t* qpos, const int32_t* kpos, const uint8_t* key_valid,
                               int64_t nq, int64_t nk, int64_t d, bool causal, bool self_mask, float dropout,
                               uint64_t seed, uint64_t stream, uint64_t dropout_base);

// A separate-Q/K/V attention layer (spec 2): q = x Wq^T, k = x Wk^T / sqrt(d), v = x Wv^T,
// out = o Wo^T. Each query at position t of chunk i = t / chunk sees the keys of chunks
// i - before .. i + after (mod n_chunks), in that order; if L <= chunk it sees all L keys (the
// full-attention case). Dropout element (query t, window slot j) uses random index
// i * chunk * nk + (t % chunk) * nk + j of stream (AttentionDropout, {step, layer, b, h}).
struct ReferenceAttentionConfig {
  int64_t batch, length, hidden, heads, head_size;
  int64_t chunk, before, after;
  bool causal;
  const uint8_t* pad_mask;  // (B, L), 1 = token; nullptr = none
  float dropout;            // 0 = off
  uint64_t seed, step;
  int layer;
};
void reference_qkv_attention(float* out, const float* x, const float* wq, const float* wk, const float* wv,
                             const float* wo, const ReferenceAttentionConfig& cfg);

}  // namespace reformer::test
