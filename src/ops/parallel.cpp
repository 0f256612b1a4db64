#include "ops/parallel.h"

namespace reformer {

void add_column_sums(float* out, const float* x, int64_t rows, int64_t cols, int64_t ld) {
  parallel_column_blocks(cols, rows * cols, [&](int64_t j0, int64_t j1) {
    double acc[64] = {};
    for (int64_t i = 0; i < rows; ++i) {
      const float* row = x + i * ld;
      for (int64_t j = j0; j < j1; ++j) acc[j - j0] += row[j];
    }
    for (int64_t j = j0; j < j1; ++j) out[j] += static_cast<float>(acc[j - j0]);
  });
}

}  // namespace reformer
