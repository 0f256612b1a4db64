#pragma once
// Counter-based random numbers (Philox-4x32-10, Salmon et al. 2011). A value is a pure function of
// (seed, stream, index): no hidden state, so the reversible backward's recomputation draws exactly
// the forward's rotations and dropout masks, and any slice can be drawn in any order or thread.
// A stream is named by hashing what the numbers are for: purpose, step, layer, head, round, ...
#include <cstdint>
#include <initializer_list>

namespace reformer {

// What a stream is for; part of every stream id so that different uses never share numbers.
enum class RngPurpose : uint64_t {
  Rotations = 1,
  AttentionDropout = 2,
  HiddenDropout = 3,
  EmbeddingDropout = 4,
  Init = 5,
  Data = 6,
  Sampling = 7,
};

// Combines the parts into one 64-bit stream id (splitmix64 chaining; order matters).
uint64_t rng_stream(RngPurpose purpose, std::initializer_list<uint64_t> parts);

struct Philox4 {
  uint32_t v[4];
};
Philox4 philox(uint64_t seed, uint64_t stream, uint64_t index);

// Uniform in [0, 1) with 24 random bits.
float rng_uniform(uint64_t seed, uint64_t stream, uint64_t index);
// Standard normal (Box-Muller on one Philox block).
float rng_normal(uint64_t seed, uint64_t stream, uint64_t index);
// out[i] = mean + std * normal(seed, stream, i)
void rng_fill_normal(float* out, int64_t n, uint64_t seed, uint64_t stream, float mean = 0.f, float std = 1.f);
void rng_fill_uniform(float* out, int64_t n, uint64_t seed, uint64_t stream, float lo, float hi);

// Dropout decision for element `index`: true = keep. p_drop in [0, 1).
inline bool rng_keep(uint64_t seed, uint64_t stream, uint64_t index, float p_drop) {
  return rng_uniform(seed, stream, index) >= p_drop;
}

}  // namespace reformer
