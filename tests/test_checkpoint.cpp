// Model directories (include/reformer/checkpoint.h): save_model / load_model round trip (weights
// bit-identical, config equal, logits equal), every Hugging Face fixture directory loads, clear errors
// for broken directories, and a failed save leaves the previous checkpoint intact.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "reformer/safetensors.h"
#include "reformer/checkpoint.h"
#include "reformer/config.h"
#include "reformer/error.h"
#include "reformer/model.h"
#include "reformer/rng.h"
#include "support/fixtures.h"

using namespace reformer;
namespace fs = std::filesystem;

namespace {

ReformerConfig mixed_config() {
  ReformerConfig c;
  c.attn_layers = {"local", "lsh", "local", "lsh"};
  c.hidden_size = 16;
  c.feed_forward_size = 24;
  c.num_attention_heads = 2;
  c.attention_head_size = 8;
  c.vocab_size = 13;
  c.axial_pos_shape = {4, 8};
  c.axial_pos_embds_dim = {6, 10};
  c.max_position_embeddings = 32;
  c.lsh_attn_chunk_length = 8;
  c.local_attn_chunk_length = 8;
  c.num_buckets = {2, 4};
  c.num_hashes = 2;
  c.is_decoder = true;
  c.hidden_act = "gelu";
  c.hidden_dropout_prob = 0.0;
  c.local_attention_probs_dropout_prob = 0.0;
  c.hash_seed = 5;
  return c;
}

// A model whose every parameter is a distinct random value (HF's init leaves biases 0, LN 1).
std::unique_ptr<ReformerModel> random_model(const ReformerConfig& c, uint64_t seed) {
  auto m = std::make_unique<ReformerModel>(c, seed);
  uint64_t k = 0;
  for (auto& p : m->parameters()) {
    for (int64_t i = 0; i < p.param->numel(); ++i) (*p.param)[i] = static_cast<float>(rng_uniform(seed, 7, k * 100003 + i)) - 0.5f;
    ++k;
  }
  return m;
}

std::vector<float> logits_of(ReformerModel& m, int64_t B, int64_t L) {
  std::vector<int32_t> ids(B * L);
  for (int64_t i = 0; i < B * L; ++i) ids[i] = static_cast<int32_t>((i * 7 + 3) % m.config().vocab_size);
  Batch batch;
  batch.ids = ids.data();
  batch.batch = B;
  batch.length = L;
  StepOptions opt;
  opt.training = false;
  opt.seed = 11;
  Tensor logits;
  m.forward_logits(logits, batch, opt);
  return {logits.data(), logits.data() + logits.numel()};
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// The message of the reformer::Error that f throws; fails the test if it throws none.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a reformer::Error";
  return {};
}

class Checkpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("reformer_ckpt_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::add, ec);
    for (const auto& e : fs::recursive_directory_iterator(dir_, ec))
      fs::permissions(e.path(), fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(dir_, ec);
  }
  fs::path path(const std::string& name) const { return dir_ / name; }

  // A valid checkpoint of mixed_config() in dir_/name; returns its directory.
  fs::path saved(const std::string& name, uint64_t seed = 1) {
    auto m = random_model(mixed_config(), seed);
    save_model(path(name).string(), *m);
    return path(name);
  }

  // Rewrites dir/model.safetensors through `edit` (which gets every tensor by name).
  void rewrite_weights(const fs::path& dir, const std::function<void(std::map<std::string, Tensor>&)>& edit) {
    const SafetensorsFile f = SafetensorsFile::open((dir / "model.safetensors").string());
    std::map<std::string, Tensor> tensors;
    for (const auto& n : f.names()) tensors[n] = f.read_f32(n, MemCategory::Workspace);
    edit(tensors);
    std::vector<NamedTensorView> views;
    for (const auto& [n, t] : tensors) views.emplace_back(n, t);
    write_safetensors((dir / "model.safetensors").string(), views, {{"format", "pt"}});
  }

  fs::path dir_;
};

TEST_F(Checkpoint, RoundTripIsBitIdentical) {
  const ReformerConfig c = mixed_config();
  auto a = random_model(c, 3);
  save_model(path("m").string(), *a, {{"step", "42"}});
  ASSERT_TRUE(fs::exists(path("m") / "config.json"));
  ASSERT_TRUE(fs::exists(path("m") / "model.safetensors"));
  EXPECT_FALSE(fs::exists(path("m") / "model.safetensors.tmp"));
  EXPECT_FALSE(fs::exists(path("m") / "config.json.tmp"));

  auto b = load_model(path("m").string());
  EXPECT_EQ(b->config().to_json(), c.to_json());
  ASSERT_EQ(a->parameters().size(), b->parameters().size());
  for (size_t i = 0; i < a->parameters().size(); ++i) {
    const auto& pa = a->parameters()[i];
    const auto& pb = b->parameters()[i];
    ASSERT_EQ(pa.name, pb.name);
    ASSERT_EQ(pa.param->shape(), pb.param->shape()) << pa.name;
    EXPECT_EQ(0, std::memcmp(pa.param->data(), pb.param->data(), sizeof(float) * pa.param->numel())) << pa.name;
  }
  const std::vector<float> la = logits_of(*a, 2, 32), lb = logits_of(*b, 2, 32);
  ASSERT_EQ(la.size(), lb.size());
  EXPECT_EQ(0, std::memcmp(la.data(), lb.data(), sizeof(float) * la.size()));

  // HF layout: the tied lm_head.bias is stored beside lm_head.decoder.bias, metadata format = pt.
  const SafetensorsFile f = SafetensorsFile::open((path("m") / "model.safetensors").string());
  ASSERT_TRUE(f.contains("lm_head.bias"));
  const Tensor bias = f.read_f32("lm_head.bias", MemCategory::Workspace);
  const Tensor dec = f.read_f32("lm_head.decoder.bias", MemCategory::Workspace);
  EXPECT_EQ(0, std::memcmp(bias.data(), dec.data(), sizeof(float) * bias.numel()));
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.metadata().at("step"), "42");
  EXPECT_EQ(f.names().size(), a->parameters().size() + 1);

