// Every Hugging Face Reformer class. tests/fixtures/hf_classes/<case>/ holds a tiny model written by
// transformers' own save_pretrained (scripts/make_hf_fixtures.py; its README lists the cases): each
// loads as its class, gives transformers' outputs, hidden states, loss and parameter gradients
// within kParityTol, saves to exactly the keys transformers wrote (plus the tied lm_head.decoder.bias)
// and reloads to the same outputs. Below them: finite-difference checks of the heads
// (model/heads.h) and of whole models of each class, and the loader's class and prefix rules.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "reformer/safetensors.h"
#include "model/heads.h"
#include "ops/dropout.h"
#include "reformer/checkpoint.h"
#include "reformer/config.h"
#include "reformer/model.h"
#include "reformer/rng.h"
#include "support/expect_error.h"
#include "support/fixtures.h"
#include "support/gradcheck.h"
#include "support/run_cli.h"
#include "support/tolerance.h"

using namespace reformer;
namespace fs = std::filesystem;

namespace {

const char* const kOutputNames[] = {"logits", "start_logits", "end_logits", "last_hidden_state"};

std::vector<int32_t> to_i32(const std::vector<int64_t>& v) { return {v.begin(), v.end()}; }
std::vector<float> to_vec(const Tensor& t) { return {t.data(), t.data() + t.numel()}; }

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

// The state-dict name transformers uses for a parameter (a bare ReformerModel has no "reformer.").
std::string hf_name(const ReformerModel& m, const std::string& name) {
  if (m.model_class() == ModelClass::Base && name.rfind("reformer.", 0) == 0) return name.substr(9);
  return name;
}

// A fixture case loaded into a model, with its batch (ids, mask, the class's targets).
struct ClassCase {
  std::string name, dir;
  SafetensorsFile data;
  std::unique_ptr<ReformerModel> model;
  std::vector<int32_t> ids, labels, start, end;
  std::vector<float> targets, output_grad;
  std::vector<uint8_t> mask;
  Batch batch;
};

void inject_rotations(ReformerModel& m, const SafetensorsFile& data) {
  for (int i = 0; i < m.config().num_layers(); ++i) {
    const std::string key = "rotations." + std::to_string(i);
    if (data.contains(key)) m.set_rotations(i, data.read_f32(key, MemCategory::Workspace).data());
  }
}

std::unique_ptr<ClassCase> load_case(const std::string& name) {
  auto c = std::make_unique<ClassCase>();
  c->name = name;
  c->dir = test::fixture_path("hf_classes/" + name);
  c->data = SafetensorsFile::open(c->dir + "/data.safetensors");
  c->model = load_model(c->dir);
  inject_rotations(*c->model, c->data);
  const SafetensorsFile& d = c->data;
  const Shape& s = d.shape("input_ids");
  c->ids = to_i32(d.read_i64("input_ids"));
  Batch& b = c->batch;
  b.ids = c->ids.data();
  b.batch = s[0];
  b.length = s[1];
  if (d.contains("attention_mask")) {
    for (int64_t m : d.read_i64("attention_mask")) c->mask.push_back(static_cast<uint8_t>(m != 0));
    b.attention_mask = c->mask.data();
  }
  const ModelClass cls = c->model->model_class();
  if (d.contains("labels")) {
    if (d.info("labels").dtype == SafeDType::F32) {
      c->targets = to_vec(d.read_f32("labels", MemCategory::Workspace));
      b.target_values = c->targets.data();
    } else {
      c->labels = to_i32(d.read_i64("labels"));
      (is_language_model(cls) ? b.labels : b.class_labels) = c->labels.data();
    }
  }
  if (d.contains("start_positions")) {
    c->start = to_i32(d.read_i64("start_positions"));
    c->end = to_i32(d.read_i64("end_positions"));
    b.start_positions = c->start.data();
    b.end_positions = c->end.data();
  }
  if (d.contains("output_grad")) {
    c->output_grad = to_vec(d.read_f32("output_grad", MemCategory::Workspace));
    b.output_grad = c->output_grad.data();
  }
  return c;
}

StepOptions eval_options() {
  StepOptions opt;
  opt.training = false;  // every dropout is 0 in the fixtures; HF ran train mode only for its backward
  return opt;
}

class HfClasses : public ::testing::TestWithParam<std::string> {};

TEST_P(HfClasses, LoadsAsTheClassTransformersSaved) {
  auto c = load_case(GetParam());
  const nlohmann::json hf = read_json(c->dir + "/config.json");
  EXPECT_EQ(model_class_name(c->model->model_class()), hf["architectures"][0].get<std::string>());
  EXPECT_EQ(model_class_name(c->model->model_class()), c->data.metadata().at("model_class"));
  const SafetensorsFile weights = SafetensorsFile::open(c->dir + "/model.safetensors");
  if (c->model->model_class() == ModelClass::Base)
    EXPECT_TRUE(weights.contains("embeddings.word_embeddings.weight")) << "the bare model's keys have no prefix";
  if (is_language_model(c->model->model_class()))
    EXPECT_FALSE(weights.contains("lm_head.decoder.bias")) << "save_pretrained leaves out the tied bias";
  if (hf.contains("id2label")) EXPECT_EQ(c->model->config().num_labels, static_cast<int64_t>(hf["id2label"].size()));
}

TEST_P(HfClasses, OutputsAndHiddenStatesMatchTransformers) {
  auto c = load_case(GetParam());
  const int nl = static_cast<int>(c->model->config().num_layers());
  std::map<std::string, std::string> dumped_to_hf{{"embeddings", "hidden_states.0"}};
  for (int i = 0; i < nl; ++i) dumped_to_hf["layer." + std::to_string(i) + ".y2"] = "hidden_states." + std::to_string(i + 1);
  int compared = 0;
  c->model->set_dump_hook([&](const std::string& name, const float* data, const Shape& shape) {
    auto it = dumped_to_hf.find(name);
    if (it == dumped_to_hf.end()) return;
    const Tensor want = c->data.read_f32(it->second, MemCategory::Workspace);
    ASSERT_EQ(shape_numel(shape), want.numel()) << name;
    EXPECT_CLOSE(data, want.data(), want.numel(), test::kParityTol, GetParam() + " " + it->second);
    ++compared;
  });
  std::map<std::string, Tensor> out;
  c->model->forward_outputs(out, c->batch, eval_options());
  EXPECT_EQ(compared, nl + 1);
  std::set<std::string> want_names, got_names;
  for (const char* n : kOutputNames)
    if (c->data.contains(n)) want_names.insert(n);
  for (const auto& [n, t] : out) got_names.insert(n);
  EXPECT_EQ(got_names, want_names) << "the outputs must carry transformers' names";
  for (const std::string& n : want_names) {
    const Tensor want = c->data.read_f32(n, MemCategory::Workspace);
    ASSERT_TRUE(out.count(n)) << n;
    EXPECT_EQ(out[n].shape(), want.shape()) << n;
    ASSERT_EQ(out[n].numel(), want.numel()) << n;
    EXPECT_CLOSE(out[n].data(), want.data(), want.numel(), test::kParityTol, GetParam() + " " + n);
  }
}

TEST_P(HfClasses, LossAndEveryGradientMatchTransformers) {
  auto c = load_case(GetParam());
  c->model->zero_grad();
  const LossStats stats = c->model->forward_backward(c->batch, eval_options());
  const float want_loss = c->data.read_f32("loss", MemCategory::Workspace)[0];
  const float got_loss = static_cast<float>(stats.mean());
  EXPECT_CLOSE(&got_loss, &want_loss, 1, test::kParityTol, GetParam() + " loss");
  const float eval_loss = static_cast<float>(c->model->evaluate(c->batch, eval_options()).mean());
  EXPECT_CLOSE(&eval_loss, &want_loss, 1, test::kParityTol, GetParam() + " evaluate() loss");
  for (auto& p : c->model->parameters()) {
    const std::string key = "grad." + hf_name(*c->model, p.name);
    ASSERT_TRUE(c->data.contains(key)) << key;
    const Tensor want = c->data.read_f32(key, MemCategory::Workspace);
    ASSERT_EQ(want.numel(), p.grad->numel()) << p.name;
    EXPECT_CLOSE(p.grad->data(), want.data(), want.numel(), test::kParityTol, GetParam() + " " + key);
  }
}

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag)
      : path(fs::temp_directory_path() / ("reformer_hf_classes_" + std::to_string(::getpid()) + "_" + tag)) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

