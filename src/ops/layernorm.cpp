#include "ops/layernorm.h"

#include <algorithm>

#include "kernels/cpu/bf16.h"
#include "kernels/cpu/elementwise.h"
#include "ops/parallel.h"
#include "reformer/error.h"

namespace reformer {
namespace {
constexpr int64_t kRowsPerTask = 16;  // rows per parallel-for iteration (the kernels take 4 at a time)
}  // namespace

// The rows run through the dispatched kernels (kernels/cpu/elementwise.h): mean and variance in
// double, two passes (eps can be 1e-12, HF, so the variance must not lose digits), each sum in 8
// fixed partial sums, the same bits in every ISA variant.
void layernorm_forward(float* y, float* mean, float* rstd, const float* x, const float* w, const float* b,
                       int64_t N, int64_t C, float eps, uint16_t* y16) {
#pragma omp parallel for schedule(static) if (N * C >= kOmpMinWork)
  for (int64_t i0 = 0; i0 < N; i0 += kRowsPerTask) {
    const int64_t n = std::min(kRowsPerTask, N - i0);
    kernel_layernorm_rows(y + i0 * C, mean ? mean + i0 : nullptr, rstd ? rstd + i0 : nullptr, x + i0 * C, w, b, n, C,
                          eps);
    if (y16) f32_to_bf16(y16 + i0 * C, y + i0 * C, n * C);
  }
}

void layernorm_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* mean,
                        const float* rstd, const float* w, int64_t N, int64_t C, bool accumulate) {
  REFORMER_CHECK(!accumulate || dx != dy, "layernorm_backward: dx must not alias dy when accumulating into it");
  // Parameter gradients first: they read dy, which dx may overwrite. Each column sums its rows in order.
  parallel_column_blocks(C, N * C, [&](int64_t j0, int64_t j1) {
    double aw[kMaxColumnBlock] = {}, ab[kMaxColumnBlock] = {};
    kernel_accumulate_layernorm_param_grads(aw, ab, dy + j0, x + j0, C, mean, rstd, N, j1 - j0);
    for (int64_t j = j0; j < j1; ++j) {
      dw[j] += static_cast<float>(aw[j - j0]);
      db[j] += static_cast<float>(ab[j - j0]);
    }
  });
#pragma omp parallel for schedule(static) if (N * C >= kOmpMinWork)
  for (int64_t i0 = 0; i0 < N; i0 += kRowsPerTask) {
    const int64_t n = std::min(kRowsPerTask, N - i0);
    kernel_layernorm_backward_rows(dx + i0 * C, dy + i0 * C, x + i0 * C, mean + i0, rstd + i0, w, n, C, accumulate);
  }
}

}  // namespace reformer