  // config.json is what Hugging Face expects to find.
  std::ifstream in(path("m") / "config.json");
  const nlohmann::json j = nlohmann::json::parse(in);
  EXPECT_EQ(j.at("model_type"), "reformer");
  EXPECT_EQ(j.at("num_hidden_layers"), 4);
  EXPECT_EQ(j.at("num_buckets"), nlohmann::json::array({2, 4}));
  EXPECT_EQ(j.at("hash_seed"), 5);
}

TEST_F(Checkpoint, SavingTwiceOverwritesCleanly) {
  saved("m", 1);
  auto b = random_model(mixed_config(), 2);
  save_model(path("m").string(), *b);
  auto c = load_model(path("m").string());
  for (size_t i = 0; i < b->parameters().size(); ++i)
    EXPECT_EQ(0, std::memcmp(b->parameters()[i].param->data(), c->parameters()[i].param->data(),
                             sizeof(float) * b->parameters()[i].param->numel()));
}

TEST(CheckpointFixtures, EveryHfFixtureDirectoryLoads) {
  const auto cases = test::hf_fixture_cases();
  ASSERT_FALSE(cases.empty());
  for (const auto& name : cases) {
    SCOPED_TRACE(name);
    const test::HfFixture fx = test::load_hf_fixture(name);
    std::unique_ptr<ReformerModel> m;
    ASSERT_NO_THROW(m = load_model(fx.dir));
    EXPECT_EQ(m->config().to_json(), ReformerConfig::from_json(fx.config).to_json());
    for (auto& p : m->parameters()) {
      const Tensor want = fx.weights.read_f32(p.name, MemCategory::Workspace);
      ASSERT_EQ(want.numel(), p.param->numel()) << p.name;
      EXPECT_EQ(0, std::memcmp(want.data(), p.param->data(), sizeof(float) * want.numel())) << p.name;
    }
  }
}

TEST_F(Checkpoint, MissingDirectory) {
  const std::string msg = error_of([&] { load_model(path("nope").string()); });
  EXPECT_NE(msg.find("does not exist"), std::string::npos) << msg;
  EXPECT_NE(msg.find("nope"), std::string::npos) << msg;
}