TEST_P(HfClasses, SavesTheKeysTransformersWroteAndReloads) {
  auto c = load_case(GetParam());
  TempDir tmp(GetParam());
  const std::string out_dir = (tmp.path / "saved").string();
  save_model(out_dir, *c->model);
  const SafetensorsFile hf = SafetensorsFile::open(c->dir + "/model.safetensors");
  const SafetensorsFile ours = SafetensorsFile::open(out_dir + "/model.safetensors");
  for (const auto& n : hf.names()) {
    ASSERT_TRUE(ours.contains(n)) << "saved model lacks " << n << ", which transformers wrote";
    EXPECT_EQ(ours.shape(n), hf.shape(n)) << n;
  }
  for (const auto& n : ours.names())
    EXPECT_TRUE(hf.contains(n) || n == "lm_head.decoder.bias")
        << "saved an unexpected key " << n << " (transformers' from_pretrained would report it)";
  const nlohmann::json hf_config = read_json(c->dir + "/config.json"), saved = read_json(out_dir + "/config.json");
  EXPECT_EQ(saved["architectures"], hf_config["architectures"]);
  for (const char* k : {"is_decoder", "problem_type", "id2label"})
    if (hf_config.contains(k)) EXPECT_EQ(saved[k], hf_config[k]) << k;

  auto reloaded = load_model(out_dir);
  EXPECT_EQ(reloaded->model_class(), c->model->model_class());
  inject_rotations(*reloaded, c->data);
  std::map<std::string, Tensor> a, b;
  c->model->forward_outputs(a, c->batch, eval_options());
  reloaded->forward_outputs(b, c->batch, eval_options());
  ASSERT_EQ(a.size(), b.size());
  for (auto& [n, t] : a) {
    ASSERT_TRUE(b.count(n)) << n;
    EXPECT_CLOSE(b[n].data(), t.data(), t.numel(), test::kPathTol, GetParam() + " reloaded " + n);
  }
}

