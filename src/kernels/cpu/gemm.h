#pragma once
// The one GEMM interface of the engine (row-major, like dnnl_sgemm):
//   C[M x N] = alpha * op(A) op(B) + beta * C,  op(X) = X or X^T.
// lda/ldb/ldc are row strides in elements of the matrices as stored.
// Called inside an OpenMP parallel region it runs on the calling thread only.
#include <cstdint>

namespace reformer {

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// Plain triple loop with double accumulation: the reference the fast path is tested against.
void gemm_reference(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                    const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                    int64_t ldc);

}  // namespace reformer
