// Ops rung: every forward against a slow double-precision reference, every backward against
// central finite differences (w.r.t. every input and parameter) and, where exact, a naive loop.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "ops/activation.h"
#include "ops/axial_position.h"
#include "ops/cross_entropy.h"
#include "ops/dropout.h"
#include "ops/embedding.h"
#include "ops/layernorm.h"
#include "ops/linear.h"
#include "ops/parallel.h"
#include "reformer/error.h"
#include "reformer/rng.h"
#include "support/gradcheck.h"
#include "support/tolerance.h"

using namespace reformer;
using namespace reformer::test;

namespace {

using Vec = std::vector<float>;

Vec random_vec(int64_t n, uint64_t seed, float lo = -1.f, float hi = 1.f) {
  Vec v(n);
  fill_uniform(v.data(), n, seed, lo, hi);
  return v;
}

int64_t isize(const Vec& v) { return static_cast<int64_t>(v.size()); }

}  // namespace

// ---------------------------------------------------------------------------------------------
// Linear

TEST(Linear, ForwardMatchesNaiveLoop) {
  const int64_t N = 7, in = 13, out = 5;
  const Vec x = random_vec(N * in, 1), w = random_vec(out * in, 2), b = random_vec(out, 3);
  for (const bool bias : {true, false}) {
    Vec y(N * out), want(N * out);
    linear_forward(y.data(), x.data(), w.data(), bias ? b.data() : nullptr, N, in, out);
    for (int64_t i = 0; i < N; ++i)
      for (int64_t o = 0; o < out; ++o) {
        double s = bias ? b[o] : 0.0;
        for (int64_t k = 0; k < in; ++k) s += static_cast<double>(x[i * in + k]) * w[o * in + k];
        want[i * out + o] = static_cast<float>(s);
      }
    EXPECT_CLOSE(y.data(), want.data(), N * out, kKernelTol, bias ? "y (bias)" : "y (no bias)");
  }
}

TEST(Linear, GradientsMatchFiniteDifferencesAndAccumulate) {
  const int64_t N = 6, in = 9, out = 4;
  Vec x = random_vec(N * in, 4), w = random_vec(out * in, 5), b = random_vec(out, 6);
  const Vec up = random_vec(N * out, 7);
  Vec y(N * out);
  auto loss = [&] {
    linear_forward(y.data(), x.data(), w.data(), b.data(), N, in, out);
    return weighted_sum(y.data(), up.data(), N * out);
  };
  // Gradient buffers start non-zero: parameter gradients must accumulate, dx must be assigned.
  const float kPrior = 0.5f;
  Vec dx(N * in, 123.f), dw(out * in, kPrior), db(out, kPrior);
  linear_backward(dx.data(), dw.data(), db.data(), up.data(), x.data(), w.data(), N, in, out);
  for (float& v : dw) v -= kPrior;
  for (float& v : db) v -= kPrior;
  EXPECT_GRAD_OK(loss, x.data(), isize(x), dx.data(), "x");
  EXPECT_GRAD_OK(loss, w.data(), isize(w), dw.data(), "w");
  EXPECT_GRAD_OK(loss, b.data(), isize(b), db.data(), "b");
  // dx may be skipped.
  Vec dw2(out * in, 0.f);
  linear_backward(nullptr, dw2.data(), nullptr, up.data(), x.data(), w.data(), N, in, out);
  EXPECT_CLOSE(dw2.data(), dw.data(), out * in, kKernelTol, "dw without dx");
}

// ---------------------------------------------------------------------------------------------
// Embedding

TEST(Embedding, GatherAndDeterministicScatterAdd) {
  const int64_t V = 5, D = 70, N = 9;  // D > 64: more than one column block
  const Vec table = random_vec(V * D, 8);
  const std::vector<int32_t> ids = {3, 0, 3, 4, 1, 3, 0, 2, 4};
  Vec out(N * D);
  embedding_forward(out.data(), ids.data(), table.data(), N, V, D);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < D; ++j) ASSERT_EQ(out[i * D + j], table[ids[i] * D + j]);

  const Vec dout = random_vec(N * D, 9);
  Vec dtable(V * D, 1.f), want(V * D, 1.f);
  embedding_backward(dtable.data(), dout.data(), ids.data(), N, V, D);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < D; ++j) want[ids[i] * D + j] += dout[i * D + j];
  EXPECT_CLOSE(dtable.data(), want.data(), V * D, kKernelTol, "dtable");
}

TEST(Embedding, RejectsOutOfRangeIds) {
  const Vec table(4 * 2, 0.f);
  Vec out(2 * 2), dtable(4 * 2);
  for (const int32_t bad : {4, -1}) {
    const std::vector<int32_t> ids = {1, bad};
    try {
      embedding_forward(out.data(), ids.data(), table.data(), 2, 4, 2);
      FAIL() << "id " << bad << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("token id " + std::to_string(bad)), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("[0, 4)"), std::string::npos) << e.what();
    }
    EXPECT_THROW(embedding_backward(dtable.data(), out.data(), ids.data(), 2, 4, 2), Error);
  }
}

// ---------------------------------------------------------------------------------------------
// Positional embeddings

