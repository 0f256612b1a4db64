#include "reformer/rng.h"

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

void rng_uniform_block(float* out, int64_t n, uint64_t seed, uint64_t stream, uint64_t index_base) {
  constexpr float kScale = 1.0f / 16777216.0f;
  int64_t i = 0;
  while (i < n) {
    const uint64_t index = index_base + static_cast<uint64_t>(i);
    const Philox4 r = philox(seed, stream, index >> 2);
    for (uint64_t lane = index & 3; lane < 4 && i < n; ++lane, ++i) out[i] = static_cast<float>(r.v[lane] >> 8) * kScale;
  }
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
