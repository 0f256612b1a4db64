// Feed-forward branch: forward vs a naive double-precision composition (with the same dropout
// masks), chunked vs unchunked (incl. a ragged last chunk), finite-difference gradients of every
// input and parameter with and without dropout, and workspace reuse.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "layers/feed_forward.h"
#include "ops/dropout.h"
#include "reformer/error.h"
#include "reformer/memory.h"
#include "reformer/rng.h"
#include "support/gradcheck.h"
#include "support/tolerance.h"

using namespace reformer;
using namespace reformer::test;

namespace {

using Vec = std::vector<float>;
constexpr int64_t D = 8, F = 12, kRows = 14;  // e.g. B = 2, L = 7
constexpr float kEps = 1e-12f;

Vec random_vec(int64_t n, uint64_t seed, float lo = -1.f, float hi = 1.f) {
  Vec v(n);
  fill_uniform(v.data(), n, seed, lo, hi);
  return v;
}

// Parameters and their gradients, HF shapes.
struct Params {
  Vec ln_w = random_vec(D, 1, 0.5f, 1.5f), ln_b = random_vec(D, 2), w1 = random_vec(F * D, 3), b1 = random_vec(F, 4),
      w2 = random_vec(D * F, 5), b2 = random_vec(D, 6);
  Vec g_ln_w = Vec(D, 0.f), g_ln_b = Vec(D, 0.f), g_w1 = Vec(F * D, 0.f), g_b1 = Vec(F, 0.f), g_w2 = Vec(D * F, 0.f),
      g_b2 = Vec(D, 0.f);
  FeedForwardWeights weights() const {
    return {ln_w.data(), ln_b.data(), w1.data(), b1.data(), w2.data(), b2.data()};
  }
  FeedForwardGrads grads() {
    return {g_ln_w.data(), g_ln_b.data(), g_w1.data(), g_b1.data(), g_w2.data(), g_b2.data()};
  }
  std::vector<Vec*> all_grads() { return {&g_ln_w, &g_ln_b, &g_w1, &g_b1, &g_w2, &g_b2}; }
};

FeedForwardCall make_call(bool training, float dropout) {
  FeedForwardCall call;
  call.rows = kRows;
  call.training = training;
  call.dropout = dropout;
  call.seed = 1234;
  call.step = 7;
  call.layer = 3;
  return call;
}

double gelu_new(double x) { return 0.5 * x * (1 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x))); }

// Row-by-row composition in double, dropout masks drawn directly from the documented key.
Vec reference_forward(const Params& P, const Vec& x, const FeedForwardCall& call) {
  const float p = call.training ? call.dropout : 0.f;
  const double keep_scale = 1.0 / (1.0 - p);
  const uint64_t s_hidden = hidden_dropout_stream(call.step, call.layer, DropoutSite::FeedForwardHidden);
  const uint64_t s_out = hidden_dropout_stream(call.step, call.layer, DropoutSite::FeedForwardOutput);
  auto mask = [&](uint64_t stream, uint64_t index) {
    return p == 0.f ? 1.0 : (rng_keep(call.seed, stream, index, p) ? keep_scale : 0.0);
  };
  Vec out(call.rows * D);
  for (int64_t r = 0; r < call.rows; ++r) {
    const float* xr = x.data() + r * D;
    double mean = 0, var = 0;
    for (int64_t j = 0; j < D; ++j) mean += xr[j];
    mean /= D;
    for (int64_t j = 0; j < D; ++j) var += (xr[j] - mean) * (xr[j] - mean);
    var /= D;
    std::vector<double> xn(D), a(F);
    for (int64_t j = 0; j < D; ++j) xn[j] = (xr[j] - mean) / std::sqrt(var + kEps) * P.ln_w[j] + P.ln_b[j];
    for (int64_t f = 0; f < F; ++f) {
      double h = P.b1[f];
      for (int64_t j = 0; j < D; ++j) h += P.w1[f * D + j] * xn[j];
      a[f] = gelu_new(h * mask(s_hidden, r * F + f));
    }
    for (int64_t j = 0; j < D; ++j) {
      double o = P.b2[j];
      for (int64_t f = 0; f < F; ++f) o += P.w2[j * F + f] * a[f];
      out[r * D + j] = static_cast<float>(o * mask(s_out, r * D + j));
    }
  }
  return out;
}

struct Result {
  Vec out, recomputed, dx;
  std::vector<Vec> grads;
};