namespace {

struct AxialCase {
  AxialShape shape;
  std::vector<Vec> weights;
  std::vector<const float*> ptrs() const {
    std::vector<const float*> p;
    for (const Vec& w : weights) p.push_back(w.data());
    return p;
  }
};

AxialCase make_axial(std::vector<int64_t> sizes, std::vector<int64_t> dims) {
  AxialCase c{{sizes, dims}, {}};
  for (size_t a = 0; a < sizes.size(); ++a) c.weights.push_back(random_vec(sizes[a] * dims[a], 20 + a));
  return c;
}

}  // namespace

TEST(AxialPosition, TwoAxesMatchExplicitFormula) {
  const AxialCase c = make_axial({3, 4}, {2, 5});
  const int64_t D = 7, B = 2, L = 11, n2 = 4;
  Vec x(B * L * D, 0.f);
  axial_position_forward(x.data(), c.ptrs().data(), c.shape, B, L);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t p = 0; p < L; ++p) {
      const float* row = x.data() + (b * L + p) * D;
      for (int64_t j = 0; j < 2; ++j) ASSERT_EQ(row[j], c.weights[0][(p / n2) * 2 + j]) << "p " << p;
      for (int64_t j = 0; j < 5; ++j) ASSERT_EQ(row[2 + j], c.weights[1][(p % n2) * 5 + j]) << "p " << p;
    }
}

TEST(AxialPosition, ThreeAxesMatchExplicitFormulaAndAdd) {
  const AxialCase c = make_axial({2, 3, 4}, {3, 1, 2});
  const int64_t D = 6, B = 1, n2 = 3, n3 = 4, L = 2 * n2 * n3;
  const Vec x0 = random_vec(B * L * D, 30);
  Vec x = x0;
  axial_position_forward(x.data(), c.ptrs().data(), c.shape, B, L);
  for (int64_t p = 0; p < L; ++p) {
    const int64_t i1 = p / (n2 * n3), i2 = (p / n3) % n2, i3 = p % n3;
    std::vector<float> want;
    for (int64_t j = 0; j < 3; ++j) want.push_back(c.weights[0][i1 * 3 + j]);
    want.push_back(c.weights[1][i2]);
    for (int64_t j = 0; j < 2; ++j) want.push_back(c.weights[2][i3 * 2 + j]);
    for (int64_t j = 0; j < D; ++j) ASSERT_EQ(x[p * D + j], x0[p * D + j] + want[j]) << "p " << p << " j " << j;
  }
}

TEST(AxialPosition, StartOffsetSelectsLaterPositions) {
  const AxialCase c = make_axial({3, 4}, {2, 3});
  const int64_t D = 5, full = 12, start = 5, L = 4;
  Vec all(full * D, 0.f), part(L * D, 0.f);
  axial_position_forward(all.data(), c.ptrs().data(), c.shape, 1, full);
  axial_position_forward(part.data(), c.ptrs().data(), c.shape, 1, L, start);
  for (int64_t i = 0; i < L * D; ++i) ASSERT_EQ(part[i], all[start * D + i]);
}

TEST(AxialPosition, GradientsMatchFiniteDifferences) {
  for (const auto& [sizes, dims] : std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>>{
           {{6}, {3}}, {{3, 4}, {2, 70}}, {{2, 3, 2}, {1, 2, 2}}}) {
    AxialCase c = make_axial(sizes, dims);
    const int64_t D = c.shape.width(), B = 2, L = c.shape.max_length() - 1;
    const Vec up = random_vec(B * L * D, 31);
    Vec x(B * L * D);
    auto loss = [&] {
      std::fill(x.begin(), x.end(), 0.f);
      axial_position_forward(x.data(), c.ptrs().data(), c.shape, B, L);
      return weighted_sum(x.data(), up.data(), B * L * D);
    };
    std::vector<Vec> grads;
    std::vector<float*> gptr;
    for (const Vec& w : c.weights) grads.emplace_back(w.size(), 0.f);
    for (Vec& g : grads) gptr.push_back(g.data());
    axial_position_backward(gptr.data(), up.data(), c.shape, B, L);
    for (size_t a = 0; a < sizes.size(); ++a)
      EXPECT_GRAD_OK(loss, c.weights[a].data(), isize(c.weights[a]), grads[a].data(), "axis" + std::to_string(a));
  }
}

TEST(AxialPosition, RejectsBadShapesAndLengths) {
  const AxialCase c = make_axial({3, 4}, {2, 3});
  Vec x(13 * 5);
  EXPECT_THROW(axial_position_forward(x.data(), c.ptrs().data(), c.shape, 1, 13), Error);
  EXPECT_THROW(axial_position_forward(x.data(), c.ptrs().data(), c.shape, 1, 4, 9), Error);
  EXPECT_THROW(check_axial_shape(c.shape, 6), Error);
  EXPECT_THROW(check_axial_shape(AxialShape{{3, 4}, {5}}, 5), Error);
  EXPECT_THROW(check_axial_shape(AxialShape{{}, {}}, 0), Error);
  EXPECT_THROW(check_axial_shape(AxialShape{{3, 0}, {2, 3}}, 5), Error);
  EXPECT_NO_THROW(check_axial_shape(c.shape, 5));
}

