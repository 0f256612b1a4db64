// Encoder tasks and fine-tuning (issue 12): masked-LM inputs as BERT / HF's data collator make them,
// sequence-classification data and metrics, loading a checkpoint's base weights under a new head,
// and whole runs through the CLI: MLM and classification lower their loss within a bounded number
// of steps, --init-from continues from the checkpoint's loss, refuses a change that breaks the
// weights, and a resumed MLM run masks exactly as an uninterrupted one.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "reformer/bytes.h"
#include "reformer/checkpoint.h"
#include "reformer/config.h"
#include "reformer/model.h"
#include "reformer/tokenizer.h"
#include "support/expect_error.h"
#include "support/fixtures.h"
#include "support/run_cli.h"
#include "support/text_corpus.h"
#include "train/classify_data.h"
#include "train/mlm.h"

namespace {

namespace fs = std::filesystem;
using reformer::kIgnoreLabel;
using reformer::TokenBatch;
using reformer::test::expect_error;

// A batch of byte ids as the LM data sources fill it (labels = ids), rows of `length`, with the last
// `pad` positions of odd rows padding.
TokenBatch text_batch(int64_t batch, int64_t length, int64_t pad) {
  TokenBatch t;
  t.resize(batch, length);
  t.mask.assign(t.ids.size(), 1);
  for (int64_t i = 0; i < batch * length; ++i) t.ids[i] = t.labels[i] = reformer::kByteIdOffset + static_cast<int32_t>(i * 7 % 256);
  for (int64_t b = 1; b < batch; b += 2)
    for (int64_t i = length - pad; i < length; ++i) {
      t.ids[b * length + i] = reformer::kBytePadId;
      t.labels[b * length + i] = kIgnoreLabel;
      t.mask[b * length + i] = 0;
    }
  return t;
}

reformer::MlmOptions byte_masking(double p = 0.15) { return {p, reformer::kByteMaskId, reformer::kByteIdOffset, reformer::kByteVocab}; }

// |count - n p| within 6 standard deviations of a binomial(n, p): fails only for a wrong rate.
void expect_binomial(int64_t count, int64_t n, double p, const char* what) {
  const double sd = std::sqrt(static_cast<double>(n) * p * (1 - p));
  EXPECT_LE(std::fabs(static_cast<double>(count) - static_cast<double>(n) * p), 6 * sd)
      << what << ": " << count << " of " << n << ", expected about " << static_cast<double>(n) * p;
}

TEST(Mlm, SelectsFifteenPercentMasksEightyRandomTenKeepsTenAndLabelsOnlyThose) {
  const TokenBatch original = text_batch(16, 2048, 300);
  TokenBatch t = original;
  apply_mlm_mask(t, byte_masking(), /*seed=*/7, /*index=*/3);
  int64_t eligible = 0, selected = 0, masked = 0, random = 0, kept = 0;
  for (size_t i = 0; i < t.ids.size(); ++i) {
    if (original.labels[i] == kIgnoreLabel) {  // padding: never selected, never changed
      EXPECT_EQ(t.labels[i], kIgnoreLabel);
      EXPECT_EQ(t.ids[i], original.ids[i]);
      continue;
    }
    ++eligible;
    if (t.labels[i] == kIgnoreLabel) {
      EXPECT_EQ(t.ids[i], original.ids[i]) << "an unselected token changed at " << i;
      continue;
    }
    ++selected;
    EXPECT_EQ(t.labels[i], original.ids[i]) << "a selected token's label is its original id";
    if (t.ids[i] == reformer::kByteMaskId) ++masked;
    else if (t.ids[i] == original.ids[i]) ++kept;
    else ++random;
    EXPECT_GE(t.ids[i], reformer::kByteMaskId);
    EXPECT_LT(t.ids[i], reformer::kByteVocab);
  }
  expect_binomial(selected, eligible, 0.15, "selected");
  expect_binomial(masked, selected, 0.8, "[MASK]");
  // A random draw may give the original id back (1 in 256): "kept" holds those too.
  expect_binomial(random + kept, selected, 0.2, "random or kept");
  expect_binomial(kept, selected, 0.1 + 0.1 / 256, "kept");
  EXPECT_EQ(t.scored_bytes, 0.0);
}

TEST(Mlm, MasksArePureFunctionsOfSeedAndMicroBatch) {
  const TokenBatch original = text_batch(4, 256, 40);
  TokenBatch a = original, b = original, c = original, d = original;
  apply_mlm_mask(a, byte_masking(), 1, 5);
  apply_mlm_mask(b, byte_masking(), 1, 5);
  apply_mlm_mask(c, byte_masking(), 1, 6);
  apply_mlm_mask(d, byte_masking(), 2, 5);
  EXPECT_EQ(a.ids, b.ids);
  EXPECT_EQ(a.labels, b.labels);
  EXPECT_NE(a.labels, c.labels) << "another micro-batch masks other positions";
  EXPECT_NE(a.labels, d.labels) << "another seed masks other positions";
}

TEST(Mlm, ABatchWithNothingSelectedStillGetsOneMaskedToken) {
  const TokenBatch original = text_batch(1, 8, 0);
  TokenBatch t = original;
  apply_mlm_mask(t, byte_masking(1e-7), 0, 0);
  int64_t labelled = 0;
  for (size_t i = 0; i < t.ids.size(); ++i)
    if (t.labels[i] != kIgnoreLabel) {
      ++labelled;
      EXPECT_EQ(t.ids[i], reformer::kByteMaskId);
      EXPECT_EQ(t.labels[i], original.ids[i]);
    }
  EXPECT_EQ(labelled, 1);
}

TEST(Mlm, RefusesATokenizerWithoutAMaskAndABadProbability) {
  TokenBatch t = text_batch(1, 8, 0);
  reformer::MlmOptions none = byte_masking();
  none.mask_id = -1;
  expect_error([&] { apply_mlm_mask(t, none, 0, 0); }, "--mask-piece");
  expect_error([&] { apply_mlm_mask(t, byte_masking(1.0), 0, 0); }, "--mlm-probability");
}

TEST(Mlm, TokenizersNameTheirMask) {
  EXPECT_EQ(reformer::make_byte_tokenizer()->mask_id(), reformer::kByteMaskId);
  reformer::SentencePieceTrainOptions o;
  o.vocab_size = 120;
  const std::string text = reformer::test::text_corpus(20000, 3);
  const auto plain = reformer::sentencepiece_from_serialized(reformer::train_sentencepiece(text, o), "plain");
  EXPECT_EQ(plain->mask_id(), -1) << "HF's ReformerTokenizer has no mask token by default";
  o.mask_piece = true;
  const auto masked = reformer::sentencepiece_from_serialized(reformer::train_sentencepiece(text, o), "with mask");
  ASSERT_GE(masked->mask_id(), 0);
  EXPECT_EQ(masked->token_text(masked->mask_id()), "<mask>");
  EXPECT_EQ(masked->vocab_size(), 120);
}

TEST(Mlm, MaskedLmLossCountsOnlyTheLabelledPositions) {
  reformer::ReformerConfig c;
  c.attn_layers = {"local"};
  c.hidden_size = 16;
  c.feed_forward_size = 32;
  c.num_attention_heads = 2;
  c.attention_head_size = 8;
  c.vocab_size = reformer::kByteVocab;
  c.axial_pos_shape = {4, 8};
  c.axial_pos_embds_dim = {4, 12};
  c.max_position_embeddings = 32;
  c.local_attn_chunk_length = 8;
  c.is_decoder = false;
  reformer::ReformerModel model(c, 0);
  ASSERT_EQ(model.model_class(), reformer::ModelClass::MaskedLM);
  TokenBatch t = text_batch(2, 32, 0);
  apply_mlm_mask(t, byte_masking(), 0, 0);
  const auto labelled = std::count_if(t.labels.begin(), t.labels.end(), [](int32_t l) { return l != kIgnoreLabel; });
  reformer::Batch in{t.ids.data(), 2, 32, nullptr, t.labels.data()};
  reformer::StepOptions opt;
  opt.training = false;
  EXPECT_EQ(model.evaluate(in, opt).count, static_cast<double>(labelled));
}

class Files : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("reformer_tasks_" + std::to_string(getpid()) + "_" +
                                        testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
    return (dir_ / name).string();
  }
  fs::path dir_;
};

