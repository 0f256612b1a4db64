#include "reformer/rng.h"

#include "core/cpu_isa.h"

#if REFORMER_ISA_VARIANTS
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstring>
#include <bit>
#include <cmath>

namespace reformer {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

uint64_t rng_stream(RngPurpose purpose, std::initializer_list<uint64_t> parts) {
  uint64_t h = splitmix64(static_cast<uint64_t>(purpose));
  for (uint64_t p : parts) h = splitmix64(h ^ splitmix64(p + 0x632BE59BD9B4E019ull));
  return h;
}

namespace {

// The scalar definition: block 8 * group + j gives words out[w * 8 + j].
void words_baseline(uint32_t* out, uint64_t seed, uint64_t stream, uint64_t first_group, int64_t groups) {
  for (int64_t g = 0; g < groups; ++g, out += 32) {
    const uint64_t block = (first_group + static_cast<uint64_t>(g)) << 3;
    for (int j = 0; j < 8; ++j) {
      const Philox4 r = philox(seed, stream, block + static_cast<uint64_t>(j));
      for (int w = 0; w < 4; ++w) out[w * 8 + j] = r.v[w];
    }
  }
}

}  // namespace

#if REFORMER_ISA_VARIANTS
// Integer arithmetic only, so every variant is bit-identical to words_baseline (tested).
namespace {

// One group: lane j holds block 8 * group + j. vpmuludq multiplies the even 32-bit lanes; the odd
// ones are moved down by an in-lane shuffle and multiplied separately, and the products' halves are
// shuffled and blended back (shuffles, not 64-bit shifts, which share the multiplier's port on Intel
// cores). A second group side by side gained nothing here (throughput-bound, unlike words_avx512).
__attribute__((target(REFORMER_TARGET_AVX2))) void words_avx2(uint32_t* out, uint64_t seed, uint64_t stream,
                                                              uint64_t first_group, int64_t groups) {
  auto mul_hi_lo = [](__m256i a, __m256i m, __m256i& hi, __m256i& lo) __attribute__((target(REFORMER_TARGET_AVX2))) {
    const __m256i even = _mm256_mul_epu32(a, m), odd = _mm256_mul_epu32(_mm256_shuffle_epi32(a, 0xF5), m);
    hi = _mm256_blend_epi32(_mm256_shuffle_epi32(even, 0xF5), odd, 0xAA);
    lo = _mm256_blend_epi32(even, _mm256_shuffle_epi32(odd, 0xA0), 0xAA);
  };
  const __m256i m0 = _mm256_set1_epi32(static_cast<int>(0xD2511F53u));
  const __m256i m1 = _mm256_set1_epi32(static_cast<int>(0xCD9E8D57u));
  for (int64_t g = 0; g < groups; ++g, out += 32) {
    const uint64_t block = (first_group + static_cast<uint64_t>(g)) << 3;
    uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
    // block + j never carries into the high word: block is a multiple of 8.
    __m256i c0 = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(block))),
                                  _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256i c1 = _mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(block >> 32)));
    __m256i c2 = _mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(stream)));
    __m256i c3 = _mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(stream >> 32)));
    for (int round = 0; round < 10; ++round) {
      __m256i hi0, lo0, hi1, lo1;
      mul_hi_lo(c0, m0, hi0, lo0);
      mul_hi_lo(c2, m1, hi1, lo1);
      c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), _mm256_set1_epi32(static_cast<int>(k0)));
      c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), _mm256_set1_epi32(static_cast<int>(k1)));
      c1 = lo1;
      c3 = lo0;
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), c0);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 8), c1);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 16), c2);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 24), c3);
  }
}

// Two groups a register: lanes 0-7 are group g's blocks, lanes 8-15 group g + 1's. The main loop
// runs two registers (four groups) side by side: one register's ten rounds are a chain of
// dependent multiplies, and a second, independent chain fills the multiplier's latency.
struct PhiloxLanes512 {
  __m512i c0, c1, c2, c3;
};