TEST(LearnedPosition, AddsTableRowsAndAccumulatesGradient) {
  const int64_t max_pos = 10, D = 3, B = 2, L = 4, start = 3;
  Vec table = random_vec(max_pos * D, 40);
  const Vec x0 = random_vec(B * L * D, 41);
  Vec x = x0;
  learned_position_forward(x.data(), table.data(), B, L, D, max_pos, start);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t p = 0; p < L; ++p)
      for (int64_t j = 0; j < D; ++j) {
        const int64_t i = (b * L + p) * D + j;
        ASSERT_EQ(x[i], x0[i] + table[(start + p) * D + j]);
      }
  const Vec up = random_vec(B * L * D, 42);
  Vec dtable(max_pos * D, 0.f);
  learned_position_backward(dtable.data(), up.data(), B, L, D, max_pos, start);
  auto loss = [&] {
    x = x0;
    learned_position_forward(x.data(), table.data(), B, L, D, max_pos, start);
    return weighted_sum(x.data(), up.data(), B * L * D);
  };
  EXPECT_GRAD_OK(loss, table.data(), isize(table), dtable.data(), "table");
  EXPECT_THROW(learned_position_forward(x.data(), table.data(), B, L, D, max_pos, 7), Error);
}

// ---------------------------------------------------------------------------------------------
// LayerNorm

TEST(LayerNorm, ForwardMatchesDoubleFormula) {
  const int64_t N = 5, C = 33;
  for (const float eps : {1e-12f, 1e-5f}) {
    Vec x = random_vec(N * C, 50, -3.f, 5.f);
    const Vec w = random_vec(C, 51), b = random_vec(C, 52);
    Vec y(N * C), mean(N), rstd(N), want(N * C), want_mean(N), want_rstd(N);
    layernorm_forward(y.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C, eps);
    for (int64_t i = 0; i < N; ++i) {
      double m = 0, v = 0;
      for (int64_t j = 0; j < C; ++j) m += x[i * C + j];
      m /= C;
      for (int64_t j = 0; j < C; ++j) v += (x[i * C + j] - m) * (x[i * C + j] - m);
      v /= C;
      want_mean[i] = static_cast<float>(m);
      want_rstd[i] = static_cast<float>(1.0 / std::sqrt(v + eps));
      for (int64_t j = 0; j < C; ++j)
        want[i * C + j] = static_cast<float>((x[i * C + j] - m) / std::sqrt(v + eps) * w[j] + b[j]);
    }
    EXPECT_CLOSE(y.data(), want.data(), N * C, kKernelTol, "y");
    EXPECT_CLOSE(mean.data(), want_mean.data(), N, kKernelTol, "mean");
    EXPECT_CLOSE(rstd.data(), want_rstd.data(), N, kKernelTol, "rstd");
    // In place, without saved statistics.
    layernorm_forward(x.data(), nullptr, nullptr, x.data(), w.data(), b.data(), N, C, eps);
    EXPECT_CLOSE(x.data(), want.data(), N * C, kKernelTol, "y in place");
  }
}

TEST(LayerNorm, GradientsMatchFiniteDifferences) {
  const int64_t N = 4, C = 70;  // C > 64: more than one column block for dw/db
  Vec x = random_vec(N * C, 53, -2.f, 2.f), w = random_vec(C, 54), b = random_vec(C, 55);
  const Vec up = random_vec(N * C, 56);
  Vec y(N * C), mean(N), rstd(N);
  auto loss = [&] {
    layernorm_forward(y.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C, 1e-12f);
    return weighted_sum(y.data(), up.data(), N * C);
  };
  loss();
  const float kPrior = 0.25f;
  Vec dx(N * C, 99.f), dw(C, kPrior), db(C, kPrior);
  layernorm_backward(dx.data(), dw.data(), db.data(), up.data(), x.data(), mean.data(), rstd.data(), w.data(), N, C);
  for (float& v : dw) v -= kPrior;
  for (float& v : db) v -= kPrior;
  EXPECT_GRAD_OK(loss, x.data(), isize(x), dx.data(), "x", N * C);
  EXPECT_GRAD_OK(loss, w.data(), isize(w), dw.data(), "w", C);
  EXPECT_GRAD_OK(loss, b.data(), isize(b), db.data(), "b", C);
  // dx may alias dy.
  Vec inplace = up, dw2(C, 0.f), db2(C, 0.f);
  layernorm_backward(inplace.data(), dw2.data(), db2.data(), inplace.data(), x.data(), mean.data(), rstd.data(),
                     w.data(), N, C);
  EXPECT_CLOSE(inplace.data(), dx.data(), N * C, kKernelTol, "dx in place");
  EXPECT_CLOSE(dw2.data(), dw.data(), C, kKernelTol, "dw with aliased dx");
}

// ---------------------------------------------------------------------------------------------
// Activations

