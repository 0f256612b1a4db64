#pragma once
// fp32 -> bfloat16 conversion for the bf16 matrix products (include/reformer/precision.h).
// Round to nearest, ties to even, on the bit pattern: bf16 = (u + 0x7FFF + ((u >> 16) & 1)) >> 16,
// which also rounds the largest finite values up to infinity and keeps infinities; a NaN keeps its
// sign and upper payload bits and is made quiet (| 0x0040), so it never becomes an infinity.
// Subnormals are rounded like any other value (no flush to zero). The AVX-512 variant (integer lanes,
// or AVX512-BF16's conversion instruction where the CPU has it, with subnormal blocks done in integer
// lanes) gives the same bits as the scalar definition (tests/test_bf16.cpp).
#include <cstdint>
#include <cstring>

namespace reformer {

inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

inline float bf16_to_f32(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// dst[i] = f32_to_bf16(src[i]) for i < n, through the active instruction-set variant.
void f32_to_bf16(uint16_t* dst, const float* src, int64_t n);
// The same for a rows x cols matrix with row strides lds (source) and ldd (destination), rows in
// parallel when called outside an OpenMP region and the matrix is large.
void f32_to_bf16_rows(uint16_t* dst, int64_t ldd, const float* src, int64_t lds, int64_t rows, int64_t cols);
// Two such conversions (a GEMM's A and B) in one parallel region: one fork/join instead of two.
struct Bf16Rows {
  uint16_t* dst;
  int64_t ldd;
  const float* src;
  int64_t lds, rows, cols;
};
void f32_to_bf16_rows(const Bf16Rows& a, const Bf16Rows& b);

}  // namespace reformer