TEST_F(Files, ClassificationDataReadsLabelsTruncatesAndVisitsEveryExampleOncePerEpoch) {
  const auto bytes = reformer::make_byte_tokenizer();
  auto d = reformer::ClassificationData::from_jsonl(
      write("a.jsonl", "{\"text\": \"abcdef\", \"label\": \"pos\"}\n\n{\"text\": \"xy\", \"label\": \"neg\", \"id\": 3}\n"
                       "{\"text\": \"q\", \"label\": \"pos\"}\n"),
      *bytes);
  ASSERT_EQ(d.size(), 3);
  EXPECT_EQ(d.longest(), 6);
  EXPECT_EQ(d.label_names(), (std::vector<std::string>{"neg", "pos"}));
  d.resolve_labels(2, d.label_names());
  TokenBatch t;
  d.eval_batch(t, 0, 4, /*length=*/4, /*padded=*/8);
  ASSERT_EQ(t.batch, 3);
  EXPECT_EQ(t.class_labels, (std::vector<int32_t>{1, 0, 1}));
  EXPECT_EQ(t.ids[3], 'd' + reformer::kByteIdOffset);  // truncated to 4 tokens
  EXPECT_EQ(t.mask[3], 1);
  EXPECT_EQ(t.mask[4], 0);
  EXPECT_EQ(t.mask[8 + 2], 0);  // "xy" is padded after 2 tokens
  for (int32_t l : t.labels) EXPECT_EQ(l, kIgnoreLabel);
  // Six training rows = two epochs: each visits every example once.
  d.train_batch(t, 6, 4, 8, /*seed=*/5, /*index=*/0);
  for (int epoch = 0; epoch < 2; ++epoch) {
    std::vector<int32_t> first_ids;
    for (int r = 0; r < 3; ++r) first_ids.push_back(t.ids[(epoch * 3 + r) * 8]);
    std::sort(first_ids.begin(), first_ids.end());
    EXPECT_EQ(first_ids, (std::vector<int32_t>{'a' + 2, 'q' + 2, 'x' + 2})) << "epoch " << epoch;
  }
}

