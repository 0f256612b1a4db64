#pragma once
// The shared-QK key of LSH attention (spec 1.5), used by the forward, the backward and incremental
// decoding alike, so that a cached key is bit-identical to the one the forward gathers.
#include <cmath>
#include <cstdint>

namespace reformer {

inline constexpr float kNormEps = 1e-6f;  // HF _len_norm epsilon

// Rows per block of the functions below. One row's sum is a serial chain of d double adds (no
// reassociation: the build keeps IEEE order); a block runs kKeyRows such chains side by side, and
// each row's result is the same whichever rows share its block.
inline constexpr int64_t kKeyRows = 16;

// Shared-QK keys (spec 1.5): k = q * rsqrt(mean(q^2) + 1e-6) / sqrt(d), two roundings as in HF.
// Key row r (k + r * d) from q row qk + pos[r] * ldq.
inline void normalize_keys(float* k, const float* qk, int64_t ldq, const int32_t* pos, int64_t n, int64_t d) {
  const float inv_sqrt_d = 1.f / std::sqrt(static_cast<float>(d));
  for (int64_t r0 = 0; r0 < n; r0 += kKeyRows) {
    const int64_t m = n - r0 < kKeyRows ? n - r0 : kKeyRows;
    const float* q[kKeyRows];
    double ss[kKeyRows];
    for (int64_t r = 0; r < m; ++r) {
      q[r] = qk + pos[r0 + r] * ldq;
      ss[r] = 0;
    }
    for (int64_t j = 0; j < d; ++j)
      for (int64_t r = 0; r < m; ++r) ss[r] += static_cast<double>(q[r][j]) * q[r][j];
    for (int64_t r = 0; r < m; ++r) {
      const float inv = 1.f / std::sqrt(static_cast<float>(ss[r] / d) + kNormEps);
      float* kr = k + (r0 + r) * d;
      for (int64_t j = 0; j < d; ++j) kr[j] = (q[r][j] * inv) * inv_sqrt_d;
    }
  }
}

// One key (decoding caches keys one at a time; the same bits as the forward's gather).
inline void normalize_key(float* k, const float* q, int64_t d) {
  const int32_t first = 0;
  normalize_keys(k, q, 0, &first, 1, d);
}

// dq += dk^T dk/dq for k = q * s(q), s = rsqrt(m)/sqrt(d), m = mean(q^2) + eps:
// dq = s dk - s q (dk . q) / (d m). Row r adds key gradient dk + r * d into dqk + pos[r] * ld, with
// q row qk + pos[r] * ld; rows in order (a position may repeat).
inline void normalize_keys_backward(float* dqk, const float* dk, const float* qk, int64_t ld, const int32_t* pos,
                                    int64_t n, int64_t d) {
  for (int64_t r0 = 0; r0 < n; r0 += kKeyRows) {
    const int64_t m = n - r0 < kKeyRows ? n - r0 : kKeyRows;
    const float* q[kKeyRows];
    double ss[kKeyRows], dot[kKeyRows];
    for (int64_t r = 0; r < m; ++r) {
      q[r] = qk + pos[r0 + r] * ld;
      ss[r] = dot[r] = 0;
    }
    for (int64_t j = 0; j < d; ++j)
      for (int64_t r = 0; r < m; ++r) {
        ss[r] += static_cast<double>(q[r][j]) * q[r][j];
        dot[r] += static_cast<double>(dk[(r0 + r) * d + j]) * q[r][j];
      }
    for (int64_t r = 0; r < m; ++r) {
      const double mr = ss[r] / d + kNormEps;
      const double sr = 1.0 / std::sqrt(mr) / std::sqrt(static_cast<double>(d));
      const float a = static_cast<float>(sr);
      const float b = static_cast<float>(sr * dot[r] / (d * mr));
      float* dq = dqk + pos[r0 + r] * ld;
      const float* dkr = dk + (r0 + r) * d;
      for (int64_t j = 0; j < d; ++j) dq[j] += a * dkr[j] - b * q[r][j];
    }
  }
}

}  // namespace reformer
