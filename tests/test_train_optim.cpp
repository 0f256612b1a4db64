// Training, model-independent: Adam vs hand-written double formulas, Adafactor vs a naive double
// implementation, both minimizing a quadratic, optimizer state save/load, gradient clipping,
// learning-rate schedules, and the errors of each.
#include <gtest/gtest.h>

#include "support/expect_error.h"

#include <cmath>
#include <string>
#include <vector>

#include "reformer/error.h"
#include "support/gradcheck.h"
#include "support/tolerance.h"
#include "train/adafactor.h"
#include "train/adam.h"
#include "train/grad_clip.h"
#include "train/make_optimizer.h"
#include "train/schedule.h"

using namespace reformer;
using reformer::test::kKernelTol;

namespace {

using test::expect_error;

// A parameter owned by the test.
struct TestParam {
  std::string name;
  Shape shape;
  std::vector<float> w, g;
  TestParam(std::string n, Shape s, uint64_t seed) : name(std::move(n)), shape(std::move(s)) {
    w.resize(shape_numel(shape));
    g.resize(w.size());
    test::fill_uniform(w.data(), shape_numel(shape), seed);
  }
};

std::vector<ParamRef> refs(std::vector<TestParam>& ps) {
  std::vector<ParamRef> out;
  for (TestParam& p : ps) out.push_back({p.name, p.w.data(), p.g.data(), p.shape});
  return out;
}

std::vector<float> to_float(const std::vector<double>& x) { return std::vector<float>(x.begin(), x.end()); }

// Adafactor for one parameter, in double, straight from the formulas in train/adafactor.h.
struct NaiveAdafactor {
  AdafactorConfig c;
  std::vector<double> v_row, v_col, v, m;

