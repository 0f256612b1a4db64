// bf16 matrix products (include/reformer/precision.h, kernels/cpu/gemm.h): the fp32 -> bf16
// rounding against an independent definition, bit for bit; the bf16 GEMM against the fp32
// reference for every transposition, odd shapes, strides and beta; the reversible backward vs
// stored activations in bf16; training steps in bf16 vs fp32. Everything that runs a bf16 product
// is skipped on a CPU without AVX512-BF16 / AMX-BF16 (or with REFORMER_ISA below avx512).
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/cpu_isa.h"
#include "kernels/cpu/bf16.h"
#include "kernels/cpu/gemm.h"
#include "layers/feed_forward.h"
#include "ops/dropout.h"
#include "ops/layernorm.h"
#include "reformer/config.h"
#include "reformer/error.h"
#include "reformer/model.h"
#include "reformer/precision.h"
#include "reformer/rng.h"
#include "support/tiny_model.h"
#include "support/tolerance.h"
#include "train/adam.h"

using namespace reformer;
using reformer::test::dropout_config;
using reformer::test::grads_of;
using reformer::test::random_ids;

namespace {

#define SKIP_WITHOUT_BF16()                                                                                  \
  do {                                                                                                       \
    if (!precision_supported(Precision::bf16))                                                               \
      GTEST_SKIP() << "this CPU has no AVX512-BF16 or AMX-BF16 (or REFORMER_ISA is below avx512): bf16 off"; \
  } while (0)

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// Round to nearest even by comparing distances: the two bf16 neighbours of |x| are its truncation
// `lo` and lo + one bf16 ulp (valued exactly in double, so above the largest finite bf16 it is
// 2^128, i.e. infinity); the nearer wins, a tie goes to the even significand.
uint16_t bf16_by_distance(float x) {
  const uint32_t u = bits_of(x);
  const uint32_t sign = u & 0x80000000u, mag = u & 0x7FFFFFFFu;
  if (mag > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);  // NaN: quiet, sign and payload kept
  if (mag == 0x7F800000u) return static_cast<uint16_t>(u >> 16);             // infinity
  const uint32_t lo = mag & 0xFFFF0000u;
  const int exp = static_cast<int>(lo >> 23);
  const double ulp = std::ldexp(1.0, (exp == 0 ? 1 : exp) - 127 - 7);
  const double v = std::fabs(static_cast<double>(x)), vlo = std::fabs(static_cast<double>(float_of(lo)));
  const double below = v - vlo, above = vlo + ulp - v;
  const bool up = above < below || (above == below && ((lo >> 16) & 1u));
  return static_cast<uint16_t>((sign | (up ? lo + 0x10000u : lo)) >> 16);
}

// Restores the active instruction-set variant when a test ends.
struct ActiveIsa {
  Isa saved = isa_active();
  ~ActiveIsa() { isa_set_active(saved); }
};

std::vector<float> uniform(int64_t n, uint64_t seed, float lo = -1.f, float hi = 1.f) {
  std::vector<float> v(static_cast<size_t>(n));
  rng_fill_uniform(v.data(), n, seed, 77, lo, hi);
  return v;
}

// Per element of C: S = |alpha| sum_k |a_ik b_kj| + |beta c_ij| (the scale of kBf16GemmTol).
std::vector<double> magnitudes(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                               const float* B, int64_t ldb, float beta, const float* C, int64_t ldc) {
  std::vector<double> s(static_cast<size_t>(M * N));
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double acc = 0;
      for (int64_t k = 0; k < K; ++k)
        acc += std::fabs(static_cast<double>(ta ? A[k * lda + i] : A[i * lda + k]) * (tb ? B[j * ldb + k] : B[k * ldb + j]));
      s[i * N + j] = std::fabs(alpha) * acc + std::fabs(beta * C[i * ldc + j]);
    }
  return s;
}

std::vector<float> rounded(const std::vector<float>& v) {
  std::vector<float> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = bf16_to_f32(f32_to_bf16(v[i]));
  return r;
}