// The command line: `reformer logits` writes the class's outputs (and hidden states on request)
// under HF's names; `reformer convert` re-saves the directory as the same class.
TEST_P(HfClasses, LogitsCommandWritesTheOutputsUnderTransformersNames) {
  const std::string dir = test::fixture_path("hf_classes/" + GetParam());
  TempDir tmp("cli_" + GetParam());
  const std::string out = (tmp.path / "out.safetensors").string();
  const test::Outcome r = test::reformer("logits --model '" + dir + "' --input '" + dir + "/data.safetensors' --out '" + out +
                                         "' --hidden-states");
  ASSERT_EQ(r.rc, 0) << r.out;
  const SafetensorsFile got = SafetensorsFile::open(out), data = SafetensorsFile::open(dir + "/data.safetensors");
  std::set<std::string> want_names;
  for (const auto& n : data.names())
    if (n.rfind("hidden_states.", 0) == 0 || std::find(std::begin(kOutputNames), std::end(kOutputNames), n) != std::end(kOutputNames))
      want_names.insert(n);
  const std::vector<std::string> names = got.names();
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()), want_names);
  for (const auto& n : want_names) {
    if (!got.contains(n)) continue;
    const Tensor a = got.read_f32(n, MemCategory::Workspace), b = data.read_f32(n, MemCategory::Workspace);
    EXPECT_EQ(a.shape(), b.shape()) << n;
    ASSERT_EQ(a.numel(), b.numel()) << n;
    EXPECT_CLOSE(a.data(), b.data(), b.numel(), test::kParityTol, GetParam() + " reformer logits " + n);
  }
  const std::string converted = (tmp.path / "converted").string();
  const test::Outcome c = test::reformer("convert --model '" + dir + "' --out '" + converted + "'");
  ASSERT_EQ(c.rc, 0) << c.out;
  EXPECT_EQ(model_class_name(load_model(converted)->model_class()), read_json(dir + "/config.json")["architectures"][0]);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HfClasses, ::testing::ValuesIn(test::fixture_cases("hf_classes")),
                         [](const auto& info) { return info.param; });

