// Run-time instruction-set dispatch (src/core/cpu_isa.h): the chosen variant is one this CPU runs,
// and every variant the machine can run gives the same bits as the baseline (SSE2) one, for each
// dispatched kernel: the Philox words (against the scalar definition in rng.h), dropout (against
// rng_keep element by element), the chunk attention forward and backward, and the elementwise and
// LayerNorm kernels of kernels/cpu/elementwise.h, and the cross-entropy's exponentials.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "core/cpu_isa.h"
#include "kernels/cpu/chunk_attention.h"
#include "kernels/cpu/elementwise.h"
#include "ops/dropout.h"
#include "reformer/error.h"
#include "reformer/rng.h"

using namespace reformer;

namespace {

// Restores the active variant when a test ends.
struct ActiveIsa {
  Isa saved = isa_active();
  ~ActiveIsa() { isa_set_active(saved); }
};

std::vector<float> uniform(int64_t n, uint64_t seed) {
  std::vector<float> v(static_cast<size_t>(n));
  rng_fill_uniform(v.data(), n, seed, 99, -1.f, 1.f);
  return v;
}

}  // namespace

TEST(CpuIsa, ActiveVariantIsOneThisCpuRuns) {
  const Isa active = isa_active();
  EXPECT_TRUE(isa_supported(active)) << isa_name(active);
  const std::vector<Isa> all = isa_supported_list();
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(all.front(), Isa::Baseline);
#if REFORMER_ISA_VARIANTS
  // Asked independently of cpu_isa.cpp: what the variant needs, the CPU has.
  __builtin_cpu_init();
  if (static_cast<int>(active) >= static_cast<int>(Isa::Avx2)) {
    EXPECT_TRUE(__builtin_cpu_supports("avx2"));
    EXPECT_TRUE(__builtin_cpu_supports("fma"));
  }
  if (active == Isa::Avx512) {  // (the builtin takes a literal only)
    EXPECT_TRUE(__builtin_cpu_supports("avx512f"));
    EXPECT_TRUE(__builtin_cpu_supports("avx512bw"));
    EXPECT_TRUE(__builtin_cpu_supports("avx512dq"));
    EXPECT_TRUE(__builtin_cpu_supports("avx512vl"));
  }
  // Without REFORMER_ISA the widest supported variant is active.
  if (!std::getenv("REFORMER_ISA")) EXPECT_EQ(active, all.back());
  if (!__builtin_cpu_supports("avx512f")) {
    EXPECT_FALSE(isa_supported(Isa::Avx512));
    EXPECT_THROW(isa_set_active(Isa::Avx512), Error);
  }
#endif
}

// Run by ctest a second time with REFORMER_ISA=baseline (CMakeLists.txt, cpu_isa_env_baseline).
TEST(CpuIsa, EnvironmentLowersTheVariant) {
  const char* env = std::getenv("REFORMER_ISA");
  if (!env) GTEST_SKIP() << "REFORMER_ISA is not set";
  EXPECT_STREQ(isa_name(isa_active()), env);
}

TEST(CpuIsa, PhiloxWordsOfEveryVariantMatchTheScalarDefinition) {
  ActiveIsa restore;
  const uint64_t seed = 0x0123456789ABCDEFull, stream = rng_stream(RngPurpose::HiddenDropout, {4, 5, 6});
  // 2^29 - k: group k's blocks start at 2^32, so the low counter word wraps inside an AVX-512
  // register (k odd) or between the two registers of a four-group step (k = 2); 1-8 groups take
  // every path (four at a time, two, one).
  for (Isa isa : isa_supported_list()) {
    isa_set_active(isa);
    for (uint64_t first : {uint64_t{0}, uint64_t{3}, (uint64_t{1} << 29) - 1, (uint64_t{1} << 29) - 2,
                           (uint64_t{1} << 29) - 3, (uint64_t{1} << 40) + 5})
      for (int64_t groups = 1; groups <= 8; ++groups) {
        std::vector<uint32_t> words(static_cast<size_t>(32 * groups));
        rng_words32_groups(words.data(), seed, stream, first, groups);
        for (int64_t i = 0; i < 32 * groups; ++i)
          ASSERT_EQ(words[static_cast<size_t>(i)], rng_word(seed, stream, 32 * first + static_cast<uint64_t>(i)))
              << isa_name(isa) << " group " << first << " word " << i;
      }
  }
}