struct GemmCase {
  bool ta, tb;
  int64_t M, N, K, pad;  // pad: extra elements per row of A, B and C (lda = cols + pad)
  float alpha, beta;
};

std::string name_of(const GemmCase& g) {
  return std::string(g.ta ? "T" : "N") + (g.tb ? "T" : "N") + " M=" + std::to_string(g.M) + " N=" + std::to_string(g.N) +
         " K=" + std::to_string(g.K) + " pad=" + std::to_string(g.pad) + " alpha=" + std::to_string(g.alpha) +
         " beta=" + std::to_string(g.beta);
}

// Runs one case through gemm_bf16 and checks it against both references; returns C.
std::vector<float> check_case(const GemmCase& g, uint64_t seed) {
  SCOPED_TRACE(name_of(g));
  const int64_t a_rows = g.ta ? g.K : g.M, a_cols = g.ta ? g.M : g.K, b_rows = g.tb ? g.N : g.K, b_cols = g.tb ? g.K : g.N;
  const int64_t lda = a_cols + g.pad, ldb = b_cols + g.pad, ldc = g.N + g.pad;
  const auto A = uniform(a_rows * lda, seed), B = uniform(b_rows * ldb, seed + 1), C0 = uniform(g.M * ldc, seed + 2);
  std::vector<float> got = C0, want = C0, want_rounded = C0;
  gemm_bf16(g.ta, g.tb, g.M, g.N, g.K, g.alpha, A.data(), lda, B.data(), ldb, g.beta, got.data(), ldc);
  gemm_reference(g.ta, g.tb, g.M, g.N, g.K, g.alpha, A.data(), lda, B.data(), ldb, g.beta, want.data(), ldc);
  const auto Ar = rounded(A), Br = rounded(B);
  gemm_reference(g.ta, g.tb, g.M, g.N, g.K, g.alpha, Ar.data(), lda, Br.data(), ldb, g.beta, want_rounded.data(), ldc);
  const auto S = magnitudes(g.ta, g.tb, g.M, g.N, g.K, g.alpha, A.data(), lda, B.data(), ldb, g.beta, C0.data(), ldc);
  int bad = 0;
  double worst = 0;  // the largest error as a share of the kBf16GemmTol bound
  for (int64_t i = 0; i < g.M; ++i) {
    for (int64_t j = 0; j < g.N; ++j) {
      const double s = S[i * g.N + j], x = got[i * ldc + j];
      const double err = std::fabs(x - want[i * ldc + j]), err_r = std::fabs(x - want_rounded[i * ldc + j]);
      const double bound = test::kBf16GemmTol.atol + test::kBf16GemmTol.rtol * s;
      worst = std::max(worst, err / bound);
      if ((err > bound || err_r > test::kBf16RoundedGemmTol.atol + test::kBf16RoundedGemmTol.rtol * s) && bad++ < 5)
        ADD_FAILURE() << "C[" << i << "][" << j << "] = " << x << ", fp32 reference " << want[i * ldc + j]
                      << ", reference on bf16-rounded inputs " << want_rounded[i * ldc + j] << ", scale " << s;
    }
    for (int64_t j = g.N; j < ldc; ++j)  // the padding of C is not written
      if (bits_of(got[i * ldc + j]) != bits_of(C0[i * ldc + j]) && bad++ < 5) ADD_FAILURE() << "padding C[" << i << "][" << j << "] written";
  }
  EXPECT_EQ(bad, 0);
  // The inputs really were rounded: with K >= 16 random terms the bf16 result is not the fp32 one.
  if (g.K >= 16) EXPECT_GT(worst, 1e-3) << "no bf16 rounding visible";
  return got;
}

}  // namespace