namespace {

double activation_reference(double x, Activation act) {
  switch (act) {
    case Activation::Relu: return x > 0 ? x : 0;
    case Activation::Gelu: return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
    case Activation::GeluNew:
      return 0.5 * x * (1 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    case Activation::Silu: return x / (1 + std::exp(-x));
  }
  return NAN;
}

constexpr Activation kAllActivations[] = {Activation::Relu, Activation::Gelu, Activation::GeluNew, Activation::Silu};

}  // namespace

TEST(Activation, ForwardMatchesDoubleFormulas) {
  const int64_t n = 201;
  Vec x(n);
  for (int64_t i = 0; i < n; ++i) x[i] = -6.f + 12.f * i / (n - 1);
  for (const Activation act : kAllActivations) {
    Vec y(n), want(n);
    activation_forward(y.data(), x.data(), n, act);
    for (int64_t i = 0; i < n; ++i) want[i] = static_cast<float>(activation_reference(x[i], act));
    EXPECT_CLOSE(y.data(), want.data(), n, kKernelTol, to_string(act));
  }
}

TEST(Activation, GradientsMatchFiniteDifferences) {
  const int64_t n = 64;
  // Keep inputs a few FD steps away from 0, where ReLU has its kink.
  Vec x = random_vec(n, 60, -3.f, 3.f);
  for (float& v : x) v += v >= 0 ? 5 * kFdStep : -5 * kFdStep;
  const Vec up = random_vec(n, 61);
  for (const Activation act : kAllActivations) {
    Vec y(n), dx(n);
    auto loss = [&] {
      activation_forward(y.data(), x.data(), n, act);
      return weighted_sum(y.data(), up.data(), n);
    };
    activation_backward(dx.data(), up.data(), x.data(), n, act);
    EXPECT_GRAD_OK(loss, x.data(), n, dx.data(), to_string(act), n);
  }
}

TEST(Activation, ParsesHuggingFaceNames) {
  EXPECT_EQ(parse_activation("relu"), Activation::Relu);
  EXPECT_EQ(parse_activation("gelu"), Activation::Gelu);
  EXPECT_EQ(parse_activation("gelu_new"), Activation::GeluNew);
  EXPECT_EQ(parse_activation("silu"), Activation::Silu);
  EXPECT_EQ(parse_activation("swish"), Activation::Silu);
  for (const Activation act : kAllActivations) EXPECT_EQ(parse_activation(to_string(act)), act);
  try {
    parse_activation("tanh");
    FAIL() << "tanh accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'tanh'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("gelu_new"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------------------------------------
// Dropout

TEST(Dropout, KeepRateScaleAndSameMaskInBackward) {
  const int64_t n = 200000;
  const float p = 0.3f;
  const uint64_t seed = 11, stream = hidden_dropout_stream(5, 2, DropoutSite::FeedForwardHidden);
  const Vec x = random_vec(n, 70, 0.5f, 1.5f), dy = random_vec(n, 71, 0.5f, 1.5f);
  Vec y(n), dx(n);
  dropout_forward(y.data(), x.data(), n, p, seed, stream, 1000);
  dropout_backward(dx.data(), dy.data(), n, p, seed, stream, 1000);
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    const bool keep = rng_keep(seed, stream, 1000 + i, p);
    kept += keep;
    ASSERT_EQ(y[i], keep ? x[i] * (1.f / (1.f - p)) : 0.f) << i;
    ASSERT_EQ(dx[i], keep ? dy[i] * (1.f / (1.f - p)) : 0.f) << i;
  }
  // Binomial keep count: within 5 standard deviations of its mean.
  const double mean = n * (1.0 - p), sd = std::sqrt(n * p * (1.0 - p));
  EXPECT_LT(std::fabs(kept - mean), 5 * sd) << "kept " << kept << " of " << n;
}

TEST(Dropout, MaskDependsOnAbsoluteIndexNotOnSplit) {
  const int64_t n = 1000, half = 377;
  const float p = 0.5f;
  const uint64_t stream = hidden_dropout_stream(0, 0, DropoutSite::FeedForwardOutput);
  const Vec x = random_vec(n, 72);
  Vec whole(n), parts = x;
  dropout_forward(whole.data(), x.data(), n, p, 3, stream, 0);
  dropout_forward(parts.data(), parts.data(), half, p, 3, stream, 0);  // in place
  dropout_forward(parts.data() + half, parts.data() + half, n - half, p, 3, stream, half);
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(parts[i], whole[i]) << i;
  // Another site, layer or step draws a different mask.
  Vec other(n);
  dropout_forward(other.data(), x.data(), n, p, 3, hidden_dropout_stream(0, 1, DropoutSite::FeedForwardOutput), 0);
  int64_t differ = 0;
  for (int64_t i = 0; i < n; ++i) differ += (other[i] == 0.f) != (whole[i] == 0.f);
  EXPECT_GT(differ, 0);
}

TEST(Dropout, ZeroProbabilityIsIdentityAndBadProbabilityThrows) {
  const int64_t n = 100;
  const Vec x = random_vec(n, 73);
  Vec y(n, 7.f), dx(n, 7.f);
  dropout_forward(y.data(), x.data(), n, 0.f, 1, 2, 0);
  dropout_backward(dx.data(), x.data(), n, 0.f, 1, 2, 0);
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(y[i], x[i]);
    ASSERT_EQ(dx[i], x[i]);
  }
  Vec z = x;
  dropout_forward(z.data(), z.data(), n, 0.f, 1, 2, 0);
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(z[i], x[i]);
  EXPECT_THROW(dropout_forward(y.data(), x.data(), n, 1.f, 1, 2, 0), Error);
  EXPECT_THROW(dropout_forward(y.data(), x.data(), n, -0.1f, 1, 2, 0), Error);
}

// The fused passes (ops/dropout.h) against element-by-element references built from rng_keep and
// the unfused formulas: the same bits, for unaligned bases (head, groups, tail), the parallel path
// and p = 0.
TEST(Dropout, FusedPassesMatchTheirElementwiseReferences) {
  for (int64_t n : {int64_t{5}, int64_t{1000}, int64_t{200003}})
    for (uint64_t base : {uint64_t{0}, uint64_t{13}})
      for (float p : {0.f, 0.3f}) {
        SCOPED_TRACE(testing::Message() << "n " << n << " base " << base << " p " << p);
        const uint64_t seed = 5, stream = hidden_dropout_stream(2, 1, DropoutSite::FeedForwardHidden);
        const float scale = 1.f / (1.f - p);
        const Vec x = random_vec(n, 80), y0 = random_vec(n, 81), g0 = random_vec(n, 82);  // in [-1, 1]
        auto keep = [&](int64_t i) { return p == 0.f || rng_keep(seed, stream, base + static_cast<uint64_t>(i), p); };
        auto drop = [&](int64_t i, float v) { return keep(i) ? v * scale : 0.f; };
        for (bool subtract : {false, true}) {
          Vec y = y0;
          dropout_add(y.data(), x.data(), n, subtract, p, seed, stream, base);
          for (int64_t i = 0; i < n; ++i)
            ASSERT_EQ(y[i], subtract ? y0[i] - drop(i, x[i]) : y0[i] + drop(i, x[i])) << i;
          Vec out(n, 7.f);  // out of place: y0 is read, not written
          dropout_add(out.data(), x.data(), n, subtract, p, seed, stream, base, y0.data());
          ASSERT_EQ(out, y);
        }
        Vec h = x, a(n), in_place = x;
        dropout_relu_forward(h.data(), a.data(), n, p, seed, stream, base);
        dropout_relu_forward(in_place.data(), in_place.data(), n, p, seed, stream, base);  // a = h
        for (int64_t i = 0; i < n; ++i) {
          const float v = p == 0.f ? x[i] : drop(i, x[i]);
          ASSERT_EQ(h[i], v) << i;
          ASSERT_EQ(a[i], v > 0.f ? v : 0.f) << i;
          ASSERT_EQ(in_place[i], a[i]) << i;
        }
        Vec dh = g0;
        relu_dropout_backward_from_output(dh.data(), h.data(), n, p);
        for (int64_t i = 0; i < n; ++i) {
          const float g = (h[i] > 0.f ? 1.f : 0.f) * g0[i];
          ASSERT_EQ(dh[i], p == 0.f ? g : drop(i, g)) << i;
        }
      }
}

TEST(Dropout, FusedPassesMatchTheUnfusedOps) {
  const int64_t n = 70001;
  const float p = 0.1f;
  const uint64_t seed = 9, stream = 4, base = 77;
  const Vec x = random_vec(n, 83), y0 = random_vec(n, 84), g0 = random_vec(n, 85);
  Vec t(n), want = y0, got = y0;
  dropout_forward(t.data(), x.data(), n, p, seed, stream, base);
  for (int64_t i = 0; i < n; ++i) want[i] -= t[i];
  dropout_add(got.data(), x.data(), n, /*subtract=*/true, p, seed, stream, base);
  EXPECT_EQ(got, want);
  Vec h1 = x, a1(n), h2 = x, a2(n);
  dropout_forward(h1.data(), h1.data(), n, p, seed, stream, base);
  activation_forward(a1.data(), h1.data(), n, Activation::Relu);
  dropout_relu_forward(h2.data(), a2.data(), n, p, seed, stream, base);
  EXPECT_EQ(h1, h2);
  EXPECT_EQ(a1, a2);
  Vec d1 = g0, d2 = g0;
  activation_backward(d1.data(), d1.data(), h1.data(), n, Activation::Relu);
  dropout_backward(d1.data(), d1.data(), n, p, seed, stream, base);
  relu_dropout_backward_from_output(d2.data(), h2.data(), n, p);  // as values: zeros' signs may differ
  EXPECT_EQ(d1, d2);
}

// The passes that save a draw of the mask: the ReLU backward read off dropout's output equals the
// one that draws the mask again (as values: only the sign of zeros may differ, and every nonzero
// gradient has the same bits), and the paired add + backward equals the two ops one after the other.
TEST(Dropout, PassesThatReuseTheMaskMatchThoseThatDrawItAgain) {
  for (float p : {0.f, 0.1f, 0.5f}) {
    SCOPED_TRACE(testing::Message() << "p " << p);
    const int64_t n = 70001;
    const uint64_t seed = 9, stream = 4, base = 77;
    const Vec x = random_vec(n, 86), y0 = random_vec(n, 87), g0 = random_vec(n, 88), w0 = random_vec(n, 89);
    Vec h = x, a(n);
    dropout_relu_forward(h.data(), a.data(), n, p, seed, stream, base);
    Vec drawn = g0, reused = g0;  // drawn: the unfused ops, which draw the mask again
    activation_backward(drawn.data(), drawn.data(), h.data(), n, Activation::Relu);
    dropout_backward(drawn.data(), drawn.data(), n, p, seed, stream, base);
    relu_dropout_backward_from_output(reused.data(), h.data(), n, p);
    int64_t nonzero = 0;
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_EQ(reused[i], drawn[i]) << i;  // -0 == +0
      if (drawn[i] != 0.f) {
        ++nonzero;
        ASSERT_EQ(std::memcmp(&reused[i], &drawn[i], sizeof(float)), 0) << i;
      }
    }
    EXPECT_GT(nonzero, n / 4);  // the case is not vacuous
    for (bool subtract : {false, true}) {
      Vec y1 = y0, dz1(n), y2 = y0, dz2 = w0;
      dropout_add(y1.data(), x.data(), n, subtract, p, seed, stream, base);
      dropout_backward(dz1.data(), w0.data(), n, p, seed, stream, base);
      dropout_add_and_backward(y2.data(), x.data(), dz2.data(), dz2.data(), n, subtract, p, seed, stream, base);  // in place
      EXPECT_EQ(std::memcmp(y1.data(), y2.data(), n * sizeof(float)), 0) << "subtract " << subtract;
      EXPECT_EQ(std::memcmp(dz1.data(), dz2.data(), n * sizeof(float)), 0) << "subtract " << subtract;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Cross-entropy

namespace {

// Naive log-softmax loss in double, HF semantics (ignore_index rows skipped).
CrossEntropyStats cross_entropy_reference(const Vec& logits, const std::vector<int32_t>& t, int64_t V) {
  CrossEntropyStats s;
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i] == kIgnoreIndex) continue;
    const float* row = logits.data() + i * V;
    double z = 0;
    int64_t arg = 0;
    for (int64_t j = 0; j < V; ++j) {
      z += std::exp(static_cast<double>(row[j]));
      if (row[j] > row[arg]) arg = j;
    }
    s.loss_sum += std::log(z) - row[t[i]];
    s.count += 1;
    s.correct += arg == t[i];
  }
  return s;
}

}  // namespace

