// Core rung: allocator accounting, tensors, counter-based RNG, GEMM wrapper vs reference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/gemm.h"
#include "reformer/memory.h"
#include "reformer/precision.h"
#include "reformer/rng.h"
#include "reformer/tensor.h"
#include "support/gradcheck.h"
#include "support/tolerance.h"

using namespace reformer;

TEST(Memory, AccountsLiveAndPeakPerCategory) {
  mem_reset_peaks();
  const MemStats before = mem_stats();
  {
    Tensor a({1000, 10}, MemCategory::Activations);
    Tensor g({500}, MemCategory::Gradients);
    const MemStats s = mem_stats();
    EXPECT_EQ(s.live_of(MemCategory::Activations) - before.live_of(MemCategory::Activations), 40000);
    EXPECT_EQ(s.live_of(MemCategory::Gradients) - before.live_of(MemCategory::Gradients), 2000);
    EXPECT_EQ(s.allocations, 2);
  }
  const MemStats after = mem_stats();
  EXPECT_EQ(after.live_total, before.live_total);
  EXPECT_EQ(after.peak_of(MemCategory::Activations) - before.live_of(MemCategory::Activations), 40000);
  mem_reset_peaks();
  EXPECT_EQ(mem_stats().peak_total, before.live_total);
}

TEST(Tensor, ShapeStridesEnsureAndClone) {
  Tensor t({2, 3, 4}, MemCategory::Workspace);
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.strides(), (Shape{12, 4, 1}));
  t.fill(1.5f);
  Tensor c = t.clone();
  EXPECT_EQ(c[23], 1.5f);
  const int64_t allocs = mem_stats().allocations;
  t.ensure({2, 2}, MemCategory::Workspace);  // smaller: reuses the allocation
  EXPECT_EQ(mem_stats().allocations, allocs);
  EXPECT_EQ(t.numel(), 4);
  EXPECT_THROW(t.reshape({3, 3}), Error);
}

TEST(Rng, CounterBasedAndReproducible) {
  const uint64_t s1 = rng_stream(RngPurpose::Rotations, {0, 1, 2});
  const uint64_t s2 = rng_stream(RngPurpose::Rotations, {0, 2, 1});
  EXPECT_NE(s1, s2);
  EXPECT_EQ(rng_uniform(7, s1, 12345), rng_uniform(7, s1, 12345));
  EXPECT_NE(rng_uniform(7, s1, 12345), rng_uniform(8, s1, 12345));
  // Moments of the normal generator over 200k draws.
  std::vector<float> x(200000);
  rng_fill_normal(x.data(), static_cast<int64_t>(x.size()), 42, s1);
  double mean = 0, var = 0;
  for (float v : x) mean += v;
  mean /= x.size();
  for (float v : x) var += (v - mean) * (v - mean);
  var /= x.size();
  EXPECT_NEAR(mean, 0.0, 0.01);
  EXPECT_NEAR(var, 1.0, 0.02);
  // Uniform keep rate.
  int kept = 0;
  for (int i = 0; i < 100000; ++i) kept += rng_keep(3, s2, i, 0.3f);
  EXPECT_NEAR(kept / 100000.0, 0.7, 0.01);
}

TEST(Gemm, MatchesReferenceForAllTransposes) {
  const int64_t M = 37, N = 29, K = 53;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      std::vector<float> A(M * K), B(K * N), C(M * N), R(M * N);
      test::fill_uniform(A.data(), M * K, 1);
      test::fill_uniform(B.data(), K * N, 2);
      test::fill_uniform(C.data(), M * N, 3);
      R = C;
      const int64_t lda = ta ? M : K, ldb = tb ? K : N;
      gemm(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, 2.f, C.data(), N);
      gemm_reference(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, 2.f, R.data(), N);
      EXPECT_CLOSE(C.data(), R.data(), M * N, test::kKernelTol, "gemm");
    }
}