TEST(CpuIsa, DropoutOfEveryVariantMatchesRngKeep) {
  ActiveIsa restore;
  const int64_t n = 5000;
  const std::vector<float> x = uniform(n, 1);
  const float p = 0.3f, scale = 1.f / (1.f - p);
  const uint64_t seed = 7, stream = 11, base = 13;  // unaligned base: head, groups and tail
  for (Isa isa : isa_supported_list()) {
    isa_set_active(isa);
    std::vector<float> y(static_cast<size_t>(n));
    dropout_forward(y.data(), x.data(), n, p, seed, stream, base);
    for (int64_t i = 0; i < n; ++i) {
      const float want =
          rng_keep(seed, stream, base + static_cast<uint64_t>(i), p) ? x[static_cast<size_t>(i)] * scale : 0.f;
      ASSERT_EQ(y[static_cast<size_t>(i)], want) << isa_name(isa) << " element " << i;
    }
  }
}

TEST(CpuIsa, ChunkAttentionOfEveryVariantIsBitIdenticalToBaseline) {
  ActiveIsa restore;
  // 77 and 300 keys: partial vectors of every width, and more than one dropout block.
  for (int64_t nk : {77, 300})
    for (bool causal : {false, true}) {
      const int64_t nq = 19, d = 24;
      const std::vector<float> q = uniform(nq * d, 2), k = uniform(nk * d, 3), v = uniform(nk * d, 4), dout = uniform(nq * d, 5),
                               dlse = uniform(nq, 6);
      std::vector<int32_t> qpos(static_cast<size_t>(nq)), kpos(static_cast<size_t>(nk));
      std::vector<uint8_t> valid(static_cast<size_t>(nk), 1);
      for (int64_t i = 0; i < nq; ++i) qpos[static_cast<size_t>(i)] = static_cast<int32_t>(40 + i);
      for (int64_t j = 0; j < nk; ++j) kpos[static_cast<size_t>(j)] = static_cast<int32_t>(j * 3 % 90);
      for (int64_t j = 0; j < nk; j += 5) valid[static_cast<size_t>(j)] = 0;
      ChunkAttentionOptions opt;
      opt.causal = causal;
      opt.self_mask = true;
      opt.dropout = 0.2f;
      opt.seed = 3;
      opt.stream = 17;
      opt.dropout_base = 29;
      struct Out {
        std::vector<float> o, lse, dq, dk, dv;
      };
      auto run = [&](Isa isa) {
        isa_set_active(isa);
        Out r{std::vector<float>(nq * d), std::vector<float>(nq), std::vector<float>(nq * d, 0.f), std::vector<float>(nk * d, 0.f),
              std::vector<float>(nk * d, 0.f)};
        std::vector<float> scratch(static_cast<size_t>(2 * nq * nk));
        chunk_attention_forward(r.o.data(), d, r.lse.data(), q.data(), d, k.data(), d, v.data(), d, qpos.data(), kpos.data(),
                                valid.data(), nq, nk, d, opt, scratch.data());
        chunk_attention_backward(r.dq.data(), d, r.dk.data(), d, r.dv.data(), d, dout.data(), d, dlse.data(), r.o.data(), d,
                                 r.lse.data(), q.data(), d, k.data(), d, v.data(), d, qpos.data(), kpos.data(), valid.data(), nq,
                                 nk, d, opt, scratch.data());
        return r;
      };
      const Out base = run(Isa::Baseline);
      for (Isa isa : isa_supported_list()) {
        const Out got = run(isa);
        auto same = [](const std::vector<float>& a, const std::vector<float>& b) {
          return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
        };
        SCOPED_TRACE(testing::Message() << isa_name(isa) << " nk " << nk << " causal " << causal);
        EXPECT_TRUE(same(got.o, base.o));
        EXPECT_TRUE(same(got.lse, base.lse));
        EXPECT_TRUE(same(got.dq, base.dq));
        EXPECT_TRUE(same(got.dk, base.dk));
        EXPECT_TRUE(same(got.dv, base.dv));
      }
    }
}