TEST_F(Files, ClassificationDataErrorsNameTheLine) {
  const auto bytes = reformer::make_byte_tokenizer();
  expect_error([&] { reformer::ClassificationData::from_jsonl(write("b.jsonl", "{\"text\": \"a\", \"label\": 0}\nnot json\n"), *bytes); },
               "line 2");
  expect_error([&] { reformer::ClassificationData::from_jsonl(write("c.jsonl", "{\"label\": 0}\n"), *bytes); }, "\"text\"");
  auto d = reformer::ClassificationData::from_jsonl(write("d.jsonl", "{\"text\": \"a\", \"label\": 0}\n{\"text\": \"b\", \"label\": 5}\n"), *bytes);
  expect_error([&] { d.resolve_labels(2, {}); }, "line 2");
}

TEST(ClassificationMetrics, AccuracyAndBinaryF1) {
  reformer::ClassificationCounts c;
  const int32_t predicted[] = {1, 1, 0, 0, 1, 0};
  const int32_t label[] = {1, 0, 1, 0, 1, kIgnoreLabel};
  int64_t tp = 0, fp = 0, fn = 0, correct = 0;
  for (int i = 0; i < 6; ++i) {
    c.add(predicted[i], label[i]);
    if (label[i] == kIgnoreLabel) continue;
    correct += predicted[i] == label[i];
    tp += predicted[i] == 1 && label[i] == 1;
    fp += predicted[i] == 1 && label[i] == 0;
    fn += predicted[i] == 0 && label[i] == 1;
  }
  const nlohmann::json m = c.metrics(2);
  const double precision = static_cast<double>(tp) / static_cast<double>(tp + fp);
  const double recall = static_cast<double>(tp) / static_cast<double>(tp + fn);
  EXPECT_DOUBLE_EQ(m["accuracy"].get<double>(), static_cast<double>(correct) / 5);
  EXPECT_DOUBLE_EQ(m["f1"].get<double>(), 2 * precision * recall / (precision + recall));
  EXPECT_FALSE(c.metrics(3).contains("f1")) << "F1 is reported for two classes";
}

