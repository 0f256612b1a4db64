#pragma once
// Sequence-classification data: a JSON-lines file, one example per line, {"text": "...", "label": L}
// (blank lines skipped; other keys ignored), as Hugging Face's run_classification.py reads it. A label
// is a class id (an integer in [0, num_labels)) or a class name (a string; the names, sorted, become
// id2label when the model has none, as run_classification.py sorts its label list).
//
// Text goes through the model's tokenizer (reformer/tokenizer.h) with no special tokens added, as
// ReformerTokenizer does; a text longer than the window is truncated to its first `length` tokens
// (HF's truncation=True). Each row is padded with id 0 to `padded` positions, the padding masked
// (TokenBatch::mask) and every LM label kIgnoreLabel; TokenBatch::class_labels holds the rows' labels.
// ReformerForSequenceClassification reads the first position, which is always a token.
//
// Training order: sample n (n = index * batch + row of micro-batch `index`) is example perm_e[n % N]
// of epoch e = n / N, perm_e a Fisher-Yates shuffle drawn from (seed, ClassifyOrder, e): every epoch
// visits every example once, and a batch is a pure function of (seed, index), so resume is exact.
// Evaluation: the examples in file order, `batch` at a time.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "reformer/model.h"
#include "train/token_batch.h"

namespace reformer {

class Tokenizer;

class ClassificationData {
 public:
  // Reads and tokenizes `path`; throws reformer::Error naming the file, the line and the fix.
  static ClassificationData from_jsonl(const std::string& path, const Tokenizer& tokenizer);

  int64_t size() const { return static_cast<int64_t>(ids_.size()); }
  int64_t longest() const;  // tokens of the longest text
  // The string labels, sorted and distinct (empty when every label is an integer).
  std::vector<std::string> label_names() const;
  // 1 + the largest integer label (0 when there are none).
  int64_t integer_classes() const;
  // Maps every label onto [0, num_labels): integers as they are, names through id2label (empty =
  // "LABEL_<i>", HF's default names). Throws naming the line of a label outside the classes.
  void resolve_labels(int64_t num_labels, const std::vector<std::string>& id2label);

  void train_batch(TokenBatch& out, int64_t batch, int64_t length, int64_t padded, uint64_t seed, int64_t index) const;
  // Examples first .. first + batch - 1 (clipped to the file); returns how many rows it holds.
  int64_t eval_batch(TokenBatch& out, int64_t first, int64_t batch, int64_t length, int64_t padded) const;

 private:
  void fill_row(TokenBatch& out, int64_t row, int64_t example, int64_t length) const;
  const std::vector<int64_t>& epoch_order(uint64_t seed, int64_t epoch) const;

  std::string source_;
  std::vector<std::vector<int32_t>> ids_;
  std::vector<nlohmann::json> raw_labels_;
  std::vector<int64_t> lines_;
  std::vector<int32_t> labels_;
  // The last epoch's order (training asks for consecutive batches, so one epoch is cached).
  mutable int64_t cached_epoch_ = -1;
  mutable uint64_t cached_seed_ = 0;
  mutable std::vector<int64_t> order_;
};

// Accuracy, and for two classes precision, recall and F1 of class 1 (sklearn's binary F1, what HF's
// `evaluate` "f1" reports), from predictions and labels (kIgnoreLabel rows left out).
struct ClassificationCounts {
  int64_t examples = 0, correct = 0, tp = 0, fp = 0, fn = 0;
  void add(int32_t predicted, int32_t label);
  // {"accuracy"} and, when num_labels == 2, {"precision", "recall", "f1"}.
  nlohmann::json metrics(int64_t num_labels) const;
};

// Loss and metrics of a sequence classifier over every example of `data` (dropout off). The
// returned LossStats' count is the number of examples; `metrics` receives ClassificationCounts::metrics.
LossStats evaluate_classification(ReformerModel& model, const ClassificationData& data, int64_t length, int64_t batch,
                                  uint64_t seed, nlohmann::json& metrics);

}  // namespace reformer
