#include "ops/layernorm.h"

#include <algorithm>
#include <vector>

#include "kernels/cpu/bf16.h"
#include "kernels/cpu/elementwise.h"
#include "ops/parallel.h"
#include "reformer/error.h"

namespace reformer {
namespace {
constexpr int64_t kRowsPerTask = 16;  // rows per parallel-for iteration (the kernels take 4 at a time)
// The backward's parameter-gradient groups: at least kRowsPerGroup rows each, at most
// kMaxParamGroups of them (2 * kMaxParamGroups * C doubles of partial sums).
constexpr int64_t kRowsPerGroup = 256;
constexpr int64_t kMaxParamGroups = 64;
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
  // One pass over the rows for dx and the parameter gradients (the kernel reads each row's dy
  // before it writes dx, which may overwrite it). The rows fall into groups fixed by N alone, each
  // summing its rows in order into double partials of its own, added in group order after: the
  // sums do not depend on the thread count.
  const int64_t groups = std::clamp<int64_t>(N / kRowsPerGroup, 1, kMaxParamGroups);
  const int64_t group_rows = (N + groups - 1) / groups;
  // At most 2 * kMaxParamGroups * C doubles (256 KiB at C = 256); the caller's thread keeps the
  // buffer, so steps after the first allocate nothing here.
  thread_local std::vector<double> partial;
  partial.assign(static_cast<size_t>(2 * groups * C), 0.0);
  double* const partials = partial.data();  // the caller's buffer (inside the region, `partial` is each thread's own)
#pragma omp parallel for schedule(static) if (N * C >= kOmpMinWork)
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t r0 = g * group_rows, n = std::min(group_rows, N - r0);
    if (n <= 0) continue;
    double* aw = partials + 2 * g * C;
    kernel_layernorm_backward_rows(dx + r0 * C, dy + r0 * C, x + r0 * C, mean + r0, rstd + r0, w, n, C, accumulate, aw,
                                   aw + C);
  }
  for (int64_t j = 0; j < C; ++j) {
    double sw = 0, sb = 0;
    for (int64_t g = 0; g < groups; ++g) {
      sw += partials[2 * g * C + j];
      sb += partials[(2 * g + 1) * C + j];
    }
    dw[j] += static_cast<float>(sw);
    db[j] += static_cast<float>(sb);
  }
}

}  // namespace reformer
