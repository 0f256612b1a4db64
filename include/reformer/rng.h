#pragma once
// Counter-based random numbers (Philox-4x32-10, Salmon et al. 2011). A value is a pure function of
// (seed, stream, index): no hidden state, so the reversible backward's recomputation draws exactly
// the forward's rotations and dropout masks, and any slice can be drawn in any order or thread.
// A stream is named by hashing what the numbers are for: purpose, step, layer, head, round, ...
#include <cmath>
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

// Inline: dropout draws one of these per four elements, so call overhead matters.
inline Philox4 philox(uint64_t seed, uint64_t stream, uint64_t index) {
  uint32_t c0 = static_cast<uint32_t>(index), c1 = static_cast<uint32_t>(index >> 32);
  uint32_t c2 = static_cast<uint32_t>(stream), c3 = static_cast<uint32_t>(stream >> 32);
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c0;
    const uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c2;
    const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0, n1 = static_cast<uint32_t>(p1);
    const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1, n3 = static_cast<uint32_t>(p0);
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return {{c0, c1, c2, c3}};
}

// Element numbering: element `index` is word (index / 8) % 4 of Philox block
// 8 * (index / 32) + index % 8, so every aligned group of 32 consecutive elements is eight
// consecutive Philox blocks whose words come out as four runs of eight elements (one AVX2 vector
// each, no shuffles). Runs of consecutive indices cost one Philox evaluation per four elements.
inline uint32_t rng_word(uint64_t seed, uint64_t stream, uint64_t index) {
  return philox(seed, stream, ((index >> 5) << 3) | (index & 7)).v[(index >> 3) & 3];
}
// The raw words of the aligned group `group`: out[r] = rng_word(seed, stream, 32 * group + r).
void rng_words32(uint32_t* out, uint64_t seed, uint64_t stream, uint64_t group);
// `groups` consecutive groups from `first_group` into out[0 .. 32 * groups): the same words, in the
// widest vectors the CPU has (chosen at run time; every variant is bit-identical).
void rng_words32_groups(uint32_t* out, uint64_t seed, uint64_t stream, uint64_t first_group, int64_t groups);

// Uniform in [0, 1) with 24 random bits: (word >> 8) * 2^-24.
inline constexpr float kRngUniformScale = 1.0f / 16777216.0f;
inline float rng_uniform(uint64_t seed, uint64_t stream, uint64_t index) {
  return static_cast<float>(rng_word(seed, stream, index) >> 8) * kRngUniformScale;
}
// out[i] = rng_uniform(seed, stream, index_base + i) for i < n, one Philox per four elements.
void rng_uniform_block(float* out, int64_t n, uint64_t seed, uint64_t stream, uint64_t index_base);
// Standard normal (Box-Muller on one Philox block).
float rng_normal(uint64_t seed, uint64_t stream, uint64_t index);
// out[i] = mean + std * normal(seed, stream, i)
void rng_fill_normal(float* out, int64_t n, uint64_t seed, uint64_t stream, float mean = 0.f, float std = 1.f);
void rng_fill_uniform(float* out, int64_t n, uint64_t seed, uint64_t stream, float lo, float hi);

// Dropout's draws: element `index` takes 16 bits, half of one Philox word (rng_word of index / 2:
// the low half for even indices, the high half for odd ones), so that one word serves two elements
// (a 24-bit uniform per element doubles the Philox work, the largest cost of a dropout pass).
inline uint16_t rng_draw16(uint64_t seed, uint64_t stream, uint64_t index) {
  return static_cast<uint16_t>(rng_word(seed, stream, index >> 1) >> (16 * (index & 1)));
}
// out[i] = rng_draw16(seed, stream, index_base + i) for i < n: whole aligned blocks of 64 (one
// group of 32 words) from the dispatched Philox, the unaligned head and the tail one by one.
void rng_draws16(uint16_t* out, int64_t n, uint64_t seed, uint64_t stream, uint64_t index_base);
// Dropout with probability p (in [0, 1)) keeps an element iff its draw >= ceil(p * 2^16): the drop
// probability is p rounded up to a multiple of 2^-16 (0.05 drops 3277 / 65536 = 0.0500031).
inline int32_t rng_keep_threshold(float p_drop) {  // in [0, 2^16]; exact: p * 2^16 is exact in double
  return static_cast<int32_t>(std::ceil(static_cast<double>(p_drop) * 65536.0));
}
// Dropout decision for element `index`: true = keep. p_drop in [0, 1).
inline bool rng_keep(uint64_t seed, uint64_t stream, uint64_t index, float p_drop) {
  return static_cast<int32_t>(rng_draw16(seed, stream, index)) >= rng_keep_threshold(p_drop);
}

}  // namespace reformer
