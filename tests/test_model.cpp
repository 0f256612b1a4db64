// Model level: reversible vs stored-activation gradients, memory that does not grow with depth,
// finite-difference checks through the whole model, config validation.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>
#include <vector>

#include "reformer/config.h"
#include "reformer/memory.h"
#include "reformer/memory_estimate.h"
#include "reformer/model.h"
#include "reformer/rng.h"
#include "support/gradcheck.h"
#include "support/tiny_model.h"
#include "support/tolerance.h"

using namespace reformer;
using reformer::test::dropout_config;
using reformer::test::grads_of;
using reformer::test::random_ids;
using reformer::test::tiny_config;

namespace {

// A batch of B x L random ids and the step options of the reversible-vs-stored tests.
struct PathCase {
  static constexpr int64_t B = 2, L = 32;
  std::vector<int32_t> ids;
  Batch batch;
  StepOptions opt;
  explicit PathCase(const ReformerConfig& c) : ids(random_ids(B * L, c.vocab_size, 1)), batch{ids.data(), B, L} {
    opt.seed = 5;
    opt.step = 3;
  }
};

}  // namespace

TEST(Model, ReversibleMatchesStoredActivationsWithDropout) {
  const ReformerConfig c = dropout_config();
  ReformerModel model(c, 7);
  PathCase k(c);
  const Batch& batch = k.batch;
  StepOptions& opt = k.opt;
  const LossStats rev = test::expect_reversible_matches_stored(model, batch, opt);
  // Dropout is really on: the same batch without dropout gives another loss.
  opt.training = false;
  EXPECT_NE(model.evaluate(batch, opt).mean(), rev.mean());
}

// A stored layer keeps its feed-forward's hidden activation instead of recomputing it; an activation
// other than ReLU needs its input h as well (FeedForward::needs_h), and both must give the
// reversible step's gradients.
TEST(Model, StoredLayersKeepTheHiddenActivationOfEveryActivation) {
  for (const char* act : {"relu", "gelu", "silu"}) {
    SCOPED_TRACE(act);
    ReformerConfig c = dropout_config();
    c.hidden_act = act;
    ReformerModel model(c, 7);
    PathCase k(c);
    test::expect_reversible_matches_stored(model, k.batch, k.opt);
    model.set_stored_layers(std::vector<bool>(c.attn_layers.size(), false));
    model.zero_grad();
    model.forward_backward(k.batch, k.opt);
    const int64_t none = mem_stats().live_of(MemCategory::Activations);
    model.set_stored_layers({true, true, false, false, false, false});
    model.zero_grad();
    model.forward_backward(k.batch, k.opt);
    const int64_t copies = std::string(act) == "relu" ? 1 : 2;
    // Layer 0 keeps X2, Y1 and the hidden activations; layer 1, the top stored one, no Y1.
    EXPECT_EQ(mem_stats().live_of(MemCategory::Activations) - none,
              (3 * c.hidden_size + 2 * copies * c.feed_forward_size) * PathCase::B * PathCase::L *
                  static_cast<int64_t>(sizeof(float)));
    EXPECT_EQ(stored_layer_bytes(c, PathCase::B, PathCase::L, 1).activations,
              (2 * c.hidden_size + copies * c.feed_forward_size) * PathCase::B * PathCase::L * static_cast<int64_t>(sizeof(float)));
  }
}

// Every attention kind's kept state (local and full: q, k, v, o, logsumexp; LSH with several hash
// rounds: qk, v) gives the reversible step's loss and gradients, dropout on everywhere.
TEST(Model, StoredLayersMatchReversibleForEveryAttentionKind) {
  for (const std::vector<std::string>& layers : {std::vector<std::string>{"full", "local"}, {"lsh", "lsh"}}) {
    SCOPED_TRACE(layers[0]);
    ReformerConfig c = tiny_config(layers);
    c.hidden_dropout_prob = c.local_attention_probs_dropout_prob = c.lsh_attention_probs_dropout_prob = 0.1;
    ReformerModel model(c, 9);
    PathCase k(c);
    test::expect_reversible_matches_stored(model, k.batch, k.opt);
  }
}

