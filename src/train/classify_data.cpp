#include "train/classify_data.h"

#include <algorithm>
#include <numeric>
#include <set>
#include <string_view>

#include "model/eval_length.h"
#include "model/heads.h"
#include "reformer/bytes.h"
#include "reformer/error.h"
#include "reformer/limits.h"
#include "reformer/rng.h"
#include "reformer/tokenizer.h"
#include "train/read_bytes.h"

namespace reformer {

ClassificationData ClassificationData::from_jsonl(const std::string& path, const Tokenizer& tokenizer) {
  ClassificationData d;
  d.source_ = "'" + path + "'";
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  int64_t line_no = 0;
  for (size_t pos = 0; pos < text.size();) {
    const size_t end = std::min(text.find('\n', pos), text.size());
    const std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail(d.source_, " line ", line_no, " is not JSON (", e.what(), "); each line must be an object like "
           "{\"text\": \"...\", \"label\": 0}");
    }
    REFORMER_CHECK(j.is_object() && j.contains("text") && j["text"].is_string(), d.source_, " line ", line_no,
                   " has no string \"text\"; each line must be an object like {\"text\": \"...\", \"label\": 0}");
    REFORMER_CHECK(j.contains("label") && (j["label"].is_number_integer() || j["label"].is_string()), d.source_, " line ",
                   line_no, " has no \"label\" that is an integer class id or a class name (string); got ",
                   j.contains("label") ? j["label"].dump() : std::string("none"));
    if (j["label"].is_number_integer()) {
      const int64_t v = j["label"].get<int64_t>();
      REFORMER_CHECK(v >= 0 && v < limits::kMaxVocab, d.source_, " line ", line_no, ": label ", v, " must be in [0, ",
                     limits::kMaxVocab, ")");
    }
    std::vector<int32_t> ids = tokenizer.encode(j["text"].get<std::string>());
    REFORMER_CHECK(!ids.empty(), d.source_, " line ", line_no, " has an empty \"text\"; give every example some text");
    d.ids_.push_back(std::move(ids));
    d.raw_labels_.push_back(j["label"]);
    d.lines_.push_back(line_no);
  }
  REFORMER_CHECK(!d.ids_.empty(), d.source_, " holds no examples; give a JSON-lines file with one {\"text\": ..., \"label\": ...} per line");
  return d;
}

int64_t ClassificationData::longest() const {
  size_t n = 0;
  for (const auto& ids : ids_) n = std::max(n, ids.size());
  return static_cast<int64_t>(n);
}

std::vector<std::string> ClassificationData::label_names() const {
  std::set<std::string> names;
  for (const auto& l : raw_labels_)
    if (l.is_string()) names.insert(l.get<std::string>());
  return {names.begin(), names.end()};
}

int64_t ClassificationData::integer_classes() const {
  int64_t n = 0;
  for (const auto& l : raw_labels_)
    if (l.is_number_integer()) n = std::max(n, l.get<int64_t>() + 1);
  return n;
}

void ClassificationData::resolve_labels(int64_t num_labels, const std::vector<std::string>& id2label) {
  labels_.resize(raw_labels_.size());
  for (size_t i = 0; i < raw_labels_.size(); ++i) {
    const nlohmann::json& l = raw_labels_[i];
    if (l.is_number_integer()) {
      const int64_t v = l.get<int64_t>();
      REFORMER_CHECK(v < num_labels, source_, " line ", lines_[i], ": label ", v, " is not one of the model's ", num_labels,
                     " classes (0..", num_labels - 1, "); give --num-labels ", v + 1, " or more for a new head");
      labels_[i] = static_cast<int32_t>(v);
      continue;
    }
    const std::string name = l.get<std::string>();
    int64_t found = -1;
    for (int64_t k = 0; k < num_labels && found < 0; ++k)
      if ((id2label.empty() ? "LABEL_" + std::to_string(k) : id2label[static_cast<size_t>(k)]) == name) found = k;
    REFORMER_CHECK(found >= 0, source_, " line ", lines_[i], ": label \"", name, "\" is not a class of the model (id2label ",
                   nlohmann::json(id2label).dump(), "); use the model's class names or integer ids");
    labels_[i] = static_cast<int32_t>(found);
  }
}

void ClassificationData::fill_row(TokenBatch& out, int64_t row, int64_t example, int64_t length) const {
  const int64_t P = out.length;
  const std::vector<int32_t>& src = ids_[static_cast<size_t>(example)];
  const int64_t n = std::min<int64_t>(static_cast<int64_t>(src.size()), length);
  int32_t* ids = out.ids.data() + row * P;
  std::copy(src.begin(), src.begin() + n, ids);
  std::fill(ids + n, ids + P, kBytePadId);
  std::fill(out.labels.begin() + row * P, out.labels.begin() + (row + 1) * P, kIgnoreLabel);
  if (n < P) {
    if (out.mask.empty()) out.mask.assign(out.ids.size(), 1);
    std::fill(out.mask.begin() + row * P + n, out.mask.begin() + (row + 1) * P, uint8_t{0});
  }
  out.class_labels[static_cast<size_t>(row)] = labels_[static_cast<size_t>(example)];
}

