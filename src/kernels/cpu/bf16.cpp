#include "kernels/cpu/bf16.h"

#include <omp.h>

#include "core/cpu_isa.h"

#if REFORMER_ISA_VARIANTS
// GCC 12's avx512fintrin.h trips -Wmaybe-uninitialized on its own undefined-vector temporaries.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#endif

namespace reformer {
namespace {

void convert_baseline(uint16_t* dst, const float* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_bf16(src[i]);
}

#if REFORMER_ISA_VARIANTS
// 16 at a time, the scalar definition in integer lanes; the tail through masks.
__attribute__((target(REFORMER_TARGET_AVX512))) void convert_avx512(uint16_t* dst, const float* src, int64_t n) {
  const __m512i one = _mm512_set1_epi32(1), bias = _mm512_set1_epi32(0x7FFF), abs_mask = _mm512_set1_epi32(0x7FFFFFFF),
                inf = _mm512_set1_epi32(0x7F800000), quiet = _mm512_set1_epi32(0x0040);
  auto round16 = [&](__m512i u) __attribute__((target(REFORMER_TARGET_AVX512))) {
    const __m512i hi = _mm512_srli_epi32(u, 16);
    const __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(bias, _mm512_and_si512(hi, one))), 16);
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, abs_mask), inf);
    return _mm512_mask_mov_epi32(rounded, nan, _mm512_or_si512(hi, quiet));
  };
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i u = _mm512_loadu_si512(reinterpret_cast<const void*>(src + i));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), _mm512_cvtepi32_epi16(round16(u)));
  }
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1u);
    const __m512i u = _mm512_maskz_loadu_epi32(m, src + i);
    _mm512_mask_cvtepi32_storeu_epi16(dst + i, m, round16(u));
  }
}

// AVX512-BF16's conversion instruction, 32 at a time: it rounds to nearest even and quiets NaNs as
// the definition does, but flushes subnormal inputs to zero, so a block holding a nonzero
// subnormal goes the integer way (as does the tail). Several times the integer lanes' rate on data
// in cache, which is where the ops that write their GEMM operand copies call it.
__attribute__((target(REFORMER_TARGET_AVX512 ",avx512bf16"))) void convert_bf16_avx512(uint16_t* dst, const float* src,
                                                                                     int64_t n) {
  const __m512i abs_mask = _mm512_set1_epi32(0x7FFFFFFF), one = _mm512_set1_epi32(1),
                largest_subnormal = _mm512_set1_epi32(0x007FFFFF);
  // Lanes with 0 < |u| <= the largest subnormal: (|u| - 1) < 0x7FFFFF unsigned.
  auto subnormals = [&](__m512i u) __attribute__((target(REFORMER_TARGET_AVX512))) {
    return _mm512_cmplt_epu32_mask(_mm512_sub_epi32(_mm512_and_si512(u, abs_mask), one), largest_subnormal);
  };
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 lo = _mm512_loadu_ps(src + i), hi = _mm512_loadu_ps(src + i + 16);
    if (subnormals(_mm512_castps_si512(lo)) | subnormals(_mm512_castps_si512(hi))) {
      convert_avx512(dst + i, src + i, 32);
      continue;
    }
    _mm512_storeu_si512(reinterpret_cast<void*>(dst + i), reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo)));
  }
  if (i < n) convert_avx512(dst + i, src + i, n - i);
}
#endif

}  // namespace

void f32_to_bf16(uint16_t* dst, const float* src, int64_t n) {
#if REFORMER_ISA_VARIANTS
  if (isa_active() == Isa::Avx512)
    return cpu_has_avx512_bf16() ? convert_bf16_avx512(dst, src, n) : convert_avx512(dst, src, n);
#endif
  convert_baseline(dst, src, n);
}

void f32_to_bf16_rows(uint16_t* dst, int64_t ldd, const float* src, int64_t lds, int64_t rows, int64_t cols) {
  f32_to_bf16_rows({dst, ldd, src, lds, rows, cols}, {nullptr, 0, nullptr, 0, 0, 0});
}

void f32_to_bf16_rows(const Bf16Rows& a, const Bf16Rows& b) {
  const bool parallel = a.rows * a.cols + b.rows * b.cols >= (int64_t{1} << 16) && !omp_in_parallel();
  if (!parallel) {
    for (const Bf16Rows* m : {&a, &b}) {
      if (m->ldd == m->cols && m->lds == m->cols) {
        f32_to_bf16(m->dst, m->src, m->rows * m->cols);
      } else {
        for (int64_t r = 0; r < m->rows; ++r) f32_to_bf16(m->dst + r * m->ldd, m->src + r * m->lds, m->cols);
      }
    }
    return;
  }
#pragma omp parallel
  {
    for (const Bf16Rows* m : {&a, &b}) {
#pragma omp for schedule(static) nowait
      for (int64_t r = 0; r < m->rows; ++r) f32_to_bf16(m->dst + r * m->ldd, m->src + r * m->lds, m->cols);
    }
  }
}

}  // namespace reformer