// Multiples of 1/64 in [-1, 1]: every product is exact in fp32, and so is every partial sum of up to
// 2^10 of them, in any order. A correct product then equals the reference bit for bit, whatever the
// kernel's blocking, so a wrong stride or transpose cannot hide inside a tolerance.
static std::vector<float> sixty_fourths(int64_t n, uint64_t seed) {
  std::vector<float> v(n);
  test::fill_uniform(v.data(), n, seed);
  for (float& x : v) x = std::round(x * 64.f) / 64.f;
  return v;
}

// The large products gemm_f32 hands to oneDNN's matmul primitive (gemm_f32_uses_matmul), with row
// strides wider than the matrices, alpha and beta; on the calling thread alone inside a parallel
// region too.
TEST(Gemm, MatmulPathMatchesReferenceExactly) {
  struct Case {
    bool ta, tb;
    int64_t M, N, K;
  };
  for (const Case c : {Case{true, false, 320, 128, 1024}, Case{false, true, 300, 128, 1000}, Case{false, true, 200, 160, 1100}}) {
    ASSERT_TRUE(gemm_f32_uses_matmul(c.ta, c.tb, c.M, c.N, c.K)) << c.M << "x" << c.N << "x" << c.K;
    const int64_t lda = (c.ta ? c.M : c.K) + 3, ldb = (c.tb ? c.K : c.N) + 5, ldc = c.N + 2;
    const auto A = sixty_fourths((c.ta ? c.K : c.M) * lda, 1), B = sixty_fourths((c.tb ? c.N : c.K) * ldb, 2);
    const auto C0 = sixty_fourths(c.M * ldc, 3);
    std::vector<float> want = C0;
    gemm_reference(c.ta, c.tb, c.M, c.N, c.K, 0.5f, A.data(), lda, B.data(), ldb, 2.f, want.data(), ldc);
    std::vector<std::vector<float>> got(3, C0);
    gemm_f32(c.ta, c.tb, c.M, c.N, c.K, 0.5f, A.data(), lda, B.data(), ldb, 2.f, got[0].data(), ldc);
#pragma omp parallel for num_threads(2)
    for (int t = 1; t < 3; ++t)
      gemm_f32(c.ta, c.tb, c.M, c.N, c.K, 0.5f, A.data(), lda, B.data(), ldb, 2.f, got[t].data(), ldc);
    for (int t = 0; t < 3; ++t)
      EXPECT_EQ(std::memcmp(got[t].data(), want.data(), want.size() * sizeof(float)), 0)
          << (c.ta ? "T" : "N") << (c.tb ? "T" : "N") << " " << c.M << "x" << c.N << "x" << c.K << " call " << t;
  }
  // Small products, decoding's single rows, dx (NN) and weight gradients with fewer rows than columns stay on sgemm.
  EXPECT_FALSE(gemm_f32_uses_matmul(false, true, 1, 512, 2048));
  EXPECT_FALSE(gemm_f32_uses_matmul(true, false, 64, 48, 4096));
  EXPECT_FALSE(gemm_f32_uses_matmul(false, false, 4096, 512, 2048));
  EXPECT_FALSE(gemm_f32_uses_matmul(true, false, 512, 2048, 4096));
  EXPECT_FALSE(gemm_f32_uses_matmul(false, true, 4096, 2048, 512));
  EXPECT_TRUE(gemm_f32_uses_matmul(true, false, 2048, 512, 4096));
}

