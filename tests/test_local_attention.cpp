// Local (chunked) self-attention: forward vs a naive per-query double reference over chunk
// layouts, masks and dropout; gradients vs finite differences; memory linear in L.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "layers/local_attention.h"
#include "reformer/memory.h"
#include "support/attention_reference.h"
#include "support/gradcheck.h"
#include "support/tolerance.h"

using namespace reformer;
using namespace reformer::test;

namespace {

constexpr int64_t kB = 2, kD = 6, kH = 2, kd = 4, kChunk = 4;

LocalAttentionConfig config(int64_t before, int64_t after, bool causal, float dropout) {
  return LocalAttentionConfig{kD, kH, kd, kChunk, before, after, causal, dropout};
}

// Two padded positions: never a whole chunk, so every query keeps a valid key.
std::vector<uint8_t> padding(int64_t L) { return right_padding(kB, L, 2); }

AttentionCall make_call(int64_t L, const uint8_t* pad, bool training) { return test_call(kB, L, pad, training); }

}  // namespace

TEST(LocalAttention, ForwardMatchesNaiveReference) {
  const QkvParams params(kD, kH, kd, 1);
  for (int64_t L : {3, 4, 8, 16})
    for (int64_t before : {0, 1, 2})
      for (int64_t after : {0, 1})
        for (bool causal : {false, true})
          for (bool padded : {false, true})
            for (float dropout : {0.f, 0.25f}) {
              SCOPED_TRACE(testing::Message() << "L " << L << " before " << before << " after " << after << " causal "
                                              << causal << " padded " << padded << " dropout " << dropout);
              const std::vector<uint8_t> mask = padding(L);
              const AttentionCall call = make_call(L, padded ? mask.data() : nullptr, dropout > 0.f);
              std::vector<float> x(kB * L * kD), out(kB * L * kD), want(kB * L * kD);
              fill_uniform(x.data(), static_cast<int64_t>(x.size()), 7);
              QkvParams grads_sink(kD, kH, kd, 1);
              LocalSelfAttention layer(config(before, after, causal, dropout), params.weights(), grads_sink.grads());
              layer.forward(out.data(), x.data(), call);
              const ReferenceAttentionConfig ref{kB,     L,     kD,     kH,           kd,      kChunk,    before,
                                                 after,  causal, call.pad_mask, dropout, call.seed, call.step,
                                                 call.layer};
              reference_qkv_attention(want.data(), x.data(), params.wq.data(), params.wk.data(), params.wv.data(),
                                      params.wo.data(), ref);
              EXPECT_CLOSE(out.data(), want.data(), static_cast<int64_t>(out.size()), kKernelTol, "out");
            }
}