// ---------------------------------------------------------------------------------------------------
// Finite differences of the heads (model/heads.h), with dropout on (its masks are keyed, so fixed).

TEST(Heads, ClassifierGradientsMatchFiniteDifferences) {
  const int64_t B = 3, D = 5, D2 = 2 * D, K = 4;
  std::vector<float> s0(B * D2), w1(D * D2), b1(D), w2(K * D), b2(K), up(B * K);
  test::fill_uniform(s0.data(), B * D2, 1);
  test::fill_uniform(w1.data(), D * D2, 2, -0.5f, 0.5f);
  test::fill_uniform(b1.data(), D, 3);
  test::fill_uniform(w2.data(), K * D, 4);
  test::fill_uniform(b2.data(), K, 5);
  test::fill_uniform(up.data(), B * K, 6);
  const DropoutKey in{0.3f, 11, hidden_dropout_stream(0, 2, DropoutSite::ClassifierInput)};
  const DropoutKey hid{0.3f, 11, hidden_dropout_stream(0, 2, DropoutSite::ClassifierHidden)};
  std::vector<float> logits(B * K), x(B * D2), t(B * D), h(B * D), dh(B * D), ds0(B * D2);
  const ClassifierWeights w{w1.data(), b1.data(), w2.data(), b2.data()};
  auto loss = [&] {
    classifier_forward(logits.data(), x.data(), t.data(), h.data(), s0.data(), w, B, D, K, in, hid);
    return test::weighted_sum(logits.data(), up.data(), B * K);
  };
  loss();
  int dropped = 0;
  for (int64_t i = 0; i < B * D2; ++i) dropped += x[i] == 0.f;
  EXPECT_GT(dropped, 0) << "dropout should be on";
  std::vector<float> gw1(D * D2, 0.f), gb1(D, 0.f), gw2(K * D, 0.f), gb2(K, 0.f);
  classifier_backward(ds0.data(), dh.data(), {gw1.data(), gb1.data(), gw2.data(), gb2.data()}, up.data(), x.data(), t.data(),
                      h.data(), w, B, D, K, in, hid);
  EXPECT_GRAD_OK(loss, s0.data(), B * D2, ds0.data(), "s0");
  EXPECT_GRAD_OK(loss, w1.data(), D * D2, gw1.data(), "dense.weight");
  EXPECT_GRAD_OK(loss, b1.data(), D, gb1.data(), "dense.bias");
  EXPECT_GRAD_OK(loss, w2.data(), K * D, gw2.data(), "out_proj.weight");
  EXPECT_GRAD_OK(loss, b2.data(), K, gb2.data(), "out_proj.bias");
}

