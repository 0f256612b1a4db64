// Parity with Hugging Face: every fixture under tests/fixtures/hf (scripts/make_hf_fixtures.py) is
// loaded into a ReformerModel with HF's rotations injected; embeddings, per-layer hidden states,
// logits, loss and every parameter gradient must match under kParityTol.
#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "reformer/checkpoint.h"
#include "reformer/config.h"
#include "reformer/model.h"
#include "support/fixtures.h"
#include "support/tolerance.h"

using namespace reformer;

namespace {

std::vector<int32_t> to_i32(const std::vector<int64_t>& v) { return {v.begin(), v.end()}; }

struct LoadedCase {
  test::HfFixture fx;
  std::unique_ptr<ReformerModel> model;
  std::vector<int32_t> ids, labels;
  std::vector<uint8_t> mask;
  Batch batch;
};

LoadedCase load_case(const std::string& name) {
  LoadedCase c{test::load_hf_fixture(name), nullptr, {}, {}, {}, {}};
  c.model = std::make_unique<ReformerModel>(ReformerConfig::from_json(c.fx.config));
  load_weights(*c.model, c.fx.dir + "/model.safetensors");
  for (int i = 0; i < c.model->config().num_layers(); ++i) {
    const std::string key = "rotations." + std::to_string(i);
    if (c.fx.data.contains(key)) c.model->set_rotations(i, c.fx.data.read_f32(key, MemCategory::Workspace).data());
  }
  const Shape& s = c.fx.data.shape("input_ids");
  c.ids = to_i32(c.fx.data.read_i64("input_ids"));
  c.labels = to_i32(c.fx.data.read_i64("labels"));
  c.batch.ids = c.ids.data();
  c.batch.labels = c.labels.data();
  c.batch.batch = s[0];
  c.batch.length = s[1];
  if (c.fx.data.contains("attention_mask")) {
    for (int64_t m : c.fx.data.read_i64("attention_mask")) c.mask.push_back(static_cast<uint8_t>(m != 0));
    c.batch.attention_mask = c.mask.data();
  }
  return c;
}

class HfParity : public ::testing::TestWithParam<std::string> {};

TEST_P(HfParity, HiddenStatesAndLogits) {
  LoadedCase c = load_case(GetParam());
  // HF hidden_states.0 is the embedding output, hidden_states.(i+1) the X2 half after layer i.
  std::map<std::string, std::string> dumped_to_hf{{"embeddings", "hidden_states.0"}};
  for (int i = 0; i < c.model->config().num_layers(); ++i)
    dumped_to_hf["layer." + std::to_string(i) + ".y2"] = "hidden_states." + std::to_string(i + 1);
  int compared = 0;
  c.model->set_dump_hook([&](const std::string& name, const float* data, const Shape& shape) {
    auto it = dumped_to_hf.find(name);
    if (it == dumped_to_hf.end() || !c.fx.data.contains(it->second)) return;
    const Tensor want = c.fx.data.read_f32(it->second, MemCategory::Workspace);
    ASSERT_EQ(shape_numel(shape), want.numel()) << name;
    EXPECT_CLOSE(data, want.data(), want.numel(), test::kParityTol, GetParam() + " " + name + " vs HF " + it->second);
    ++compared;
  });
  Tensor logits;
  StepOptions opt;
  opt.training = false;
  c.model->forward_logits(logits, c.batch, opt);
  EXPECT_EQ(compared, c.model->config().num_layers() + 1);
  const Tensor want = c.fx.data.read_f32("logits", MemCategory::Workspace);
  ASSERT_EQ(logits.numel(), want.numel());
  EXPECT_CLOSE(logits.data(), want.data(), want.numel(), test::kParityTol, GetParam() + " logits");
}

TEST_P(HfParity, LossAndParameterGradients) {
  LoadedCase c = load_case(GetParam());
  StepOptions opt;
  opt.training = false;  // every dropout is 0 in the fixtures; HF ran train mode only for its backward
  c.model->zero_grad();
  const LossStats stats = c.model->forward_backward(c.batch, opt);
  const float want_loss = c.fx.data.read_f32("loss", MemCategory::Workspace)[0];
  const float got_loss = static_cast<float>(stats.mean());
  EXPECT_CLOSE(&got_loss, &want_loss, 1, test::kParityTol, GetParam() + " loss");
  for (auto& p : c.model->parameters()) {
    const Tensor want = c.fx.data.read_f32("grad." + p.name, MemCategory::Workspace);
    ASSERT_EQ(want.numel(), p.grad->numel()) << p.name;
    EXPECT_CLOSE(p.grad->data(), want.data(), want.numel(), test::kParityTol, GetParam() + " grad " + p.name);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HfParity, ::testing::ValuesIn(test::hf_fixture_cases()),
                         [](const auto& info) { return info.param; });

}  // namespace
