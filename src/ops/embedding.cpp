#include "ops/embedding.h"

#include <algorithm>

#include "ops/parallel.h"
#include "reformer/error.h"

namespace reformer {
namespace {

// Checked before any parallel loop: an exception must not escape an OpenMP region.
void check_ids(const int32_t* ids, int64_t N, int64_t V) {
  for (int64_t i = 0; i < N; ++i)
    REFORMER_CHECK(ids[i] >= 0 && ids[i] < V, "token id ", ids[i], " at position ", i,
                   " is outside the vocabulary [0, ", V, "); check the tokenizer and vocab_size");
}

}  // namespace

void embedding_forward(float* out, const int32_t* ids, const float* table, int64_t N, int64_t V, int64_t D) {
  check_ids(ids, N, V);
#pragma omp parallel for schedule(static) if (N * D >= kOmpMinWork)
  for (int64_t i = 0; i < N; ++i) {
    const float* row = table + static_cast<int64_t>(ids[i]) * D;
    std::copy(row, row + D, out + i * D);
  }
}

void embedding_backward(float* dtable, const float* dout, const int32_t* ids, int64_t N, int64_t V, int64_t D) {
  check_ids(ids, N, V);
  parallel_column_blocks(D, N * D, [&](int64_t j0, int64_t j1) {
    for (int64_t i = 0; i < N; ++i) {
      float* dst = dtable + static_cast<int64_t>(ids[i]) * D;
      const float* src = dout + i * D;
      for (int64_t j = j0; j < j1; ++j) dst[j] += src[j];
    }
  });
}

}  // namespace reformer