TEST(LocalAttention, DropoutOnlyWhenTraining) {
  QkvParams params(kD, kH, kd, 2);
  const int64_t L = 8;
  std::vector<float> x(kB * L * kD), a(x.size()), b(x.size()), c(x.size());
  fill_uniform(x.data(), static_cast<int64_t>(x.size()), 8);
  LocalSelfAttention no_dropout(config(1, 0, true, 0.f), params.weights(), params.grads());
  LocalSelfAttention with_dropout(config(1, 0, true, 0.5f), params.weights(), params.grads());
  no_dropout.forward(a.data(), x.data(), make_call(L, nullptr, true));
  with_dropout.forward(b.data(), x.data(), make_call(L, nullptr, false));
  with_dropout.forward(c.data(), x.data(), make_call(L, nullptr, true));
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

// A stored layer's call keeps q, k, v, o and the logsumexp from its forward (AttentionKept): the
// backward that starts from them gives the recomputing backward's bits, takes the state (valid
// again only after the next forward), and really reads it: projections kept from other weights
// change the result.
TEST(LocalAttention, KeptForwardStateGivesTheRecomputedBackward) {
  QkvParams params(kD, kH, kd, 3);
  const int64_t L = 16;
  const auto pad = padding(L);
  std::vector<float> x(kB * L * kD), dout(x.size()), out(x.size());
  fill_uniform(x.data(), static_cast<int64_t>(x.size()), 9);
  fill_uniform(dout.data(), static_cast<int64_t>(dout.size()), 10);
  LocalSelfAttention layer(config(1, 1, false, 0.3f), params.weights(), params.grads());
  auto backward = [&](AttentionKept* kept) {
    AttentionCall call = make_call(L, pad.data(), true);
    call.kept = kept;
    std::fill(params.gq.begin(), params.gq.end(), 0.f);
    std::fill(params.go.begin(), params.go.end(), 0.f);
    std::vector<float> dx(x.size()), again(x.size());
    layer.backward(dx.data(), again.data(), dout.data(), x.data(), call);
    EXPECT_EQ(again, out);  // the output handed back is the forward's
    std::vector<float> all(dx);
    all.insert(all.end(), params.gq.begin(), params.gq.end());
    all.insert(all.end(), params.go.begin(), params.go.end());
    return all;
  };
  AttentionCall call = make_call(L, pad.data(), true);
  layer.forward(out.data(), x.data(), call);
  const std::vector<float> recomputed = backward(nullptr);
  AttentionKept kept;
  call.kept = &kept;
  layer.forward(out.data(), x.data(), call);
  ASSERT_TRUE(kept.valid);
  EXPECT_EQ(kept.t[0].numel(), kB * L * kH * kd);
  EXPECT_EQ(std::memcmp(backward(&kept).data(), recomputed.data(), recomputed.size() * sizeof(float)), 0);
  EXPECT_FALSE(kept.valid);
  // Kept from a forward with other query weights: the backward uses them (and so differs).
  const std::vector<float> wq = params.wq;
  for (float& w : params.wq) w *= 1.5f;
  layer.forward(out.data(), x.data(), call);
  params.wq = wq;
  EXPECT_NE(backward(&kept), recomputed);
}

TEST(LocalAttention, GradientsMatchFiniteDifferences) {
  struct Case {
    int64_t L, before, after;
    bool causal;
    float dropout;
  };
  for (const Case& cs : {Case{16, 1, 0, true, 0.f}, Case{16, 1, 1, false, 0.3f}, Case{12, 2, 1, false, 0.f},
                         Case{8, 2, 0, true, 0.3f}, Case{3, 1, 0, true, 0.3f}}) {
    SCOPED_TRACE(testing::Message() << "L " << cs.L << " before " << cs.before << " after " << cs.after << " causal "
                                    << cs.causal << " dropout " << cs.dropout);
    QkvParams params(kD, kH, kd, 3);
    LocalSelfAttention layer(config(cs.before, cs.after, cs.causal, cs.dropout), params.weights(), params.grads());
    const std::vector<uint8_t> mask = padding(cs.L);
    std::vector<float> x(kB * cs.L * kD);
    fill_uniform(x.data(), static_cast<int64_t>(x.size()), 9);
    expect_qkv_layer_gradients_ok(layer, params, x, make_call(cs.L, mask.data(), cs.dropout > 0.f));
  }
}

TEST(LocalAttention, RejectsLengthNotMultipleOfChunk) {
  QkvParams params(kD, kH, kd, 4);
  LocalSelfAttention layer(config(1, 0, true, 0.f), params.weights(), params.grads());
  std::vector<float> x(kB * 6 * kD), out(x.size());
  EXPECT_THROW(layer.forward(out.data(), x.data(), make_call(6, nullptr, false)), Error);
}

TEST(LocalAttention, MemoryIsLinearInLength) {
  const int64_t chunk = 16, hidden = 32, heads = 2, head_size = 16;
  QkvParams params(hidden, heads, head_size, 5);
  auto make = [&]() -> std::unique_ptr<AttentionLayer> {
    return std::make_unique<LocalSelfAttention>(LocalAttentionConfig{hidden, heads, head_size, chunk, 1, 0, true, 0.f},
                                                params.weights(), params.grads());
  };
  AttentionCall call = make_call(8 * chunk, nullptr, false);
  const int64_t small = peak_bytes_forward_backward(make, hidden, call);
  call.length *= 4;
  const int64_t large = peak_bytes_forward_backward(make, hidden, call);
  EXPECT_GT(small, 0);
  EXPECT_LE(static_cast<double>(large), 4.4 * static_cast<double>(small)) << "small " << small << " large " << large;
}