TEST(Bf16, RoundingMatchesTheDistanceDefinitionBitForBit) {
  // Every sign/exponent/top-mantissa pattern with low halves around the rounding boundary, plus
  // random patterns; then the dispatched array conversion under every variant this CPU runs.
  std::vector<float> in;
  for (uint32_t hi = 0; hi < 0x10000u; ++hi)
    for (uint32_t low : {0x0000u, 0x0001u, 0x7FFFu, 0x8000u, 0x8001u, 0xFFFFu})
      in.push_back(float_of(hi << 16 | low));
  std::vector<float> random_bits(1 << 18);
  rng_fill_uniform(random_bits.data(), static_cast<int64_t>(random_bits.size()), 3, 4, 0.f, 1.f);
  for (float r : random_bits) in.push_back(float_of(static_cast<uint32_t>(r * 4294967296.0)));
  for (uint32_t u : {0x00000000u, 0x80000000u, 0x7F800000u, 0xFF800000u, 0x7F800001u, 0xFFC00000u, 0x7FFFFFFFu,
                     0x7F7FFFFFu, 0x7F7F7FFFu, 0x7F7F8000u, 0x7F7E8000u, 0x3F808000u, 0x3F818000u, 0x00008000u,
                     0x00018000u, 0x00000001u, 0x807FFFFFu})
    in.push_back(float_of(u));
  in.push_back(1.f);  // an odd length, so the vector loop has a tail
  const int64_t n = static_cast<int64_t>(in.size());
  int bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t want = bf16_by_distance(in[i]), got = f32_to_bf16(in[i]);
    if (got != want && bad++ < 5) ADD_FAILURE() << std::hex << "0x" << bits_of(in[i]) << ": 0x" << got << " != 0x" << want;
  }
  // Spot checks of the definition itself.
  EXPECT_EQ(f32_to_bf16(float_of(0x3F808000u)), 0x3F80);  // tie, even below
  EXPECT_EQ(f32_to_bf16(float_of(0x3F818000u)), 0x3F82);  // tie, odd below: up
  EXPECT_EQ(f32_to_bf16(float_of(0x7F7FFFFFu)), 0x7F80);  // largest float rounds to infinity
  EXPECT_EQ(f32_to_bf16(float_of(0x7F800001u)), 0x7FC0);  // signalling NaN becomes quiet, not infinity
  EXPECT_EQ(f32_to_bf16(float_of(0xFF800000u)), 0xFF80);
  EXPECT_EQ(f32_to_bf16(float_of(0x00018000u)), 0x0002);  // subnormal, no flush to zero
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  ActiveIsa restore;
  for (Isa isa : isa_supported_list()) {
    SCOPED_TRACE(isa_name(isa));
    isa_set_active(isa);
    for (int64_t offset : {0, 1, 5}) {  // unaligned starts and lengths
      std::vector<uint16_t> out(static_cast<size_t>(n - offset), 0xABCD);
      f32_to_bf16(out.data(), in.data() + offset, n - offset);
      for (int64_t i = 0; i < n - offset; ++i)
        if (out[i] != bf16_by_distance(in[i + offset]) && bad++ < 5) ADD_FAILURE() << "element " << i + offset;
    }
    // Strided rows into a strided destination: the gaps stay untouched.
    const int64_t rows = 300, cols = 259, lds = 263, ldd = 261;
    const auto src = uniform(rows * lds, 9, -1e3f, 1e3f);
    std::vector<uint16_t> dst(rows * ldd, 0xABCD);
    f32_to_bf16_rows(dst.data(), ldd, src.data(), lds, rows, cols);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < ldd; ++c) {
        const uint16_t want = c < cols ? bf16_by_distance(src[r * lds + c]) : 0xABCD;
        if (dst[r * ldd + c] != want && bad++ < 5) ADD_FAILURE() << "row " << r << " col " << c;
      }
  }
  EXPECT_EQ(bad, 0);
}

TEST(Bf16, GemmMatchesTheReferenceWithinTheBf16Bound) {
  SKIP_WITHOUT_BF16();
  uint64_t seed = 10;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      check_case({ta, tb, 37, 29, 53, 0, 1.f, 0.f}, seed++);     // odd shapes
      check_case({ta, tb, 37, 29, 53, 3, 1.f, 0.5f}, seed++);    // strides (ld > cols) and beta
      check_case({ta, tb, 1, 1, 1, 0, 1.f, 0.f}, seed++);        // 1 x 1 x 1
      check_case({ta, tb, 5, 7, 3, 2, 0.7f, 1.f}, seed++);       // alpha, beta = 1 (accumulate)
      check_case({ta, tb, 130, 65, 300, 1, 0.125f, -2.f}, seed++);
      check_case({ta, tb, 64, 48, 4096, 0, 1.f, 1.f}, seed++);   // long K (weight gradients)
    }
}

