// Core rung: allocator accounting, tensors, counter-based RNG, GEMM wrapper vs reference.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/cpu/gemm.h"
#include "reformer/memory.h"
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