// The per-layer plan (ReformerModel::set_layer_plan): storing none, some (the lowest layers, as
// plan_stored_layers does, and scattered ones, where a stored layer must hand a reconstructed X1 to
// the reversible layer below it) or all layers, and layers that keep only their input X2 (above,
// below and between stored ones), gives the stored-activation losses and gradients.
TEST(Model, PerLayerStoragePlansMatchStoredActivations) {
  const ReformerConfig c = dropout_config();
  ReformerModel model(c, 7);
  PathCase k(c);
  const Batch& batch = k.batch;
  const StepOptions& opt = k.opt;
  const int64_t B = PathCase::B, L = PathCase::L;
  model.set_reversible(false);
  model.zero_grad();
  const LossStats want = model.forward_backward(batch, opt);
  const auto g_want = grads_of(model);
  // R: reversible, X: keeps X2, S: stored.
  auto plan_of = [](const std::string& name) {
    std::vector<LayerKeep> plan;
    for (char ch : name) plan.push_back(ch == 'S' ? LayerKeep::all : ch == 'X' ? LayerKeep::input : LayerKeep::nothing);
    return plan;
  };
  const std::vector<std::string> names = {"RRRRRR", "SSSRRR", "SRRSRS", "RSSRSR", "SSSSSS", "SSSSSR",
                                          "XXXXXX", "SSXXXR", "XSRXSX", "RXRXRX", "RRRSSS"};
  auto& params = model.parameters();
  for (const std::string& name : names) {
    SCOPED_TRACE(name);
    model.set_layer_plan(plan_of(name));
    EXPECT_EQ(model.reversible(), name.find('S') == std::string::npos);
    for (size_t l = 0; l < name.size(); ++l) EXPECT_EQ(model.layer_keep(l), plan_of(name)[l]);
    model.zero_grad();
    const LossStats got = model.forward_backward(batch, opt);
    EXPECT_NEAR(got.mean(), want.mean(), test::kPathTol.atol + test::kPathTol.rtol * std::fabs(want.mean()));
    const auto g = grads_of(model);
    for (size_t i = 0; i < params.size(); ++i)
      EXPECT_CLOSE(g[i].data(), g_want[i].data(), static_cast<int64_t>(g[i].size()), test::kPathTol, params[i].name);
  }
  // The plan is really applied: what the layers keep is the only activation memory that grows, and
  // a layer keeping less than before frees the rest.
  auto activations_after_step = [&](const std::string& name) {
    model.set_layer_plan(plan_of(name));
    model.zero_grad();
    model.forward_backward(batch, opt);
    return mem_stats().live_of(MemCategory::Activations);
  };
  const int64_t none = activations_after_step("RRRRRR");
  const int64_t x2 = B * L * c.hidden_size * static_cast<int64_t>(sizeof(float));
  // The top stored layer of a run keeps no copy of Y1 (stored_layer_keeps_y1): one per run.
  const int64_t stored = stored_layer_bytes(c, B, L, 0).activations;
  EXPECT_EQ(activations_after_step("SSSRRR") - none, 3 * stored - x2);
  EXPECT_EQ(activations_after_step("SXXRRR") - none, stored - x2 + 2 * x2);
  EXPECT_EQ(activations_after_step("SRRSSR") - none, 3 * stored - 2 * x2);
  EXPECT_EQ(activations_after_step("SSSSSS") - none, 6 * stored - x2);
  EXPECT_EQ(activations_after_step("XXXXXX") - none, 6 * x2);
  EXPECT_EQ(activations_after_step("RRRRRR"), none);
  EXPECT_EQ(stored_layer_bytes(c, B, L, 0).activations,
            (2 * c.hidden_size + c.feed_forward_size) * B * L * static_cast<int64_t>(sizeof(float)));
  EXPECT_EQ(kept_layer_bytes(c, B, L, 0, LayerKeep::input).activations, x2);
  EXPECT_EQ(kept_layer_bytes(c, B, L, 0, LayerKeep::input).workspace, 0);
  EXPECT_EQ(kept_layer_bytes(c, B, L, 0, LayerKeep::nothing).total(), 0);
}

// Finite differences of the mean loss (dropout off) for every parameter that `check` selects.
static void check_model_gradients(const ReformerConfig& c, uint64_t seed, const std::function<bool(const std::string&)>& check) {
  ReformerModel model(c, seed);
  const int64_t B = 1, L = 32;
  const auto ids = random_ids(B * L, c.vocab_size, seed);
  Batch batch{ids.data(), B, L};
  StepOptions opt;
  opt.training = false;
  model.zero_grad();
  model.forward_backward(batch, opt);
  auto loss = [&] { return model.evaluate(batch, opt).mean(); };
  for (auto& p : model.parameters())
    if (check(p.name)) EXPECT_GRAD_OK(loss, p.param->data(), p.param->numel(), p.grad->data(), p.name, 6);
}