// kernels/cpu/elementwise.h: every kernel, every length up to two AVX-512 vectors past a multiple
// (remainders of each width), signed zeros and negative inputs, random draws and draws at the threshold.
TEST(CpuIsa, ElementwiseKernelsOfEveryVariantAreBitIdenticalToBaseline) {
  ActiveIsa restore;
  const int64_t max_n = 131;
  std::vector<float> x = uniform(max_n, 21), y0 = uniform(max_n, 22), g0 = uniform(max_n, 23);
  x[3] = -0.f;
  x[4] = 0.f;
  g0[5] = -0.f;
  std::vector<uint16_t> words(static_cast<size_t>(max_n));  // the draws
  for (int64_t i = 0; i < max_n; ++i) words[static_cast<size_t>(i)] = rng_draw16(1, 2, static_cast<uint64_t>(i));
  const int32_t threshold = rng_keep_threshold(0.4f);
  words[7] = static_cast<uint16_t>(threshold);  // kept: the compare is >=
  words[8] = static_cast<uint16_t>(threshold - 1);
  words[9] = 65535;
  const float scale = 1.f / 0.6f;
  using Out = std::vector<std::vector<float>>;
  auto run = [&](Isa isa, int64_t n) {
    isa_set_active(isa);
    Out r;
    std::vector<float> a = y0;
    kernel_dropout_apply(a.data(), x.data(), words.data(), n, threshold, scale);
    r.push_back(a);
    for (bool sub : {false, true}) {
      a = y0;
      kernel_dropout_add(a.data(), a.data(), x.data(), words.data(), n, threshold, scale, sub);
      r.push_back(a);
      a.assign(y0.size(), 0.f);  // out of place: the same bits from y0
      kernel_dropout_add(a.data(), y0.data(), x.data(), words.data(), n, threshold, scale, sub);
      r.push_back(a);
      a = y0;
      kernel_add(a.data(), x.data(), n, sub);
      r.push_back(a);
    }
    std::vector<float> h = x;
    a = y0;
    kernel_dropout_relu(h.data(), a.data(), words.data(), n, threshold, scale);
    r.push_back(h);
    r.push_back(a);
    a = g0;
    kernel_relu_backward_scaled(a.data(), x.data(), n, scale);
    r.push_back(a);
    a = y0;
    kernel_relu_forward(a.data(), x.data(), n);
    r.push_back(a);
    a = y0;
    kernel_relu_backward(a.data(), g0.data(), x.data(), n);
    r.push_back(a);
    return r;
  };
  for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{7}, int64_t{15}, int64_t{16}, int64_t{33}, int64_t{100}, max_n}) {
    const Out base = run(Isa::Baseline, n);
    for (Isa isa : isa_supported_list()) {
      const Out got = run(isa, n);
      ASSERT_EQ(got.size(), base.size());
      for (size_t k = 0; k < got.size(); ++k)
        EXPECT_EQ(std::memcmp(got[k].data(), base[k].data(), got[k].size() * sizeof(float)), 0)
            << isa_name(isa) << " n " << n << " output " << k;
    }
  }
  // The baseline itself follows the definitions (keep iff draw >= threshold).
  const Out base = run(Isa::Baseline, max_n);
  for (int64_t i = 0; i < max_n; ++i) {
    const bool keep = static_cast<int32_t>(words[static_cast<size_t>(i)]) >= threshold;
    const size_t u = static_cast<size_t>(i);
    ASSERT_EQ(base[0][u], keep ? x[u] * scale : 0.f) << i;
    ASSERT_EQ(base[1][u], y0[u] + (keep ? x[u] * scale : 0.f)) << i;
  }
}

