#include "ops/dropout.h"

#include <algorithm>
#include <cmath>

#include "ops/parallel.h"
#include "reformer/error.h"
#include "reformer/rng.h"

namespace reformer {

uint64_t hidden_dropout_stream(uint64_t step, int layer, DropoutSite site) {
  return rng_stream(RngPurpose::HiddenDropout, {step, static_cast<uint64_t>(layer), static_cast<uint64_t>(site)});
}

void dropout_forward(float* y, const float* x, int64_t n, float p, uint64_t seed, uint64_t stream,
                     uint64_t index_base) {
  REFORMER_CHECK(p >= 0.f && p < 1.f, "dropout probability ", p, " is outside [0, 1)");
  if (p == 0.f) {
    if (y != x) std::copy(x, x + n, y);
    return;
  }
  const float scale = 1.f / (1.f - p);
  // keep iff rng_uniform >= p, i.e. (word >> 8) / 2^24 >= p, decided on the integer word: exact,
  // since both sides are exact in double.
  const uint32_t threshold = static_cast<uint32_t>(std::ceil(static_cast<double>(p) / kRngUniformScale));
  auto one = [&](int64_t i) {
    y[i] = rng_keep(seed, stream, index_base + static_cast<uint64_t>(i), p) ? x[i] * scale : 0.f;
  };
  // Whole aligned groups of 32 (rng.h) run through rng_words32 and a vectorisable select; the
  // unaligned head and the tail go element by element.
  int64_t head = static_cast<int64_t>((32 - (index_base & 31)) & 31);
  head = std::min(head, n);
  for (int64_t i = 0; i < head; ++i) one(i);
  const int64_t groups = (n - head) / 32;
  const uint64_t first_group = (index_base + static_cast<uint64_t>(head)) >> 5;
  // Batches of kBatch groups per call of the dispatched Philox (rng.h: the widest vectors the CPU has).
  constexpr int64_t kBatch = 8;
  const int64_t batches = (groups + kBatch - 1) / kBatch;
#pragma omp parallel for schedule(static) if (groups * 32 >= kOmpMinWork / 8)
  for (int64_t bi = 0; bi < batches; ++bi) {
    uint32_t words[32 * kBatch];
    const int64_t g0 = bi * kBatch, ng = std::min(kBatch, groups - g0);
    rng_words32_groups(words, seed, stream, first_group + static_cast<uint64_t>(g0), ng);
    const int64_t i0 = head + g0 * 32;
    const int64_t m = 32 * ng;
#pragma omp simd
    for (int64_t r = 0; r < m; ++r) y[i0 + r] = (words[r] >> 8) >= threshold ? x[i0 + r] * scale : 0.f;
  }
  for (int64_t i = head + groups * 32; i < n; ++i) one(i);
}

void dropout_backward(float* dx, const float* dy, int64_t n, float p, uint64_t seed, uint64_t stream,
                      uint64_t index_base) {
  // Linear and diagonal: the backward is the forward applied to the gradient.
  dropout_forward(dx, dy, n, p, seed, stream, index_base);
}

}  // namespace reformer
