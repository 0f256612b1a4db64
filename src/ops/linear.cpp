#include "ops/linear.h"

#include "kernels/cpu/gemm.h"
#include "ops/parallel.h"

namespace reformer {

void linear_forward(float* y, const float* x, const float* w, const float* b, int64_t N, int64_t in, int64_t out) {
  if (b) return gemm_bias(N, out, in, x, in, w, in, b, y, out);
  gemm(false, true, N, out, in, 1.f, x, in, w, in, 0.f, y, out);
}

void linear_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w, int64_t N,
                     int64_t in, int64_t out) {
  const GemmOperandReuse reuse;  // bf16: dy rounded once for dx and dW
  if (dx) gemm(false, false, N, in, out, 1.f, dy, out, w, in, 0.f, dx, in);
  gemm(true, false, out, in, N, 1.f, dy, out, x, in, 1.f, dw, in);
  if (db) add_column_sums(db, dy, N, out, out);
}

}  // namespace reformer
