#include "kernels/cpu/elementwise.h"

#include "core/cpu_isa.h"

#if REFORMER_ISA_VARIANTS
// GCC 12's avx512fintrin.h trips -Wmaybe-uninitialized on its own undefined-vector temporaries.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>  // the AVX-512 body's float -> double conversion (to_lanes)
#endif

// One source, compiled per instruction set (core/cpu_isa.h); isa_active() picks one per call.
namespace reformer {
#define REFORMER_ISA_BODY "kernels/cpu/elementwise_body.inc"
#include "core/isa_variants.inc"

void kernel_dropout_apply(float* y, const float* x, const uint16_t* draws, int64_t n, int32_t threshold, float scale) {
  REFORMER_DISPATCH(dropout_apply, y, x, draws, n, threshold, scale);
}

void kernel_dropout_add(float* y, const float* y_in, const float* x, const uint16_t* draws, int64_t n,
                        int32_t threshold, float scale, bool subtract) {
  REFORMER_DISPATCH(dropout_add, y, y_in, x, draws, n, threshold, scale, subtract);
}

void kernel_dropout_relu(float* h, float* a, const uint16_t* draws, int64_t n, int32_t threshold, float scale) {
  REFORMER_DISPATCH(dropout_relu, h, a, draws, n, threshold, scale);
}

void kernel_relu_backward_scaled(float* dh, const float* h, int64_t n, float scale) {
  REFORMER_DISPATCH(relu_backward_scaled, dh, h, n, scale);
}

void kernel_relu_forward(float* y, const float* x, int64_t n) { REFORMER_DISPATCH(relu_forward, y, x, n); }

void kernel_relu_backward(float* dx, const float* dy, const float* x, int64_t n) {
  REFORMER_DISPATCH(relu_backward, dx, dy, x, n);
}

void kernel_add(float* y, const float* x, int64_t n, bool subtract) { REFORMER_DISPATCH(add, y, x, n, subtract); }

void kernel_layernorm_rows(float* y, float* mean, float* rstd, const float* x, const float* w, const float* b,
                           int64_t rows, int64_t C, float eps) {
  REFORMER_DISPATCH(layernorm_rows, y, mean, rstd, x, w, b, rows, C, eps);
}

void kernel_layernorm_backward_rows(float* dx, const float* dy, const float* x, const float* mean, const float* rstd,
                                    const float* w, int64_t rows, int64_t C, bool accumulate, double* aw, double* ab) {
  REFORMER_DISPATCH(layernorm_backward_rows, dx, dy, x, mean, rstd, w, rows, C, accumulate, aw, ab);
}

void kernel_accumulate_columns(double* acc, const float* x, int64_t ld, int64_t rows, int64_t n) {
  REFORMER_DISPATCH(accumulate_columns, acc, x, ld, rows, n);
}

void kernel_accumulate_layernorm_param_grads(double* aw, double* ab, const float* dy, const float* x, int64_t ld,
                                             const float* mean, const float* rstd, int64_t rows, int64_t n) {
  REFORMER_DISPATCH(accumulate_layernorm_param_grads, aw, ab, dy, x, ld, mean, rstd, rows, n);
}

double kernel_exp_shifted_sum(double* e, const float* x, int64_t n, float shift) {
  REFORMER_DISPATCH(exp_shifted_sum, e, x, n, shift);
}

}  // namespace reformer