TEST(CrossEntropy, LossCountAndAccuracyMatchNaiveLogSoftmax) {
  const int64_t N = 6, V = 11;
  Vec logits = random_vec(N * V, 80, -3.f, 3.f);
  std::vector<int32_t> t = {3, kIgnoreIndex, 0, 10, 5, kIgnoreIndex};
  // Make row 0 and row 4 correct predictions.
  logits[0 * V + 3] = 9.f;
  logits[4 * V + 5] = 9.f;
  const CrossEntropyStats got = cross_entropy_forward(logits.data(), t.data(), N, V);
  const CrossEntropyStats want = cross_entropy_reference(logits, t, V);
  EXPECT_EQ(got.count, 4);
  EXPECT_EQ(got.correct, want.correct);
  EXPECT_GE(got.correct, 2);
  EXPECT_NEAR(got.loss_sum, want.loss_sum, kKernelTol.atol + kKernelTol.rtol * std::fabs(want.loss_sum));
}

TEST(CrossEntropy, StableForHugeLogits) {
  const int64_t N = 2, V = 4;
  const Vec logits = {1e4f, 1e4f + 1.f, 1e4f - 2.f, 1e4f, -1e4f, 0.f, 1e4f, 5.f};
  const std::vector<int32_t> t = {1, 0};
  const CrossEntropyStats got = cross_entropy_forward(logits.data(), t.data(), N, V);
  // Row 0: shift-invariant copy of [0, 1, -2, 0]; row 1: the target is 2e4 below the max.
  const double row0 = std::log(2 * std::exp(-1.0) + 1 + std::exp(-3.0));
  const double want = row0 + 2e4;
  EXPECT_TRUE(std::isfinite(got.loss_sum));
  EXPECT_NEAR(got.loss_sum, want, kKernelTol.atol + kKernelTol.rtol * want);
  Vec d(N * V);
  cross_entropy_backward(d.data(), logits.data(), t.data(), N, V, 1.f);
  for (float v : d) EXPECT_TRUE(std::isfinite(v));
}

