#include "ops/parallel.h"

#include <cstring>

#include "kernels/cpu/elementwise.h"

namespace reformer {

void copy_elementwise(float* y, const float* x, int64_t n) {
  parallel_ranges(n, [&](int64_t i0, int64_t i1) {
    std::memcpy(y + i0, x + i0, static_cast<size_t>(i1 - i0) * sizeof(float));
  });
}

void zero_elementwise(float* y, int64_t n) {
  parallel_ranges(n, [&](int64_t i0, int64_t i1) {
    std::memset(y + i0, 0, static_cast<size_t>(i1 - i0) * sizeof(float));
  });
}

void add_elementwise(float* y, const float* x, int64_t n, bool subtract) {
  parallel_ranges(n, [&](int64_t i0, int64_t i1) { kernel_add(y + i0, x + i0, i1 - i0, subtract); });
}

void add_column_sums(float* out, const float* x, int64_t rows, int64_t cols, int64_t ld) {
  parallel_column_blocks(cols, rows * cols, [&](int64_t j0, int64_t j1) {
    double acc[kMaxColumnBlock] = {};
    kernel_accumulate_columns(acc, x + j0, ld, rows, j1 - j0);  // rows in order
    for (int64_t j = j0; j < j1; ++j) out[j] += static_cast<float>(acc[j - j0]);
  });
}

}  // namespace reformer
