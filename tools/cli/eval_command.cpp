// reformer eval: loss, bits per byte and accuracy of a trained model on a split or a whole file.
// The evaluation itself is reformer::evaluate (include/reformer/evaluate.h).
#include <cstdio>
#include <optional>

#include "commands.h"
#include "common.h"
#include "reformer/error.h"
#include "reformer/evaluate.h"

namespace reformer::cli {
namespace {

struct EvalCommand {
  std::string model_dir;
  EvalRequest request;
  std::optional<int64_t> seq_len, num_hashes;  // 0 would mean "the model's" to the request
  std::optional<int> threads;
  std::string precision = "fp32";
};

void run_eval(const EvalCommand& c) {
  EvalRequest r = c.request;
  r.threads = thread_flag(c.threads);
  r.precision = parse_precision(c.precision);
  check_precision(r.precision);  // before loading anything
  if (c.num_hashes) {
    REFORMER_CHECK(*c.num_hashes >= 1, "--num-hashes ", *c.num_hashes, " must be at least 1");
    r.num_hashes = *c.num_hashes;
  }
  if (c.seq_len) {
    REFORMER_CHECK(*c.seq_len >= 1, "--seq-len ", *c.seq_len, " must be at least 1");
    r.seq_len = *c.seq_len;
  }
  r.model_dir = c.model_dir;
  auto model = open_model(c.model_dir);
  const EvalResult e = evaluate(*model, r);
  if (r.task == "copy") {
    std::printf("copy task, length %lld, %.0f tokens scored: loss %.4f  accuracy %.4f\n", static_cast<long long>(e.length),
                e.stats.count, e.loss, e.accuracy);
    return;
  }
  const bool bytes = e.stats.bytes == e.stats.count;  // the byte tokenizer: one byte per token
  const std::string tokens = bytes ? "" : " (" + std::to_string(static_cast<long long>(e.stats.count)) + " tokens)";
  std::printf("%s%s: %.0f bytes%s scored in windows of %lld: loss %.4f  bits/byte %.4f  accuracy %.4f\n",
              r.incremental ? "incremental decoding, " : "", e.source.c_str(), e.stats.bytes, tokens.c_str(),
              static_cast<long long>(e.length), e.loss, e.bits_per_byte, e.accuracy);
}

}  // namespace

void add_eval_command(CLI::App& app, int& exit_code) {
  auto c = std::make_shared<EvalCommand>();
  CLI::App* cmd = app.add_subcommand("eval", "Loss, bits per byte and accuracy on a data split or a whole file");
  cmd->add_option("--model", c->model_dir, "model directory (the --out of `reformer train`)")->required();
  cmd->add_option("--data", c->request.data, "data file split 90/5/5 as in training")->capture_default_str();
  cmd->add_option("--split", c->request.split, "train, validation or test")->capture_default_str();
  cmd->add_option("--file", c->request.file, "evaluate this whole file instead of a split of --data");
  cmd->add_option("--task", c->request.task, "lm or copy (fresh copy-task sequences)")->capture_default_str();
  cmd->add_option("--tokenizer", c->request.tokenizer,
                  "SentencePiece model (spiece.model) of the text (default: the --model directory's spiece.model, else bytes)");
  cmd->add_option("--seq-len", c->seq_len, "window length in tokens, any length (padded to the chunk multiple, the padding "
                  "masked; default: the model's positions)");
  cmd->add_option("--batch", c->request.batch, "windows per forward pass")->capture_default_str();
  cmd->add_option("--max-windows", c->request.max_windows, "evaluate only the first N windows (copy task: sequences), 0 = all")->capture_default_str();
  cmd->add_option("--num-hashes", c->num_hashes, "LSH hash rounds at evaluation (the paper evaluates with more than it trains with)");
  cmd->add_option("--seed", c->request.seed, "seed for LSH rotations")->capture_default_str()->check(kNotNegative);
  cmd->add_flag("--incremental", c->request.incremental,
                "score token by token through incremental decoding (as `generate` runs) instead of the full forward, "
                "to see what the decoding cache costs in bits per byte");
  cmd->add_option("--threads", c->threads, "OpenMP threads");
  cmd->add_option("--precision", c->precision, "matrix products: fp32 or bf16 (bf16 inputs, fp32 accumulation; needs "
                  "AVX512-BF16 or AMX-BF16)")->capture_default_str();
  cmd->callback([c, &exit_code] {
    run_eval(*c);
    exit_code = 0;
  });
}

}  // namespace reformer::cli
