// evaluate(): `reformer eval` and Python's Model.evaluate (include/reformer/evaluate.h).
#include "reformer/evaluate.h"

#include "reformer/error.h"
#include "reformer/limits.h"
#include "reformer/precision.h"
#include "reformer/threads.h"
#include "reformer/tokenizer.h"
#include "model/eval_length.h"
#include "train/byte_data.h"
#include "train/copy_task.h"
#include "train/evaluate.h"

namespace reformer {
namespace {

Split parse_split(const std::string& s) {
  if (s == "train") return Split::Train;
  if (s == "validation") return Split::Validation;
  if (s == "test") return Split::Test;
  fail("--split '", s, "' is not a split; use train, validation or test");
}

// Sets the model's hash rounds for one evaluation, back to the config's when it ends, however it
// ends; num_hashes 0 leaves the model as it is.
class HashOverride {
 public:
  HashOverride(ReformerModel& model, int64_t num_hashes) : model_(model), set_(num_hashes > 0) {
    if (set_) model.set_num_hashes(num_hashes);
  }
  ~HashOverride() {
    if (set_) model_.set_num_hashes(0);  // 0: the config's
  }
  HashOverride(const HashOverride&) = delete;
  HashOverride& operator=(const HashOverride&) = delete;

 private:
  ReformerModel& model_;
  bool set_;
};

}  // namespace

EvalResult evaluate(ReformerModel& model, const EvalRequest& r) {
  const ScopedThreads threads(r.threads);
  const ScopedPrecision precision(r.precision);
  limits::check_range("--batch", r.batch, 1, limits::kMaxBatch);
  limits::check_range("--max-windows", r.max_windows, 0, limits::kMaxSteps);
  limits::check_range("--num-hashes", r.num_hashes, 0, limits::kMaxHashes);
  limits::check_range("--seq-len", r.seq_len, 0, limits::kMaxLength);
  REFORMER_CHECK(r.task == "lm" || r.task == "copy", "--task '", r.task, "' is not a task; use lm or copy");
  REFORMER_CHECK(!r.incremental || r.task == "lm", "--incremental scores byte windows; it does not apply to --task copy");
  const Split split = parse_split(r.split);
  const HashOverride hashes(model, r.num_hashes);
  const ReformerConfig& config = model.config();
  EvalResult out;
  out.length = r.seq_len > 0 ? r.seq_len : config.max_length();

  if (r.task == "copy") {
    config.validate_length(out.length, /*training=*/false);
    const CopyTask task{out.length, static_cast<int32_t>(config.vocab_size)};
    const int64_t batches = r.max_windows > 0 ? (r.max_windows + r.batch - 1) / r.batch : 4;
    out.stats = evaluate_copy(model, task, r.batch, batches, r.seed);
    out.source = "copy task";
  } else {
    // Any window length whose chunk padding the positions cover (the token-by-token path needs no padding).
    if (!r.incremental) padded_eval_length(config, out.length);
    const auto tokenizer = tokenizer_for(r.model_dir, r.tokenizer);
    check_tokenizer_vocab(*tokenizer, config.vocab_size, r.model_dir.empty() ? std::string("the model") : "the model in " + r.model_dir);
    // A whole file: every split is the file, so evaluating one of them covers it all.
    ByteDataset data = r.file.empty() ? ByteDataset::from_file(r.data) : ByteDataset::from_files(r.file, r.file, r.file);
    data.tokenize(*tokenizer);
    out.source = r.file.empty() ? r.split + " split of " + r.data : r.file;
    const Split which = r.file.empty() ? split : Split::Validation;
    out.stats = r.incremental ? evaluate_bytes_incremental(model, data, which, out.length, r.batch, r.max_windows, r.seed)
                              : evaluate_bytes(model, data, which, out.length, r.batch, r.max_windows, r.seed);
  }
  out.loss = out.stats.mean();
  out.bits_per_byte = bits_per_byte(out.stats);
  out.accuracy = out.stats.count > 0 ? out.stats.correct / out.stats.count : 0.0;
  return out;
}

}  // namespace reformer