  void step(std::vector<double>& w, const std::vector<double>& g, const Shape& shape, double lr, int64_t t) {
    const size_t n = w.size();
    const double decay = 1.0 - std::pow(static_cast<double>(t), -static_cast<double>(c.decay_rate));
    std::vector<double> y(n);
    if (shape.size() >= 2) {
      const size_t rows = shape[shape.size() - 2], cols = shape.back(), mats = n / (rows * cols);
      v_row.resize(mats * rows);
      v_col.resize(mats * cols);
      for (size_t b = 0; b < mats; ++b) {
        auto G = [&](size_t i, size_t j) { return g[(b * rows + i) * cols + j] * g[(b * rows + i) * cols + j] + c.epsilon1; };
        double row_mean = 0;
        for (size_t i = 0; i < rows; ++i) {
          double s = 0;
          for (size_t j = 0; j < cols; ++j) s += G(i, j);
          v_row[b * rows + i] = decay * v_row[b * rows + i] + (1 - decay) * s / cols;
          row_mean += v_row[b * rows + i] / rows;
        }
        for (size_t j = 0; j < cols; ++j) {
          double s = 0;
          for (size_t i = 0; i < rows; ++i) s += G(i, j);
          v_col[b * cols + j] = decay * v_col[b * cols + j] + (1 - decay) * s / rows;
        }
        for (size_t i = 0; i < rows; ++i)
          for (size_t j = 0; j < cols; ++j) {
            const size_t k = (b * rows + i) * cols + j;
            y[k] = g[k] / std::sqrt(v_row[b * rows + i] / row_mean * v_col[b * cols + j]);
          }
      }
    } else {
      v.resize(n);
      for (size_t i = 0; i < n; ++i) {
        v[i] = decay * v[i] + (1 - decay) * (g[i] * g[i] + c.epsilon1);
        y[i] = g[i] / std::sqrt(v[i]);
      }
    }
    double y_ms = 0, w_ms = 0;
    for (size_t i = 0; i < n; ++i) {
      y_ms += y[i] * y[i] / n;
      w_ms += w[i] * w[i] / n;
    }
    const double clip = std::max(1.0, std::sqrt(y_ms) / c.clipping_threshold);
    const double scale = lr * std::max(static_cast<double>(c.epsilon2), std::sqrt(w_ms));
    m.resize(n);
    for (size_t i = 0; i < n; ++i) {
      double u = scale * y[i] / clip;
      if (c.beta1 > 0) u = m[i] = c.beta1 * m[i] + (1 - c.beta1) * u;
      w[i] = (1 - c.weight_decay) * w[i] - u;
    }
  }
};

void check_adafactor_against_naive(const AdafactorConfig& config) {
  // The last two are big enough for the threaded paths (columns not a multiple of the block).
  std::vector<TestParam> ps = {{"w2d", {5, 7}, 1},       {"b1d", {6}, 2},         {"w3d", {2, 3, 4}, 3},
                               {"big2d", {200, 170}, 4}, {"big1d", {40000}, 5}};
  std::vector<NaiveAdafactor> naive(ps.size(), NaiveAdafactor{config, {}, {}, {}, {}});
  std::vector<std::vector<double>> w;
  for (TestParam& p : ps) w.emplace_back(p.w.begin(), p.w.end());
  Adafactor opt(refs(ps), config);
  const float lrs[] = {0.5f, 0.05f, 0.3f, 0.1f};
  for (int t = 1; t <= 4; ++t) {
    for (size_t k = 0; k < ps.size(); ++k) {
      // Gradients of mixed scale, so the clipping and the factored row/column factors matter.
      test::fill_uniform(ps[k].g.data(), ps[k].g.size(), 100 * t + k, -1.f, 1.f);
      ps[k].g[0] *= 20.f;
      naive[k].step(w[k], std::vector<double>(ps[k].g.begin(), ps[k].g.end()), ps[k].shape, lrs[t - 1], t);
    }
    opt.step(refs(ps), lrs[t - 1]);
    for (size_t k = 0; k < ps.size(); ++k)
      EXPECT_CLOSE(ps[k].w.data(), to_float(w[k]).data(), ps[k].w.size(), kKernelTol,
                   ps[k].name + " after step " + std::to_string(t));
  }
  EXPECT_EQ(opt.steps_taken(), 4);
  for (const NamedState& s : opt.state()) {
    if (s.name == "adafactor.v_row.w2d") EXPECT_CLOSE(s.data, to_float(naive[0].v_row).data(), 5, kKernelTol, s.name);
    if (s.name == "adafactor.v_col.w3d") EXPECT_CLOSE(s.data, to_float(naive[2].v_col).data(), 8, kKernelTol, s.name);
    if (s.name == "adafactor.v.b1d") EXPECT_CLOSE(s.data, to_float(naive[1].v).data(), 6, kKernelTol, s.name);
  }
}

// 0.5 * sum a_i (w_i - c_i)^2 over all parameters; writes the gradient.
double quadratic(std::vector<TestParam>& ps) {
  double loss = 0;
  for (TestParam& p : ps)
    for (size_t i = 0; i < p.w.size(); ++i) {
      const double a = 1.0 + static_cast<double>(i % 5), c = 0.5 * std::sin(static_cast<double>(i));
      loss += 0.5 * a * (p.w[i] - c) * (p.w[i] - c);
      p.g[i] = static_cast<float>(a * (p.w[i] - c));
    }
  return loss;
}

double minimize(Optimizer& opt, std::vector<TestParam>& ps, float lr, int steps) {
  for (int t = 0; t < steps; ++t) {
    quadratic(ps);
    opt.step(refs(ps), lr);
  }
  return quadratic(ps);
}

}  // namespace