TEST(Bf16, GemmIsDeterministicAndRunsInsideParallelRegions) {
  SKIP_WITHOUT_BF16();
  const GemmCase g{false, true, 200, 96, 128, 0, 1.f, 0.f};
  const auto first = check_case(g, 42), second = check_case(g, 42);
  ASSERT_EQ(first.size(), second.size());
  EXPECT_EQ(std::memcmp(first.data(), second.data(), first.size() * sizeof(float)), 0) << "same call, different bits";
  // Called from the threads of a parallel region each one runs on its thread alone.
  const int64_t M = 64, N = 40, K = 72;
  const auto A = uniform(M * K, 1), B = uniform(K * N, 2);
  std::vector<float> want(M * N);
  gemm_reference(false, false, M, N, K, 1.f, A.data(), K, B.data(), N, 0.f, want.data(), N);
  const auto S = magnitudes(false, false, M, N, K, 1.f, A.data(), K, B.data(), N, 0.f, want.data(), N);
  constexpr int kTasks = 8;
  std::vector<std::vector<float>> got(kTasks, std::vector<float>(M * N));
#pragma omp parallel for num_threads(2) schedule(dynamic, 1)
  for (int t = 0; t < kTasks; ++t) gemm_bf16(false, false, M, N, K, 1.f, A.data(), K, B.data(), N, 0.f, got[t].data(), N);
  for (int t = 0; t < kTasks; ++t)
    for (int64_t i = 0; i < M * N; ++i)
      ASSERT_LE(std::fabs(got[t][i] - want[i]), test::kBf16GemmTol.atol + test::kBf16GemmTol.rtol * S[i]) << "task " << t;
}

TEST(Bf16, GemmFollowsTheScopedPrecision) {
  EXPECT_EQ(precision_active(), Precision::fp32);
  EXPECT_TRUE(precision_supported(Precision::fp32));
  EXPECT_EQ(parse_precision("bf16"), Precision::bf16);
  EXPECT_EQ(parse_precision("fp32"), Precision::fp32);
  try {
    parse_precision("fp16", "--precision");
    ADD_FAILURE() << "fp16 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--precision 'fp16' is not a precision"), std::string::npos) << e.what();
  }
  {
    // Below AVX-512 bf16 is off, with a message naming the flag, the CPU features and the fix.
    ActiveIsa restore;
    isa_set_active(Isa::Baseline);
    EXPECT_FALSE(precision_supported(Precision::bf16));
    try {
      const ScopedPrecision p(Precision::bf16);
      ADD_FAILURE() << "bf16 accepted below AVX-512";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("--precision bf16"), std::string::npos) << m;
      EXPECT_NE(m.find("AVX512-BF16 or AMX-BF16"), std::string::npos) << m;
      EXPECT_NE(m.find("use --precision fp32"), std::string::npos) << m;
    }
    EXPECT_EQ(precision_active(), Precision::fp32);
  }
  SKIP_WITHOUT_BF16();
  const int64_t M = 33, N = 17, K = 64;
  const auto A = uniform(M * K, 5), B = uniform(N * K, 6);
  std::vector<float> f32(M * N), bf16(M * N), through(M * N);
  gemm_f32(false, true, M, N, K, 1.f, A.data(), K, B.data(), K, 0.f, f32.data(), N);
  gemm_bf16(false, true, M, N, K, 1.f, A.data(), K, B.data(), K, 0.f, bf16.data(), N);
  {
    const ScopedPrecision p(Precision::bf16);
    EXPECT_EQ(precision_active(), Precision::bf16);
    gemm(false, true, M, N, K, 1.f, A.data(), K, B.data(), K, 0.f, through.data(), N);
  }
  EXPECT_EQ(precision_active(), Precision::fp32);
  EXPECT_EQ(std::memcmp(through.data(), bf16.data(), through.size() * sizeof(float)), 0);
  gemm(false, true, M, N, K, 1.f, A.data(), K, B.data(), K, 0.f, through.data(), N);
  EXPECT_EQ(std::memcmp(through.data(), f32.data(), through.size() * sizeof(float)), 0);
}

