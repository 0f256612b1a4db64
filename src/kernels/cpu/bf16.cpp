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
#endif

}  // namespace

void f32_to_bf16(uint16_t* dst, const float* src, int64_t n) {
#if REFORMER_ISA_VARIANTS
  if (isa_active() == Isa::Avx512) return convert_avx512(dst, src, n);
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