// An HF-saved ReformerForMaskedLM under a new classification head: the base weights are the
// checkpoint's, the head keeps its initialisation, and the MLM head's tensors are ignored.
TEST(InitFrom, BaseWeightsLoadUnderANewHead) {
  const std::string dir = reformer::test::fixture_path("hf_classes/ReformerForMaskedLM");
  const auto mlm = reformer::load_model(dir);
  reformer::ReformerConfig c = reformer::load_model_config(dir);
  EXPECT_EQ(c.model_class(), reformer::ModelClass::MaskedLM);
  c.architectures = {"ReformerForSequenceClassification"};
  c.num_labels = 3;
  reformer::ReformerModel fresh(c, 11), cls(c, 11);
  const std::vector<std::string> left = reformer::load_base_weights(cls, dir + "/model.safetensors", /*with_head=*/false);
  EXPECT_FALSE(left.empty());
  for (auto& p : cls.parameters()) {
    const bool head = !p.name.starts_with("reformer.");
    EXPECT_EQ(std::count(left.begin(), left.end(), p.name), head ? 1 : 0) << p.name;
    const reformer::Tensor& want = head ? *fresh.find_parameter(p.name)->param : *mlm->find_parameter(p.name)->param;
    ASSERT_EQ(want.numel(), p.param->numel()) << p.name;
    EXPECT_TRUE(std::equal(want.data(), want.data() + want.numel(), p.param->data())) << p.name;
  }
  expect_error([&] { reformer::load_base_weights(cls, dir + "/model.safetensors", /*with_head=*/true); }, "classifier");
}

// Whole runs through the CLI, on text and labels made here.
class TaskRuns : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("reformer_task_runs_" + std::to_string(getpid())));
    fs::remove_all(*dir_);
    fs::create_directories(*dir_);
    std::string text;
    for (int i = 0; text.size() < 40000; ++i) text += "a dog ran to the red house " + std::to_string(i % 89) + ". ";
    std::ofstream(*dir_ / "text.txt") << text;
    // Sentiment-like labels: label 1 iff the text holds one of the "good" words; the other words are noise.
    const char* good[] = {"good", "great", "fine", "nice"};
    const char* bad[] = {"bad", "awful", "poor", "sad"};
    const char* noise[] = {"the", "a", "day", "was", "very", "it", "so"};
    uint64_t s = 12345;
    auto next = [&](uint64_t n) {
      s = s * 6364136223846793005ULL + 1442695040888963407ULL;
      return static_cast<size_t>((s >> 33) % n);
    };
    for (const auto& [name, n] : {std::pair{"train.jsonl", 400}, std::pair{"valid.jsonl", 100}}) {
      std::ofstream out(*dir_ / name);
      for (int i = 0; i < n; ++i) {
        const int label = static_cast<int>(next(2));
        std::vector<std::string> words = {label ? good[next(4)] : bad[next(4)]};
        for (size_t w = 0, k = 3 + next(5); w < k; ++w) words.insert(words.begin() + static_cast<long>(next(words.size() + 1)), noise[next(7)]);
        std::string line;
        for (const auto& w : words) line += (line.empty() ? "" : " ") + w;
        out << nlohmann::json{{"text", line}, {"label", label}}.dump() << "\n";
      }
    }
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  static std::string path(const std::string& name) { return (*dir_ / name).string(); }
  static constexpr const char* kTiny =
      " --hidden-size 64 --heads 2 --head-size 32 --attn-layers local,lsh --lsh-chunk 32 --local-chunk 32"
      " --threads 1 --dropout 0 --warmup 2 --log-interval 5";
  static std::string text_run(const std::string& task, const std::string& out) {
    return "train --task " + task + " --data " + path("text.txt") + " --out " + path(out) + kTiny + " --seq-len 128 --batch 4";
  }
  static std::vector<nlohmann::json> records(const std::string& run, const std::string& split) {
    std::vector<nlohmann::json> out;
    std::ifstream in(*dir_ / run / "metrics.jsonl");
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line);
      if (j["split"] == split) out.push_back(j);
    }
    return out;
  }
  static std::vector<double> train_losses(const std::string& run) {
    std::vector<double> out;
    for (const auto& r : records(run, "train")) out.push_back(r["loss"].get<double>());
    return out;
  }
  static double mean(const std::vector<double>& v, size_t first, size_t n) {
    return std::accumulate(v.begin() + static_cast<long>(first), v.begin() + static_cast<long>(first + n), 0.0) / static_cast<double>(n);
  }
  static nlohmann::json config_of(const std::string& run) {
    return nlohmann::json::parse(std::ifstream(*dir_ / run / "config.json"));
  }
  static fs::path* dir_;
};

