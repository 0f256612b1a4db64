// The Hugging Face parity fixtures (tests/fixtures/hf) are complete and self-consistent: every case
// opens, the weight names and shapes are exactly those of spec 6.2 for its config, every tensor the
// README promises is there with matching shapes, and the stored loss and logits agree with a
// recomputation from the stored labels, final hidden state and LM-head weights.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "support/fixtures.h"
#include "support/tolerance.h"

using namespace reformer;
using namespace reformer::test;

namespace {

const std::vector<std::string> kCases = {"bidirectional", "local_causal", "lsh_causal", "lsh_factorized",
                                         "lsh_hashes4_learned", "mixed_causal", "padded_mixed", "short_full"};

// Spec 6.2 for ReformerModelWithLMHead / ReformerForMaskedLM, from the config.
std::map<std::string, Shape> expected_weights(const nlohmann::json& c) {
  const int64_t D = c["hidden_size"], H = c["num_attention_heads"], d = c["attention_head_size"];
  const int64_t F = c["feed_forward_size"], V = c["vocab_size"], Hd = H * d;
  std::map<std::string, Shape> w;
  w["reformer.embeddings.word_embeddings.weight"] = {V, D};
  if (c["axial_pos_embds"].get<bool>()) {
    const std::vector<int64_t> shape = c["axial_pos_shape"], dims = c["axial_pos_embds_dim"];
    for (size_t a = 0; a < shape.size(); ++a) {
      Shape s(shape.size() + 1, 1);  // size n_a on its own axis, 1 on the others, then d_a
      s[a] = shape[a];
      s.back() = dims[a];
      w["reformer.embeddings.position_embeddings.weights." + std::to_string(a)] = s;
    }
  } else {
    w["reformer.embeddings.position_embeddings.embedding.weight"] = {c["max_position_embeddings"].get<int64_t>(), D};
  }
  const std::vector<std::string> layers = c["attn_layers"];
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::string p = "reformer.encoder.layers." + std::to_string(i) + ".";
    w[p + "attention.layer_norm.weight"] = w[p + "attention.layer_norm.bias"] = {D};
    const std::vector<std::string> proj =
        layers[i] == "lsh" ? std::vector<std::string>{"query_key", "value"} : std::vector<std::string>{"query", "key", "value"};
    for (const std::string& q : proj) w[p + "attention.self_attention." + q + ".weight"] = {Hd, D};
    w[p + "attention.output.dense.weight"] = {D, Hd};
    w[p + "feed_forward.layer_norm.weight"] = w[p + "feed_forward.layer_norm.bias"] = {D};
    w[p + "feed_forward.dense.dense.weight"] = {F, D};
    w[p + "feed_forward.dense.dense.bias"] = {F};
    w[p + "feed_forward.output.dense.weight"] = {D, F};
    w[p + "feed_forward.output.dense.bias"] = {D};
  }
  w["reformer.encoder.layer_norm.weight"] = w["reformer.encoder.layer_norm.bias"] = {2 * D};
  w["lm_head.decoder.weight"] = {V, 2 * D};
  w["lm_head.decoder.bias"] = w["lm_head.bias"] = {V};
  return w;
}

std::vector<float> read(const SafetensorsFile& f, const std::string& name) {
  const Tensor t = f.read_f32(name, MemCategory::Workspace);
  return std::vector<float>(t.data(), t.data() + t.numel());
}

}  // namespace

TEST(HfFixtures, AllCasesPresent) { EXPECT_EQ(hf_fixture_cases(), kCases); }

TEST(HfFixtures, MissingCaseNamesTheFile) { EXPECT_THROW(load_hf_fixture("no_such_case"), Error); }

class HfCase : public ::testing::TestWithParam<std::string> {};

TEST_P(HfCase, WeightsMatchSpecNamesAndShapes) {
  const auto f = load_hf_fixture(GetParam());
  const auto want = expected_weights(f.config);
  std::set<std::string> got_names;
  for (const std::string& n : f.weights.names()) got_names.insert(n);
  for (const auto& [name, shape] : want) {
    ASSERT_TRUE(got_names.count(name)) << "missing weight " << name;
    EXPECT_EQ(f.weights.shape(name), shape) << name;
    EXPECT_EQ(f.weights.info(name).dtype, SafeDType::F32) << name;
    ASSERT_TRUE(f.data.contains("grad." + name)) << "missing gradient of " << name;
    EXPECT_EQ(f.data.shape("grad." + name), shape) << name;
  }
  for (const std::string& n : got_names) EXPECT_TRUE(want.count(n)) << "unexpected weight " << n;
  EXPECT_EQ(read(f.weights, "lm_head.bias"), read(f.weights, "lm_head.decoder.bias")) << "tied in HF";
}

