#pragma once
// LayerNorm over the last axis: y = (x - mean) * rstd * w + b, rstd = 1 / sqrt(var + eps), with the
// biased variance (torch). Gradients: dw, db ACCUMULATE (+=); dx is ASSIGNED, or accumulated into
// with `accumulate` (a residual stream's gradient: no separate add pass over dx).
#include <cstdint>

namespace reformer {

// y, x: (N, C); w, b: (C). mean, rstd: (N) saved for the backward, or nullptr when none follows.
// y may alias x. y16 (N, C), when given, receives f32_to_bf16(y) in the same pass (a GEMM operand
// slot, gemm_operand_bf16_slot in kernels/cpu/gemm.h).
void layernorm_forward(float* y, float* mean, float* rstd, const float* x, const float* w, const float* b,
                       int64_t N, int64_t C, float eps, uint16_t* y16 = nullptr);

// dx: (N, C) (may alias dy, unless accumulate); dw, db: (C); mean, rstd: as saved by
// layernorm_forward for this x.
void layernorm_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* mean,
                        const float* rstd, const float* w, int64_t N, int64_t C, bool accumulate = false);

}  // namespace reformer