// Inside a GemmOperandReuse scope an operand read by several products (the same address and layout,
// transposed or not) is rounded once, which must change no bit; and once the scope ends a changed
// operand is rounded again (no stale copy survives the scope).
TEST(Bf16, OperandReuseScopeGivesTheSameBitsAndEndsWithTheScope) {
  SKIP_WITHOUT_BF16();
  const int64_t M = 96, N = 40, K = 72;
  auto A = uniform(M * K, 11);
  const auto B1 = uniform(N * K, 12), B2 = uniform(K * N, 13), G = uniform(M * N, 14);
  // Three products reading A (as A, and as the transposed A of a weight-gradient product) and G.
  auto run = [&](bool scoped) {
    std::vector<float> c1(M * N), c2(M * N), c3(K * N, 0.5f);
    auto products = [&] {
      gemm_bf16(false, true, M, N, K, 1.f, A.data(), K, B1.data(), K, 0.f, c1.data(), N);
      gemm_bf16(false, false, M, N, K, 0.5f, A.data(), K, B2.data(), N, 0.f, c2.data(), N);
      gemm_bf16(true, false, K, N, M, 1.f, A.data(), K, G.data(), N, 1.f, c3.data(), N);  // A^T G
    };
    if (scoped) {
      const GemmOperandReuse reuse;
      products();
    } else {
      products();
    }
    std::vector<float> all(c1);
    all.insert(all.end(), c2.begin(), c2.end());
    all.insert(all.end(), c3.begin(), c3.end());
    return all;
  };
  const std::vector<float> plain = run(false), scoped = run(true);
  ASSERT_EQ(plain.size(), scoped.size());
  EXPECT_EQ(std::memcmp(plain.data(), scoped.data(), plain.size() * sizeof(float)), 0);
  // After the scope, the same address with new contents is rounded anew.
  std::vector<float> before(M * N), after(M * N);
  {
    const GemmOperandReuse reuse;
    gemm_bf16(false, true, M, N, K, 1.f, A.data(), K, B1.data(), K, 0.f, before.data(), N);
  }
  for (float& a : A) a = -a;
  {
    const GemmOperandReuse reuse;
    gemm_bf16(false, true, M, N, K, 1.f, A.data(), K, B1.data(), K, 0.f, after.data(), N);
  }
  for (int64_t i = 0; i < M * N; ++i) ASSERT_EQ(bits_of(after[i]), bits_of(-before[i])) << i;
}

