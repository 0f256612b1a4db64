// reformer train: a language model (causal or masked) on a text file, sequence classification on
// JSON lines, or the copy task, from scratch or from a checkpoint (--init-from), with checkpoints.
// The run itself is reformer::train (include/reformer/train.h); this file maps flags onto it.
#include <unistd.h>

#include <cstdio>
#include <optional>

#include "commands.h"
#include "common.h"
#include "interrupts.h"
#include "model_flags.h"
#include "reformer/error.h"
#include "reformer/train.h"

namespace reformer::cli {
namespace {

struct TrainCommand {
  TrainArgs args;
  ModelFlags model;
  std::string out;
  bool resume = false;
  std::optional<int> threads;
  std::string max_memory = "0";
};

// "--grad-accum" -> "grad_accum": the TrainArgs key of a flag.
std::string json_key(const CLI::Option& opt) {
  std::string key = opt.get_single_name();
  std::replace(key.begin(), key.end(), '-', '_');
  return key;
}

void run_train(const CLI::App& cmd, const TrainCommand& c, int& exit_code) {
  TrainRequest request;
  request.out_dir = c.out;
  request.resume = c.resume;
  request.args = c.args;
  if (c.model.seq_len) request.args.seq_len = *c.model.seq_len;  // the window; the model flag also sets the positions
  for (const CLI::Option* opt : cmd.get_options())
    if (opt->count() > 0) request.given.insert(json_key(*opt));
  request.model = [&](int64_t vocab, const ReformerConfig* resumed) -> std::optional<ReformerConfig> {
    if (!resumed) return c.model.build(vocab);
    if (!c.model.any_given(cmd)) return std::nullopt;
    // The flags are applied to the run's own config, so repeating one with its value is no change.
    return c.model.config_file ? c.model.build(vocab) : c.model.apply_to(*resumed);
  };
  request.max_memory = parse_memory_flag(c.max_memory);
  request.threads = thread_flag(c.threads);
  request.progress = stdout;
  request.progress_in_place = isatty(fileno(stdout)) != 0;

  TrainCallbacks callbacks;
  callbacks.stop_requested = [] { return interrupt_requested(); };
  // Ctrl-C or SIGTERM: save a checkpoint and exit after the current step; a second one exits at once.
  clear_interrupt();
  set_graceful_interrupts(true);
  TrainSummary summary;
  try {
    summary = train(request, callbacks);
  } catch (...) {
    set_graceful_interrupts(false);
    throw;
  }
  set_graceful_interrupts(false);
  if (summary.interrupted) {
    if (summary.rank == 0)
      std::printf("stopped by Ctrl-C (or SIGTERM); continue with: reformer train --out %s --resume\n", c.out.c_str());
    exit_code = kInterruptedExit;
  }
}

}  // namespace

void add_train_command(CLI::App& app, int& exit_code) {
  auto c = std::make_shared<TrainCommand>();
  CLI::App* cmd = app.add_subcommand("train", "Train a language model (causal or masked) on a text file (bytes or a SentencePiece "
                                     "tokenizer), a sequence classifier on JSON lines, or the copy task; from scratch or --init-from a checkpoint");
  c->model.add_to(*cmd);
  TrainArgs& a = c->args;
  cmd->add_option("--out", c->out, "output directory: checkpoint-<step>/ directories, the newest one's config.json + model.safetensors, metrics.jsonl")->required();
  cmd->add_flag("--resume", c->resume, "continue the run in --out from its last checkpoint");
  cmd->add_option("--task", a.task, "lm (causal language model of --data), mlm (masked language model for a bidirectional "
                  "encoder: --mlm-probability of the tokens, 80% [MASK], 10% random, 10% kept, loss on them only), classify "
                  "(sequence classification: --data and --valid-data are JSON lines {\"text\": ..., \"label\": ...}; "
                  "accuracy, and F1 for two classes) or copy (the paper's duplication task)")->capture_default_str();
  cmd->add_option("--data", a.data, "text or byte file (plain, gzip or dictzip), split 90/5/5 into train/validation/test; "
                  "--task classify: the training JSON-lines file")->capture_default_str();
  cmd->add_option("--init-from", a.init_from, "fine-tune: start from this model directory (a `reformer train` output, a "
                  "checkpoint-<step>/ or a Hugging Face directory) with its config, tokenizer and weights; the task sets the "
                  "head (a new one when the kind or --num-labels differs). Only --dropout, --lsh-chunk, --local-chunk, "
                  "--ff-chunk, --hashes and --buckets may change; --seq-len is then the window only");
  cmd->add_option("--num-labels", a.num_labels, "--task classify: classes of the head (default: the --init-from classifier's, "
                  "else from the labels of --data)");
  cmd->add_option("--mlm-probability", a.mlm_probability, "--task mlm: share of tokens masked for prediction")->capture_default_str();
  cmd->add_option("--tokenizer", a.tokenizer,
                  "SentencePiece model (spiece.model, e.g. from `reformer tokenizer train`) for the text; copied into --out "
                  "and every checkpoint. Default: bytes (ids = byte + 2)");
  cmd->add_option("--valid-data", a.valid_data, "separate validation file (then --data is the training file); --task classify: "
                  "the validation JSON-lines file (every example is evaluated)");
  cmd->add_option("--test-data", a.test_data, "separate test file (with --valid-data)");
  cmd->add_option("--copy-vocab", a.copy_vocab, "copy task: vocabulary (symbols 1..N-1)")->capture_default_str();
  cmd->add_option("--batch", a.batch, "sequences per micro-batch")->capture_default_str();
  cmd->add_option("--steps", a.steps, "optimizer steps")->capture_default_str();
  cmd->add_option("--grad-accum", a.grad_accum, "micro-batches per step (gradient accumulation)")->capture_default_str();
  cmd->add_option("--lr", a.lr, "peak learning rate")->capture_default_str();
  cmd->add_option("--warmup", a.warmup, "linear warm-up steps (default: steps / 10, at most 1000)")->check(kNotNegative);
  cmd->add_option("--schedule", a.schedule, "rsqrt (trax: warm-up then 1/sqrt(step)), cosine (to 0.1 x peak), constant, or a full spec like rsqrt:constant=0.03125,warmup=2000")->capture_default_str();
  cmd->add_option("--optimizer", a.optimizer, "adam (trax enwik8: b1 0.9, b2 0.98, eps 1e-9) or adafactor (the paper's); options as adam:b2=0.999")->capture_default_str();
  cmd->add_option("--clip-norm", a.clip_norm, "global gradient-norm clipping, 0 = off")->capture_default_str();
  cmd->add_option("--seed", a.seed, "seed for initialization, data windows, dropout and hashing")
      ->capture_default_str()
      ->check(kNotNegative);
  cmd->add_option("--log-interval", a.log_interval, "steps between progress lines")->capture_default_str();
  cmd->add_option("--eval-interval", a.eval_interval, "steps between validation runs, 0 = only at the end")->capture_default_str();
  cmd->add_option("--eval-windows", a.eval_windows, "validation windows (copy task: sequences) per evaluation")->capture_default_str();
  cmd->add_option("--save-interval", a.save_interval, "steps between checkpoints, 0 = only at the end (and on Ctrl-C)")->capture_default_str();
  cmd->add_option("--save-total-limit", a.save_total_limit, "checkpoint-<step> directories kept (the newest), 0 = all")->capture_default_str();
  cmd->add_option("--max-memory", c->max_memory, "refuse a run whose planned memory exceeds this (bytes or 24G; 0 = physical memory) "
                  "and cap the allocator at it; layers are stored (not recomputed) as far as it allows (0: the memory available now)")->capture_default_str();
  cmd->add_option("--threads", c->threads, "OpenMP threads (default: OMP_NUM_THREADS or all cores); same seed + same threads = same losses");
  cmd->add_option("--precision", a.precision, "matrix products: fp32, or bf16 (bf16 inputs, fp32 accumulation and output; weights, "
                  "optimizer state, LayerNorm, softmax, attention scores and the loss stay fp32). bf16 needs a CPU with "
                  "AVX512-BF16 or AMX-BF16; a resumed run keeps the run's precision unless given")->capture_default_str();
  cmd->callback([cmd, c, &exit_code] { run_train(*cmd, *c, exit_code); });
}

}  // namespace reformer::cli
