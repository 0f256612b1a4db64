#include "ops/layernorm.h"

#include <cmath>

#include "ops/parallel.h"

namespace reformer {

void layernorm_forward(float* y, float* mean, float* rstd, const float* x, const float* w, const float* b,
                       int64_t N, int64_t C, float eps) {
#pragma omp parallel for schedule(static) if (N * C >= kOmpMinWork)
  for (int64_t i = 0; i < N; ++i) {
    const float* xi = x + i * C;
    // Two passes in double: eps can be 1e-12 (HF), so the variance must not lose digits.
    double sum = 0;
    for (int64_t j = 0; j < C; ++j) sum += xi[j];
    const double m = sum / C;
    double var = 0;
    for (int64_t j = 0; j < C; ++j) var += (xi[j] - m) * (xi[j] - m);
    const float r = static_cast<float>(1.0 / std::sqrt(var / C + eps));
    const float mf = static_cast<float>(m);
    float* yi = y + i * C;
    for (int64_t j = 0; j < C; ++j) yi[j] = (xi[j] - mf) * r * w[j] + b[j];
    if (mean) mean[i] = mf;
    if (rstd) rstd[i] = r;
  }
}

void layernorm_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* mean,
                        const float* rstd, const float* w, int64_t N, int64_t C) {
  // Parameter gradients first: they read dy, which dx may overwrite.
  parallel_column_blocks(C, N * C, [&](int64_t j0, int64_t j1) {
    double aw[64] = {}, ab[64] = {};
    for (int64_t i = 0; i < N; ++i) {
      const float *xi = x + i * C, *gi = dy + i * C;
      for (int64_t j = j0; j < j1; ++j) {
        aw[j - j0] += static_cast<double>(gi[j]) * ((xi[j] - mean[i]) * rstd[i]);
        ab[j - j0] += gi[j];
      }
    }
    for (int64_t j = j0; j < j1; ++j) {
      dw[j] += static_cast<float>(aw[j - j0]);
      db[j] += static_cast<float>(ab[j - j0]);
    }
  });
  // dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * w.
#pragma omp parallel for schedule(static) if (N * C >= kOmpMinWork)
  for (int64_t i = 0; i < N; ++i) {
    const float *xi = x + i * C, *gi = dy + i * C;
    const float m = mean[i], r = rstd[i];
    double sg = 0, sgx = 0;
    for (int64_t j = 0; j < C; ++j) {
      const double g = static_cast<double>(gi[j]) * w[j];
      sg += g;
      sgx += g * ((xi[j] - m) * r);
    }
    const float mg = static_cast<float>(sg / C), mgx = static_cast<float>(sgx / C);
    float* dxi = dx + i * C;
    for (int64_t j = 0; j < C; ++j) dxi[j] = r * (gi[j] * w[j] - mg - (xi[j] - m) * r * mgx);
  }
}

}  // namespace reformer
