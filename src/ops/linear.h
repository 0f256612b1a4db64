#pragma once
// Dense layer y = x W^T + b with W in torch layout (out, in).
// Gradients: dW, db ACCUMULATE (+=); dx is ASSIGNED.
#include <cstdint>

namespace reformer {

// y: (N, out); x: (N, in); w: (out, in); b: (out) or nullptr.
void linear_forward(float* y, const float* x, const float* w, const float* b, int64_t N, int64_t in, int64_t out);

// dx: (N, in) or nullptr (not needed); dw: (out, in); db: (out) or nullptr. dy: (N, out).
// dx must not alias dy or x.
void linear_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w, int64_t N,
                     int64_t in, int64_t out);

}  // namespace reformer