// The ops that write a bf16 copy of their output in their own pass (the `*16` outputs): the copy is
// f32_to_bf16 of the fp32 output, element for element, and the fp32 output is the same as without
// it, with dropout on and off and in place. No bf16 product runs, so this needs no bf16 CPU.
TEST(Bf16, OpsWriteTheBf16CopyOfTheirOutputInTheSamePass) {
  const int64_t n = 70001;  // several parallel pieces and a ragged tail
  const auto x = uniform(n, 21), y0 = uniform(n, 22);
  auto expect_copy = [](const std::vector<float>& f, const std::vector<uint16_t>& h, const char* what) {
    for (size_t i = 0; i < f.size(); ++i) ASSERT_EQ(h[i], f32_to_bf16(f[i])) << what << " at " << i;
  };
  auto expect_same = [](const std::vector<float>& a, const std::vector<float>& b, const char* what) {
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << what;
  };
  for (const float p : {0.f, 0.1f}) {
    SCOPED_TRACE(testing::Message() << "p = " << p);
    std::vector<uint16_t> h16(n, 0xFFFF);
    {  // dropout_backward, out of place and in place
      std::vector<float> plain(n), with(n);
      dropout_backward(plain.data(), x.data(), n, p, 3, 4, 5);
      dropout_backward(with.data(), x.data(), n, p, 3, 4, 5, h16.data());
      expect_same(plain, with, "dropout_backward");
      expect_copy(with, h16, "dropout_backward");
      std::vector<float> in_place(x);
      dropout_backward(in_place.data(), in_place.data(), n, p, 3, 4, 5, h16.data());
      expect_same(plain, in_place, "dropout_backward in place");
      expect_copy(in_place, h16, "dropout_backward in place");
    }
    {  // dropout_relu_forward: h in place, a = relu(h)
      std::vector<float> h_plain(x), a_plain(n), h_with(x), a_with(n);
      dropout_relu_forward(h_plain.data(), a_plain.data(), n, p, 3, 4, 5);
      dropout_relu_forward(h_with.data(), a_with.data(), n, p, 3, 4, 5, h16.data());
      expect_same(h_plain, h_with, "dropout_relu_forward h");
      expect_same(a_plain, a_with, "dropout_relu_forward a");
      expect_copy(a_with, h16, "dropout_relu_forward");
      std::vector<float> dh_plain(y0), dh_with(y0);
      relu_dropout_backward_from_output(dh_plain.data(), h_plain.data(), n, p);
      relu_dropout_backward_from_output(dh_with.data(), h_plain.data(), n, p, h16.data());
      expect_same(dh_plain, dh_with, "relu_dropout_backward_from_output");
      expect_copy(dh_with, h16, "relu_dropout_backward_from_output");
    }
    {  // dropout_add_and_backward: y -= dropout(x), dz = dropout(dw)
      std::vector<float> y_plain(y0), y_with(y0), dz_plain(n), dz_with(n);
      dropout_add_and_backward(y_plain.data(), x.data(), dz_plain.data(), y0.data(), n, true, p, 3, 4, 5);
      dropout_add_and_backward(y_with.data(), x.data(), dz_with.data(), y0.data(), n, true, p, 3, 4, 5, h16.data());
      expect_same(y_plain, y_with, "dropout_add_and_backward y");
      expect_same(dz_plain, dz_with, "dropout_add_and_backward dz");
      expect_copy(dz_with, h16, "dropout_add_and_backward");
    }
  }
  const int64_t N = 301, C = 96;
  const auto w = uniform(C, 23, 0.5f, 1.5f), b = uniform(C, 24);
  std::vector<float> plain(N * C), with(N * C), mean(N), rstd(N);
  std::vector<uint16_t> y16(N * C, 0xFFFF);
  layernorm_forward(plain.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C, 1e-12f);
  layernorm_forward(with.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C, 1e-12f, y16.data());
  expect_same(plain, with, "layernorm_forward");
  expect_copy(with, y16, "layernorm_forward");
}

// An operand slot (gemm_operand_bf16_slot) is what the scope's products read: filled with the
// operand's rounding it gives the bits of a product that rounds the operand itself, filled with
// another matrix's it gives that matrix's product. There is no slot in fp32, outside a scope, or
// under GemmOperandSlotsOff.
TEST(Bf16, OperandSlotIsWhatTheScopesProductsRead) {
  SKIP_WITHOUT_BF16();
  const int64_t M = 96, N = 40, K = 72;
  const auto A = uniform(M * K, 31), B = uniform(N * K, 32);
  std::vector<float> negated(A);
  for (float& a : negated) a = -a;
  EXPECT_EQ(gemm_operand_bf16_slot(A.data(), M, K), nullptr);  // fp32
  const ScopedPrecision bf16(Precision::bf16);
  EXPECT_EQ(gemm_operand_bf16_slot(A.data(), M, K), nullptr);  // no scope
  std::vector<float> plain(M * N), through_slot(M * N), other(M * N);
  gemm(false, true, M, N, K, 1.f, A.data(), K, B.data(), K, 0.f, plain.data(), N);
  {
    const GemmOperandReuse reuse;
    uint16_t* slot = gemm_operand_bf16_slot(A.data(), M, K);
    ASSERT_NE(slot, nullptr);
    f32_to_bf16(slot, A.data(), M * K);
    gemm(false, true, M, N, K, 1.f, A.data(), K, B.data(), K, 0.f, through_slot.data(), N);
    {
      const GemmOperandSlotsOff off;
      EXPECT_EQ(gemm_operand_bf16_slot(A.data(), M, K), nullptr);
    }
  }
  EXPECT_EQ(std::memcmp(plain.data(), through_slot.data(), plain.size() * sizeof(float)), 0);
  {
    const GemmOperandReuse reuse;
    f32_to_bf16(gemm_operand_bf16_slot(A.data(), M, K), negated.data(), M * K);
    gemm(false, true, M, N, K, 1.f, A.data(), K, B.data(), K, 0.f, other.data(), N);
  }
  for (int64_t i = 0; i < M * N; ++i) ASSERT_EQ(bits_of(other[i]), bits_of(-plain[i])) << i;
}

