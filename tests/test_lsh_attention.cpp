// LSH self-attention (spec section 1): hashing and sorting kernels against naive versions, the
// layer's forward against a slow double-precision reference, finite-difference gradients of the
// whole layer, the short-sequence path, errors, and linear memory in L.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <numeric>
#include <vector>

#include "kernels/cpu/lsh_hash.h"
#include "kernels/cpu/lsh_sort.h"
#include "layers/lsh_attention.h"
#include "layers/lsh_key.h"
#include "reformer/memory.h"
#include "reformer/rng.h"
#include "support/gradcheck.h"
#include "support/lsh_reference.h"
#include "support/tolerance.h"

using namespace reformer;
using reformer::test::fill_uniform;

namespace {

std::vector<float> uniform(int64_t n, uint64_t seed, float lo = -1.f, float hi = 1.f) {
  std::vector<float> v(n);
  fill_uniform(v.data(), n, seed, lo, hi);
  return v;
}

std::vector<float> normal(int64_t n, uint64_t seed) {
  std::vector<float> v(n);
  rng_fill_normal(v.data(), n, seed, rng_stream(RngPurpose::Init, {0xB0CCull}));
  return v;
}

// Buckets of lsh_hash recomputed naively: y in double, explicit [y, -y] argmax per factor.
std::vector<int32_t> naive_buckets(const std::vector<float>& qk, const std::vector<float>& rot, int64_t L, int64_t d,
                                   int nh, const std::vector<int64_t>& factors) {
  const int64_t rc = lsh_rotation_columns(factors), nb = lsh_total_buckets(factors);
  std::vector<int32_t> out(nh * L);
  for (int r = 0; r < nh; ++r)
    for (int64_t t = 0; t < L; ++t) {
      std::vector<double> y(rc, 0.0);
      for (int64_t col = 0; col < rc; ++col)
        for (int64_t j = 0; j < d; ++j) y[col] += static_cast<double>(qk[t * d + j]) * rot[(j * nh + r) * rc + col];
      out[r * L + t] = static_cast<int32_t>(test::lsh_bucket_reference(y.data(), factors) + r * nb);
    }
  return out;
}

std::vector<int32_t> hash(const std::vector<float>& qk, const std::vector<float>& rot, const uint8_t* valid,
                          bool padding_bucket, int64_t L, int64_t d, int nh, const std::vector<int64_t>& factors) {
  std::vector<int32_t> buckets(nh * L);
  std::vector<float> scratch(lsh_hash_scratch_floats(nh, factors));
  lsh_hash(buckets.data(), qk.data(), d, rot.data(), valid, padding_bucket, L, d, nh, factors, scratch.data());
  return buckets;
}

// ---------------------------------------------------------------------------------------------
// A layer with its own weights and gradient buffers, plus the rotations injected into it.
struct Problem {
  LshAttentionConfig cfg;
  int64_t B = 2, L = 0;
  std::vector<float> x, wqk, wv, wo, gqk, gv, go, rot;
  std::vector<uint8_t> mask;
  AttentionCall call;
  std::unique_ptr<LshSelfAttention> layer;

