#include "ops/cross_entropy.h"

#include <cmath>
#include <vector>

#include <omp.h>

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

// sum_j exp(row[j] - mx), in double.
double sum_exp(const float* row, int64_t V, float mx) {
  double s = 0;
  for (int64_t j = 0; j < V; ++j) s += std::exp(static_cast<double>(row[j] - mx));
  return s;
}

}  // namespace

CrossEntropyStats cross_entropy_forward(const float* logits, const int32_t* targets, int64_t N, int64_t V,
                                        int32_t ignore_index) {
  check_targets(targets, N, V, ignore_index);
  // Per-thread partial sums combined in thread order (an OpenMP reduction's order is unspecified).
  std::vector<CrossEntropyStats> part(omp_get_max_threads());
#pragma omp parallel if (N * V >= kOmpMinWork)
  {
    CrossEntropyStats& mine = part[omp_get_thread_num()];
#pragma omp for schedule(static)
    for (int64_t i = 0; i < N; ++i) {
      if (targets[i] == ignore_index) continue;
      const float* row = logits + i * V;
      const RowMax m = row_max(row, V);
      mine.loss_sum += std::log(sum_exp(row, V, m.value)) - (static_cast<double>(row[targets[i]]) - m.value);
      mine.count += 1;
      mine.correct += m.index == targets[i] ? 1 : 0;
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

void cross_entropy_backward(float* dlogits, const float* logits, const int32_t* targets, int64_t N, int64_t V,
                            float scale, int32_t ignore_index) {
  check_targets(targets, N, V, ignore_index);
#pragma omp parallel for schedule(static) if (N * V >= kOmpMinWork)
  for (int64_t i = 0; i < N; ++i) {
    const float* row = logits + i * V;
    float* drow = dlogits + i * V;
    const int32_t t = targets[i];
    if (t == ignore_index) {
      for (int64_t j = 0; j < V; ++j) drow[j] = 0.f;
      continue;
    }
    const float mx = row_max(row, V).value;
    // The row's exponentials once, kept for the probabilities: the same values and sum as sum_exp.
    thread_local std::vector<double> e;
    e.resize(static_cast<size_t>(V));
    double sum = 0;
    for (int64_t j = 0; j < V; ++j) sum += e[j] = std::exp(static_cast<double>(row[j] - mx));
    const double inv = 1.0 / sum;
    for (int64_t j = 0; j < V; ++j) {
      const double p = e[j] * inv;
      drow[j] = static_cast<float>(scale * (p - (j == t ? 1.0 : 0.0)));
    }
  }
}

}  // namespace reformer
