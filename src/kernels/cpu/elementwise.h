#pragma once
// Memory-bound elementwise passes with per-ISA variants (core/cpu_isa.h, docs/DESIGN.md
// "Instruction sets"): one source (elementwise_body.inc) compiled for baseline, AVX2 and AVX-512,
// picked by isa_active() on every call. Every variant gives the same bits (tests/test_cpu_isa.cpp):
// each output element is a fixed expression of its inputs (no reductions, no FMA contraction).
//
// The dropout kernels take the 16-bit draws of their elements (rng.h: draws[i] = rng_draw16(seed,
// stream, index of element i)) and keep an element iff draws[i] >= threshold, threshold =
// rng_keep_threshold(p) <= 2^16, i.e. exactly rng_keep(); the compare is done on int32 because SSE2
// has no unsigned compare and would leave the loop scalar. `scale` is 1 / (1 - p). The fused ones
// are what ops/dropout.h composes from the unfused ops, in the same order of float operations,
// hence bit-identical to it.
#include <cstdint>

namespace reformer {

// y[i] = keep ? x[i] * scale : 0. y may be x.
void kernel_dropout_apply(float* y, const float* x, const uint16_t* draws, int64_t n, int32_t threshold, float scale);
// y[i] = y_in[i] + (keep ? x[i] * scale : 0) (y_in[i] - ... if subtract); y may be y_in (y += ...).
void kernel_dropout_add(float* y, const float* y_in, const float* x, const uint16_t* draws, int64_t n,
                        int32_t threshold, float scale, bool subtract);
// h[i] = keep ? h[i] * scale : 0, then a[i] = relu(h[i]) = h[i] > 0 ? h[i] : 0 (a may be h).
void kernel_dropout_relu(float* h, float* a, const uint16_t* draws, int64_t n, int32_t threshold, float scale);
// dh[i] = h[i] > 0 ? dh[i] * scale : 0 (relu's and dropout's backward read off dropout's output h).
void kernel_relu_backward_scaled(float* dh, const float* h, int64_t n, float scale);
// y[i] = x[i] > 0 ? x[i] : 0 (y may be x); dx[i] = (x[i] > 0 ? 1 : 0) * dy[i] (dx may be dy).
void kernel_relu_forward(float* y, const float* x, int64_t n);
void kernel_relu_backward(float* dx, const float* dy, const float* x, int64_t n);
// y[i] += x[i] (y[i] -= x[i] if subtract).
void kernel_add(float* y, const float* x, int64_t n, bool subtract);

// LayerNorm of `rows` rows of C (row stride C; ops/layernorm.h): each row's mean and variance in
// double, each summed in 8 fixed partial sums (lane j % 8) combined in a fixed order, then the
// tail; mean[i], rstd[i] as floats (either may be null). y may be x. Rows are handled 4 at a time
// for independent add chains; a row's bits do not depend on how many rows a call has.
void kernel_layernorm_rows(float* y, float* mean, float* rstd, const float* x, const float* w, const float* b,
                           int64_t rows, int64_t C, float eps);
// dx = r * (g - mean(g) - xhat * mean(g * xhat)), g = dy * w, for each row (dx may be dy); the two
// sums as in kernel_layernorm_rows. With accumulate, dx += that value instead (dx must not be dy):
// the same bits as writing it and adding it to dx in a second pass. With aw and ab (C each), the
// rows' parameter-gradient terms are added into them too, with the bits of
// kernel_accumulate_layernorm_param_grads over the same rows (read before dx is written).
void kernel_layernorm_backward_rows(float* dx, const float* dy, const float* x, const float* mean, const float* rstd,
                                    const float* w, int64_t rows, int64_t C, bool accumulate = false,
                                    double* aw = nullptr, double* ab = nullptr);
// For j < n, row after row (stride ld) in order: acc[j] += x[j]; and aw[j] += dy[j] * ((x[j] -
// mean[i]) * rstd[i]), ab[j] += dy[j] (LayerNorm's parameter gradients). Columns are independent
// and each adds its rows in row order: nothing is reordered.
void kernel_accumulate_columns(double* acc, const float* x, int64_t ld, int64_t rows, int64_t n);
// (The model's LayerNorm backward adds these terms in kernel_layernorm_backward_rows; this separate
// pass is the reference its ISA test checks it against, and micro_ops' param_grads rows time.)
void kernel_accumulate_layernorm_param_grads(double* aw, double* ab, const float* dy, const float* x, int64_t ld,
                                             const float* mean, const float* rstd, int64_t rows, int64_t n);

// e[j] = exp(x[j] - shift) in double (the difference taken in float), for x[j] <= shift (a row
// minus its maximum: the cross-entropy's softmax); returns the sum of the e[j], in the 8 fixed
// partial sums of kernel_layernorm_rows. Within 2 ulp of std::exp, and 0 where x[j] - shift < -708.
double kernel_exp_shifted_sum(double* e, const float* x, int64_t n, float shift);

}  // namespace reformer