__attribute__((target(REFORMER_TARGET_AVX512))) inline void philox_lanes_start(PhiloxLanes512& s, uint64_t first_block,
                                                                               uint64_t stream) {
  const uint64_t b0 = first_block, b1 = b0 + 8;  // b1 may carry: own high word
  auto halves = [](uint32_t a, uint32_t b) __attribute__((target(REFORMER_TARGET_AVX512))) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi32(static_cast<int>(a))),
                              _mm256_set1_epi32(static_cast<int>(b)), 1);
  };
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7);
  s.c0 = _mm512_add_epi32(halves(static_cast<uint32_t>(b0), static_cast<uint32_t>(b1)), lane);
  s.c1 = halves(static_cast<uint32_t>(b0 >> 32), static_cast<uint32_t>(b1 >> 32));
  s.c2 = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(stream)));
  s.c3 = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(stream >> 32)));
}

// One Philox round on 16 blocks with the round's keys k0, k1 (broadcast).
__attribute__((target(REFORMER_TARGET_AVX512))) inline void philox_lanes_round(PhiloxLanes512& s, __m512i k0,
                                                                               __m512i k1) {
  // The 64-bit products of the even lanes (even) and of the odd lanes moved down (odd); each half is
  // put back in place by a masked in-lane shuffle (the shuffle port), not by 64-bit shifts and blends,
  // which would share the multiplier's port.
  auto mul_hi_lo = [](__m512i a, __m512i m, __m512i& hi, __m512i& lo) __attribute__((target(REFORMER_TARGET_AVX512))) {
    const __m512i even = _mm512_mul_epu32(a, m);
    const __m512i odd = _mm512_mul_epu32(_mm512_shuffle_epi32(a, _MM_PERM_DDBB), m);  // a[2i+1] into lane 2i
    hi = _mm512_mask_shuffle_epi32(odd, 0x5555, even, _MM_PERM_DDBB);                 // even lanes: even's high word
    lo = _mm512_mask_shuffle_epi32(even, 0xAAAA, odd, _MM_PERM_CCAA);                 // odd lanes: odd's low word
  };
  const __m512i m0 = _mm512_set1_epi32(static_cast<int>(0xD2511F53u));
  const __m512i m1 = _mm512_set1_epi32(static_cast<int>(0xCD9E8D57u));
  __m512i hi0, lo0, hi1, lo1;
  mul_hi_lo(s.c0, m0, hi0, lo0);
  mul_hi_lo(s.c2, m1, hi1, lo1);
  s.c0 = _mm512_ternarylogic_epi32(hi1, s.c1, k0, 0x96);  // hi1 ^ c1 ^ k0
  s.c2 = _mm512_ternarylogic_epi32(hi0, s.c3, k1, 0x96);
  s.c1 = lo1;
  s.c3 = lo0;
}

// The two groups' 64 words in the scalar layout: group g's word w * 8 + j from lane j of c[w].
__attribute__((target(REFORMER_TARGET_AVX512))) inline void philox_lanes_store(uint32_t* out, const PhiloxLanes512& s) {
  const __m512i c[4] = {s.c0, s.c1, s.c2, s.c3};
  for (int w = 0; w < 4; ++w) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 8 * w), _mm512_castsi512_si256(c[w]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 32 + 8 * w), _mm512_extracti64x4_epi64(c[w], 1));
  }
}

__attribute__((target(REFORMER_TARGET_AVX512))) void words_avx512(uint32_t* out, uint64_t seed, uint64_t stream,
                                                                  uint64_t first_group, int64_t groups) {
  // The round keys: seed's halves plus the Weyl increments, one broadcast pair per round.
  __m512i k0[10], k1[10];
  uint32_t key0 = static_cast<uint32_t>(seed), key1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round, key0 += 0x9E3779B9u, key1 += 0xBB67AE85u) {
    k0[round] = _mm512_set1_epi32(static_cast<int>(key0));
    k1[round] = _mm512_set1_epi32(static_cast<int>(key1));
  }
  int64_t g = 0;
  for (; g + 4 <= groups; g += 4, out += 128) {
    const uint64_t block = (first_group + static_cast<uint64_t>(g)) << 3;
    PhiloxLanes512 a, b;
    philox_lanes_start(a, block, stream);
    philox_lanes_start(b, block + 16, stream);
    for (int round = 0; round < 10; ++round) {
      philox_lanes_round(a, k0[round], k1[round]);
      philox_lanes_round(b, k0[round], k1[round]);
    }
    philox_lanes_store(out, a);
    philox_lanes_store(out + 64, b);
  }
  for (; g + 2 <= groups; g += 2, out += 64) {
    PhiloxLanes512 a;
    philox_lanes_start(a, (first_group + static_cast<uint64_t>(g)) << 3, stream);
    for (int round = 0; round < 10; ++round) philox_lanes_round(a, k0[round], k1[round]);
    philox_lanes_store(out, a);
  }
  if (g < groups) words_avx2(out, seed, stream, first_group + static_cast<uint64_t>(g), groups - g);
}

}  // namespace
#endif