TEST(CrossEntropy, GradientMatchesFormulaAndFiniteDifferences) {
  const int64_t N = 5, V = 7;
  Vec logits = random_vec(N * V, 81, -2.f, 2.f);
  const std::vector<int32_t> t = {2, kIgnoreIndex, 6, 0, 2};
  const float scale = 1.f / 4;
  Vec d(N * V, 42.f);
  cross_entropy_backward(d.data(), logits.data(), t.data(), N, V, scale);
  Vec want(N * V, 0.f);
  for (int64_t i = 0; i < N; ++i) {
    if (t[i] == kIgnoreIndex) continue;
    double z = 0;
    for (int64_t j = 0; j < V; ++j) z += std::exp(static_cast<double>(logits[i * V + j]));
    for (int64_t j = 0; j < V; ++j)
      want[i * V + j] = static_cast<float>(scale * (std::exp(logits[i * V + j]) / z - (j == t[i])));
  }
  EXPECT_CLOSE(d.data(), want.data(), N * V, kKernelTol, "dlogits");
  auto loss = [&] { return scale * cross_entropy_forward(logits.data(), t.data(), N, V).loss_sum; };
  EXPECT_GRAD_OK(loss, logits.data(), N * V, d.data(), "logits", N * V);
  // In place over the logits.
  Vec inplace = logits;
  cross_entropy_backward(inplace.data(), inplace.data(), t.data(), N, V, scale);
  EXPECT_CLOSE(inplace.data(), d.data(), N * V, kKernelTol, "dlogits in place");
}

