// reformer eval: loss, bits per byte and accuracy of a trained model on a split or a whole file.
#include <cstdio>
#include <optional>

#include "commands.h"
#include "common.h"
#include "model/eval_length.h"
#include "reformer/error.h"
#include "train/byte_data.h"
#include "train/copy_task.h"
#include "train/evaluate.h"

namespace reformer::cli {
namespace {

struct EvalCommand {
  std::string model_dir, data = kDefaultData, file, split = "validation", task = "lm";
  std::optional<int64_t> seq_len, num_hashes;
  int64_t batch = 1, max_windows = 0;
  uint64_t seed = 0;
  bool incremental = false;
  std::optional<int> threads;
};

Split parse_split(const std::string& s) {
  if (s == "train") return Split::Train;
  if (s == "validation") return Split::Validation;
  if (s == "test") return Split::Test;
  fail("--split '", s, "' is not a split; use train, validation or test");
}

void run_eval(const EvalCommand& c) {
  set_threads(c.threads);
  REFORMER_CHECK(c.batch >= 1, "--batch ", c.batch, " must be at least 1");
  REFORMER_CHECK(c.max_windows >= 0, "--max-windows ", c.max_windows, " must be >= 0 (0 = all)");
  REFORMER_CHECK(c.task == "lm" || c.task == "copy", "--task '", c.task, "' is not a task; use lm or copy");
  REFORMER_CHECK(!c.incremental || c.task == "lm", "--incremental scores byte windows; it does not apply to --task copy");
  const Split split = parse_split(c.split);
  auto model = open_model(c.model_dir);
  if (c.num_hashes) {
    REFORMER_CHECK(*c.num_hashes >= 1, "--num-hashes ", *c.num_hashes, " must be at least 1");
    model->set_num_hashes(*c.num_hashes);
  }
  const ReformerConfig& config = model->config();
  const int64_t L = c.seq_len.value_or(config.max_length());
  padded_eval_length(config, L);  // any length whose chunk padding the positions cover

  if (c.task == "copy") {
    config.validate_length(L, /*training=*/false);
    const CopyTask task{L, static_cast<int32_t>(config.vocab_size)};
    const int64_t batches = c.max_windows > 0 ? (c.max_windows + c.batch - 1) / c.batch : 4;
    const LossStats s = evaluate_copy(*model, task, c.batch, batches, c.seed);
    std::printf("copy task, length %lld, %lld sequences: loss %.4f  accuracy %.4f\n", static_cast<long long>(L),
                static_cast<long long>(batches * c.batch), s.mean(), s.count > 0 ? s.correct / s.count : 0.0);
    return;
  }
  REFORMER_CHECK(config.vocab_size == kByteVocab, "the model in ", c.model_dir, " has vocab_size ", config.vocab_size,
                 ", not a byte-level model (", kByteVocab, "); evaluate it with --task copy or use a byte model");
  // A whole file: every split is the file, so evaluating one of them covers it all.
  const ByteDataset data = c.file.empty() ? ByteDataset::from_file(c.data) : ByteDataset::from_files(c.file, c.file, c.file);
  const std::string source = c.file.empty() ? c.split + " split of " + c.data : c.file;
  const Split which = c.file.empty() ? split : Split::Validation;
  const LossStats s = c.incremental ? evaluate_bytes_incremental(*model, data, which, L, c.batch, c.max_windows, c.seed)
                                    : evaluate_bytes(*model, data, which, L, c.batch, c.max_windows, c.seed);
  std::printf("%s%s: %.0f bytes scored in windows of %lld: loss %.4f  bits/byte %.4f  accuracy %.4f\n", c.incremental ? "incremental decoding, " : "", source.c_str(), s.count,
              static_cast<long long>(L), s.mean(), bits_per_byte(s), s.count > 0 ? s.correct / s.count : 0.0);
}

}  // namespace

void add_eval_command(CLI::App& app, int& exit_code) {
  auto c = std::make_shared<EvalCommand>();
  CLI::App* cmd = app.add_subcommand("eval", "Loss, bits per byte and accuracy on a data split or a whole file");
  cmd->add_option("--model", c->model_dir, "model directory (the --out of `reformer train`)")->required();
  cmd->add_option("--data", c->data, "data file split 90/5/5 as in training")->capture_default_str();
  cmd->add_option("--split", c->split, "train, validation or test")->capture_default_str();
  cmd->add_option("--file", c->file, "evaluate this whole file instead of a split of --data");
  cmd->add_option("--task", c->task, "lm or copy (fresh copy-task sequences)")->capture_default_str();
  cmd->add_option("--seq-len", c->seq_len, "window length (default: the model's training length)");
  cmd->add_option("--batch", c->batch, "windows per forward pass")->capture_default_str();
  cmd->add_option("--max-windows", c->max_windows, "evaluate only the first N windows (copy task: sequences), 0 = all")->capture_default_str();
  cmd->add_option("--num-hashes", c->num_hashes, "LSH hash rounds at evaluation (the paper evaluates with more than it trains with)");
  cmd->add_option("--seed", c->seed, "seed for LSH rotations")->capture_default_str()->check(kNotNegative);
  cmd->add_flag("--incremental", c->incremental,
                "score token by token through incremental decoding (as `generate` runs) instead of the full forward, "
                "to see what the decoding cache costs in bits per byte");
  cmd->add_option("--threads", c->threads, "OpenMP threads");
  cmd->callback([c, &exit_code] {
    run_eval(*c);
    exit_code = 0;
  });
}

}  // namespace reformer::cli