TEST_F(Checkpoint, MissingWeightsFileAndPytorchBinHint) {
  const fs::path d = saved("m");
  fs::remove(d / "model.safetensors");
  std::string msg = error_of([&] { load_model(d.string()); });
  EXPECT_NE(msg.find("no model.safetensors"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("convert_pytorch_bin.py"), std::string::npos) << msg;
  write_bytes(d / "pytorch_model.bin", "PK");
  msg = error_of([&] { load_model(d.string()); });
  EXPECT_NE(msg.find("scripts/convert_pytorch_bin.py"), std::string::npos) << msg;
}

TEST_F(Checkpoint, MissingConfig) {
  const fs::path d = saved("m");
  fs::remove(d / "config.json");
  const std::string msg = error_of([&] { load_model(d.string()); });
  EXPECT_NE(msg.find("config.json"), std::string::npos) << msg;
}

TEST_F(Checkpoint, WeightWithWrongShape) {
  const fs::path d = saved("m");
  const std::string name = "reformer.encoder.layers.1.attention.self_attention.query_key.weight";
  rewrite_weights(d, [&](auto& t) { t[name] = Tensor::zeros({12, 16}, MemCategory::Workspace); });
  const std::string msg = error_of([&] { load_model(d.string()); });
  EXPECT_NE(msg.find(name), std::string::npos) << msg;
  EXPECT_NE(msg.find("(12, 16)"), std::string::npos) << "names the shape found: " << msg;
  EXPECT_NE(msg.find("(16, 16)"), std::string::npos) << "names the shape needed: " << msg;
}

TEST_F(Checkpoint, MissingWeight) {
  const fs::path d = saved("m");
  const std::string name = "reformer.encoder.layers.2.feed_forward.output.dense.bias";
  rewrite_weights(d, [&](auto& t) { t.erase(name); });
  const std::string msg = error_of([&] { load_model(d.string()); });
  EXPECT_NE(msg.find("missing weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find(name), std::string::npos) << msg;
}

TEST_F(Checkpoint, UnexpectedTensor) {
  const fs::path d = saved("m");
  rewrite_weights(d, [&](auto& t) { t["reformer.pooler.dense.weight"] = Tensor::zeros({4, 4}, MemCategory::Workspace); });
  const std::string msg = error_of([&] { load_model(d.string()); });
  EXPECT_NE(msg.find("unexpected tensor \"reformer.pooler.dense.weight\""), std::string::npos) << msg;
}

TEST_F(Checkpoint, LegacyMaskBuffersAreSkipped) {
  const fs::path d = saved("m");
  rewrite_weights(d, [&](auto& t) {
    for (const char* s : {"self_mask_value_float16", "self_mask_value_float32", "mask_value_float16", "mask_value_float32"})
      for (int l : {0, 1}) {
        Tensor v = Tensor::zeros({}, MemCategory::Workspace);
        t["reformer.encoder.layers." + std::to_string(l) + ".attention.self_attention." + s] = std::move(v);
      }
  });
  EXPECT_NO_THROW(load_model(d.string()));
}

TEST_F(Checkpoint, TruncatedWeightsFile) {
  const fs::path d = saved("m");
  const std::string bytes = read_bytes(d / "model.safetensors");
  write_bytes(d / "model.safetensors", bytes.substr(0, bytes.size() - 100));
  std::string msg = error_of([&] { load_model(d.string()); });
  EXPECT_NE(msg.find("model.safetensors"), std::string::npos) << msg;
  write_bytes(d / "model.safetensors", bytes.substr(0, 5));  // not even the header length
  msg = error_of([&] { load_model(d.string()); });
  EXPECT_NE(msg.find("model.safetensors"), std::string::npos) << msg;
}

TEST_F(Checkpoint, ConfigOfAnotherModelType) {
  const fs::path d = saved("m");
  std::ifstream in(d / "config.json");
  nlohmann::json j = nlohmann::json::parse(in);
  in.close();
  j["model_type"] = "bert";
  write_bytes(d / "config.json", j.dump(2));
  const std::string msg = error_of([&] { load_model(d.string()); });
  EXPECT_NE(msg.find("bert"), std::string::npos) << msg;
  EXPECT_NE(msg.find("different model"), std::string::npos) << msg;
}

TEST_F(Checkpoint, ConfigThatDisagreesWithTheWeights) {
  const fs::path d = saved("m");
  std::ifstream in(d / "config.json");
  nlohmann::json j = nlohmann::json::parse(in);
  in.close();
  j["feed_forward_size"] = 20;
  write_bytes(d / "config.json", j.dump(2));
  const std::string msg = error_of([&] { load_model(d.string()); });
  EXPECT_NE(msg.find("feed_forward"), std::string::npos) << msg;
  EXPECT_NE(msg.find("disagree"), std::string::npos) << msg;
}

// A save that fails while writing the weights must leave the previous checkpoint as it was. The
// failure is provoked with a directory sitting where the temporary file must go (works as root too).
TEST_F(Checkpoint, FailedSaveKeepsThePreviousCheckpoint) {
  const fs::path d = saved("m", 1);
  const std::string weights = read_bytes(d / "model.safetensors");
  const std::string config = read_bytes(d / "config.json");
  fs::create_directories(d / "model.safetensors.tmp" / "blocker");
  auto other = random_model(mixed_config(), 2);
  const std::string msg = error_of([&] { save_model(d.string(), *other); });
  EXPECT_NE(msg.find("model.safetensors"), std::string::npos) << msg;
  EXPECT_EQ(read_bytes(d / "model.safetensors"), weights);
  EXPECT_EQ(read_bytes(d / "config.json"), config);
  fs::remove_all(d / "model.safetensors.tmp");
  EXPECT_NO_THROW(load_model(d.string()));
}

// The same through permissions (only meaningful when not running as root, who may write anyway).
TEST_F(Checkpoint, ReadOnlyDirectoryKeepsThePreviousCheckpoint) {
  if (::geteuid() == 0) GTEST_SKIP() << "root ignores directory permissions";
  const fs::path d = saved("m", 1);
  const std::string weights = read_bytes(d / "model.safetensors");
  const std::string config = read_bytes(d / "config.json");
  fs::permissions(d, fs::perms::owner_read | fs::perms::owner_exec, fs::perm_options::replace);
  auto other = random_model(mixed_config(), 2);
  EXPECT_THROW(save_model(d.string(), *other), Error);
  fs::permissions(d, fs::perms::owner_all, fs::perm_options::replace);
  EXPECT_EQ(read_bytes(d / "model.safetensors"), weights);
  EXPECT_EQ(read_bytes(d / "config.json"), config);
}

TEST_F(Checkpoint, UnwritablePath) {
  auto m = random_model(mixed_config(), 1);
  write_bytes(path("file"), "x");  // a regular file where a directory must be created
  const std::string msg = error_of([&] { save_model((path("file") / "sub").string(), *m); });
  EXPECT_NE(msg.find("cannot create model directory"), std::string::npos) << msg;
}

}  // namespace
