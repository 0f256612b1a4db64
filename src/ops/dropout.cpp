#include "ops/dropout.h"

#include <algorithm>

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
  constexpr int64_t kBlock = 256;  // uniforms drawn per block, one Philox per four elements
#pragma omp parallel for schedule(static) if (n >= kOmpMinWork / 8)
  for (int64_t b = 0; b < n; b += kBlock) {
    float u[kBlock];
    const int64_t m = std::min(kBlock, n - b);
    rng_uniform_block(u, m, seed, stream, index_base + static_cast<uint64_t>(b));
    for (int64_t i = 0; i < m; ++i) y[b + i] = u[i] >= p ? x[b + i] * scale : 0.f;
  }
}

void dropout_backward(float* dx, const float* dy, int64_t n, float p, uint64_t seed, uint64_t stream,
                      uint64_t index_base) {
  // Linear and diagonal: the backward is the forward applied to the gradient.
  dropout_forward(dx, dy, n, p, seed, stream, index_base);
}

}  // namespace reformer