// LayerNorm's row kernels and column accumulators: every variant gives the baseline's bits, for
// widths with and without a tail after the 8 partial sums, and for row counts with and without a
// tail after the blocks of 4 rows; and a row's bits do not depend on the rows handled with it
// (one call over all rows = one call per row).
TEST(CpuIsa, LayerNormKernelsOfEveryVariantAreBitIdenticalToBaseline) {
  ActiveIsa restore;
  for (int64_t C : {int64_t{1}, int64_t{7}, int64_t{8}, int64_t{37}, int64_t{256}})
    for (int64_t N : {int64_t{1}, int64_t{4}, int64_t{7}}) {
      const std::vector<float> x = uniform(N * C, 31), w = uniform(C, 32), b = uniform(C, 33), dy = uniform(N * C, 34);
      auto run = [&](Isa isa, bool row_by_row) {
        isa_set_active(isa);
        const size_t nc = static_cast<size_t>(N * C), n = static_cast<size_t>(N);
        std::vector<float> y(nc), dx(nc), mean(n), rstd(n), dx_acc = uniform(N * C, 35);
        std::vector<double> acc(static_cast<size_t>(C), 0.5), aw(static_cast<size_t>(C), 0.25),
            ab(static_cast<size_t>(C), 0.125), fused_aw(aw), fused_ab(ab);
        std::vector<float> fused_dx(nc);
        const int64_t step = row_by_row ? 1 : N;
        for (int64_t i = 0; i < N; i += step) {
          kernel_layernorm_rows(y.data() + i * C, mean.data() + i, rstd.data() + i, x.data() + i * C, w.data(),
                                b.data(), step, C, 1e-12f);
          kernel_layernorm_backward_rows(dx.data() + i * C, dy.data() + i * C, x.data() + i * C, mean.data() + i,
                                         rstd.data() + i, w.data(), step, C);
          kernel_layernorm_backward_rows(dx_acc.data() + i * C, dy.data() + i * C, x.data() + i * C, mean.data() + i,
                                         rstd.data() + i, w.data(), step, C, /*accumulate=*/true);
          kernel_accumulate_columns(acc.data(), x.data() + i * C, C, step, C);
          kernel_accumulate_layernorm_param_grads(aw.data(), ab.data(), dy.data() + i * C, x.data() + i * C, C,
                                                  mean.data() + i, rstd.data() + i, step, C);
          kernel_layernorm_backward_rows(fused_dx.data() + i * C, dy.data() + i * C, x.data() + i * C,
                                         mean.data() + i, rstd.data() + i, w.data(), step, C, false, fused_aw.data(),
                                         fused_ab.data());
        }
        // The backward with the parameter gradients added in the same pass: the separate passes' bits.
        if (fused_dx != dx || fused_aw != aw || fused_ab != ab) ADD_FAILURE() << "fused LayerNorm backward differs";
        std::vector<double> all(acc);
        all.insert(all.end(), aw.begin(), aw.end());
        all.insert(all.end(), ab.begin(), ab.end());
        // Accumulating adds exactly the assigned values: the fused form of "write, then add".
        const std::vector<float> start = uniform(N * C, 35);
        for (size_t k = 0; k < nc; ++k)
          if (dx_acc[k] != start[k] + dx[k]) ADD_FAILURE() << "accumulated dx differs at " << k;
        for (const std::vector<float>* v : {&y, &dx, &dx_acc, &mean, &rstd})
          for (float f : *v) all.push_back(f);
        return all;
      };
      const std::vector<double> base = run(Isa::Baseline, true);
      for (Isa isa : isa_supported_list())
        for (bool row_by_row : {true, false}) {
          const std::vector<double> got = run(isa, row_by_row);
          ASSERT_EQ(got.size(), base.size());
          EXPECT_EQ(std::memcmp(got.data(), base.data(), got.size() * sizeof(double)), 0)
              << isa_name(isa) << " C " << C << " N " << N << (row_by_row ? " row by row" : " one call");
        }
    }
}

// The cross-entropy's exponentials: every variant gives the baseline's values and sum for every
// length around the 8 partial sums, and the baseline is within 2 ulp of std::exp down to -708 and
// exactly 0 below (-inf included), exactly 1 at 0 and -0.
TEST(CpuIsa, ExpShiftedSumOfEveryVariantIsBitIdenticalAndWithin2UlpOfStdExp) {
  ActiveIsa restore;
  std::vector<float> x;
  for (float v : {0.f, -0.f, -1e-30f, -1e-7f, -0.34657f, -0.5f, -1.f, -20.f, -88.f, -700.f, -707.99f, -708.01f,
                  -709.f, -1e30f, -std::numeric_limits<float>::infinity()})
    x.push_back(v);
  const std::vector<float> u = uniform(200, 41);
  for (float v : u) x.push_back(-30.f * (v + 1.f));  // [-60, 0]
  const int64_t max_n = static_cast<int64_t>(x.size());
  auto run = [&](Isa isa, int64_t n) {
    isa_set_active(isa);
    std::vector<double> e(static_cast<size_t>(n) + 1, 0.0);
    e.back() = kernel_exp_shifted_sum(e.data(), x.data(), n, 0.f);
    return e;
  };
  for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{7}, int64_t{8}, int64_t{9}, int64_t{17}, max_n}) {
    const std::vector<double> base = run(Isa::Baseline, n);
    for (Isa isa : isa_supported_list()) {
      const std::vector<double> got = run(isa, n);
      EXPECT_EQ(std::memcmp(got.data(), base.data(), got.size() * sizeof(double)), 0) << isa_name(isa) << " n " << n;
    }
  }
  const std::vector<double> e = run(isa_active(), max_n);
  double sum = 0;
  for (int64_t j = 0; j < max_n; ++j) {
    const double xj = x[static_cast<size_t>(j)], want = std::exp(xj);
    if (xj < -708.0) {
      EXPECT_EQ(e[static_cast<size_t>(j)], 0.0) << "x " << xj;
    } else {
      EXPECT_LE(std::fabs(e[static_cast<size_t>(j)] - want), 2 * std::numeric_limits<double>::epsilon() * want)
          << "x " << xj;
    }
    sum += e[static_cast<size_t>(j)];
  }
  EXPECT_EQ(e[0], 1.0);
  EXPECT_EQ(e[1], 1.0);
  EXPECT_NEAR(e.back(), sum, 1e-14 * sum);
}
