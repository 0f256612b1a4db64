#pragma once
// Slow, obviously-correct attention references in double precision, written per query straight
// from the spec (sections 1.7, 1.8, 2): gather the query's keys, score, mask by replacement,
// logsumexp, exp, dropout, weighted sum of values. Rows whose keys are ALL masked are not
// modelled the HF way (HF's fp32 lse rounds to the mask value, giving p = 1); tests avoid them
// here and check that case explicitly against the kernel.
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "layers/attention.h"
#include "layers/attention_projections.h"

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

// A call with fixed seed/step/layer (so dropout streams are reproducible).
AttentionCall test_call(int64_t batch, int64_t length, const uint8_t* pad_mask, bool training);
// (batch, length) mask where the last batch element has its last `padded` positions padded
// (never position 0).
std::vector<uint8_t> right_padding(int64_t batch, int64_t length, int64_t padded);

// Harness for layers built on QkvSelfAttention (local, full): random weights in [-0.5, 0.5) and
// zeroed gradient buffers, torch layout.
struct QkvParams {
  QkvParams(int64_t hidden, int64_t heads, int64_t head_size, uint64_t seed);
  int64_t hidden;
  std::vector<float> wq, wk, wv, wo, gq, gk, gv, go;
  QkvAttentionWeights weights() const { return {wq.data(), wk.data(), wv.data(), wo.data()}; }
  QkvAttentionGrads grads() { return {gq.data(), gk.data(), gv.data(), go.data()}; }
};

// For loss = sum w * forward(x) (fixed random w): checks backward's dx and the four weight
// gradients against finite differences, and that backward's recomputed output equals forward's
// bit for bit (same dropout masks). x: (B, L, hidden) for call.
void expect_qkv_layer_gradients_ok(AttentionLayer& layer, QkvParams& params, std::vector<float>& x,
                                   const AttentionCall& call);

// Peak accounted bytes, above what was live before, of building a layer with make() and running
// one forward and one backward with call.
int64_t peak_bytes_forward_backward(const std::function<std::unique_ptr<AttentionLayer>()>& make, int64_t hidden,
                                    const AttentionCall& call);

}  // namespace reformer::test