TEST(Heads, ClassificationLossesMatchFiniteDifferencesAndTorch) {
  const int64_t B = 3, K = 3;
  std::vector<float> logits(B * K), targets(B * K), d(B * K);
  test::fill_uniform(logits.data(), B * K, 7, -2.f, 2.f);
  test::fill_uniform(targets.data(), B * K, 8, 0.f, 1.f);
  const std::vector<int32_t> labels{2, -100, 0};
  for (ClassificationProblem p : {ClassificationProblem::SingleLabel, ClassificationProblem::MultiLabel,
                                  ClassificationProblem::Regression}) {
    auto loss = [&] { return classification_loss(nullptr, logits.data(), p, labels.data(), targets.data(), B, K, 0.f).mean(); };
    const LossStats s = classification_loss(d.data(), logits.data(), p, labels.data(), targets.data(), B, K, 0.f);
    EXPECT_EQ(s.count, p == ClassificationProblem::SingleLabel ? 2.0 : double(B * K)) << "-100 is ignored, others are means";
    EXPECT_GRAD_OK(loss, logits.data(), B * K, d.data(), "logits, problem " + std::to_string(int(p)));
  }
  // One value worked by hand: BCE with logits z = 0, target 1 is log 2; MSE of (1 - 3) is 4.
  const float z = 0.f, one = 1.f, three = 3.f;
  const double eps = test::kKernelTol.atol;
  EXPECT_NEAR(classification_loss(nullptr, &z, ClassificationProblem::MultiLabel, nullptr, &one, 1, 1, 0.f).mean(), std::log(2.0), eps);
  EXPECT_NEAR(classification_loss(nullptr, &one, ClassificationProblem::Regression, nullptr, &three, 1, 1, 0.f).mean(), 4.0, eps);
  // HF's problem_type inference.
  EXPECT_EQ(classification_problem("", 1, true), ClassificationProblem::Regression);
  EXPECT_EQ(classification_problem("", 3, true), ClassificationProblem::SingleLabel);
  EXPECT_EQ(classification_problem("", 3, false), ClassificationProblem::MultiLabel);
  EXPECT_EQ(classification_problem("regression", 3, true), ClassificationProblem::Regression);
}

TEST(Heads, SpanLossMatchesFiniteDifferencesAndClampsPositions) {
  const int64_t B = 3, L = 6;
  std::vector<float> start(B * L), end(B * L), ds(B * L), de(B * L);
  test::fill_uniform(start.data(), B * L, 9, -2.f, 2.f);
  test::fill_uniform(end.data(), B * L, 10, -2.f, 2.f);
  // Row 1's end lies beyond the input (clamped to L, ignored); row 2's start is negative (clamped to 0).
  const std::vector<int32_t> sp{1, 4, -3}, ep{3, 40, 5};
  auto loss = [&] { return span_loss(nullptr, nullptr, start.data(), end.data(), sp.data(), ep.data(), B, L, 0.f).mean(); };
  span_loss(ds.data(), de.data(), start.data(), end.data(), sp.data(), ep.data(), B, L, 0.f);
  EXPECT_GRAD_OK(loss, start.data(), B * L, ds.data(), "start_logits");
  EXPECT_GRAD_OK(loss, end.data(), B * L, de.data(), "end_logits");
  for (int64_t t = 0; t < L; ++t) EXPECT_EQ(de[L + t], 0.f) << "an ignored end position gets no gradient";
  // The start CE is the mean over 3 rows, the end CE over 2: row 2's start target is position 0.
  double ce_start = 0;
  for (int64_t b = 0; b < B; ++b) {
    const int32_t y = b == 2 ? 0 : sp[b];
    double mx = -1e30, sum = 0;
    for (int64_t t = 0; t < L; ++t) mx = std::max(mx, double(start[b * L + t]));
    for (int64_t t = 0; t < L; ++t) sum += std::exp(start[b * L + t] - mx);
    ce_start += (mx + std::log(sum) - start[b * L + y]) / 3;
  }
  double ce_end = 0;
  for (int64_t b : {0, 2}) {
    double mx = -1e30, sum = 0;
    for (int64_t t = 0; t < L; ++t) mx = std::max(mx, double(end[b * L + t]));
    for (int64_t t = 0; t < L; ++t) sum += std::exp(end[b * L + t] - mx);
    ce_end += (mx + std::log(sum) - end[b * L + ep[b]]) / 2;
  }
  EXPECT_NEAR(loss(), (ce_start + ce_end) / 2, test::kKernelTol.atol);
}