TEST(Adam, TwoStepsMatchHandComputedDouble) {
  std::vector<TestParam> ps = {{"w", {2, 2}, 7}};
  const std::vector<double> w0(ps[0].w.begin(), ps[0].w.end());
  const double g[2][4] = {{0.1, -0.2, 3.0, 0.0}, {-0.3, 0.05, 2.0, 1e-4}};
  const double lr[2] = {0.01, 0.02}, b1 = 0.8, b2 = 0.95, eps = 1e-6, wd = 0.1;
  Adam opt(refs(ps), {static_cast<float>(b1), static_cast<float>(b2), static_cast<float>(eps), static_cast<float>(wd)});
  for (int t = 0; t < 2; ++t) {
    for (int i = 0; i < 4; ++i) ps[0].g[i] = static_cast<float>(g[t][i]);
    opt.step(refs(ps), static_cast<float>(lr[t]));
  }
  std::vector<double> want(4);
  for (int i = 0; i < 4; ++i) {
    const double m1 = (1 - b1) * g[0][i], v1 = (1 - b2) * g[0][i] * g[0][i];
    const double w1 = (1 - wd) * w0[i] - lr[0] * (m1 / (1 - b1)) / (std::sqrt(v1 / (1 - b2)) + eps);
    const double m2 = b1 * m1 + (1 - b1) * g[1][i], v2 = b2 * v1 + (1 - b2) * g[1][i] * g[1][i];
    want[i] = (1 - wd) * w1 - lr[1] * (m2 / (1 - b1 * b1)) / (std::sqrt(v2 / (1 - b2 * b2)) + eps);
  }
  EXPECT_CLOSE(ps[0].w.data(), to_float(want).data(), 4, kKernelTol, "adam weights");
  EXPECT_EQ(opt.steps_taken(), 2);
}

TEST(Adam, DefaultsAreTheTraxEnwik8Preset) {
  const AdamConfig c;
  EXPECT_EQ(c.b1, 0.9f);
  EXPECT_EQ(c.b2, 0.98f);
  EXPECT_EQ(c.eps, 1e-9f);
  EXPECT_EQ(c.weight_decay, 0.f);
}

TEST(Adafactor, MatchesNaiveDoubleImplementation) { check_adafactor_against_naive({}); }

TEST(Adafactor, MatchesNaiveWithMomentumAndWeightDecay) {
  AdafactorConfig c;
  c.beta1 = 0.9f;
  c.weight_decay = 1e-2f;
  c.clipping_threshold = 2.f;
  check_adafactor_against_naive(c);
}

TEST(Adafactor, StateIsFactoredForMatrices) {
  std::vector<TestParam> ps = {{"w", {2, 3, 4}, 1}, {"b", {4}, 2}};
  Adafactor opt(refs(ps));
  const std::vector<NamedState> s = opt.state();
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].name, "adafactor.v_row.w");
  EXPECT_EQ(s[0].shape, (Shape{2, 3}));
  EXPECT_EQ(s[1].name, "adafactor.v_col.w");
  EXPECT_EQ(s[1].shape, (Shape{2, 4}));
  EXPECT_EQ(s[2].name, "adafactor.v.b");
  EXPECT_EQ(s[2].shape, (Shape{4}));
}

TEST(Optimizers, MinimizeAQuadratic) {
  for (const char* spec : {"adam", "adafactor", "adafactor:beta1=0.9"}) {
    std::vector<TestParam> ps = {{"w", {4, 6}, 11}, {"b", {6}, 12}};
    const double start = quadratic(ps);
    auto opt = make_optimizer(spec, refs(ps));
    const double end = minimize(*opt, ps, 0.05f, 300);
    EXPECT_LT(end, 1e-3 * start) << spec << ": loss " << start << " -> " << end;
  }
}

TEST(Optimizers, StateAllocatedOnceUnderOptimizerState) {
  std::vector<TestParam> ps = {{"w", {8, 16}, 1}, {"b", {16}, 2}};
  const int64_t before = mem_stats().live_of(MemCategory::OptimizerState);
  Adam adam(refs(ps));
  EXPECT_EQ(mem_stats().live_of(MemCategory::OptimizerState) - before, 2 * (8 * 16 + 16) * 4);
  const int64_t allocations = mem_stats().allocations;
  quadratic(ps);
  adam.step(refs(ps), 0.1f);
  EXPECT_EQ(mem_stats().allocations, allocations) << "step() must not allocate";
}