TEST(Model, GradientsMatchFiniteDifferences) {
  // Local and full layers only: LSH buckets would move under perturbation of upstream weights
  // (the LSH layer's own finite-difference checks freeze buckets instead).
  check_model_gradients(tiny_config({"local", "full"}), 3, [](const std::string&) { return true; });
}

TEST(Model, LastLayersGradientsMatchFiniteDifferencesWithLsh) {
  // Parameters that do not feed the LSH layer's hashing (which uses Wqk of its LN-ed input only):
  // its value and output projections, its feed-forward, and everything after it.
  check_model_gradients(tiny_config({"lsh", "local"}), 4, [](const std::string& name) {
    for (const char* part : {"layers.1.", "lm_head", "encoder.layer_norm", "layers.0.feed_forward",
                             "layers.0.attention.output", "self_attention.value"})
      if (name.find(part) != std::string::npos) return true;
    return false;
  });
}

TEST(Model, ChunkedFeedForwardAndHeadGiveTheSameLoss) {
  ReformerConfig c = tiny_config({"local", "lsh"});
  const int64_t B = 2, L = 32;
  const auto ids = random_ids(B * L, c.vocab_size, 4);
  Batch batch{ids.data(), B, L};
  StepOptions opt;
  opt.training = false;
  ReformerModel plain(c, 9);
  const double want = plain.evaluate(batch, opt).mean();
  c.chunk_size_feed_forward = 8;
  c.chunk_size_lm_head = 5;
  ReformerModel chunked(c, 9);
  EXPECT_NEAR(chunked.evaluate(batch, opt).mean(), want, test::kPathTol.atol + test::kPathTol.rtol * want);
}

// The attention branch streams LN(X2) in and F out in row chunks; chunk boundaries (dropout indices,
// LayerNorm statistics, -dO.o per batch row and head) must not change anything.
TEST(Model, AttentionRowChunksDoNotChangeTheStep) {
  ReformerConfig c = tiny_config({"local", "lsh", "local"});
  c.hidden_dropout_prob = 0.1;
  c.local_attention_probs_dropout_prob = 0.1;
  c.lsh_attention_probs_dropout_prob = 0.1;
  const int64_t B = 2, L = 32;
  const auto ids = random_ids(B * L, c.vocab_size, 6);
  Batch batch{ids.data(), B, L};
  StepOptions opt;
  opt.training = true;
  opt.seed = 17;
  ReformerModel whole(c, 8), chunked(c, 8);
  chunked.set_attention_row_chunk(7);  // does not divide L: chunks straddle the batch boundary
  const double want = whole.forward_backward(batch, opt).mean();
  EXPECT_NEAR(chunked.forward_backward(batch, opt).mean(), want, test::kPathTol.atol + test::kPathTol.rtol * want);
  const auto gw = grads_of(whole), gc = grads_of(chunked);
  for (size_t i = 0; i < gw.size(); ++i)
    EXPECT_CLOSE(gc[i].data(), gw[i].data(), static_cast<int64_t>(gw[i].size()), test::kPathTol,
                 whole.parameters()[i].name);
}

// Activation + workspace peak of one training step, parameters/gradients aside.
static int64_t activation_peak(int layers, int64_t L) {
  std::vector<std::string> types;
  for (int i = 0; i < layers; ++i) types.push_back(i % 2 ? "lsh" : "local");
  ReformerConfig c = tiny_config(types, L);
  c.hidden_size = 64;
  c.axial_pos_embds_dim = {32, 32};
  c.feed_forward_size = 128;
  c.lsh_attn_chunk_length = 32;
  c.local_attn_chunk_length = 32;
  c.num_buckets = {16};
  ReformerModel model(c, 1);
  const auto ids = random_ids(L, c.vocab_size, 5);
  Batch batch{ids.data(), 1, L};
  StepOptions opt;
  model.forward_backward(batch, opt);  // first step sizes every buffer
  mem_reset_peaks();
  const MemStats before = mem_stats();
  model.forward_backward(batch, opt);
  const MemStats after = mem_stats();
  EXPECT_EQ(after.allocations, 0) << "a training step allocated after the first one";
  return after.peak_total - before.live_of(MemCategory::Parameters) - before.live_of(MemCategory::Gradients) -
         before.live_of(MemCategory::OptimizerState);
}

TEST(Model, ActivationMemoryDoesNotGrowWithDepth) {
  const int64_t L = 1024;
  const int64_t two = activation_peak(2, L);
  const int64_t twelve = activation_peak(12, L);
  EXPECT_LE(static_cast<double>(twelve), 1.1 * static_cast<double>(two)) << "2 layers: " << two << " B, 12 layers: " << twelve << " B";
}

