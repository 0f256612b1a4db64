// A model directory written by transformers' own save_pretrained() (tests/fixtures/hf_saved/,
// scripts/make_hf_saved_fixture.py): it leaves out the tied lm_head.decoder.bias, and must load and
// give transformers' logits.
#include <gtest/gtest.h>

#include <vector>

#include "reformer/safetensors.h"
#include "reformer/checkpoint.h"
#include "reformer/model.h"
#include "support/fixtures.h"
#include "support/tolerance.h"

using namespace reformer;

TEST(HfSaved, SavePretrainedWithoutTheTiedBiasLoadsAndGivesTransformersLogits) {
  const std::string dir = test::fixture_path("hf_saved/lm_head");
  EXPECT_FALSE(SafetensorsFile::open(dir + "/model.safetensors").contains("lm_head.decoder.bias"))
      << "the fixture should be what save_pretrained writes (no tied decoder bias)";
  auto model = load_model(dir);
  const SafetensorsFile expected = SafetensorsFile::open(dir + "/expected.safetensors");
  const std::vector<int64_t> ids64 = expected.read_i64("input_ids");
  const Shape& s = expected.shape("input_ids");
  std::vector<int32_t> ids(ids64.begin(), ids64.end());
  Batch b;
  b.ids = ids.data();
  b.batch = s[0];
  b.length = s[1];
  StepOptions opt;
  opt.training = false;
  Tensor logits;
  model->forward_logits(logits, b, opt);
  const Tensor want = expected.read_f32("logits", MemCategory::Workspace);
  ASSERT_EQ(logits.numel(), want.numel());
  EXPECT_CLOSE(logits.data(), want.data(), want.numel(), test::kParityTol, "logits vs transformers");
}