TEST(Heads, SequenceOutputRowsMatchFiniteDifferencesAndTheFullMask) {
  const int64_t B = 2, L = 4, D = 3, D2 = 2 * D, rows = B * L;
  std::vector<float> x1(rows * D), x2(rows * D), w(D2), b(D2), wg(D2, 0.f), bg(D2, 0.f);
  test::fill_uniform(x1.data(), rows * D, 12);
  test::fill_uniform(x2.data(), rows * D, 13);
  test::fill_uniform(w.data(), D2, 14, 0.5f, 1.5f);
  test::fill_uniform(b.data(), D2, 15);
  const FinalNorm ln{w.data(), b.data(), wg.data(), bg.data(), D, 1e-12f};
  const DropoutKey drop{0.25f, 3, hidden_dropout_stream(0, 1, DropoutSite::FinalNorm)};
  // Every row, then the first position of each sequence (stride L): the same rows must come out.
  std::vector<float> full(rows * D2), cat(rows * D2), mean(rows), rstd(rows);
  sequence_output_rows(full.data(), cat.data(), mean.data(), rstd.data(), x1.data(), x2.data(), ln, drop, 0, rows, 1);
  std::vector<float> s(B * D2), up(B * D2), ds(B * D2), dx1(rows * D, 0.f), dx2(rows * D, 0.f);
  sequence_output_rows(s.data(), cat.data(), mean.data(), rstd.data(), x1.data(), x2.data(), ln, drop, 0, B, L);
  for (int64_t i = 0; i < B; ++i)
    EXPECT_CLOSE(s.data() + i * D2, full.data() + i * L * D2, D2, test::kPathTol, "row " + std::to_string(i * L));
  test::fill_uniform(up.data(), B * D2, 16);
  auto loss = [&] {
    sequence_output_rows(s.data(), cat.data(), mean.data(), rstd.data(), x1.data(), x2.data(), ln, drop, 0, B, L);
    return test::weighted_sum(s.data(), up.data(), B * D2);
  };
  loss();
  ds = up;
  sequence_output_rows_backward(dx1.data(), dx2.data(), ds.data(), cat.data(), mean.data(), rstd.data(), ln, drop, 0, B, L);
  EXPECT_GRAD_OK(loss, x1.data(), rows * D, dx1.data(), "x1");
  EXPECT_GRAD_OK(loss, x2.data(), rows * D, dx2.data(), "x2");
  EXPECT_GRAD_OK(loss, w.data(), D2, wg.data(), "layer_norm.weight");
  EXPECT_GRAD_OK(loss, b.data(), D2, bg.data(), "layer_norm.bias");
}

// ---------------------------------------------------------------------------------------------------
// Whole models of each class: finite differences of the class's mean loss for every parameter
// (local and full layers: LSH buckets would move under the perturbation).

ReformerConfig class_config(ModelClass cls) {
  ReformerConfig c;
  c.architectures = {model_class_name(cls)};
  c.attn_layers = {"local", "full"};
  c.hidden_size = 8;
  c.feed_forward_size = 12;
  c.num_attention_heads = 2;
  c.attention_head_size = 4;
  c.vocab_size = 7;
  c.axial_pos_shape = {2, 4};
  c.axial_pos_embds_dim = {3, 5};
  c.local_attn_chunk_length = 4;
  c.hidden_act = "gelu";  // smooth: relu's kinks would spoil central differences with step kFdStep
  c.is_decoder = cls == ModelClass::LMHead;
  c.local_num_chunks_after = c.is_decoder ? 0 : 1;
  c.hidden_dropout_prob = c.local_attention_probs_dropout_prob = c.lsh_attention_probs_dropout_prob = 0.0;
  c.num_labels = cls == ModelClass::SequenceClassification ? 3 : 2;
  return c;
}

