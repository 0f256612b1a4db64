// Windows of any length (issue 12): a window padded to the chunk multiple with an attention mask,
// the loss only over its real positions; lengths below the axial product in training.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "model/eval_length.h"
#include "reformer/model.h"
#include "reformer/rng.h"
#include "support/expect_error.h"
#include "support/tiny_model.h"
#include "support/tolerance.h"
#include "train/byte_data.h"

namespace reformer {
namespace {

namespace fs = std::filesystem;
using test::kPathTol;

// tiny_config (support/tiny_model.h) with chunks of 16, axial positions (8, positions / 8) and
// hidden and local-attention dropout `dropout`.
ReformerConfig config_for(std::vector<std::string> layers, int64_t positions, double dropout) {
  ReformerConfig c = test::tiny_config(std::move(layers), positions);
  c.axial_pos_shape = {8, positions / 8};
  c.lsh_attn_chunk_length = 16;
  c.local_attn_chunk_length = 16;
  c.hidden_dropout_prob = dropout;
  c.local_attention_probs_dropout_prob = dropout;
  return c;
}

int32_t id_at(uint64_t seed, int64_t i, int64_t vocab) {
  return static_cast<int32_t>(rng_uniform(seed, 7, static_cast<uint64_t>(i)) * static_cast<float>(vocab)) %
         static_cast<int32_t>(vocab);
}

// Rows of `real` tokens then padding up to P; the padding's ids come from `pad_seed` (garbage).
struct Padded {
  std::vector<int32_t> ids, labels;
  std::vector<uint8_t> mask;
};

Padded padded_batch(int64_t B, int64_t real, int64_t P, int64_t vocab, uint64_t pad_seed) {
  Padded p;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < P; ++t) {
      const bool is_real = t < real;
      const int32_t id = is_real ? id_at(1, b * P + t, vocab) : id_at(pad_seed, b * P + t, vocab);
      p.ids.push_back(id);
      p.labels.push_back(is_real ? id : -100);
      p.mask.push_back(is_real ? 1 : 0);
    }
  return p;
}

std::vector<float> gradients(ReformerModel& m) {
  std::vector<float> g;
  for (NamedParameter& p : m.parameters()) g.insert(g.end(), p.grad->data(), p.grad->data() + p.grad->numel());
  return g;
}

// What the padding holds changes neither the loss nor the gradients of the real positions, in
// evaluation and in training (dropout on), for every layer type; the loss counts only real labels.
TEST(AnyLength, PaddingContentDoesNotChangeTheRealPositionsLossOrGradients) {
  for (const std::vector<std::string>& layers :
       {std::vector<std::string>{"local", "lsh"}, {"lsh"}, {"full", "local"}}) {
    const ReformerConfig c = config_for(layers, 128, 0.1);
    const int64_t B = 2, real = 100, P = padded_eval_length(c, real);
    ASSERT_EQ(P, 112);  // 100 -> the next multiple of 16
    ReformerModel model(c, 3);
    const Padded a = padded_batch(B, real, P, c.vocab_size, 11), b = padded_batch(B, real, P, c.vocab_size, 12);
    ASSERT_NE(a.ids, b.ids);
    StepOptions eval;
    eval.training = false;
    eval.seed = 5;
    const LossStats ea = model.evaluate({a.ids.data(), B, P, a.mask.data(), a.labels.data()}, eval);
    const LossStats eb = model.evaluate({b.ids.data(), B, P, b.mask.data(), b.labels.data()}, eval);
    EXPECT_EQ(ea.count, B * (real - 1)) << layers[0];
    EXPECT_EQ(ea.loss_sum, eb.loss_sum) << layers[0];

    StepOptions train;
    train.training = true;
    train.seed = 5;
    train.step = 3;
    model.zero_grad();
    const LossStats ta = model.forward_backward({a.ids.data(), B, P, a.mask.data(), a.labels.data()}, train);
    const std::vector<float> ga = gradients(model);
    model.zero_grad();
    const LossStats tb = model.forward_backward({b.ids.data(), B, P, b.mask.data(), b.labels.data()}, train);
    const std::vector<float> gb = gradients(model);
    EXPECT_EQ(ta.loss_sum, tb.loss_sum) << layers[0];
    EXPECT_CLOSE(gb.data(), ga.data(), static_cast<int64_t>(ga.size()), kPathTol, "gradients, " + layers[0]);
  }
}

// A causal model of local and full layers: a real position sees only earlier ones, so a window
// padded with a mask scores its real positions exactly as the same positions inside a longer,
// unpadded window of real tokens whose later labels are ignored.
TEST(AnyLength, PaddedWindowEqualsTheSamePositionsOfAnUnpaddedOne) {
  const ReformerConfig c = config_for({"local", "full"}, 128, 0.0);
  ReformerModel model(c, 4);
  const int64_t B = 2, real = 100, P = padded_eval_length(c, real);
  const Padded padded = padded_batch(B, real, P, c.vocab_size, 11);
  Padded full = padded_batch(B, real, P, c.vocab_size, 11);
  for (int64_t i = 0; i < B * P; ++i) full.ids[i] = id_at(1, i, c.vocab_size);  // real tokens everywhere
  StepOptions eval;
  eval.training = false;
  const LossStats p = model.evaluate({padded.ids.data(), B, P, padded.mask.data(), padded.labels.data()}, eval);
  const LossStats f = model.evaluate({full.ids.data(), B, P, nullptr, full.labels.data()}, eval);
  ASSERT_EQ(p.count, f.count);
  const float got = static_cast<float>(p.loss_sum), want = static_cast<float>(f.loss_sum);
  EXPECT_CLOSE(&got, &want, 1, kPathTol, "summed loss of the real positions");
}

// Below the axial product, training runs (Hugging Face refuses it) and the positions are the table's
// first ones, as Hugging Face's eval takes them: a 64-token window scores as the first 64 positions of a
// 128-token window.
TEST(AnyLength, TrainingBelowTheAxialProductUsesTheFirstPositions) {
  const ReformerConfig c = config_for({"local", "full"}, 128, 0.0);
  ReformerModel model(c, 6);
  const int64_t B = 1, S = 64, L = 128;
  std::vector<int32_t> ids(L), labels(L, -100);
  for (int64_t t = 0; t < L; ++t) ids[t] = id_at(2, t, c.vocab_size);
  for (int64_t t = 0; t < S; ++t) labels[t] = ids[t];
  StepOptions train;
  train.training = true;  // dropout is 0: training and eval compute the same forward
  model.zero_grad();
  const LossStats short_run = model.forward_backward({ids.data(), B, S, nullptr, ids.data()}, train);
  const LossStats long_run = model.forward_backward({ids.data(), B, L, nullptr, labels.data()}, train);
  ASSERT_EQ(short_run.count, long_run.count);
  const float got = static_cast<float>(short_run.loss_sum), want = static_cast<float>(long_run.loss_sum);
  EXPECT_CLOSE(&got, &want, 1, kPathTol, "loss of the first 64 positions");
  // Longer than the positions: refused, naming the limit.
  std::vector<int32_t> too_long(192, 2);
  test::expect_error([&] { model.forward_backward({too_long.data(), B, 192, nullptr, nullptr}, train); }, "exceeds");
}

TEST(AnyLength, PaddedLengthsFollowTheChunkRule) {
  ReformerConfig c = config_for({"local", "lsh"}, 1024, 0.0);
  c.lsh_attn_chunk_length = 64;
  c.local_attn_chunk_length = 64;
  c.axial_pos_shape = {32, 32};
  EXPECT_EQ(padded_eval_length(c, 1000), 1024);
  EXPECT_EQ(padded_eval_length(c, 64), 64);
  EXPECT_EQ(padded_eval_length(c, 40), 40);  // no longer than a chunk: runs unchunked, unpadded
  EXPECT_EQ(c.chunk_padded_length(1025), 1088);
  test::expect_error([&] { padded_eval_length(c, 1025); }, "use a --seq-len of at most 1024");
  EXPECT_NO_THROW(c.validate_length(512, /*training=*/true));  // below the axial product
}

// The data side: a window of 1000 tokens padded to 1024 has 24 masked, unscored positions per row.
TEST(AnyLength, DataWindowsArePaddedWithAMaskAndIgnoredLabels) {
  const fs::path file = fs::temp_directory_path() / ("reformer_any_length_" + std::to_string(::getpid()) + ".txt");
  {
    std::ofstream out(file, std::ios::binary);
    for (int i = 0; i < 61000; ++i) out.put(static_cast<char>('a' + (i * 7) % 26));
  }
  const ByteDataset d = ByteDataset::from_file(file.string());
  TokenBatch batch;
  d.train_batch(batch, 2, 1000, /*seed=*/1, /*step=*/0, /*padded=*/1024);
  ASSERT_EQ(batch.length, 1024);
  ASSERT_EQ(batch.mask.size(), 2u * 1024u);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t t = 0; t < 1024; ++t) {
      EXPECT_EQ(batch.mask[b * 1024 + t], t < 1000 ? 1 : 0);
      if (t >= 1000) EXPECT_EQ(batch.labels[b * 1024 + t], -100);
    }
  EXPECT_EQ(batch.scored_bytes, 2.0 * 999);
  d.train_batch(batch, 2, 1024, 1, 0);
  EXPECT_TRUE(batch.mask.empty()) << "no padding, no mask";
  // Evaluation: the last window is short; it and the chunk padding are masked.
  const int64_t windows = d.eval_windows(Split::Validation, 1000);
  const int64_t last = d.tokens(Split::Validation) - (windows - 1) * 1000;
  d.eval_batch(batch, Split::Validation, windows - 1, 1, 1000, 1024);
  int64_t ones = 0;
  for (uint8_t m : batch.mask) ones += m;
  EXPECT_EQ(ones, last);
  fs::remove(file);
}

}  // namespace
}  // namespace reformer
