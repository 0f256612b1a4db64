#pragma once
// The shared-QK key of LSH attention (spec 1.5), used by the forward, the backward and incremental
// decoding alike, so that a cached key is bit-identical to the one the forward gathers.
#include <cmath>
#include <cstdint>

namespace reformer {

inline constexpr float kNormEps = 1e-6f;  // HF _len_norm epsilon

// Shared-QK key (spec 1.5): k = q * rsqrt(mean(q^2) + 1e-6) / sqrt(d), two roundings as in HF.
inline void normalize_key(float* k, const float* q, int64_t d) {
  double ss = 0;
  for (int64_t j = 0; j < d; ++j) ss += static_cast<double>(q[j]) * q[j];
  const float inv = 1.f / std::sqrt(static_cast<float>(ss / d) + kNormEps);
  const float inv_sqrt_d = 1.f / std::sqrt(static_cast<float>(d));
  for (int64_t j = 0; j < d; ++j) k[j] = (q[j] * inv) * inv_sqrt_d;
}

// dq += dk^T dk/dq for k = q * s(q), s = rsqrt(m)/sqrt(d), m = mean(q^2) + eps:
// dq = s dk - s q (dk . q) / (d m).
inline void normalize_key_backward(float* dq, const float* dk, const float* q, int64_t d) {
  double ss = 0, dot = 0;
  for (int64_t j = 0; j < d; ++j) {
    ss += static_cast<double>(q[j]) * q[j];
    dot += static_cast<double>(dk[j]) * q[j];
  }
  const double m = ss / d + kNormEps;
  const double s = 1.0 / std::sqrt(m) / std::sqrt(static_cast<double>(d));
  const float a = static_cast<float>(s);
  const float b = static_cast<float>(s * dot / (d * m));
  for (int64_t j = 0; j < d; ++j) dq[j] += a * dk[j] - b * q[j];
}

}  // namespace reformer