TEST(Config, JsonRoundTripAndHfFields) {
  ReformerConfig c = tiny_config({"local", "lsh"});
  c.num_buckets = {4, 8};
  const ReformerConfig back = ReformerConfig::from_json(c.to_json());
  EXPECT_EQ(back.to_json(), c.to_json());
  EXPECT_EQ(back.num_buckets, (std::vector<int64_t>{4, 8}));
  nlohmann::json j = c.to_json();
  j["num_buckets"] = 32;
  EXPECT_EQ(ReformerConfig::from_json(j).num_buckets, (std::vector<int64_t>{32}));
  j["num_buckets"] = nullptr;
  EXPECT_TRUE(ReformerConfig::from_json(j).num_buckets.empty());
}

TEST(Config, AutoNumBucketsFollowsHuggingFace) {
  ReformerConfig c;
  c.lsh_attn_chunk_length = 64;
  c.max_position_embeddings = 4096;
  EXPECT_EQ(c.auto_num_buckets(4096), (std::vector<int64_t>{128}));  // 2*64 = 128 <= limit 2*max(8, 64)
  c.max_position_embeddings = 524288;
  EXPECT_EQ(c.auto_num_buckets(524288), (std::vector<int64_t>{128, 128}));  // 2^14 > limit 2*max(90, 64)
}

static std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Config, BadConfigsFailWithClearMessages) {
  auto with = [](auto change) {
    ReformerConfig c = tiny_config({"local", "lsh"});
    change(c);
    return error_of([&] { c.validate(); });
  };
  EXPECT_NE(with([](ReformerConfig& c) { c.num_buckets = {7}; }).find("num_buckets = 7"), std::string::npos);
  EXPECT_NE(with([](ReformerConfig& c) { c.num_buckets = {4, 6, 3}; }).find("num_buckets[2] = 3"), std::string::npos);
  EXPECT_NE(with([](ReformerConfig& c) { c.axial_pos_embds_dim = {6, 6}; }).find("sums to 12 but hidden_size is 16"), std::string::npos);
  EXPECT_NE(with([](ReformerConfig& c) { c.attn_layers = {"local", "lhs"}; }).find("attn_layers[1] = \"lhs\""), std::string::npos);
  EXPECT_NE(with([](ReformerConfig& c) { c.lsh_num_chunks_after = 1; }).find("lsh_num_chunks_after"), std::string::npos);
  EXPECT_NE(with([](ReformerConfig& c) { c.hidden_act = "tanh"; }).find("hidden_act"), std::string::npos);
  EXPECT_NE(with([](ReformerConfig& c) { c.hidden_dropout_prob = 1.5; }).find("hidden_dropout_prob"), std::string::npos);
  ReformerConfig c = tiny_config({"local", "lsh"});
  EXPECT_NE(error_of([&] { c.validate_length(28, false); }).find("not a multiple of 8"), std::string::npos);
  // Training lengths below the axial product are allowed (HF's eval positions, docs/NUMERICS.md).
  EXPECT_EQ(error_of([&] { c.validate_length(16, true); }), "");
  EXPECT_NE(error_of([&] { c.validate_length(64, false); }).find("exceeds"), std::string::npos);
  nlohmann::json j = c.to_json();
  j["model_type"] = "bert";
  EXPECT_NE(error_of([&] { ReformerConfig::from_json(j); }).find("different model"), std::string::npos);
  j = c.to_json();
  j["hidden_size"] = "big";
  EXPECT_NE(error_of([&] { ReformerConfig::from_json(j); }).find("\"hidden_size\""), std::string::npos);
}

TEST(Config, UnknownAndUnsupportedFieldsAreReported) {
  nlohmann::json j = tiny_config({"local", "lsh"}).to_json();
  j["transformers_version"] = "4.57.6";  // generic HF key: silently fine
  EXPECT_TRUE(ReformerConfig::ignored_fields(j).empty());
  j["lsh_magic"] = 3;
  j["hash_seed"] = 1;
  const auto notes = ReformerConfig::ignored_fields(j);
  ASSERT_EQ(notes.size(), 2u);
  EXPECT_NE(notes[0].find("\"lsh_magic\""), std::string::npos);
  EXPECT_NE(notes[1].find("hash_seed"), std::string::npos);
  j["pruned_heads"] = {{"0", {1}}};
  EXPECT_NE(error_of([&] { ReformerConfig::from_json(j); }).find("pruned_heads"), std::string::npos);
}
