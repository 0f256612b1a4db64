#include "ops/cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <omp.h>

#include "kernels/cpu/elementwise.h"
#include "ops/parallel.h"
#include "reformer/error.h"

namespace reformer {
namespace {

void check_targets(const int32_t* targets, int64_t N, int64_t V, int32_t ignore_index) {
  for (int64_t i = 0; i < N; ++i)
    REFORMER_CHECK(targets[i] == ignore_index || (targets[i] >= 0 && targets[i] < V), "target ", targets[i],
                   " at row ", i, " is outside the vocabulary [0, ", V, ") and is not the ignore index ",
                   ignore_index, "; check the labels");
}

struct RowMax {
  float value;
  int64_t index;  // first index of the maximum
};

RowMax row_max(const float* row, int64_t V) {
  RowMax m{row[0], 0};
  for (int64_t j = 1; j < V; ++j)
    if (row[j] > m.value) m = {row[j], j};
  return m;
}

// The loss of every counted row and, with dlogits, its gradient, in one pass over the rows. Each
// row's exponentials are taken once, in double, and serve both, so the forward alone, the backward
// alone and the two together give the same bits. They come from the vectorised
// kernel_exp_shifted_sum: a libm exp per logit was most of the LM head's time outside its
// products. Per-thread partial sums are combined in thread order (an OpenMP reduction's order is
// unspecified).
CrossEntropyStats loss_pass(float* dlogits, const float* logits, const int32_t* targets, int64_t N, int64_t V,
                            float scale, int32_t ignore_index) {
  check_targets(targets, N, V, ignore_index);
  std::vector<CrossEntropyStats> part(omp_get_max_threads());
#pragma omp parallel if (N * V >= kOmpMinWork)
  {
    CrossEntropyStats& mine = part[omp_get_thread_num()];
    thread_local std::vector<double> e;
    e.resize(static_cast<size_t>(V));
#pragma omp for schedule(static)
    for (int64_t i = 0; i < N; ++i) {
      const float* row = logits + i * V;
      const int32_t t = targets[i];
      if (t == ignore_index) {
        if (dlogits) std::fill(dlogits + i * V, dlogits + (i + 1) * V, 0.f);
        continue;
      }
      const RowMax m = row_max(row, V);
      const double sum = kernel_exp_shifted_sum(e.data(), row, V, m.value);
      mine.loss_sum += std::log(sum) - (static_cast<double>(row[t]) - m.value);
      mine.count += 1;
      mine.correct += m.index == t ? 1 : 0;
      if (!dlogits) continue;
      // dlogits may alias logits: the row is read in full above, before it is written.
      float* drow = dlogits + i * V;
      const double inv = 1.0 / sum;
      for (int64_t j = 0; j < V; ++j) drow[j] = static_cast<float>(scale * (e[j] * inv - (j == t ? 1.0 : 0.0)));
    }
  }
  CrossEntropyStats total;
  for (const CrossEntropyStats& p : part) {
    total.loss_sum += p.loss_sum;
    total.count += p.count;
    total.correct += p.correct;
  }
  return total;
}

}  // namespace

CrossEntropyStats cross_entropy_forward(const float* logits, const int32_t* targets, int64_t N, int64_t V,
                                        int32_t ignore_index) {
  return loss_pass(nullptr, logits, targets, N, V, 0.f, ignore_index);
}

void cross_entropy_backward(float* dlogits, const float* logits, const int32_t* targets, int64_t N, int64_t V,
                            float scale, int32_t ignore_index) {
  loss_pass(dlogits, logits, targets, N, V, scale, ignore_index);  // the statistics cost a log per row
}

CrossEntropyStats cross_entropy_forward_backward(float* dlogits, const float* logits, const int32_t* targets, int64_t N,
                                                 int64_t V, float scale, int32_t ignore_index) {
  return loss_pass(dlogits, logits, targets, N, V, scale, ignore_index);
}

}  // namespace reformer