// A dense layer's forward with its bias in the product (gemm_bias), on every path: small fp32 (bias
// rows + sgemm), large fp32 (the matmul primitive's epilogue) and bf16, which multiplies
// sixty-fourths exactly too (they have 7 significant bits, bf16 keeps 8).
TEST(Gemm, BiasInTheProductMatchesReferenceExactly) {
  struct Case {
    int64_t M, N, K;
  };
  std::vector<Precision> precisions{Precision::fp32};
  if (precision_supported(Precision::bf16)) precisions.push_back(Precision::bf16);
  for (const Precision precision : precisions) {
    const ScopedPrecision scoped(precision, "the bias test");
    for (const Case c : {Case{37, 29, 53}, Case{300, 200, 1000}}) {
      const int64_t ldx = c.K + 3, ldw = c.K + 1, ldy = c.N + 4;
      const auto x = sixty_fourths(c.M * ldx, 4), w = sixty_fourths(c.N * ldw, 5), bias = sixty_fourths(c.N, 6);
      std::vector<float> want(c.M * ldy, 0.f), got(c.M * ldy, -7.f);
      for (int64_t i = 0; i < c.M; ++i) std::copy(bias.begin(), bias.end(), want.begin() + i * ldy);
      gemm_reference(false, true, c.M, c.N, c.K, 1.f, x.data(), ldx, w.data(), ldw, 1.f, want.data(), ldy);
      gemm_bias(c.M, c.N, c.K, x.data(), ldx, w.data(), ldw, bias.data(), got.data(), ldy);
      int64_t bad = 0;
      for (int64_t i = 0; i < c.M; ++i)
        for (int64_t j = 0; j < c.N; ++j)
          if (got[i * ldy + j] != want[i * ldy + j] && bad++ < 3)
            ADD_FAILURE() << precision_name(precision) << " " << c.M << "x" << c.N << "x" << c.K << " at (" << i << ", "
                          << j << "): " << got[i * ldy + j] << " want " << want[i * ldy + j];
      EXPECT_EQ(bad, 0);
      EXPECT_EQ(got[ldy - 1], -7.f) << "wrote past the row";
    }
  }
}

// Dropout's keep rule (rng.h): element i draws half of Philox word i / 2, low half
// first, and p is rounded up to a multiple of 2^-16.
TEST(Rng, DropoutDrawIsHalfAPhiloxWordAndThresholdRoundsUp) {
  const uint64_t seed = 9, stream = rng_stream(RngPurpose::HiddenDropout, {1, 0, 0});
  for (uint64_t w = 0; w < 300; ++w) {
    const uint32_t word = rng_word(seed, stream, w);
    ASSERT_EQ(rng_draw16(seed, stream, 2 * w), word & 0xFFFFu) << w;
    ASSERT_EQ(rng_draw16(seed, stream, 2 * w + 1), word >> 16) << w;
  }
  EXPECT_EQ(rng_keep_threshold(0.f), 0);
  EXPECT_EQ(rng_keep_threshold(0.05f), 3277);  // 0.05 * 65536 = 3276.8
  EXPECT_EQ(rng_keep_threshold(0.5f), 32768);  // exact: not rounded up
  EXPECT_TRUE(rng_keep(seed, stream, 0, 0.f));  // p = 0 keeps every draw
}

TEST(Rng, Draws16MatchElementwiseAtAnyOffset) {
  const uint64_t stream = rng_stream(RngPurpose::AttentionDropout, {4, 5});
  const uint64_t seed = 0x123456789abcdefull;  // above 2^32
  for (uint64_t base : {0ull, 1ull, 63ull, 64ull, 1000001ull})
    for (int64_t n : {int64_t{0}, int64_t{5}, int64_t{64}, int64_t{700}}) {  // 700: head, 8-group batches, tail
      std::vector<uint16_t> block(static_cast<size_t>(n));
      rng_draws16(block.data(), n, seed, stream, base);
      for (int64_t i = 0; i < n; ++i)
        ASSERT_EQ(block[static_cast<size_t>(i)], rng_draw16(seed, stream, base + static_cast<uint64_t>(i)))
            << "base " << base << " n " << n << " i " << i;
    }
}

TEST(Rng, UniformBlockMatchesElementwiseAtAnyOffset) {
  const uint64_t stream = rng_stream(RngPurpose::HiddenDropout, {1, 2, 3});
  for (uint64_t base : {0ull, 1ull, 3ull, 4ull, 1000001ull}) {
    // 101: an unaligned head, several 32-element vector groups and a tail; a seed above 2^32.
    const uint64_t seed = 0x123456789abcdefull;
    std::vector<float> block(101);
    rng_uniform_block(block.data(), 101, seed, stream, base);
    for (int i = 0; i < 101; ++i)
      ASSERT_EQ(block[i], rng_uniform(seed, stream, base + i)) << "base " << base << " i " << i;
  }
}
