#include "support/tiny_model.h"

#include <gtest/gtest.h>

#include <cmath>

#include "reformer/rng.h"
#include "support/tolerance.h"

namespace reformer::test {

ReformerConfig tiny_config(std::vector<std::string> layers, int64_t L) {
  ReformerConfig c;
  c.attn_layers = std::move(layers);
  c.hidden_size = 16;
  c.feed_forward_size = 24;
  c.num_attention_heads = 2;
  c.attention_head_size = 8;
  c.vocab_size = 11;
  c.axial_pos_shape = {4, L / 4};
  c.axial_pos_embds_dim = {6, 10};
  c.max_position_embeddings = L;
  c.lsh_attn_chunk_length = 8;
  c.local_attn_chunk_length = 8;
  c.num_buckets = {4};
  c.num_hashes = 2;
  c.is_decoder = true;
  c.hidden_dropout_prob = 0.0;
  c.local_attention_probs_dropout_prob = 0.0;
  c.lsh_attention_probs_dropout_prob = 0.0;
  return c;
}

ReformerConfig dropout_config() {
  ReformerConfig c = tiny_config({"local", "lsh", "local", "lsh", "local", "lsh"});
  c.hidden_dropout_prob = 0.1;
  c.local_attention_probs_dropout_prob = 0.1;
  c.lsh_attention_probs_dropout_prob = 0.1;
  return c;
}

std::vector<int32_t> random_ids(int64_t n, int64_t vocab, uint64_t seed) {
  std::vector<int32_t> ids(n);
  for (int64_t i = 0; i < n; ++i)
    ids[i] = static_cast<int32_t>(rng_uniform(seed, 99, i) * vocab) % static_cast<int32_t>(vocab);
  return ids;
}

std::vector<std::vector<float>> grads_of(ReformerModel& m) {
  std::vector<std::vector<float>> g;
  for (auto& p : m.parameters()) g.emplace_back(p.grad->data(), p.grad->data() + p.grad->numel());
  return g;
}

LossStats expect_reversible_matches_stored(ReformerModel& model, const Batch& batch, const StepOptions& opt) {
  model.set_reversible(false);
  model.zero_grad();
  const LossStats stored = model.forward_backward(batch, opt);
  const auto g_stored = grads_of(model);
  model.set_reversible(true);
  model.zero_grad();
  const LossStats rev = model.forward_backward(batch, opt);
  const auto g_rev = grads_of(model);
  EXPECT_NEAR(rev.mean(), stored.mean(), kPathTol.atol + kPathTol.rtol * std::fabs(stored.mean()));
  auto& params = model.parameters();
  for (size_t i = 0; i < params.size(); ++i)
    EXPECT_CLOSE(g_rev[i].data(), g_stored[i].data(), static_cast<int64_t>(g_rev[i].size()), kPathTol, params[i].name);
  return rev;
}

}  // namespace reformer::test