fs::path* TaskRuns::dir_ = nullptr;

TEST_F(TaskRuns, MaskedLmLowersItsLossOnTheMaskedTokens) {
  const auto r = reformer::test::reformer(text_run("mlm", "mlm") + " --steps 60 --lr 3e-3 --eval-interval 30 --eval-windows 8");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(config_of("mlm")["architectures"][0], "ReformerForMaskedLM");
  EXPECT_EQ(config_of("mlm")["is_decoder"], false);
  const std::vector<double> loss = train_losses("mlm");
  ASSERT_EQ(loss.size(), 60u);
  EXPECT_LT(mean(loss, 50, 10), mean(loss, 0, 10)) << r.out;
  const auto evals = records("mlm", "validation");
  ASSERT_EQ(evals.size(), 2u);
  EXPECT_GT(evals[1]["masked_tokens"].get<double>(), 0);
  EXPECT_FALSE(evals[1].contains("bits_per_byte"));
  EXPECT_EQ(evals[0]["masked_tokens"], evals[1]["masked_tokens"]) << "every evaluation masks the same tokens";
  // Uniform over the vocabulary would be ln(258); the model must do better than that.
  EXPECT_LT(evals[1]["loss"].get<double>(), std::log(static_cast<double>(reformer::kByteVocab)));
}

// (A constant schedule: cosine depends on --steps, which the resumed run raises.)
TEST_F(TaskRuns, AResumedMaskedLmRunMasksAsTheUninterruptedOne) {
  ASSERT_EQ(reformer::test::reformer(text_run("mlm", "whole") + " --steps 6 --lr 3e-3 --schedule constant").rc, 0);
  ASSERT_EQ(reformer::test::reformer(text_run("mlm", "split") + " --steps 3 --lr 3e-3 --schedule constant").rc, 0);
  const auto r = reformer::test::reformer("train --out " + path("split") + " --resume --steps 6 --threads 1");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(train_losses("whole"), train_losses("split"));
}

TEST_F(TaskRuns, ClassificationLowersItsLossAndBeatsTheMajorityClass) {
  const auto r = reformer::test::reformer("train --task classify --data " + path("train.jsonl") + " --valid-data " +
                                          path("valid.jsonl") + " --out " + path("cls") + kTiny +
                                          " --batch 8 --steps 100 --lr 3e-3 --eval-interval 50");
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto config = config_of("cls");
  EXPECT_EQ(config["architectures"][0], "ReformerForSequenceClassification");
  EXPECT_EQ(config["id2label"].size(), 2u);
  const std::vector<double> loss = train_losses("cls");
  ASSERT_EQ(loss.size(), 100u);
  EXPECT_LT(mean(loss, 80, 20), mean(loss, 0, 20)) << r.out;
  const auto evals = records("cls", "validation");
  ASSERT_EQ(evals.size(), 2u);
  EXPECT_EQ(evals[1]["examples"], 100);
  ASSERT_TRUE(evals[1].contains("f1"));
  int64_t ones = 0;
  std::ifstream in(*dir_ / "valid.jsonl");
  for (std::string line; std::getline(in, line);) ones += nlohmann::json::parse(line)["label"].get<int>();
  const double majority = static_cast<double>(std::max<int64_t>(ones, 100 - ones)) / 100;
  EXPECT_GT(evals[1]["accuracy"].get<double>(), majority) << r.out;
}