void check_class_gradients(ModelClass cls, const std::string& problem_type = "") {
  ReformerConfig c = class_config(cls);
  c.problem_type = problem_type;
  if (problem_type == "regression") c.num_labels = 1;
  ReformerModel model(c, 21);
  const int64_t B = 2, L = 8;
  std::vector<int32_t> ids(B * L), labels(B * L, -100), cls_labels{2, 0}, sp{1, 6}, ep{3, 7};
  for (int64_t i = 0; i < B * L; ++i) ids[i] = static_cast<int32_t>(i * 5 % c.vocab_size);
  for (int64_t i = 0; i < B * L; i += 3) labels[i] = ids[i];  // masked-LM style: some positions only
  std::vector<float> targets(B * c.num_labels), og(B * L * 2 * c.hidden_size);
  test::fill_uniform(targets.data(), static_cast<int64_t>(targets.size()), 30, 0.f, 1.f);
  test::fill_uniform(og.data(), static_cast<int64_t>(og.size()), 31);
  Batch batch{ids.data(), B, L};
  batch.attention_mask = nullptr;
  if (is_language_model(cls)) batch.labels = labels.data();
  if (cls == ModelClass::SequenceClassification) {
    if (problem_type.empty()) batch.class_labels = cls_labels.data();
    else batch.target_values = targets.data();
  }
  batch.start_positions = sp.data();
  batch.end_positions = ep.data();
  batch.output_grad = og.data();
  StepOptions opt;
  opt.training = false;
  model.zero_grad();
  model.forward_backward(batch, opt);
  auto loss = [&] { return model.evaluate(batch, opt).mean(); };
  for (auto& p : model.parameters())
    EXPECT_GRAD_OK(loss, p.param->data(), p.param->numel(), p.grad->data(), std::string(model_class_name(cls)) + " " + p.name, 6);
}

TEST(ClassGradients, MaskedLM) { check_class_gradients(ModelClass::MaskedLM); }
TEST(ClassGradients, BareModel) { check_class_gradients(ModelClass::Base); }
TEST(ClassGradients, SequenceClassificationSingleLabel) { check_class_gradients(ModelClass::SequenceClassification); }
TEST(ClassGradients, SequenceClassificationMultiLabel) {
  check_class_gradients(ModelClass::SequenceClassification, "multi_label_classification");
}
TEST(ClassGradients, SequenceClassificationRegression) {
  check_class_gradients(ModelClass::SequenceClassification, "regression");
}
TEST(ClassGradients, QuestionAnswering) { check_class_gradients(ModelClass::QuestionAnswering); }

// ---------------------------------------------------------------------------------------------------
// The loader's rules: class from the keys, architectures must agree, the prefix is optional.

// Copies a fixture case into a temp directory, renaming (or dropping, for "") weights and editing
// config.json.
void copy_case(const std::string& name, const fs::path& to, const std::function<std::string(const std::string&)>& rename,
               const std::function<void(nlohmann::json&)>& edit_config = nullptr) {
  const std::string from = test::fixture_path("hf_classes/" + name);
  fs::create_directories(to);
  nlohmann::json config = read_json(from + "/config.json");
  if (edit_config) edit_config(config);
  std::ofstream(to / "config.json") << config.dump(2);
  const SafetensorsFile f = SafetensorsFile::open(from + "/model.safetensors");
  std::vector<Tensor> held;
  held.reserve(f.names().size());
  std::vector<NamedTensorView> views;
  for (const auto& n : f.names()) {
    const std::string m = rename(n);
    if (m.empty()) continue;
    held.push_back(f.read_f32(n, MemCategory::Workspace));
    views.emplace_back(m, held.back());
  }
  write_safetensors((to / "model.safetensors").string(), views, {{"format", "pt"}});
}