void rng_words32_groups(uint32_t* out, uint64_t seed, uint64_t stream, uint64_t first_group, int64_t groups) {
#if REFORMER_ISA_VARIANTS
  switch (isa_active()) {
    case Isa::Avx512: return words_avx512(out, seed, stream, first_group, groups);
    case Isa::Avx2: return words_avx2(out, seed, stream, first_group, groups);
    case Isa::Baseline: break;
  }
#endif
  words_baseline(out, seed, stream, first_group, groups);
}

void rng_words32(uint32_t* out, uint64_t seed, uint64_t stream, uint64_t group) {
  rng_words32_groups(out, seed, stream, group, 1);
}

void rng_uniform_block(float* out, int64_t n, uint64_t seed, uint64_t stream, uint64_t index_base) {
  int64_t i = 0;
  for (; i < n && ((index_base + static_cast<uint64_t>(i)) & 31) != 0; ++i)  // up to a group boundary
    out[i] = rng_uniform(seed, stream, index_base + static_cast<uint64_t>(i));
  constexpr int64_t kGroups = 8;  // groups per call of the dispatched generator
  uint32_t words[32 * kGroups];
  while (i + 32 <= n) {
    const int64_t groups = std::min(kGroups, (n - i) / 32);
    rng_words32_groups(words, seed, stream, (index_base + static_cast<uint64_t>(i)) >> 5, groups);
    for (int64_t r = 0; r < 32 * groups; ++r) out[i + r] = static_cast<float>(words[r] >> 8) * kRngUniformScale;
    i += 32 * groups;
  }
  for (; i < n; ++i) out[i] = rng_uniform(seed, stream, index_base + static_cast<uint64_t>(i));
}

void rng_draws16(uint16_t* out, int64_t n, uint64_t seed, uint64_t stream, uint64_t index_base) {
  constexpr int64_t kBlock = 64;  // draws per group of 32 words
  int64_t i = 0;
  for (; i < n && (index_base + static_cast<uint64_t>(i)) % kBlock != 0; ++i)  // up to a block boundary
    out[i] = rng_draw16(seed, stream, index_base + static_cast<uint64_t>(i));
  constexpr int64_t kGroups = 8;  // groups per call of the dispatched generator
  uint32_t words[32 * kGroups];
  while (i + kBlock <= n) {
    const int64_t groups = std::min(kGroups, (n - i) / kBlock);
    rng_words32_groups(words, seed, stream, (index_base + static_cast<uint64_t>(i)) / kBlock, groups);
    // Word w holds draws 2w (low half) and 2w + 1 (high half): on a little-endian CPU the words'
    // bytes are the draws in order (a copy; an element-wise split was as slow as the Philox).
    static_assert(std::endian::native == std::endian::little, "rng_draws16 copies words as pairs of halves");
    std::memcpy(out + i, words, static_cast<size_t>(32 * groups) * sizeof(uint32_t));
    i += kBlock * groups;
  }
  for (; i < n; ++i) out[i] = rng_draw16(seed, stream, index_base + static_cast<uint64_t>(i));
}

float rng_normal(uint64_t seed, uint64_t stream, uint64_t index) {
  const Philox4 r = philox(seed, stream, index);
  // u1 in (0, 1] so the log is finite.
  const double u1 = (static_cast<double>(r.v[0]) + 1.0) / 4294967296.0;
  const double u2 = static_cast<double>(r.v[1]) / 4294967296.0;
  return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2));
}

void rng_fill_normal(float* out, int64_t n, uint64_t seed, uint64_t stream, float mean, float std) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) out[i] = mean + std * rng_normal(seed, stream, static_cast<uint64_t>(i));
}

void rng_fill_uniform(float* out, int64_t n, uint64_t seed, uint64_t stream, float lo, float hi) {
  rng_uniform_block(out, n, seed, stream, 0);
  for (int64_t i = 0; i < n; ++i) out[i] = lo + (hi - lo) * out[i];
}

}  // namespace reformer
