// Blockwise full self-attention: forward vs a naive O(L^2) double reference (causal or not,
// padding, partial blocks, dropout), agreement with local attention's short path, gradients vs
// finite differences, memory linear in L.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "layers/full_attention.h"
#include "layers/local_attention.h"
#include "support/attention_reference.h"
#include "support/gradcheck.h"
#include "support/tolerance.h"

using namespace reformer;
using namespace reformer::test;

namespace {

constexpr int64_t kB = 2, kD = 6, kH = 2, kd = 4;

FullAttentionConfig config(bool causal, float dropout, int64_t block) {
  FullAttentionConfig c;
  c.hidden = kD;
  c.heads = kH;
  c.head_size = kd;
  c.causal = causal;
  c.dropout = dropout;
  c.block_length = block;
  return c;
}

std::vector<float> reference(const QkvParams& params, const std::vector<float>& x, const AttentionCall& call,
                             bool causal, float dropout) {
  // chunk = L: every query sees all L keys (the reference's full-attention case).
  const ReferenceAttentionConfig ref{kB,     call.length, kD,      kH,        kd,        call.length, 0,
                                     0,      causal,      call.pad_mask, dropout, call.seed, call.step, call.layer};
  std::vector<float> want(x.size());
  reference_qkv_attention(want.data(), x.data(), params.wq.data(), params.wk.data(), params.wv.data(),
                          params.wo.data(), ref);
  return want;
}

}  // namespace

TEST(FullAttention, ForwardMatchesNaiveReference) {
  QkvParams params(kD, kH, kd, 1);
  for (int64_t L : {1, 5, 16, 21})
    for (int64_t block : {4, 8, 32})
      for (bool causal : {false, true})
        for (bool padded : {false, true}) {
          SCOPED_TRACE(testing::Message() << "L " << L << " block " << block << " causal " << causal << " padded "
                                          << padded);
          const std::vector<uint8_t> mask = right_padding(kB, L, 3);
          const AttentionCall call = test_call(kB, L, padded ? mask.data() : nullptr, false);
          std::vector<float> x(kB * L * kD), out(x.size());
          fill_uniform(x.data(), static_cast<int64_t>(x.size()), 7);
          FullSelfAttention layer(config(causal, 0.f, block), params.weights(), params.grads());
          layer.forward(out.data(), x.data(), call);
          const std::vector<float> want = reference(params, x, call, causal, 0.f);
          EXPECT_CLOSE(out.data(), want.data(), static_cast<int64_t>(out.size()), kKernelTol, "out");
        }
}

TEST(FullAttention, DropoutInOneBlockMatchesReference) {
  // With one block covering L, pair (0, 0) uses random index i * L + j, as the reference does.
  QkvParams params(kD, kH, kd, 2);
  const int64_t L = 12;
  const std::vector<uint8_t> mask = right_padding(kB, L, 3);
  const AttentionCall call = test_call(kB, L, mask.data(), true);
  std::vector<float> x(kB * L * kD), out(x.size());
  fill_uniform(x.data(), static_cast<int64_t>(x.size()), 8);
  FullSelfAttention layer(config(true, 0.3f, L), params.weights(), params.grads());
  layer.forward(out.data(), x.data(), call);
  const std::vector<float> want = reference(params, x, call, true, 0.3f);
  EXPECT_CLOSE(out.data(), want.data(), static_cast<int64_t>(out.size()), kKernelTol, "out");
}

TEST(FullAttention, MatchesLocalAttentionShortPath) {
  // HF local attention with L <= chunk_length is plain full attention.
  QkvParams params(kD, kH, kd, 3);
  const int64_t L = 10;
  const std::vector<uint8_t> mask = right_padding(kB, L, 2);
  const AttentionCall call = test_call(kB, L, mask.data(), false);
  std::vector<float> x(kB * L * kD), full(x.size()), local(x.size());
  fill_uniform(x.data(), static_cast<int64_t>(x.size()), 9);
  FullSelfAttention full_layer(config(true, 0.f, 4), params.weights(), params.grads());
  LocalSelfAttention local_layer(LocalAttentionConfig{kD, kH, kd, 16, 1, 0, true, 0.f}, params.weights(),
                                 params.grads());
  full_layer.forward(full.data(), x.data(), call);
  local_layer.forward(local.data(), x.data(), call);
  EXPECT_CLOSE(full.data(), local.data(), static_cast<int64_t>(full.size()), kKernelTol, "full vs local");
}

TEST(FullAttention, GradientsMatchFiniteDifferences) {
  for (bool causal : {false, true})
    for (float dropout : {0.f, 0.3f}) {
      SCOPED_TRACE(testing::Message() << "causal " << causal << " dropout " << dropout);
      QkvParams params(kD, kH, kd, 4);
      const int64_t L = 11;
      FullSelfAttention layer(config(causal, dropout, 4), params.weights(), params.grads());
      const std::vector<uint8_t> mask = right_padding(kB, L, 3);
      std::vector<float> x(kB * L * kD);
      fill_uniform(x.data(), static_cast<int64_t>(x.size()), 10);
      expect_qkv_layer_gradients_ok(layer, params, x, test_call(kB, L, mask.data(), dropout > 0.f));
    }
}

TEST(FullAttention, MemoryIsLinearInLength) {
  const int64_t hidden = 32, heads = 2, head_size = 16;
  QkvParams params(hidden, heads, head_size, 5);
  FullAttentionConfig cfg;
  cfg.hidden = hidden;
  cfg.heads = heads;
  cfg.head_size = head_size;
  cfg.causal = true;
  cfg.block_length = 32;
  auto make = [&]() -> std::unique_ptr<AttentionLayer> {
    return std::make_unique<FullSelfAttention>(cfg, params.weights(), params.grads());
  };
  AttentionCall call = test_call(2, 128, nullptr, false);
  const int64_t small = peak_bytes_forward_backward(make, hidden, call);
  call.length *= 4;
  const int64_t large = peak_bytes_forward_backward(make, hidden, call);
  EXPECT_GT(small, 0);
  EXPECT_LE(static_cast<double>(large), 4.4 * static_cast<double>(small)) << "small " << small << " large " << large;
}