TEST(Optimizers, SavedStateResumesBitIdentically) {
  for (const char* spec : {"adam", "adafactor:beta1=0.5"}) {
    std::vector<TestParam> ps = {{"w", {3, 5}, 21}, {"b", {5}, 22}};
    auto a = make_optimizer(spec, refs(ps));
    minimize(*a, ps, 0.05f, 3);
    std::vector<TestParam> copy = ps;
    auto b = make_optimizer(spec, refs(copy));
    b->load_state(a->steps_taken(), a->state());
    EXPECT_EQ(b->steps_taken(), 3);
    minimize(*a, ps, 0.05f, 2);
    minimize(*b, copy, 0.05f, 2);
    for (size_t k = 0; k < ps.size(); ++k) EXPECT_EQ(ps[k].w, copy[k].w) << spec << " " << ps[k].name;
  }
}

TEST(Optimizers, LoadStateRejectsMismatchedCheckpoints) {
  std::vector<TestParam> ps = {{"w", {3, 5}, 1}};
  std::vector<TestParam> other = {{"w", {5, 3}, 1}};
  Adam a(refs(ps)), b(refs(other));
  expect_error([&] { a.load_state(1, b.state()); }, "has shape (5, 3)");
  Adafactor f(refs(ps));
  expect_error([&] { a.load_state(1, f.state()); }, "another optimizer");
  std::vector<NamedState> renamed = a.state();
  renamed[0].name = "adam.m.x";
  expect_error([&] { a.load_state(1, renamed); }, "'adam.m.w' is missing");
  expect_error([&] { a.load_state(-1, a.state()); }, "negative step counter -1");
}

TEST(Optimizers, StepRejectsAnotherParameterList) {
  std::vector<TestParam> ps = {{"w", {3, 5}, 1}};
  std::vector<TestParam> other = {{"v", {3, 5}, 1}};
  Adam a(refs(ps));
  expect_error([&] { a.step(refs(other), 0.1f); }, "parameter 0 is 'v'");
  expect_error([&] { a.step({}, 0.1f); }, "got 0 parameters");
  std::vector<TestParam> twice = {{"w", {2}, 1}, {"w", {2}, 2}};
  expect_error([&] { Adam bad(refs(twice)); }, "'w' appears twice");
}

TEST(Optimizers, FactoryNamesAndErrors) {
  std::vector<TestParam> ps = {{"w", {3, 5}, 1}};
  EXPECT_EQ(make_optimizer("adam", refs(ps))->name(), "adam");
  EXPECT_EQ(make_optimizer("adafactor:beta1=0.9", refs(ps))->state().size(), 3u);  // v_row, v_col, m
  EXPECT_EQ(make_optimizer("adafactor:factored=0", refs(ps))->state().size(), 1u);
  expect_error([&] { make_optimizer("sgd", refs(ps)); }, "unknown optimizer 'sgd'");
  expect_error([&] { make_optimizer("adam:beta2=0.9", refs(ps)); }, "b1, b2, eps, weight_decay");
  expect_error([&] { make_optimizer("adam:b2=x", refs(ps)); }, "'x' of b2");
  expect_error([&] { make_optimizer("adam:b2=1", refs(ps)); }, "b2 = 1 must be in [0, 1)");
  expect_error([&] { make_optimizer("adam:b2", refs(ps)); }, "expected key=value");
  expect_error([&] { make_optimizer("adafactor:factored=2", refs(ps)); }, "must be 0, 1");
  expect_error([&] { make_optimizer("adafactor:decay_rate=0", refs(ps)); }, "decay_rate = 0");
}