// Runs `step` (which returns every output it wants compared) with the operand slots and again
// under GemmOperandSlotsOff, where every product rounds its own operands: the bits must agree.
static void expect_slots_change_no_bit(const std::function<std::vector<float>()>& step) {
  const std::vector<float> with = step();
  std::vector<float> without;
  {
    const GemmOperandSlotsOff off;
    without = step();
  }
  ASSERT_EQ(with.size(), without.size());
  for (size_t i = 0; i < with.size(); ++i) ASSERT_EQ(bits_of(with[i]), bits_of(without[i])) << i;
}

// The feed-forward layer writes its operands' bf16 copies in the passes that make them (LN, the
// hidden dropout and ReLU, the output dropout's backward, the ReLU backward): its outputs and
// gradients in bf16 are bit for bit those of the layer whose products round every operand
// themselves, reversible (recomputing the hidden rows) and stored, with dropout on and off, over a
// ragged last chunk.
TEST(Bf16, FeedForwardOperandCopiesChangeNoBit) {
  SKIP_WITHOUT_BF16();
  const int64_t D = 64, F = 128, rows = 300, chunk = 128;
  const auto ln_w = uniform(D, 41, 0.5f, 1.5f), ln_b = uniform(D, 42), w1 = uniform(F * D, 43), b1 = uniform(F, 44),
             w2 = uniform(D * F, 45), b2 = uniform(D, 46), x = uniform(rows * D, 47), y0 = uniform(rows * D, 48),
             dy = uniform(rows * D, 49);
  const ScopedPrecision bf16(Precision::bf16);
  for (const float p : {0.f, 0.1f})
    for (const bool stored : {false, true}) {
      SCOPED_TRACE(testing::Message() << "p = " << p << (stored ? ", stored" : ", reversible"));
      expect_slots_change_no_bit([&] {
        std::vector<float> g(2 * D + F * D + F + D * F + D, 0.f);
        float* gp = g.data();
        const FeedForwardGrads grads{gp, gp + D, gp + 2 * D, gp + 2 * D + F * D, gp + 2 * D + F * D + F,
                                     gp + 2 * D + F * D + F + D * F};
        FeedForward ff(D, F, Activation::Relu, 1e-12f, chunk,
                       {ln_w.data(), ln_b.data(), w1.data(), b1.data(), w2.data(), b2.data()}, grads);
        FeedForwardCall call;
        call.rows = rows;
        call.training = true;
        call.dropout = p;
        call.seed = 9;
        std::vector<float> kept_a(stored ? rows * F : 0);
        if (stored) call.kept_a = kept_a.data();
        std::vector<float> y(y0), dx(rows * D, 0.f);
        ff.forward_add(y.data(), x.data(), call);
        std::vector<float> after_forward(y);
        ff.backward_add(dx.data(), stored ? nullptr : y.data(), dy.data(), x.data(), call);
        std::vector<float> all(after_forward);
        for (const auto* v : {&y, &dx, &g}) all.insert(all.end(), v->begin(), v->end());
        return all;
      });
    }
}