Result run(int64_t chunk, const Vec& x, const Vec& dout, const FeedForwardCall& call, Activation act) {
  Params P;
  FeedForward ff(D, F, act, kEps, chunk, P.weights(), P.grads());
  Result r{Vec(kRows * D), Vec(kRows * D), Vec(kRows * D), {}};
  ff.forward(r.out.data(), x.data(), call);
  ff.backward(r.dx.data(), r.recomputed.data(), dout.data(), x.data(), call);
  for (Vec* g : P.all_grads()) r.grads.push_back(*g);
  return r;
}

}  // namespace

TEST(FeedForward, ForwardMatchesNaiveCompositionWithDropout) {
  const Vec x = random_vec(kRows * D, 10, -2.f, 2.f);
  for (const auto& [training, p] : std::vector<std::pair<bool, float>>{{false, 0.f}, {true, 0.3f}, {false, 0.3f}}) {
    Params P;
    FeedForward ff(D, F, Activation::GeluNew, kEps, 0, P.weights(), P.grads());
    const FeedForwardCall call = make_call(training, p);
    Vec out(kRows * D);
    ff.forward(out.data(), x.data(), call);
    const Vec want = reference_forward(P, x, call);
    EXPECT_CLOSE(out.data(), want.data(), kRows * D, kKernelTol, training ? "out (training)" : "out (eval)");
  }
}

TEST(FeedForward, ChunkedEqualsUnchunked) {
  const Vec x = random_vec(kRows * D, 11, -2.f, 2.f), dout = random_vec(kRows * D, 12);
  const FeedForwardCall call = make_call(true, 0.25f);
  const Result whole = run(0, x, dout, call, Activation::Relu);
  // Dividing and not dividing the 14 rows, and larger than the row count.
  for (const int64_t chunk : {1, 3, 5, 7, 14, 20}) {
    SCOPED_TRACE("chunk " + std::to_string(chunk));
    const Result r = run(chunk, x, dout, call, Activation::Relu);
    EXPECT_CLOSE(r.out.data(), whole.out.data(), kRows * D, kPathTol, "out");
    EXPECT_CLOSE(r.recomputed.data(), whole.out.data(), kRows * D, kPathTol, "recomputed out");
    EXPECT_CLOSE(r.dx.data(), whole.dx.data(), kRows * D, kPathTol, "dx");
    for (size_t k = 0; k < r.grads.size(); ++k)
      EXPECT_CLOSE(r.grads[k].data(), whole.grads[k].data(), static_cast<int64_t>(r.grads[k].size()), kPathTol,
                   "param grad " + std::to_string(k));
  }
}

TEST(FeedForward, BackwardRecomputesTheForwardExactly) {
  const Vec x = random_vec(kRows * D, 13, -2.f, 2.f), dout = random_vec(kRows * D, 14);
  const Result r = run(4, x, dout, make_call(true, 0.4f), Activation::Gelu);
  for (int64_t i = 0; i < kRows * D; ++i) ASSERT_EQ(r.recomputed[i], r.out[i]) << i;
}

TEST(FeedForward, GradientsMatchFiniteDifferences) {
  // ReLU is left out: its kink makes central differences unreliable; its derivative is tested in
  // test_ops and the layer's wiring is the same for every activation.
  for (const Activation act : {Activation::Gelu, Activation::GeluNew, Activation::Silu}) {
    for (const float p : {0.f, 0.3f}) {
      SCOPED_TRACE(std::string(to_string(act)) + " dropout " + std::to_string(p));
      Params P;
      FeedForward ff(D, F, act, kEps, 5, P.weights(), P.grads());
      const FeedForwardCall call = make_call(true, p);
      Vec x = random_vec(kRows * D, 15, -2.f, 2.f);
      const Vec up = random_vec(kRows * D, 16);
      Vec out(kRows * D), dx(kRows * D, 77.f);
      auto loss = [&] {
        ff.forward(out.data(), x.data(), call);
        return weighted_sum(out.data(), up.data(), kRows * D);
      };
      ff.backward(dx.data(), nullptr, up.data(), x.data(), call);
      EXPECT_GRAD_OK(loss, x.data(), kRows * D, dx.data(), "x");
      EXPECT_GRAD_OK(loss, P.ln_w.data(), D, P.g_ln_w.data(), "ln_w");
      EXPECT_GRAD_OK(loss, P.ln_b.data(), D, P.g_ln_b.data(), "ln_b");
      EXPECT_GRAD_OK(loss, P.w1.data(), F * D, P.g_w1.data(), "w1");
      EXPECT_GRAD_OK(loss, P.b1.data(), F, P.g_b1.data(), "b1");
      EXPECT_GRAD_OK(loss, P.w2.data(), D * F, P.g_w2.data(), "w2");
      EXPECT_GRAD_OK(loss, P.b2.data(), D, P.g_b2.data(), "b2");
    }
  }
}