TEST(HfClassLoading, BareModelLoadsWithOrWithoutThePrefix) {
  TempDir tmp("prefix");
  copy_case("ReformerModel", tmp.path / "prefixed", [](const std::string& n) { return "reformer." + n; });
  auto plain = load_case("ReformerModel");
  auto prefixed = load_model((tmp.path / "prefixed").string());
  EXPECT_EQ(prefixed->model_class(), ModelClass::Base);
  inject_rotations(*prefixed, plain->data);
  std::map<std::string, Tensor> a, b;
  plain->model->forward_outputs(a, plain->batch, eval_options());
  prefixed->forward_outputs(b, plain->batch, eval_options());
  EXPECT_CLOSE(b["last_hidden_state"].data(), a["last_hidden_state"].data(), a["last_hidden_state"].numel(), test::kPathTol,
               "prefixed bare model");
}

TEST(HfClassLoading, TheKeysChooseTheClassAndArchitecturesMustAgree) {
  TempDir tmp("class");
  // A head checkpoint without architectures: the keys decide.
  copy_case("ReformerForQuestionAnswering", tmp.path / "qa", [](const std::string& n) { return n; },
            [](nlohmann::json& c) { c.erase("architectures"); });
  EXPECT_EQ(load_model((tmp.path / "qa").string())->model_class(), ModelClass::QuestionAnswering);
  // architectures names a head whose weights are not there.
  copy_case("ReformerModel", tmp.path / "lie", [](const std::string& n) { return n; },
            [](nlohmann::json& c) { c["architectures"] = {"ReformerForSequenceClassification"}; });
  test::expect_error([&] { load_model((tmp.path / "lie").string()); }, "architectures names ReformerForSequenceClassification");
  // A head with a weight missing, and a class reformer does not know.
  copy_case("ReformerForSequenceClassification", tmp.path / "missing",
            [](const std::string& n) { return n == "classifier.out_proj.bias" ? std::string() : n; });
  test::expect_error([&] { load_model((tmp.path / "missing").string()); }, "classifier.out_proj.bias");
  copy_case("ReformerModel", tmp.path / "unknown", [](const std::string& n) { return n; },
            [](nlohmann::json& c) { c["architectures"] = {"ReformerForTokenClassification"}; });
  test::expect_error([&] { load_model((tmp.path / "unknown").string()); }, "is not a Reformer class");
}

TEST(HfClassLoading, ConfigFieldsOfTheHeadsAreValidated) {
  nlohmann::json j = ReformerConfig().to_json();
  j["architectures"] = {"ReformerForQuestionAnswering"};
  j["id2label"] = {{"0", "a"}, {"1", "b"}, {"2", "c"}};
  j.erase("label2id");
  test::expect_error([&] { ReformerConfig::from_json(j); }, "ReformerForQuestionAnswering needs 2");
  j["architectures"] = {"ReformerForSequenceClassification"};
  EXPECT_EQ(ReformerConfig::from_json(j).num_labels, 3);
  j["problem_type"] = "ranking";
  test::expect_error([&] { ReformerConfig::from_json(j); }, "problem_type");
  j["problem_type"] = nullptr;
  j["id2label"] = {{"0", "a"}, {"2", "c"}};
  test::expect_error([&] { ReformerConfig::from_json(j); }, "id2label key \"2\"");
  j["id2label"] = {{"0", "a"}, {"1", "c"}};
  j["num_labels"] = 3;
  test::expect_error([&] { ReformerConfig::from_json(j); }, "num_labels = 3");
}

TEST(HfClassLoading, LanguageModelCommandsRefuseTaskHeadsClearly) {
  auto c = load_case("ReformerForSequenceClassification");
  Batch b = c->batch;
  b.class_labels = nullptr;
  test::expect_error([&] { c->model->evaluate(b, eval_options()); }, "need a model with an LM head");
  Tensor logits;
  test::expect_error([&] { c->model->forward_logits(logits, b, eval_options()); }, "use forward_outputs");
  test::expect_error([&] { c->model->make_decode_state(1, 32); }, "no LM head");
}

}  // namespace
