#pragma once
// The one GEMM interface of the engine (row-major, like dnnl_sgemm):
//   C[M x N] = alpha * op(A) op(B) + beta * C,  op(X) = X or X^T.
// lda/ldb/ldc are row strides in elements of the matrices as stored.
// Called inside an OpenMP parallel region it runs on the calling thread only.
//
// gemm() follows the active precision (include/reformer/precision.h): fp32 (gemm_f32), or bf16
// (gemm_bf16). Products that must stay fp32 whatever the precision (the chunk attention tiles, the
// LSH rotations, whose argmax picks the buckets) call gemm_f32. Both are deterministic: the same
// call (shapes, strides, alpha, beta, threads) on the same inputs gives the same bits, which the
// reversible backward's recomputation relies on.
#include <cstdint>

namespace reformer {

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// Always fp32: gemm_f32_sgemm, or gemm_f32_matmul where gemm_f32_uses_matmul says so.
void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
              int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// The shapes gemm_f32 gives to oneDNN's f32 matmul primitive (brgemm on AVX-512) instead of
// dnnl_sgemm: large products (every dimension >= 64, M N K >= 2^25) that are weight gradients
// (A^T B) with M > N, or x W^T with K >= N. Measured on an AVX-512 Xeon (docs/PERFORMANCE.md, fifth
// session; `micro_gemm` has both paths' rows for every shape): sgemm ran E8's FF1 weight gradient
// (2048 x 512 x 4096) at 0.6-0.7x the primitive's rate and the rule's other shapes at 0.8-1.0x;
// the shapes outside it were even or faster on sgemm (NN products: mixed, so they stay). A fixed
// rule of the shape, not a timing taken per process, so every process computes the same bits for
// the same call.
bool gemm_f32_uses_matmul(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K);

// The two fp32 paths, whatever the shape (for tests and micro_gemm): dnnl_sgemm, and oneDNN's f32
// matmul primitive, cached per thread and shape like gemm_bf16's.
void gemm_f32_sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                    int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void gemm_f32_matmul(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                     int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// A and B rounded to bf16 (round to nearest even, kernels/cpu/bf16.h) into per-thread scratch,
// products accumulated in fp32 by oneDNN's bf16 matmul (AMX or AVX512-BF16), alpha and beta
// applied in fp32; primitives are cached per thread and shape. Needs bf16_native() (core/cpu_isa.h).
void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
               int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// y[M x N] = x W^T + bias, W stored N x K, bias N floats (a dense layer's forward), in the active
// precision. Large fp32 products and every bf16 one run on oneDNN's matmul primitive, which adds the
// bias in its epilogue (one pass over y fewer than copying the bias in and accumulating onto it);
// small fp32 products do just that on sgemm.
void gemm_bias(int64_t M, int64_t N, int64_t K, const float* x, int64_t ldx, const float* w, int64_t ldw,
               const float* bias, float* y, int64_t ldy);

// While one of these lives, the calling thread's bf16 products round each distinct operand once
// (an operand is its address and stored layout: rows, columns, row stride), however many products
// read it: the projections of one input chunk, a weight gradient and dx from the same dy. The
// caller promises that no operand of its products changes during the scope (their outputs C may).
// Other threads, and fp32 products, are unaffected. Scopes nest; the copies are kept for reuse.
class GemmOperandReuse {
 public:
  GemmOperandReuse();
  ~GemmOperandReuse();
  GemmOperandReuse(const GemmOperandReuse&) = delete;
  GemmOperandReuse& operator=(const GemmOperandReuse&) = delete;
};

// Inside a GemmOperandReuse scope, with bf16 products active: the calling thread's bf16 copy of the
// dense operand src (rows x cols, row stride cols), for the caller to fill with f32_to_bf16 of every
// element (kernels/cpu/bf16.h) before the scope's first product that reads src. The scope's products
// then read it instead of rounding src in a pass of their own: the pass that writes src fills it
// while src's rows are still in cache (the ops with a `*16` output). The same bits either way.
// nullptr in fp32, outside a scope, or for an empty operand: the products round src as usual.
uint16_t* gemm_operand_bf16_slot(const float* src, int64_t rows, int64_t cols);
// For tests: while one lives, gemm_operand_bf16_slot returns nullptr on the calling thread, so that
// the products round every operand themselves (the bits must not change).
class GemmOperandSlotsOff {
 public:
  GemmOperandSlotsOff();
  ~GemmOperandSlotsOff();
  GemmOperandSlotsOff(const GemmOperandSlotsOff&) = delete;
  GemmOperandSlotsOff& operator=(const GemmOperandSlotsOff&) = delete;
};

// Plain triple loop with double accumulation: the reference the fast path is tested against.
void gemm_reference(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                    const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                    int64_t ldc);

}  // namespace reformer
