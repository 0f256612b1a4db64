#include "reformer/rng.h"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

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

constexpr float kUniformScale = 1.0f / 16777216.0f;  // 24 random bits

// Eight consecutive Philox blocks (32 uniforms) at once, bit-identical to philox() per block.
void uniform32(float* out, uint64_t seed, uint64_t stream, uint64_t block) {
  constexpr int kW = 8;
  alignas(32) uint32_t c[4][kW];  // c[word][block j]
  for (int j = 0; j < kW; ++j) {
    c[0][j] = static_cast<uint32_t>(block + j);
    c[1][j] = static_cast<uint32_t>((block + j) >> 32);
    c[2][j] = static_cast<uint32_t>(stream);
    c[3][j] = static_cast<uint32_t>(stream >> 32);
  }
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
#if defined(__AVX2__)
  // vpmuludq multiplies the even 32-bit lanes; the odd ones are shifted down and multiplied
  // separately, and the high/low halves are blended back into eight 32-bit lanes.
  auto mul_hi_lo = [](__m256i a, __m256i m, __m256i& hi, __m256i& lo) {
    const __m256i even = _mm256_mul_epu32(a, m), odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);
    hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
    lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
  };
  const __m256i m0 = _mm256_set1_epi32(static_cast<int>(0xD2511F53u)), m1 = _mm256_set1_epi32(static_cast<int>(0xCD9E8D57u));
  __m256i c0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(c[0]));
  __m256i c1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(c[1]));
  __m256i c2 = _mm256_load_si256(reinterpret_cast<const __m256i*>(c[2]));
  __m256i c3 = _mm256_load_si256(reinterpret_cast<const __m256i*>(c[3]));
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
  const __m256 scale = _mm256_set1_ps(kUniformScale);
  alignas(32) float f[4][kW];
  _mm256_store_ps(f[0], _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(c0, 8)), scale));
  _mm256_store_ps(f[1], _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(c1, 8)), scale));
  _mm256_store_ps(f[2], _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(c2, 8)), scale));
  _mm256_store_ps(f[3], _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(c3, 8)), scale));
  for (int j = 0; j < kW; ++j)
    for (int w = 0; w < 4; ++w) out[4 * j + w] = f[w][j];
#else
  for (int round = 0; round < 10; ++round) {
    for (int j = 0; j < kW; ++j) {
      const uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c[0][j];
      const uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c[2][j];
      const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c[1][j] ^ k0, n1 = static_cast<uint32_t>(p1);
      const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c[3][j] ^ k1, n3 = static_cast<uint32_t>(p0);
      c[0][j] = n0; c[1][j] = n1; c[2][j] = n2; c[3][j] = n3;
    }
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  for (int j = 0; j < kW; ++j)
    for (int w = 0; w < 4; ++w) out[4 * j + w] = static_cast<float>(c[w][j] >> 8) * kUniformScale;
#endif
}

}  // namespace

void rng_uniform_block(float* out, int64_t n, uint64_t seed, uint64_t stream, uint64_t index_base) {
  int64_t i = 0;
  auto scalar_block = [&] {  // the rest of one Philox block, from element i
    const uint64_t index = index_base + static_cast<uint64_t>(i);
    const Philox4 r = philox(seed, stream, index >> 2);
    for (uint64_t lane = index & 3; lane < 4 && i < n; ++lane, ++i) out[i] = static_cast<float>(r.v[lane] >> 8) * kUniformScale;
  };
  if (((index_base + static_cast<uint64_t>(i)) & 3) != 0) scalar_block();  // up to a block boundary
  for (; i + 32 <= n; i += 32) uniform32(out + i, seed, stream, (index_base + static_cast<uint64_t>(i)) >> 2);
  while (i < n) scalar_block();
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