TEST_F(TaskRuns, InitFromContinuesFromTheCheckpointsLossNotFromScratch) {
  ASSERT_EQ(reformer::test::reformer(text_run("lm", "base") + " --steps 60 --lr 3e-3").rc, 0);
  ASSERT_EQ(reformer::test::reformer(text_run("lm", "scratch") + " --steps 3 --lr 1e-4").rc, 0);
  const auto r = reformer::test::reformer("train --task lm --data " + path("text.txt") + " --out " + path("tuned") +
                                          " --init-from " + path("base") + " --seq-len 128 --batch 4 --threads 1 --steps 3 --lr 1e-4");
  ASSERT_EQ(r.rc, 0) << r.out;
  const std::vector<double> base = train_losses("base"), scratch = train_losses("scratch"), tuned = train_losses("tuned");
  ASSERT_EQ(tuned.size(), 3u);
  // The fine-tuned run starts nearer the checkpoint's last losses than the untrained model's first ones.
  const double end = mean(base, 50, 10);
  EXPECT_LT(std::fabs(tuned[0] - end), std::fabs(scratch[0] - end)) << r.out;
  EXPECT_LT(tuned[0], (scratch[0] + end) / 2);
  EXPECT_EQ(config_of("tuned")["hidden_size"], config_of("base")["hidden_size"]);
}

TEST_F(TaskRuns, InitFromAnEncoderWithANewClassificationHead) {
  ASSERT_EQ(reformer::test::reformer(text_run("mlm", "encoder") + " --steps 10 --lr 3e-3").rc, 0);
  const auto r = reformer::test::reformer("train --task classify --init-from " + path("encoder") + " --num-labels 3 --data " +
                                          path("train.jsonl") + " --valid-data " + path("valid.jsonl") + " --out " + path("head3") +
                                          " --batch 8 --threads 1 --steps 5 --dropout 0.2 --hashes 2");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("new head"), std::string::npos) << r.out;
  const auto config = config_of("head3");
  EXPECT_EQ(config["architectures"][0], "ReformerForSequenceClassification");
  EXPECT_EQ(config["id2label"].size(), 3u);
  EXPECT_EQ(config["num_hashes"], 2);
  EXPECT_EQ(config["hidden_dropout_prob"], 0.2);
  // The encoder's weights are where the run started: a model loaded from --init-from and one
  // fine-tuned for 0 steps have the same base weights.
  const auto zero = reformer::test::reformer("train --task classify --init-from " + path("encoder") + " --data " +
                                             path("train.jsonl") + " --valid-data " + path("valid.jsonl") + " --out " +
                                             path("head0") + " --batch 8 --threads 1 --steps 0");
  ASSERT_EQ(zero.rc, 0) << zero.out;
  const auto encoder = reformer::load_model(path("encoder")), head0 = reformer::load_model(path("head0"));
  for (auto& p : encoder->parameters()) {
    if (!p.name.starts_with("reformer.")) continue;
    const reformer::NamedParameter* q = head0->find_parameter(p.name);
    ASSERT_NE(q, nullptr) << p.name;
    EXPECT_TRUE(std::equal(p.param->data(), p.param->data() + p.param->numel(), q->param->data())) << p.name;
  }
}

TEST_F(TaskRuns, InitFromRefusesAChangeThatBreaksTheWeightsNamingTheField) {
  ASSERT_EQ(reformer::test::reformer(text_run("lm", "small") + " --steps 2 --lr 3e-3").rc, 0);
  const auto r = reformer::test::reformer("train --data " + path("text.txt") + " --out " + path("wider") + " --init-from " +
                                          path("small") + " --hidden-size 128 --steps 2");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("hidden_size"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(path("wider"))) << "a refused run writes nothing";
  const auto copy = reformer::test::reformer("train --task copy --out " + path("copy") + " --init-from " + path("small"));
  EXPECT_NE(copy.rc, 0);
  EXPECT_NE(copy.out.find("--init-from"), std::string::npos) << copy.out;
}

}  // namespace
