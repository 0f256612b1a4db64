#include "ops/dropout.h"

#include <algorithm>

#include "kernels/cpu/bf16.h"
#include "kernels/cpu/elementwise.h"
#include "ops/parallel.h"
#include "reformer/error.h"
#include "reformer/rng.h"

namespace reformer {

uint64_t hidden_dropout_stream(uint64_t step, int layer, DropoutSite site) {
  return rng_stream(RngPurpose::HiddenDropout, {step, static_cast<uint64_t>(layer), static_cast<uint64_t>(site)});
}

namespace {

struct Keep {
  int32_t threshold;  // keep iff draw >= threshold (rng_keep)
  float scale;
};

Keep keep_rule(float p) {
  REFORMER_CHECK(p >= 0.f && p < 1.f, "dropout probability ", p, " is outside [0, 1)");
  return {rng_keep_threshold(p), 1.f / (1.f - p)};
}

// Calls fn(i0, m, draws) for pieces [i0, i0 + m) covering [0, n), draws[r] = rng_draw16(seed,
// stream, index_base + i0 + r) (rng_draws16), in parallel pieces of kPiece when there are enough.
template <class Fn>
void for_each_draws(int64_t n, uint64_t seed, uint64_t stream, uint64_t index_base, Fn&& fn) {
  constexpr int64_t kPiece = 512;  // 8 Philox groups of 64 draws; the unaligned head in the first piece
  const int64_t head = std::min(static_cast<int64_t>((kPiece - index_base % kPiece) % kPiece), n);
  const int64_t pieces = (head > 0) + (n - head + kPiece - 1) / kPiece;
#pragma omp parallel for schedule(static) if (n >= kOmpMinWork / 8)
  for (int64_t pi = 0; pi < pieces; ++pi) {
    uint16_t draws[kPiece];
    const int64_t i0 = pi == 0 ? 0 : head + (pi - (head > 0)) * kPiece;
    const int64_t m = pi == 0 && head > 0 ? head : std::min(kPiece, n - i0);
    rng_draws16(draws, m, seed, stream, index_base + static_cast<uint64_t>(i0));
    fn(i0, m, draws);
  }
}

// The optional bf16 copy of an op's output range [i0, i0 + m).
void write_bf16(uint16_t* dst16, const float* src, int64_t i0, int64_t m) {
  if (dst16) f32_to_bf16(dst16 + i0, src + i0, m);
}

}  // namespace

void dropout_forward(float* y, const float* x, int64_t n, float p, uint64_t seed, uint64_t stream,
                     uint64_t index_base, uint16_t* y16) {
  const Keep k = keep_rule(p);
  if (p == 0.f) {
    if (!y16) {
      if (y != x) std::copy(x, x + n, y);
      return;
    }
    parallel_ranges(n, [&](int64_t i0, int64_t i1) {
      if (y != x) std::copy(x + i0, x + i1, y + i0);
      write_bf16(y16, y, i0, i1 - i0);
    });
    return;
  }
  for_each_draws(n, seed, stream, index_base, [&](int64_t i0, int64_t m, const uint16_t* w) {
    kernel_dropout_apply(y + i0, x + i0, w, m, k.threshold, k.scale);
    write_bf16(y16, y, i0, m);
  });
}

void dropout_backward(float* dx, const float* dy, int64_t n, float p, uint64_t seed, uint64_t stream,
                      uint64_t index_base, uint16_t* dx16) {
  // Linear and diagonal: the backward is the forward applied to the gradient.
  dropout_forward(dx, dy, n, p, seed, stream, index_base, dx16);
}

void dropout_add(float* y, const float* x, int64_t n, bool subtract, float p, uint64_t seed, uint64_t stream,
                 uint64_t index_base, const float* y_in) {
  const Keep k = keep_rule(p);
  if (!y_in) y_in = y;
  if (p == 0.f) {
    parallel_ranges(n, [&](int64_t i0, int64_t i1) {
      if (y != y_in) std::copy(y_in + i0, y_in + i1, y + i0);
      kernel_add(y + i0, x + i0, i1 - i0, subtract);
    });
    return;
  }
  for_each_draws(n, seed, stream, index_base, [&](int64_t i0, int64_t m, const uint16_t* w) {
    kernel_dropout_add(y + i0, y_in + i0, x + i0, w, m, k.threshold, k.scale, subtract);
  });
}

void dropout_relu_forward(float* h, float* a, int64_t n, float p, uint64_t seed, uint64_t stream,
                          uint64_t index_base, uint16_t* a16) {
  const Keep k = keep_rule(p);
  if (p == 0.f) {
    parallel_ranges(n, [&](int64_t i0, int64_t i1) {
      kernel_relu_forward(a + i0, h + i0, i1 - i0);
      write_bf16(a16, a, i0, i1 - i0);
    });
    return;
  }
  for_each_draws(n, seed, stream, index_base, [&](int64_t i0, int64_t m, const uint16_t* w) {
    kernel_dropout_relu(h + i0, a + i0, w, m, k.threshold, k.scale);
    write_bf16(a16, a, i0, m);
  });
}

void relu_dropout_backward_from_output(float* dh, const float* h, int64_t n, float p, uint16_t* dh16) {
  const Keep k = keep_rule(p);
  parallel_ranges(n, [&](int64_t i0, int64_t i1) {
    if (p == 0.f) {
      kernel_relu_backward(dh + i0, dh + i0, h + i0, i1 - i0);
    } else {
      kernel_relu_backward_scaled(dh + i0, h + i0, i1 - i0, k.scale);
    }
    write_bf16(dh16, dh, i0, i1 - i0);
  });
}

void dropout_add_and_backward(float* y, const float* x, float* dz, const float* dw, int64_t n, bool subtract,
                              float p, uint64_t seed, uint64_t stream, uint64_t index_base, uint16_t* dz16) {
  const Keep k = keep_rule(p);
  if (p == 0.f) {
    parallel_ranges(n, [&](int64_t i0, int64_t i1) {
      kernel_add(y + i0, x + i0, i1 - i0, subtract);
      if (dz != dw) std::copy(dw + i0, dw + i1, dz + i0);
      write_bf16(dz16, dz, i0, i1 - i0);
    });
    return;
  }
  for_each_draws(n, seed, stream, index_base, [&](int64_t i0, int64_t m, const uint16_t* w) {
    kernel_dropout_add(y + i0, y + i0, x + i0, w, m, k.threshold, k.scale, subtract);
    kernel_dropout_apply(dz + i0, dw + i0, w, m, k.threshold, k.scale);
    write_bf16(dz16, dz, i0, m);
  });
}

}  // namespace reformer