// The head's one-pass form: the same loss statistics and gradient bits as the two passes, in place
// too, across enough rows to run on every thread.
TEST(CrossEntropy, ForwardBackwardInOnePassMatchesTheTwoPassesExactly) {
  const int64_t N = 700, V = 97;
  const Vec logits = random_vec(N * V, 82, -6.f, 6.f);
  std::vector<int32_t> t(N);
  for (int64_t i = 0; i < N; ++i) t[i] = i % 9 == 4 ? kIgnoreIndex : static_cast<int32_t>((i * 31) % V);
  const float scale = 1.f / 611;
  const CrossEntropyStats want = cross_entropy_forward(logits.data(), t.data(), N, V);
  Vec want_d(N * V);
  cross_entropy_backward(want_d.data(), logits.data(), t.data(), N, V, scale);
  Vec d(N * V, 42.f);
  const CrossEntropyStats got = cross_entropy_forward_backward(d.data(), logits.data(), t.data(), N, V, scale);
  EXPECT_EQ(got.loss_sum, want.loss_sum);
  EXPECT_EQ(got.count, want.count);
  EXPECT_EQ(got.correct, want.correct);
  EXPECT_EQ(0, std::memcmp(d.data(), want_d.data(), sizeof(float) * N * V));
  // The three share one pass; against an independent naive softmax (libm exp in double), so the
  // comparison above is not its own reference.
  const CrossEntropyStats naive = cross_entropy_reference(logits, t, V);
  EXPECT_EQ(got.count, naive.count);
  EXPECT_EQ(got.correct, naive.correct);
  EXPECT_NEAR(got.loss_sum, naive.loss_sum, kKernelTol.atol + kKernelTol.rtol * std::fabs(naive.loss_sum));
  Vec naive_d(N * V, 0.f);
  for (int64_t i = 0; i < N; ++i) {
    if (t[i] == kIgnoreIndex) continue;
    double mx = logits[i * V], z = 0;
    for (int64_t j = 1; j < V; ++j) mx = std::max(mx, static_cast<double>(logits[i * V + j]));
    for (int64_t j = 0; j < V; ++j) z += std::exp(logits[i * V + j] - mx);
    for (int64_t j = 0; j < V; ++j)
      naive_d[i * V + j] = static_cast<float>(scale * (std::exp(logits[i * V + j] - mx) / z - (j == t[i])));
  }
  EXPECT_CLOSE(d.data(), naive_d.data(), N * V, kKernelTol, "dlogits against the naive softmax");
  Vec inplace = logits;
  const CrossEntropyStats got_inplace =
      cross_entropy_forward_backward(inplace.data(), inplace.data(), t.data(), N, V, scale);
  EXPECT_EQ(got_inplace.loss_sum, want.loss_sum);
  EXPECT_EQ(0, std::memcmp(inplace.data(), want_d.data(), sizeof(float) * N * V));
}

TEST(CrossEntropy, RejectsTargetsOutsideVocabulary) {
  const Vec logits(2 * 3, 0.f);
  const std::vector<int32_t> t = {1, 3};
  try {
    cross_entropy_forward(logits.data(), t.data(), 2, 3);
    FAIL() << "target 3 accepted with V = 3";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("target 3 at row 1"), std::string::npos) << e.what();
  }
  // A custom ignore index is honoured.
  const std::vector<int32_t> t2 = {1, -1};
  EXPECT_EQ(cross_entropy_forward(logits.data(), t2.data(), 2, 3, -1).count, 1);
}

// ---------------------------------------------------------------------------------------------
// Sizes above the OpenMP threshold: the column-block reductions must still equal naive loops.