TEST(FeedForward, WeightGradientsAccumulateAcrossCalls) {
  const Vec x = random_vec(kRows * D, 17, -2.f, 2.f), dout = random_vec(kRows * D, 18);
  const FeedForwardCall call = make_call(false, 0.f);
  Params P;
  FeedForward ff(D, F, Activation::GeluNew, kEps, 3, P.weights(), P.grads());
  Vec dx(kRows * D);
  ff.backward(dx.data(), nullptr, dout.data(), x.data(), call);
  const Vec once = P.g_w1;
  ff.backward(dx.data(), nullptr, dout.data(), x.data(), call);
  Vec twice = once;
  for (float& v : twice) v *= 2;
  EXPECT_CLOSE(P.g_w1.data(), twice.data(), F * D, kKernelTol, "w1 grad after two backwards");
}

TEST(FeedForward, WorkspaceIsPerChunkAndReused) {
  const Vec x = random_vec(kRows * D, 19), dout = random_vec(kRows * D, 20);
  const FeedForwardCall call = make_call(true, 0.1f);
  Params P;
  const int64_t chunk = 5;
  FeedForward ff(D, F, Activation::Silu, kEps, chunk, P.weights(), P.grads());
  Vec out(kRows * D), dx(kRows * D);
  ff.forward(out.data(), x.data(), call);
  ff.backward(dx.data(), out.data(), dout.data(), x.data(), call);
  // xn, dout: chunk x D; mean, rstd: chunk; h, a, dh: chunk x F.
  EXPECT_EQ(ff.workspace_bytes(), static_cast<int64_t>(sizeof(float)) * chunk * (2 * D + 2 + 3 * F));
  const int64_t allocs = mem_stats().allocations;
  ff.forward(out.data(), x.data(), call);
  ff.backward(dx.data(), out.data(), dout.data(), x.data(), call);
  EXPECT_EQ(mem_stats().allocations, allocs) << "steady-state calls must not allocate";
}

// Whatever chunk_size_feed_forward allows (0 = no limit, or more rows than the block), a chunk holds
// at most kFeedForwardBlockRows rows: the workspace is that many rows, and the forward's output and
// input gradient are the unchunked ones bit for bit (rows are independent).
TEST(FeedForward, ChunksStopAtTheBlockRowsWhateverTheConfigAllows) {
  const int64_t rows = kFeedForwardBlockRows + 37;  // a ragged second block
  const Vec x = random_vec(rows * D, 21), dout = random_vec(rows * D, 22);
  FeedForwardCall call = make_call(true, 0.1f);
  call.rows = rows;
  std::vector<Vec> outs, dxs;
  for (int64_t chunk : {int64_t{0}, int64_t{4096}, kFeedForwardBlockRows}) {
    SCOPED_TRACE(chunk);
    Params P;
    FeedForward ff(D, F, Activation::Silu, kEps, chunk, P.weights(), P.grads());
    Vec out(rows * D), dx(rows * D);
    ff.forward(out.data(), x.data(), call);
    ff.backward(dx.data(), out.data(), dout.data(), x.data(), call);
    EXPECT_EQ(ff.workspace_bytes(), static_cast<int64_t>(sizeof(float)) * kFeedForwardBlockRows * (2 * D + 2 + 3 * F));
    outs.push_back(out);
    dxs.push_back(dx);
  }
  EXPECT_EQ(outs[0], outs[1]);
  EXPECT_EQ(outs[0], outs[2]);
  EXPECT_EQ(dxs[0], dxs[1]);
  EXPECT_EQ(dxs[0], dxs[2]);
  EXPECT_EQ(feed_forward_block_rows(0, 100), 100);
  EXPECT_EQ(feed_forward_block_rows(64, 100), 64);
  EXPECT_EQ(feed_forward_block_rows(0, 5000), kFeedForwardBlockRows);
}

TEST(FeedForward, RejectsBadConfiguration) {
  Params P;
  EXPECT_THROW(FeedForward(D, F, Activation::Relu, kEps, -1, P.weights(), P.grads()), Error);
  EXPECT_THROW(FeedForward(0, F, Activation::Relu, kEps, 0, P.weights(), P.grads()), Error);
  FeedForward inference(D, F, Activation::Relu, kEps, 0, P.weights(), FeedForwardGrads{});
  const Vec x = random_vec(kRows * D, 21);
  Vec out(kRows * D), dx(kRows * D);
  inference.forward(out.data(), x.data(), make_call(false, 0.f));
  EXPECT_THROW(inference.backward(dx.data(), nullptr, out.data(), x.data(), make_call(false, 0.f)), Error);
}