  Problem(LshAttentionConfig c, int64_t batch, int64_t length, bool padded, uint64_t seed) : cfg(std::move(c)), B(batch), L(length) {
    const int64_t D = cfg.hidden, Hd = cfg.heads * cfg.head_size;
    x = uniform(B * L * D, seed + 1);
    wqk = uniform(Hd * D, seed + 2, -0.6f, 0.6f);
    wv = uniform(Hd * D, seed + 3, -0.6f, 0.6f);
    wo = uniform(D * Hd, seed + 4, -0.6f, 0.6f);
    gqk.assign(Hd * D, 0.f);
    gv.assign(Hd * D, 0.f);
    go.assign(D * Hd, 0.f);
    rot = normal(cfg.heads * cfg.head_size * cfg.num_hashes * lsh_rotation_columns(cfg.num_buckets), seed + 5);
    call.batch = B;
    call.length = L;
    call.seed = seed;
    call.step = 3;
    call.layer = 1;
    if (padded) {
      mask.assign(B * L, 1);
      for (int64_t t = 0; t < L; t += 3) mask[t] = 0;               // scattered padding in sequence 0
      for (int64_t t = L - L / 4; t < L; ++t) mask[L + t] = 0;      // trailing padding in sequence 1
      call.pad_mask = mask.data();
    }
    layer = std::make_unique<LshSelfAttention>(cfg, LshAttentionWeights{wqk.data(), wv.data(), wo.data()},
                                               LshAttentionGrads{gqk.data(), gv.data(), go.data()});
    layer->set_rotations(rot.data());
  }
  int64_t out_size() const { return B * L * cfg.hidden; }
  std::vector<float> forward() {
    std::vector<float> out(out_size());
    layer->forward(out.data(), x.data(), call);
    return out;
  }
  std::vector<double> reference() const {
    return test::lsh_attention_reference(cfg, cfg.num_hashes, rot.data(), x.data(), wqk.data(), wv.data(), wo.data(), call);
  }
};

LshAttentionConfig make_config(int nh, std::vector<int64_t> buckets, int64_t before, int64_t after, bool causal,
                               int64_t chunk, int64_t hidden = 12, int64_t head_size = 8, float dropout = 0.f) {
  LshAttentionConfig c;
  c.hidden = hidden;
  c.heads = 2;
  c.head_size = head_size;
  c.chunk_length = chunk;
  c.chunks_before = before;
  c.chunks_after = after;
  c.num_hashes = nh;
  c.num_buckets = std::move(buckets);
  c.causal = causal;
  c.dropout = dropout;
  return c;
}

std::vector<float> to_float(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

}  // namespace

// ---------------------------------------------------------------------------------------------
// Hashing

TEST(LshHash, MatchesNaiveArgmaxForIntAndFactorizedBuckets) {
  const int64_t L = 37, d = 8;
  const int nh = 3;
  const std::vector<float> qk = uniform(L * d, 11);
  for (const std::vector<int64_t>& factors : {std::vector<int64_t>{8}, {4, 6}, {2, 4, 2}}) {
    const std::vector<float> rot = normal(d * nh * lsh_rotation_columns(factors), 12);
    EXPECT_EQ(hash(qk, rot, nullptr, false, L, d, nh, factors), naive_buckets(qk, rot, L, d, nh, factors))
        << "factors " << factors.size();
  }
}

TEST(LshHash, TiesGoToTheFirstMaximum) {
  // d = 2, one round, exactly representable values. Rotation columns (1,0) and (1,0): y = (a, a),
  // concatenation (a, a, -a, -a): a > 0 -> 0, a < 0 -> 2, a == 0 -> 0 (all equal).
  const std::vector<float> rot = {1, 1, 0, 0};  // row j holds the columns of component j
  const std::vector<float> qk = {2, 5, -3, 1, 0, 7};
  EXPECT_EQ(hash(qk, rot, nullptr, false, 3, 2, 1, {4}), (std::vector<int32_t>{0, 2, 0}));
  // Factorized [4, 2]: columns (1,0),(0,1) | (1,1). qk (1,1): y1 = (1,1) -> 0; y2 = 2 -> 0 => 0.
  // qk (-1,-1): y1 = (-1,-1) -> 2; y2 = -2 -> 1 => 2 + 4*1 = 6. qk (0,0): all ties -> 0.
  const std::vector<float> rot2 = {1, 0, 1, 0, 1, 1};
  const std::vector<float> qk2 = {1, 1, -1, -1, 0, 0};
  EXPECT_EQ(hash(qk2, rot2, nullptr, false, 3, 2, 1, {4, 2}), (std::vector<int32_t>{0, 6, 0}));
}

TEST(LshHash, PaddingBucketAndRoundOffsets) {
  const int64_t L = 20, d = 6;
  const int nh = 3;
  const std::vector<int64_t> factors = {4, 2};
  const int64_t nb = 8;
  const std::vector<float> qk = uniform(L * d, 21);
  const std::vector<float> rot = normal(d * nh * lsh_rotation_columns(factors), 22);
  std::vector<uint8_t> valid(L, 1);
  valid[3] = valid[10] = valid[19] = 0;
  const std::vector<int32_t> plain = hash(qk, rot, valid.data(), false, L, d, nh, factors);
  const std::vector<int32_t> padded = hash(qk, rot, valid.data(), true, L, d, nh, factors);
  EXPECT_EQ(plain, naive_buckets(qk, rot, L, d, nh, factors));  // no padding bucket: mask ignored
  for (int r = 0; r < nh; ++r)
    for (int64_t t = 0; t < L; ++t) {
      const int32_t want = valid[t] ? plain[r * L + t] - r * nb + r * (nb + 1) : nb + r * (nb + 1);
      EXPECT_EQ(padded[r * L + t], want) << "round " << r << " position " << t;
    }
}

// ---------------------------------------------------------------------------------------------
// Sorting

TEST(LshSort, StablePermutationAndUndo) {
  const int64_t L = 50, nb_eff = 5;
  const int nh = 3;
  std::vector<int32_t> buckets(nh * L);
  const std::vector<float> u = uniform(nh * L, 31, 0.f, 1.f);
  for (int r = 0; r < nh; ++r)
    for (int64_t t = 0; t < L; ++t) buckets[r * L + t] = static_cast<int32_t>(u[r * L + t] * nb_eff) + r * nb_eff;
  std::vector<int32_t> pos(nh * L), undo(nh * L), counts(nb_eff);
  lsh_sort(pos.data(), undo.data(), buckets.data(), L, nh, nb_eff, counts.data());

  // Reference: std::stable_sort of t by bucket.
  std::vector<int64_t> want(nh * L);
  std::iota(want.begin(), want.end(), 0);
  std::stable_sort(want.begin(), want.end(), [&](int64_t a, int64_t b) { return buckets[a] < buckets[b]; });
  for (int64_t s = 0; s < nh * L; ++s) {
    EXPECT_EQ(s / L * L + pos[s], want[s]) << "slot " << s;  // round of slot s is s / L
    EXPECT_EQ(undo[want[s]], s) << "undo of t = " << want[s];
  }
  // undo o sort = identity.
  for (int64_t t = 0; t < nh * L; ++t) EXPECT_EQ(pos[undo[t]], t % L);
}

TEST(LshSort, WindowSourceWrapsCircularly) {
  // 3 chunks of 2, one before, one after: padded chunks are (2, 0, 1, 2, 0).
  const std::vector<int64_t> want = {4, 5, 0, 1, 2, 3, 4, 5, 0, 1};
  for (int64_t p = 0; p < 10; ++p) EXPECT_EQ(lsh_window_source(p, 3, 2, 1), want[p]) << p;
}

TEST(LshKey, ManyRowFormsGiveTheOneRowBits) {
  // The gather and the un-sort normalise a window's keys a block of rows at a time; each row must
  // be bit for bit what it is on its own (decoding caches keys made one at a time, normalize_key).
  // Row counts around the block size, repeated positions, a row stride.
  const int64_t d = 24, ld = 40, L = 50;
  std::vector<float> qk(L * ld), dk(3 * kKeyRows * d);
  fill_uniform(qk.data(), qk.size(), 21);
  fill_uniform(dk.data(), dk.size(), 22);
  for (int64_t t = 0; t < L; t += 7) qk[t * ld] *= 1e4f;  // uneven magnitudes
  for (int64_t n : {int64_t{1}, kKeyRows - 1, kKeyRows, 2 * kKeyRows + 5}) {
    SCOPED_TRACE(n);
    std::vector<int32_t> pos(n);
    for (int64_t r = 0; r < n; ++r) pos[r] = static_cast<int32_t>((r * 13 + 5) % L);
    if (n > 3) pos[3] = pos[1];  // a position twice
    std::vector<float> keys(n * d), want(n * d);
    normalize_keys(keys.data(), qk.data(), ld, pos.data(), n, d);
    for (int64_t r = 0; r < n; ++r) normalize_key(want.data() + r * d, qk.data() + pos[r] * ld, d);
    EXPECT_EQ(std::memcmp(keys.data(), want.data(), keys.size() * sizeof(float)), 0);

    std::vector<float> dqk(L * ld), dqk_want(L * ld);
    fill_uniform(dqk.data(), dqk.size(), 23);
    dqk_want = dqk;
    normalize_keys_backward(dqk.data(), dk.data(), qk.data(), ld, pos.data(), n, d);
    for (int64_t r = 0; r < n; ++r)
      normalize_keys_backward(dqk_want.data(), dk.data() + r * d, qk.data(), ld, pos.data() + r, 1, d);
    EXPECT_EQ(std::memcmp(dqk.data(), dqk_want.data(), dqk.size() * sizeof(float)), 0);
  }
}

// ---------------------------------------------------------------------------------------------
// Forward vs the slow reference

struct ForwardCase {
  int nh;
  std::vector<int64_t> buckets;
  int64_t before, after;
  bool causal, padded;
  int64_t chunk, length;
  float dropout;
};

class LshForward : public ::testing::TestWithParam<ForwardCase> {};

TEST_P(LshForward, MatchesReference) {
  const ForwardCase& fc = GetParam();
  Problem p(make_config(fc.nh, fc.buckets, fc.before, fc.after, fc.causal, fc.chunk, 12, 8, fc.dropout), 2, fc.length,
            fc.padded, 100 + fc.length);
  p.call.training = fc.dropout > 0.f;
  const std::vector<float> out = p.forward();
  const std::vector<float> want = to_float(p.reference());
  EXPECT_CLOSE(out.data(), want.data(), p.out_size(), test::kKernelTol, "lsh forward");
  EXPECT_EQ(p.layer->saved_buckets() != nullptr, fc.length > fc.chunk);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, LshForward,
    ::testing::Values(ForwardCase{1, {8}, 1, 0, false, false, 4, 16, 0.f},    // nh 1, int buckets
                      ForwardCase{4, {8}, 1, 0, true, false, 4, 32, 0.f},     // nh 4, causal, 8 chunks
                      ForwardCase{2, {4, 4}, 2, 1, false, true, 4, 24, 0.f},  // factorized, before 2 after 1, padding
                      ForwardCase{4, {2, 6}, 0, 1, true, true, 4, 20, 0.f},   // before 0 after 1, causal + padding
                      ForwardCase{1, {4}, 2, 0, true, false, 4, 16, 0.f},     // before 2, window wraps
                      ForwardCase{4, {8}, 1, 1, true, true, 4, 24, 0.25f},   // dropout masks
                      ForwardCase{4, {8}, 1, 0, true, true, 8, 8, 0.f},       // short path L == c
                      ForwardCase{2, {4}, 1, 0, false, true, 8, 5, 0.25f}));  // short path L < c, dropout

TEST(LshLayer, DrawnRotationsFollowTheDocumentedStreams) {
  Problem p(make_config(2, {4, 4}, 1, 0, true, 4, 12, 8), 2, 16, false, 7);
  const int64_t per_head = p.cfg.head_size * p.cfg.num_hashes * lsh_rotation_columns(p.cfg.num_buckets);
  for (int64_t h = 0; h < p.cfg.heads; ++h)
    rng_fill_normal(p.rot.data() + h * per_head, per_head, p.call.seed,
                    rng_stream(RngPurpose::Rotations, {p.call.step, static_cast<uint64_t>(p.call.layer), static_cast<uint64_t>(h)}));
  p.layer->clear_rotations();
  const std::vector<float> out = p.forward();
  const std::vector<float> want = to_float(p.reference());
  EXPECT_CLOSE(out.data(), want.data(), p.out_size(), test::kKernelTol, "drawn rotations");
}

TEST(LshLayer, MoreHashesAtEvalTime) {
  Problem p(make_config(1, {8}, 1, 0, true, 4), 2, 16, false, 8);
  p.layer->set_num_hashes(4);
  EXPECT_THROW(p.forward(), Error);  // injected rotations are for 1 round
  p.cfg.num_hashes = 4;
  p.rot = normal(p.cfg.heads * p.cfg.head_size * 4 * 4, 9);
  p.layer->set_rotations(p.rot.data());
  const std::vector<float> out = p.forward();
  const std::vector<float> want = to_float(p.reference());
  EXPECT_CLOSE(out.data(), want.data(), p.out_size(), test::kKernelTol, "4 hashes at eval");
}

TEST(LshLayer, ClearErrors) {
  Problem p(make_config(2, {4}, 1, 0, true, 4), 1, 18, false, 10);
  EXPECT_THROW(p.forward(), Error);  // 18 is not a multiple of 4
  Problem q(make_config(2, {4}, 1, 0, true, 4), 1, 16, false, 10);
  std::vector<float> g(q.out_size(), 1.f), dx(q.out_size());
  EXPECT_THROW(q.layer->backward(dx.data(), nullptr, g.data(), q.x.data(), q.call), Error);  // no forward yet
  EXPECT_THROW(LshSelfAttention(make_config(2, {5}, 1, 0, true, 4), LshAttentionWeights{}, LshAttentionGrads{}),
               Error);  // odd bucket count
}

// ---------------------------------------------------------------------------------------------
// Finite-difference gradients of the whole layer (buckets frozen: forward_with_saved_buckets).

struct GradCase {
  int nh;
  std::vector<int64_t> buckets;
  int64_t before, after;
  bool causal, padded;
  int64_t length;
  float dropout;
};

class LshGradient : public ::testing::TestWithParam<GradCase> {};

TEST_P(LshGradient, MatchesFiniteDifferences) {
  const GradCase& gc = GetParam();
  Problem p(make_config(gc.nh, gc.buckets, gc.before, gc.after, gc.causal, 4, 8, 4, gc.dropout), 2, gc.length,
            gc.padded, 200 + gc.length);
  p.call.training = gc.dropout > 0.f;
  const std::vector<float> out = p.forward();
  const std::vector<float> w = uniform(p.out_size(), 201);
  std::vector<float> dx(p.x.size()), recomputed(p.out_size());
  p.layer->backward(dx.data(), recomputed.data(), w.data(), p.x.data(), p.call);
  EXPECT_EQ(recomputed, out);  // the backward's recomputation is bit-identical

  std::vector<float> tmp(p.out_size());
  const auto loss = [&] {
    p.layer->forward_with_saved_buckets(tmp.data(), p.x.data(), p.call);
    return test::weighted_sum(tmp.data(), w.data(), p.out_size());
  };
  EXPECT_GRAD_OK(loss, p.x.data(), static_cast<int64_t>(p.x.size()), dx.data(), "x");
  EXPECT_GRAD_OK(loss, p.wqk.data(), static_cast<int64_t>(p.wqk.size()), p.gqk.data(), "Wqk");
  EXPECT_GRAD_OK(loss, p.wv.data(), static_cast<int64_t>(p.wv.size()), p.gv.data(), "Wv");
  EXPECT_GRAD_OK(loss, p.wo.data(), static_cast<int64_t>(p.wo.size()), p.go.data(), "Wo");
}

INSTANTIATE_TEST_SUITE_P(
    Masks, LshGradient,
    ::testing::Values(GradCase{1, {4}, 1, 0, true, false, 16, 0.f},      // causal, nh 1
                      GradCase{4, {4}, 1, 0, false, true, 16, 0.f},      // padding, nh 4
                      GradCase{4, {2, 4}, 1, 1, true, true, 16, 0.f},    // factorized, before and after
                      GradCase{2, {4}, 2, 0, false, false, 12, 0.f},     // self mask only, wide window
                      GradCase{4, {4}, 1, 1, true, true, 16, 0.3f},      // dropout
                      GradCase{2, {4}, 1, 0, true, true, 4, 0.3f},       // short path L == c, dropout
                      GradCase{2, {4}, 1, 0, false, true, 3, 0.f}));     // short path L < c

// A stored layer's call keeps qk and v from its forward (AttentionKept): the backward that starts
// from them gives the recomputing backward's bits and takes the state; projections kept from other
// weights change the result, so they are really read.
TEST(LshLayer, KeptProjectionsGiveTheRecomputedBackward) {
  Problem p(make_config(2, {4}, 1, 0, true, 4, 12, 8, 0.2f), 2, 16, true, 310);
  p.call.training = true;
  const std::vector<float> dout = uniform(p.out_size(), 311);
  auto backward = [&](AttentionKept* kept) {
    AttentionCall call = p.call;
    call.kept = kept;
    std::fill(p.gqk.begin(), p.gqk.end(), 0.f);
    std::fill(p.go.begin(), p.go.end(), 0.f);
    std::vector<float> dx(p.x.size());
    p.layer->backward(dx.data(), nullptr, dout.data(), p.x.data(), call);
    std::vector<float> all(dx);
    all.insert(all.end(), p.gqk.begin(), p.gqk.end());
    all.insert(all.end(), p.go.begin(), p.go.end());
    return all;
  };
  p.forward();
  const std::vector<float> recomputed = backward(nullptr);
  AttentionKept kept;
  p.call.kept = &kept;
  p.forward();
  ASSERT_TRUE(kept.valid);
  EXPECT_EQ(std::memcmp(backward(&kept).data(), recomputed.data(), recomputed.size() * sizeof(float)), 0);
  EXPECT_FALSE(kept.valid);
  const std::vector<float> wv = p.wv;
  for (float& w : p.wv) w *= 1.5f;
  p.forward();
  p.wv = wv;
  EXPECT_NE(backward(&kept), recomputed);
}

TEST(LshLayer, WeightGradientsAccumulate) {
  Problem p(make_config(2, {4}, 1, 0, true, 4, 8, 4), 1, 16, false, 300);
  p.forward();
  const std::vector<float> w = uniform(p.out_size(), 301);
  std::vector<float> dx(p.x.size());
  p.layer->backward(dx.data(), nullptr, w.data(), p.x.data(), p.call);
  const std::vector<float> once = p.go;
  p.layer->backward(dx.data(), nullptr, w.data(), p.x.data(), p.call);
  for (size_t i = 0; i < once.size(); ++i) EXPECT_FLOAT_EQ(p.go[i], 2.f * once[i]);
}

// ---------------------------------------------------------------------------------------------
// Memory: O(L) working memory (no L x c or L x L buffers).

TEST(LshLayer, MemoryIsLinearInLength) {
  const auto measure = [](int64_t L) {
    Problem p(make_config(2, {32}, 1, 0, true, 64, 16, 16), 1, L, false, 400);
    mem_reset_peaks();
    const int64_t live = mem_stats().live_total;
    p.forward();
    std::vector<float> g(p.out_size(), 1.f), dx(p.x.size());
    p.layer->backward(dx.data(), nullptr, g.data(), p.x.data(), p.call);
    return std::pair<int64_t, int64_t>(p.layer->workspace_bytes(), mem_stats().peak_total - live);
  };
  const auto [ws1, peak1] = measure(1024);
  const auto [ws4, peak4] = measure(4096);
  EXPECT_LE(ws4, 4.4 * ws1) << "workspace " << ws1 << " -> " << ws4;
  EXPECT_LE(peak4, 4.4 * peak1) << "allocator peak " << peak1 << " -> " << peak4;
}