// The column blocks cover every column once, in multiples of 64 (but the last) no wider than
// kMaxColumnBlock, for any width, with and without enough work to go parallel; and the column sums
// are the same bits whatever the thread count, since each column adds its rows in order.
TEST(ParallelPaths, ColumnBlocksCoverEachColumnOnceAndKeepBitsAcrossThreadCounts) {
  bool called = false;  // no columns: no block (and no division by a zero block width)
  parallel_column_blocks(0, kOmpMinWork, [&](int64_t, int64_t) { called = true; });
  EXPECT_FALSE(called);
  for (int64_t cols : {int64_t{1}, int64_t{64}, int64_t{65}, int64_t{256}, int64_t{320}, int64_t{1100}, int64_t{4096}})
    for (int64_t work : {int64_t{1}, kOmpMinWork})
      for (int threads : {1, 2, 3}) {
        const int saved = omp_get_max_threads();
        omp_set_num_threads(threads);
        std::vector<int> seen(static_cast<size_t>(cols), 0);
        bool ok = true;
        parallel_column_blocks(cols, work, [&](int64_t j0, int64_t j1) {
          if (j1 <= j0 || j1 - j0 > kMaxColumnBlock || (j1 < cols && (j1 - j0) % 64 != 0)) ok = false;
          for (int64_t j = j0; j < j1; ++j) ++seen[static_cast<size_t>(j)];
        });
        omp_set_num_threads(saved);
        EXPECT_TRUE(ok) << "cols " << cols << " threads " << threads;
        for (int64_t j = 0; j < cols; ++j) ASSERT_EQ(seen[static_cast<size_t>(j)], 1) << "column " << j << " of " << cols;
      }
  const int64_t N = 700, C = 1100;
  const Vec x = random_vec(N * C, 93);
  std::vector<Vec> sums;
  for (int threads : {1, 2, 3}) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    Vec s(C, 0.f);
    add_column_sums(s.data(), x.data(), N, C, C);
    omp_set_num_threads(saved);
    sums.push_back(s);
  }
  EXPECT_EQ(std::memcmp(sums[0].data(), sums[1].data(), sizeof(float) * C), 0);
  EXPECT_EQ(std::memcmp(sums[0].data(), sums[2].data(), sizeof(float) * C), 0);
}

// The LayerNorm backward sums its parameter gradients per group of rows fixed by N: dx, dw and db
// are the same bits whatever the thread count (N spans several groups and a ragged last one). This
// catches races and splits that follow the threads; it would rarely see a change of the grouping
// itself, which moves the double partials' sum by ulps that the float result almost never shows.
TEST(ParallelPaths, LayerNormBackwardKeepsBitsAcrossThreadCounts) {
  const int64_t N = 1100, C = 130;
  const Vec dy = random_vec(N * C, 94), x = random_vec(N * C, 95, -2.f, 2.f), w = random_vec(C, 96), b(C, 0.f);
  Vec y(N * C), mean(N), rstd(N);
  layernorm_forward(y.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C, 1e-12f);
  std::vector<Vec> runs;
  for (int threads : {1, 2, 3}) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    Vec dx(N * C), dw(C, 0.5f), db(C, -0.5f);
    layernorm_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), mean.data(), rstd.data(), w.data(), N, C);
    omp_set_num_threads(saved);
    dx.insert(dx.end(), dw.begin(), dw.end());
    dx.insert(dx.end(), db.begin(), db.end());
    runs.push_back(dx);
  }
  EXPECT_EQ(runs[0], runs[1]);
  EXPECT_EQ(runs[0], runs[2]);
}

TEST(ParallelPaths, ColumnReductionsMatchNaiveLoopsOnLargeInputs) {
  const int64_t N = 600, C = 130, V = 17;
  const Vec dy = random_vec(N * C, 90), x = random_vec(N * C, 91, -2.f, 2.f), w = random_vec(C, 92);
  std::vector<int32_t> ids(N);
  for (int64_t i = 0; i < N; ++i) ids[i] = static_cast<int32_t>((i * 7) % V);

  Vec sums(C, 0.f), want_sums(C, 0.f), dtable(V * C, 0.f), want_table(V * C, 0.f);
  add_column_sums(sums.data(), dy.data(), N, C, C);
  embedding_backward(dtable.data(), dy.data(), ids.data(), N, V, C);
  std::vector<double> acc(C, 0.0), tab(V * C, 0.0);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < C; ++j) {
      acc[j] += dy[i * C + j];
      tab[ids[i] * C + j] += dy[i * C + j];
    }
  for (int64_t j = 0; j < C; ++j) want_sums[j] = static_cast<float>(acc[j]);
  for (int64_t k = 0; k < V * C; ++k) want_table[k] = static_cast<float>(tab[k]);
  EXPECT_CLOSE(sums.data(), want_sums.data(), C, kKernelTol, "column sums");
  EXPECT_CLOSE(dtable.data(), want_table.data(), V * C, kKernelTol, "dtable");

  // LayerNorm dw = sum_i dy * xhat, db = sum_i dy.
  Vec y(N * C), mean(N), rstd(N), dx(N * C), dw(C, 0.f), db(C, 0.f), b(C, 0.f);
  layernorm_forward(y.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C, 1e-12f);
  layernorm_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), mean.data(), rstd.data(), w.data(), N, C);
  Vec want_dw(C);
  for (int64_t j = 0; j < C; ++j) {
    double s = 0;
    for (int64_t i = 0; i < N; ++i) s += static_cast<double>(dy[i * C + j]) * (x[i * C + j] - mean[i]) * rstd[i];
    want_dw[j] = static_cast<float>(s);
  }
  EXPECT_CLOSE(dw.data(), want_dw.data(), C, kKernelTol, "layernorm dw");
  EXPECT_CLOSE(db.data(), want_sums.data(), C, kKernelTol, "layernorm db");
}
