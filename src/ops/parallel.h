#pragma once
// OpenMP helpers shared by the ops. Reductions over rows (bias and LayerNorm parameter gradients,
// embedding scatter-adds) are parallelised over blocks of COLUMNS: each column belongs to exactly
// one thread and its rows are summed in order, so results are deterministic without atomics.
#include <algorithm>
#include <cstdint>

#include <omp.h>

namespace reformer {

// Work (in elements) below which a loop stays on one thread: fork/join costs more than it saves.
inline constexpr int64_t kOmpMinWork = 1 << 15;

// The widest column block parallel_column_blocks hands out (callers size their per-block
// accumulators by it).
inline constexpr int64_t kMaxColumnBlock = 512;

// Calls fn(j0, j1) for the column blocks [j0, j1) covering [0, cols), in parallel when work (the
// total number of elements touched) is large enough. A block is a multiple of 64 columns, one per
// thread where that fits kMaxColumnBlock: each block sweeps all rows once, and longer runs of each
// row are read faster (64-column blocks of a (4096, 256) matrix read 256 of every 1,024 bytes;
// micro_ops' layernorm_param_grads_1thread rows time 64, 128 and 256). Columns are summed
// independently, so the blocks do not change any result.
template <class Fn>
void parallel_column_blocks(int64_t cols, int64_t work, Fn&& fn) {
  constexpr int64_t kUnit = 64;
  if (cols <= 0) return;
  const bool parallel = work >= kOmpMinWork;
  const int64_t threads = parallel ? std::max(1, omp_get_max_threads()) : 1;
  const int64_t units = (cols + kUnit - 1) / kUnit;
  const int64_t block = std::min(kMaxColumnBlock, (units + threads - 1) / threads * kUnit);
  const int64_t nblocks = (cols + block - 1) / block;
#pragma omp parallel for schedule(static) if (parallel && nblocks > 1)
  for (int64_t b = 0; b < nblocks; ++b) fn(b * block, std::min(cols, (b + 1) * block));
}

// Calls fn(i0, i1) for contiguous ranges covering [0, n), one per thread (static split, each a
// multiple of 64 elements except the last), in parallel when n >= kOmpMinWork; for elementwise
// passes, whose results do not depend on the split.
template <class Fn>
void parallel_ranges(int64_t n, Fn&& fn) {
  if (n < kOmpMinWork) {
    if (n > 0) fn(int64_t{0}, n);
    return;
  }
#pragma omp parallel
  {
    const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t per = ((n + threads - 1) / threads + 63) / 64 * 64;
    const int64_t i0 = std::min(n, t * per), i1 = std::min(n, i0 + per);
    if (i0 < i1) fn(i0, i1);
  }
}

// y = x, n elements (no overlap), split over the threads like parallel_ranges: a copy of a (L, D)
// stream is tens of MiB, which one thread copies while the others wait.
void copy_elementwise(float* y, const float* x, int64_t n);
// y = 0, n elements, split the same way (a stream or the gradient arena, zeroed once per step).
void zero_elementwise(float* y, int64_t n);

// y += x (y -= x if subtract), n elements, through the dispatched kernel (kernels/cpu/elementwise.h).
void add_elementwise(float* y, const float* x, int64_t n, bool subtract = false);

// out[j] += sum_i x[i * ld + j] for j < cols, accumulated in double.
void add_column_sums(float* out, const float* x, int64_t rows, int64_t cols, int64_t ld);

}  // namespace reformer
