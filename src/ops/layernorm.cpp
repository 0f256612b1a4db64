#include "ops/layernorm.h"

#include "kernels/cpu/elementwise.h"
#include "ops/parallel.h"

namespace reformer {

// The rows run through the dispatched kernels (kernels/cpu/elementwise.h): mean and variance in
// double, two passes (eps can be 1e-12, HF, so the variance must not lose digits), each sum in 8
// fixed partial sums, the same bits in every ISA variant.
void layernorm_forward(float* y, float* mean, float* rstd, const float* x, const float* w, const float* b,
                       int64_t N, int64_t C, float eps) {
#pragma omp parallel for schedule(static) if (N * C >= kOmpMinWork)
  for (int64_t i = 0; i < N; ++i) {
    float m, r;
    kernel_layernorm_row(y + i * C, &m, &r, x + i * C, w, b, C, eps);
    if (mean) mean[i] = m;
    if (rstd) rstd[i] = r;
  }
}

void layernorm_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* mean,
                        const float* rstd, const float* w, int64_t N, int64_t C) {
  // Parameter gradients first: they read dy, which dx may overwrite. Each column sums its rows in order.
  parallel_column_blocks(C, N * C, [&](int64_t j0, int64_t j1) {
    double aw[64] = {}, ab[64] = {};
    for (int64_t i = 0; i < N; ++i)
      kernel_accumulate_layernorm_param_grads(aw, ab, dy + i * C + j0, x + i * C + j0, mean[i], rstd[i], j1 - j0);
    for (int64_t j = j0; j < j1; ++j) {
      dw[j] += static_cast<float>(aw[j - j0]);
      db[j] += static_cast<float>(ab[j - j0]);
    }
  });
#pragma omp parallel for schedule(static) if (N * C >= kOmpMinWork)
  for (int64_t i = 0; i < N; ++i) kernel_layernorm_backward_row(dx + i * C, dy + i * C, x + i * C, mean[i], rstd[i], w, C);
}

}  // namespace reformer