const std::vector<int64_t>& ClassificationData::epoch_order(uint64_t seed, int64_t epoch) const {
  if (epoch == cached_epoch_ && seed == cached_seed_) return order_;
  order_.resize(ids_.size());
  std::iota(order_.begin(), order_.end(), int64_t{0});
  const uint64_t stream = rng_stream(RngPurpose::Data, {static_cast<uint64_t>(DataStream::ClassifyOrder), static_cast<uint64_t>(epoch)});
  for (size_t i = order_.size(); i > 1; --i) {  // Fisher-Yates
    const Philox4 r = philox(seed, stream, i);
    const uint64_t j = ((static_cast<uint64_t>(r.v[0]) << 32) | r.v[1]) % i;
    std::swap(order_[i - 1], order_[j]);
  }
  cached_epoch_ = epoch;
  cached_seed_ = seed;
  return order_;
}

void ClassificationData::train_batch(TokenBatch& out, int64_t batch, int64_t length, int64_t padded, uint64_t seed,
                                     int64_t index) const {
  REFORMER_CHECK(labels_.size() == ids_.size(), "classification labels not resolved");
  REFORMER_CHECK(batch >= 1 && length >= 1 && padded >= length, "classification batch ", batch, " x ", length, " (padded to ",
                 padded, ")");
  out.resize(batch, padded);
  out.class_labels.assign(static_cast<size_t>(batch), kIgnoreLabel);
  const int64_t N = size();
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t n = index * batch + b;
    fill_row(out, b, epoch_order(seed, n / N)[static_cast<size_t>(n % N)], length);
  }
}

int64_t ClassificationData::eval_batch(TokenBatch& out, int64_t first, int64_t batch, int64_t length, int64_t padded) const {
  REFORMER_CHECK(labels_.size() == ids_.size(), "classification labels not resolved");
  REFORMER_CHECK(first >= 0 && first < size(), "evaluation example ", first, " is outside the ", size(), " examples of ", source_);
  const int64_t rows = std::min(batch, size() - first);
  out.resize(rows, padded);
  out.class_labels.assign(static_cast<size_t>(rows), kIgnoreLabel);
  for (int64_t b = 0; b < rows; ++b) fill_row(out, b, first + b, length);
  return rows;
}

void ClassificationCounts::add(int32_t predicted, int32_t label) {
  if (label == kIgnoreLabel) return;
  ++examples;
  correct += predicted == label;
  tp += predicted == 1 && label == 1;
  fp += predicted == 1 && label != 1;
  fn += predicted != 1 && label == 1;
}

nlohmann::json ClassificationCounts::metrics(int64_t num_labels) const {
  auto ratio = [](int64_t a, int64_t b) { return b > 0 ? static_cast<double>(a) / static_cast<double>(b) : 0.0; };
  nlohmann::json m = {{"accuracy", ratio(correct, examples)}};
  if (num_labels == 2) {
    m["precision"] = ratio(tp, tp + fp);
    m["recall"] = ratio(tp, tp + fn);
    m["f1"] = ratio(2 * tp, 2 * tp + fp + fn);  // 0 when there is no positive prediction or label (sklearn's zero_division=0)
  }
  return m;
}

LossStats evaluate_classification(ReformerModel& model, const ClassificationData& data, int64_t length, int64_t batch,
                                  uint64_t seed, nlohmann::json& metrics) {
  REFORMER_CHECK(batch >= 1, "evaluation batch ", batch, " must be at least 1");
  const int64_t padded = padded_eval_length(model.config(), length), K = model.config().num_labels;
  TokenBatch tokens;
  LossStats total;
  ClassificationCounts counts;
  std::map<std::string, Tensor> outputs;
  for (int64_t first = 0; first < data.size(); first += batch) {
    const int64_t b = data.eval_batch(tokens, first, batch, length, padded);
    Batch in{tokens.ids.data(), b, padded, tokens.mask_or_null(), nullptr};
    StepOptions opt;
    opt.training = false;
    opt.seed = seed;
    opt.step = static_cast<uint64_t>(first);
    model.forward_outputs(outputs, in, opt);
    const float* logits = outputs.at("logits").data();
    const LossStats s = classification_loss(nullptr, logits, ClassificationProblem::SingleLabel, tokens.class_labels.data(),
                                            nullptr, b, K, 0.f);
    total.loss_sum += s.loss_sum;
    total.count += s.count;
    total.correct += s.correct;
    for (int64_t r = 0; r < b; ++r) {
      const float* row = logits + r * K;
      counts.add(static_cast<int32_t>(std::max_element(row, row + K) - row), tokens.class_labels[static_cast<size_t>(r)]);
    }
  }
  metrics = counts.metrics(K);
  return total;
}

}  // namespace reformer