TEST(GradClip, ScalesToMaxNormAndReturnsTheNormBefore) {
  std::vector<TestParam> ps = {{"a", {1}, 1}, {"b", {1}, 2}};
  ps[0].g = {3.f};
  ps[1].g = {4.f};
  EXPECT_DOUBLE_EQ(clip_grad_norm(refs(ps), 1.0), 5.0);
  const float want[2] = {0.6f, 0.8f};
  const float got[2] = {ps[0].g[0], ps[1].g[0]};
  EXPECT_CLOSE(got, want, 2, kKernelTol, "clipped gradients");
  EXPECT_NEAR(grad_norm(refs(ps)), 1.0, kKernelTol.atol);
  EXPECT_NEAR(clip_grad_norm(refs(ps), 10.0), 1.0, kKernelTol.atol);  // below: untouched
  EXPECT_EQ(ps[1].g[0], 0.8f);
  ps[0].g = {NAN};
  EXPECT_TRUE(std::isnan(clip_grad_norm(refs(ps), 1.0)));
  EXPECT_EQ(ps[1].g[0], 0.8f);
  expect_error([&] { clip_grad_norm(refs(ps), 0.0); }, "clipping norm 0 must be positive");
}

TEST(Schedule, RsqrtIsTheTraxEnwik8Preset) {
  const Schedule s = parse_schedule("rsqrt");
  EXPECT_DOUBLE_EQ(learning_rate(s, 1), 0.03125 / 2000 / std::sqrt(2000.0));
  EXPECT_DOUBLE_EQ(learning_rate(s, 1000), 0.03125 * 0.5 / std::sqrt(2000.0));
  EXPECT_NEAR(learning_rate(s, 2000), 6.99e-4, 5e-7);  // spec 8.2: peak 6.99e-4 at step 2000
  EXPECT_DOUBLE_EQ(learning_rate(s, 8000), 0.03125 / std::sqrt(8000.0));
  const Schedule copy = parse_schedule("rsqrt:constant=0.05,warmup=4000");
  EXPECT_DOUBLE_EQ(learning_rate(copy, 16000), 0.05 / std::sqrt(16000.0));
}

TEST(Schedule, CosineWarmsUpThenDecaysToTheFloor) {
  const Schedule s = parse_schedule("cosine:constant=0.01,warmup=100,steps=1100,final=0.1");
  EXPECT_DOUBLE_EQ(learning_rate(s, 50), 0.005);
  EXPECT_DOUBLE_EQ(learning_rate(s, 100), 0.01);
  EXPECT_DOUBLE_EQ(learning_rate(s, 600), 0.01 * (0.1 + 0.9 * 0.5));
  EXPECT_DOUBLE_EQ(learning_rate(s, 1100), 0.001);
  EXPECT_DOUBLE_EQ(learning_rate(s, 5000), 0.001);
}

TEST(Schedule, ConstantWithAndWithoutWarmup) {
  EXPECT_DOUBLE_EQ(learning_rate(parse_schedule("constant:constant=1e-4"), 1), 1e-4);
  const Schedule s = parse_schedule("constant:constant=1e-4,warmup=10");
  EXPECT_DOUBLE_EQ(learning_rate(s, 5), 5e-5);
  EXPECT_DOUBLE_EQ(learning_rate(s, 50), 1e-4);
}

TEST(Schedule, ClearErrors) {
  expect_error([] { parse_schedule("linear"); }, "unknown learning-rate schedule 'linear'");
  expect_error([] { parse_schedule("cosine:warmup=10,steps=100"); }, "needs the peak rate");
  expect_error([] { parse_schedule("cosine:constant=1,warmup=100,steps=100"); }, "steps = 100 must exceed warmup = 100");
  expect_error([] { parse_schedule("cosine:constant=1"); }, "needs steps=N");
  expect_error([] { parse_schedule("cosine:constant=1,steps=10,final=2"); }, "final = 2");
  expect_error([] { parse_schedule("rsqrt:warmup=-5"); }, "warmup = -5");
  expect_error([] { parse_schedule("rsqrt:warmup=0"); }, "warmup >= 1");
  expect_error([] { parse_schedule("rsqrt:constant=0"); }, "constant 0 must be a positive");
  expect_error([] { parse_schedule("rsqrt:steps=10"); }, "rsqrt takes: constant, warmup");
  expect_error([] { learning_rate(parse_schedule("rsqrt"), 0); }, "step 0 must be >= 1");
}
