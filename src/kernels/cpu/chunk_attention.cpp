#include "kernels/cpu/chunk_attention.h"

#include <bit>
#include <algorithm>
#include <cmath>

#include "core/cpu_isa.h"
#include "kernels/cpu/gemm.h"
#include "reformer/rng.h"

// One source, compiled per instruction set (core/cpu_isa.h): the softmax, mask and dropout loops
// are `omp simd` loops, which vectorise to the variant's width; isa_active() picks one per call.
namespace reformer {
#define REFORMER_ISA_BODY "kernels/cpu/chunk_attention_body.inc"
#include "core/isa_variants.inc"

void chunk_attention_forward(float* o, int64_t ldo, float* lse, const float* q, int64_t ldq,
                             const float* k, int64_t ldk, const float* v, int64_t ldv,
                             const int32_t* qpos, const int32_t* kpos, const uint8_t* key_valid,
                             int64_t nq, int64_t nk, int64_t d, const ChunkAttentionOptions& opt,
                             float* scratch) {
  REFORMER_DISPATCH(forward, o, ldo, lse, q, ldq, k, ldk, v, ldv, qpos, kpos, key_valid, nq, nk, d, opt, scratch);
}

void chunk_attention_backward(float* dq, int64_t lddq, float* dk, int64_t lddk, float* dv, int64_t lddv,
                              const float* do_, int64_t ldgo, const float* dlse, const float* o,
                              int64_t ldo, const float* lse, const float* q, int64_t ldq, const float* k,
                              int64_t ldk, const float* v, int64_t ldv, const int32_t* qpos,
                              const int32_t* kpos, const uint8_t* key_valid, int64_t nq, int64_t nk,
                              int64_t d, const ChunkAttentionOptions& opt, float* scratch) {
  REFORMER_DISPATCH(backward, dq, lddq, dk, lddk, dv, lddv, do_, ldgo, dlse, o, ldo, lse, q, ldq, k, ldk, v, ldv, qpos, kpos,
                    key_valid, nq, nk, d, opt, scratch);
}

}  // namespace reformer