TEST_P(HfCase, DataTensorsHaveConsistentShapes) {
  const auto f = load_hf_fixture(GetParam());
  const nlohmann::json& c = f.config;
  const Shape& ids = f.data.shape("input_ids");
  ASSERT_EQ(ids.size(), 2u);
  const int64_t B = ids[0], L = ids[1];
  const int64_t D = c["hidden_size"], H = c["num_attention_heads"], d = c["attention_head_size"];
  const int64_t V = c["vocab_size"], nh = c["num_hashes"];
  EXPECT_EQ(f.data.info("input_ids").dtype, SafeDType::I64);
  EXPECT_EQ(f.data.shape("labels"), ids);
  if (f.data.contains("attention_mask")) EXPECT_EQ(f.data.shape("attention_mask"), ids);
  EXPECT_EQ(f.data.shape("logits"), (Shape{B, L, V}));
  EXPECT_EQ(f.data.shape("loss"), Shape{});
  EXPECT_EQ(f.data.shape("last_hidden_state"), (Shape{B, L, 2 * D}));
  for (const int64_t id : f.data.read_i64("input_ids")) EXPECT_TRUE(id >= 0 && id < V) << id;

  const std::vector<std::string> layers = c["attn_layers"];
  ASSERT_EQ(static_cast<int64_t>(layers.size()), c["num_hidden_layers"].get<int64_t>());
  for (size_t j = 0; j <= layers.size(); ++j)
    EXPECT_EQ(f.data.shape("hidden_states." + std::to_string(j)), (Shape{B, L, D}));
  EXPECT_FALSE(f.data.contains("hidden_states." + std::to_string(layers.size() + 1)));

  // Rotations and buckets exist exactly for the LSH layers that hash (L > LSH chunk length).
  // num_buckets: an int, a list of factors, or null in configs without LSH layers.
  const nlohmann::json& nb = c["num_buckets"];
  int64_t cols = 0, buckets = 1;
  const std::vector<int64_t> factors = nb.is_array()    ? nb.get<std::vector<int64_t>>()
                                       : nb.is_number() ? std::vector<int64_t>{nb.get<int64_t>()}
                                                        : std::vector<int64_t>{};
  for (const int64_t factor : factors) {
    cols += factor / 2;
    buckets *= factor;
  }
  const int64_t nb_eff = buckets + (f.data.contains("attention_mask") ? 1 : 0);
  const bool hashes = L > c["lsh_attn_chunk_length"].get<int64_t>();
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::string r = "rotations." + std::to_string(i), b = "buckets." + std::to_string(i);
    const bool want = layers[i] == "lsh" && hashes;
    ASSERT_EQ(f.data.contains(r), want) << r;
    ASSERT_EQ(f.data.contains(b), want) << b;
    if (!want) continue;
    EXPECT_EQ(f.data.shape(r), (Shape{H, d, nh, cols}));
    EXPECT_EQ(f.data.shape(b), (Shape{B, H, nh * L}));
    for (const int64_t v : f.data.read_i64(b)) ASSERT_TRUE(v >= 0 && v < nh * nb_eff) << b << " has bucket " << v;
  }
}

TEST_P(HfCase, LossAndLogitsAgreeWithRecomputation) {
  const auto f = load_hf_fixture(GetParam());
  const Shape& ls = f.data.shape("logits");
  const int64_t B = ls[0], L = ls[1], V = ls[2], D2 = f.data.shape("last_hidden_state")[2];
  const std::vector<float> logits = read(f.data, "logits"), hidden = read(f.data, "last_hidden_state");
  const std::vector<float> w = read(f.weights, "lm_head.decoder.weight"), bias = read(f.weights, "lm_head.bias");
  const std::vector<int64_t> labels = f.data.read_i64("labels");

  // logits = last_hidden_state W^T + b (the bias must be applied; transformers 5.x drops it).
  std::vector<float> want(logits.size());
  for (int64_t t = 0; t < B * L; ++t)
    for (int64_t v = 0; v < V; ++v) {
      double s = bias[v];
      for (int64_t k = 0; k < D2; ++k) s += double(hidden[t * D2 + k]) * w[v * D2 + k];
      want[t * V + v] = static_cast<float>(s);
    }
  EXPECT_CLOSE(logits.data(), want.data(), static_cast<int64_t>(want.size()), kKernelTol, "logits");

  // Causal-LM loss: position t predicts labels[t + 1]; masked LM (is_decoder false,
  // ReformerForMaskedLM): position t predicts labels[t]; -100 is ignored.
  const int64_t shift = f.config["is_decoder"].get<bool>() ? 1 : 0;
  double total = 0;
  int64_t count = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t + shift < L; ++t) {
      const int64_t y = labels[b * L + t + shift];
      if (y == -100) continue;
      const float* z = &logits[(b * L + t) * V];
      double mx = z[0], sum = 0;
      for (int64_t v = 1; v < V; ++v) mx = std::max(mx, double(z[v]));
      for (int64_t v = 0; v < V; ++v) sum += std::exp(z[v] - mx);
      total += mx + std::log(sum) - z[y];
      ++count;
    }
  const float loss = static_cast<float>(total / count);
  EXPECT_CLOSE(read(f.data, "loss").data(), &loss, 1, kPathTol, "loss");
}

INSTANTIATE_TEST_SUITE_P(Cases, HfCase, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return info.param; });
