#include "kernels/cpu/elementwise.h"

#include "core/cpu_isa.h"

// One source, compiled per instruction set (core/cpu_isa.h); isa_active() picks one per call.
namespace reformer {
namespace isa_baseline {
#include "kernels/cpu/elementwise_body.inc"
}  // namespace isa_baseline
#if REFORMER_ISA_VARIANTS
#pragma GCC push_options
#pragma GCC target("avx2,fma")  // = REFORMER_TARGET_AVX2 (a pragma takes no macro)
namespace isa_avx2 {
#include "kernels/cpu/elementwise_body.inc"
}  // namespace isa_avx2
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512bw,avx512dq,avx512vl,prefer-vector-width=512")  // = REFORMER_TARGET_AVX512
namespace isa_avx512 {
#include "kernels/cpu/elementwise_body.inc"
}  // namespace isa_avx512
#pragma GCC pop_options
#define REFORMER_DISPATCH(fn, ...)                        \
  switch (isa_active()) {                                 \
    case Isa::Avx512: return isa_avx512::fn(__VA_ARGS__); \
    case Isa::Avx2: return isa_avx2::fn(__VA_ARGS__);     \
    case Isa::Baseline: break;                            \
  }                                                       \
  return isa_baseline::fn(__VA_ARGS__)
#else
#define REFORMER_DISPATCH(fn, ...) return isa_baseline::fn(__VA_ARGS__)
#endif

void kernel_dropout_apply(float* y, const float* x, const uint32_t* words, int64_t n, int32_t threshold, float scale) {
  REFORMER_DISPATCH(dropout_apply, y, x, words, n, threshold, scale);
}

void kernel_dropout_add(float* y, const float* x, const uint32_t* words, int64_t n, int32_t threshold, float scale,
                        bool subtract) {
  REFORMER_DISPATCH(dropout_add, y, x, words, n, threshold, scale, subtract);
}

void kernel_dropout_relu(float* h, float* a, const uint32_t* words, int64_t n, int32_t threshold, float scale) {
  REFORMER_DISPATCH(dropout_relu, h, a, words, n, threshold, scale);
}

void kernel_relu_backward_dropout(float* dh, const float* h, const uint32_t* words, int64_t n, int32_t threshold,
                                  float scale) {
  REFORMER_DISPATCH(relu_backward_dropout, dh, h, words, n, threshold, scale);
}

void kernel_relu_forward(float* y, const float* x, int64_t n) { REFORMER_DISPATCH(relu_forward, y, x, n); }

void kernel_relu_backward(float* dx, const float* dy, const float* x, int64_t n) {
  REFORMER_DISPATCH(relu_backward, dx, dy, x, n);
}

void kernel_add(float* y, const float* x, int64_t n, bool subtract) { REFORMER_DISPATCH(add, y, x, n, subtract); }

void kernel_layernorm_row(float* y, float* mean, float* rstd, const float* x, const float* w, const float* b,
                          int64_t C, float eps) {
  REFORMER_DISPATCH(layernorm_row, y, mean, rstd, x, w, b, C, eps);
}

void kernel_layernorm_backward_row(float* dx, const float* dy, const float* x, float mean, float rstd, const float* w,
                                   int64_t C) {
  REFORMER_DISPATCH(layernorm_backward_row, dx, dy, x, mean, rstd, w, C);
}

void kernel_accumulate_columns(double* acc, const float* x, int64_t n) {
  REFORMER_DISPATCH(accumulate_columns, acc, x, n);
}

void kernel_accumulate_layernorm_param_grads(double* aw, double* ab, const float* dy, const float* x, float mean,
                                             float rstd, int64_t n) {
  REFORMER_DISPATCH(accumulate_layernorm_param_grads, aw, ab, dy, x, mean, rstd, n);
}

}  // namespace reformer