// The whole model's operand copies (the feed-forward's, and the attention branch's readers: LN(X2)
// and the output dropout's backward, row_stream.h) change no bit of a bf16 step's loss and
// gradients, reversible and stored.
TEST(Bf16, ModelOperandCopiesChangeNoBit) {
  SKIP_WITHOUT_BF16();
  const ReformerConfig c = dropout_config();
  const int64_t B = 2, L = 32;
  const auto ids = random_ids(B * L, c.vocab_size, 1);
  const Batch batch{ids.data(), B, L};
  StepOptions opt;
  opt.seed = 5;
  opt.step = 3;
  const ScopedPrecision bf16(Precision::bf16);
  for (const bool reversible : {true, false}) {
    SCOPED_TRACE(reversible ? "reversible" : "stored");
    expect_slots_change_no_bit([&] {
      ReformerModel model(c, 7);
      model.set_reversible(reversible);
      model.set_attention_row_chunk(24);  // several row chunks, a ragged last one
      model.zero_grad();
      std::vector<float> all{static_cast<float>(model.forward_backward(batch, opt).mean())};
      for (const auto& g : grads_of(model)) all.insert(all.end(), g.begin(), g.end());
      return all;
    });
  }
}

// The recomputation in the reversible backward runs the forward's bf16 products again on the same
// inputs and must give the same bits, so the reversible and stored backward agree as in fp32.
TEST(Bf16, ReversibleMatchesStoredActivations) {
  SKIP_WITHOUT_BF16();
  const ReformerConfig c = dropout_config();
  ReformerModel model(c, 7);
  const int64_t B = 2, L = 32;
  const auto ids = random_ids(B * L, c.vocab_size, 1);
  const Batch batch{ids.data(), B, L};
  StepOptions opt;
  opt.seed = 5;
  opt.step = 3;
  model.zero_grad();
  const LossStats fp32 = model.forward_backward(batch, opt);
  const ScopedPrecision bf16(Precision::bf16);
  const LossStats bf16_step = test::expect_reversible_matches_stored(model, batch, opt);
  // bf16 really ran (another loss than fp32's), and is close to it.
  EXPECT_NE(bf16_step.mean(), fp32.mean());
  EXPECT_NEAR(bf16_step.mean(), fp32.mean(), test::kBf16LossTol.atol + test::kBf16LossTol.rtol * fp32.mean());
}

// Training steps (forward, backward, Adam) in bf16 from the same initialisation as fp32: finite
// losses close to fp32's at every step.
TEST(Bf16, TrainingStepsGiveLossesCloseToFp32) {
  SKIP_WITHOUT_BF16();
  ReformerConfig c = dropout_config();
  c.vocab_size = 40;
  c.hidden_dropout_prob = 0.05;
  const int64_t B = 2, L = 32, kSteps = 8;
  auto run = [&](Precision p) {
    const ScopedPrecision scoped(p);
    ReformerModel model(c, 3);
    std::vector<ParamRef> refs;
    for (auto& np : model.parameters()) refs.push_back({np.name, np.param->data(), np.grad->data(), np.param->shape()});
    Adam adam(refs);
    std::vector<double> losses;
    for (int64_t s = 0; s < kSteps; ++s) {
      const auto ids = random_ids(B * L, 10, 100 + s);  // ten symbols of forty: learnable
      const Batch batch{ids.data(), B, L};
      StepOptions opt;
      opt.seed = 1;
      opt.step = static_cast<uint64_t>(s);
      model.zero_grad();
      losses.push_back(model.forward_backward(batch, opt).mean());
      adam.step(refs, 3e-3f);
    }
    return losses;
  };
  const auto fp32 = run(Precision::fp32), bf16 = run(Precision::bf16);
  double worst = 0;
  for (int64_t s = 0; s < kSteps; ++s) {
    SCOPED_TRACE("step " + std::to_string(s));
    EXPECT_TRUE(std::isfinite(bf16[s]));
    EXPECT_NEAR(bf16[s], fp32[s], test::kBf16LossTol.atol + test::kBf16LossTol.rtol * fp32[s]);
    worst = std::max(worst, std::fabs(bf16[s] - fp32[s]) / fp32[s]);
  }
  EXPECT_LT(fp32.back(), fp32.front());  // it learns
  EXPECT_LT(bf16.back(), bf16.front());
  std::printf("bf16 vs fp32 training losses: largest relative difference %.2e over %lld steps\n", worst,
              static_cast<long long>(kSteps));
}
