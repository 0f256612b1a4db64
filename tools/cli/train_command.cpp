// reformer train: a byte-level language model on a file, or the copy task, with checkpoints.
#include <omp.h>
#include <unistd.h>

#include <csignal>
#include <cmath>
#include <filesystem>
#include <optional>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "interrupts.h"
#include "common.h"
#include "model_flags.h"
#include "core/limits.h"
#include "dist/communicator.h"
#include "reformer/error.h"
#include "reformer/memory.h"
#include "train/byte_data.h"
#include "train/copy_task.h"
#include "train/evaluate.h"
#include "train/memory_estimate.h"
#include "train/metrics_log.h"
#include "train/progress.h"
#include "train/trainer.h"
#include "train/trainer_state.h"

namespace reformer::cli {
namespace {

namespace fs = std::filesystem;


// Training options; a checkpoint stores them (as JSON with the flag names) so --resume continues
// the same run.
struct TrainArgs {
  std::string data = kDefaultData, valid_data, test_data, task = "lm";
  int64_t copy_vocab = 128, batch = 4, steps = 1000, grad_accum = 1, warmup = -1;
  int64_t eval_interval = 0, eval_windows = 16, save_interval = 0, save_total_limit = 0, log_interval = 10;
  double lr = 1e-3, clip_norm = 1.0;
  std::string schedule = "cosine", optimizer = "adam";
  uint64_t seed = 0;
  NLOHMANN_DEFINE_TYPE_INTRUSIVE(TrainArgs, data, valid_data, test_data, task, copy_vocab, batch, steps, grad_accum,
                                 warmup, eval_interval, eval_windows, save_interval, save_total_limit, log_interval, lr,
                                 clip_norm, schedule, optimizer, seed)
};

// Options a resumed run may change; the others must stay as the checkpoint has them.
const char* const kChangeableOnResume[] = {"steps", "log_interval", "eval_interval", "save_interval", "save_total_limit",
                                           "eval_windows"};

// kNotNegative (commands.h) also guards --warmup, where -3 would silently mean "default".

struct TrainCommand {
  TrainArgs args;
  ModelFlags model;
  std::string out;
  bool resume = false;
  std::optional<int> threads;
  std::string max_memory = "0";
};

std::string json_key(const CLI::Option& opt) {
  std::string key = opt.get_single_name();
  std::replace(key.begin(), key.end(), '-', '_');
  return key;
}

// Flags not given take the checkpoint's values; a flag given with a different value is an error
// unless it may change.
TrainArgs merge_resumed_args(const CLI::App& cmd, const TrainArgs& given, const nlohmann::json& stored, const std::string& out) {
  REFORMER_CHECK(stored.is_object(), "the training options stored in the checkpoint in ", out, " are ", stored.dump(),
                 ", not an object; the checkpoint is corrupt");
  nlohmann::json merged = given;
  for (const CLI::Option* opt : cmd.get_options()) {
    const std::string key = json_key(*opt);
    if (!stored.contains(key)) continue;
    if (opt->count() == 0) {
      merged[key] = stored[key];
    } else if (merged[key] != stored[key] &&
               std::find(std::begin(kChangeableOnResume), std::end(kChangeableOnResume), key) == std::end(kChangeableOnResume)) {
      fail("--", opt->get_single_name(), " ", merged[key].dump(), " differs from ", stored[key].dump(), " of the run in ", out,
           "; a resumed run keeps its training options (only --steps and the log/eval/save intervals may change): drop "
           "the flag, or start a new run in another --out directory");
    }
  }
  try {
    return merged.get<TrainArgs>();
  } catch (const nlohmann::json::exception& e) {
    fail("the training options stored in the checkpoint in ", out, " (", stored.dump(), ") are malformed: ", e.what(),
         "; the checkpoint is corrupt or from another program");
  }
}

// Every config field where two configs differ, for the "different model" message.
std::string differences(const nlohmann::json& a, const nlohmann::json& b) {
  std::string out;
  for (const auto& [key, value] : a.items())
    if (!b.contains(key) || b[key] != value)
      out += (out.empty() ? "" : ", ") + key + " = " + value.dump() + " vs " + (b.contains(key) ? b[key].dump() : "missing");
  return out.empty() ? "?" : out;
}

std::string schedule_spec(const CLI::App& cmd, const TrainArgs& a) {
  if (a.schedule.find(':') != std::string::npos) {
    REFORMER_CHECK(cmd.count("--lr") == 0 && cmd.count("--warmup") == 0, "--schedule '", a.schedule,
                   "' gives the full schedule; drop --lr and --warmup or give --schedule as a bare kind (rsqrt, cosine, constant)");
    return a.schedule;
  }
  REFORMER_CHECK(std::isfinite(a.lr) && a.lr > 0, "--lr ", a.lr, " must be > 0 (e.g. 1e-3)");
  const int64_t warmup = a.warmup >= 0 ? a.warmup : std::min<int64_t>(1000, a.steps / 10);
  char buf[160];
  if (a.schedule == "rsqrt") {  // peak lr at step == warmup
    REFORMER_CHECK(warmup > 0, "the rsqrt schedule needs --warmup > 0");
    std::snprintf(buf, sizeof buf, "rsqrt:constant=%.9g,warmup=%lld", a.lr * std::sqrt(static_cast<double>(warmup)),
                  static_cast<long long>(warmup));
  } else if (a.schedule == "cosine") {
    std::snprintf(buf, sizeof buf, "cosine:constant=%.9g,warmup=%lld,steps=%lld,final=0.1", a.lr,
                  static_cast<long long>(warmup), static_cast<long long>(std::max<int64_t>(a.steps, warmup + 1)));
  } else if (a.schedule == "constant") {
    std::snprintf(buf, sizeof buf, "constant:constant=%.9g,warmup=%lld", a.lr, static_cast<long long>(warmup));
  } else {
    fail("--schedule '", a.schedule, "' is not a schedule; use rsqrt, cosine or constant (or a full spec like rsqrt:constant=0.03125,warmup=2000)");
  }
  return buf;
}

void check_args(const TrainArgs& a) {
  REFORMER_CHECK(a.steps >= 0, "--steps ", a.steps, " must be >= 0");
  REFORMER_CHECK(a.batch >= 1, "--batch ", a.batch, " must be at least 1");
  // Upper bounds (core/limits.h), so that no product of these can overflow.
  limits::check_range("--steps", a.steps, 0, limits::kMaxSteps);
  limits::check_range("--batch", a.batch, 1, limits::kMaxBatch);
  limits::check_range("--grad-accum", a.grad_accum, 1, limits::kMaxBatch);
  limits::check_range("--eval-windows", a.eval_windows, 1, limits::kMaxBatch);
  limits::check_range("--warmup", a.warmup, -1, limits::kMaxSteps);  // -1: not given (steps / 10)
  limits::check_range("--save-total-limit", a.save_total_limit, 0, limits::kMaxSteps);
  if (a.task == "copy") limits::check_range("--copy-vocab", a.copy_vocab, 2, limits::kMaxVocab);
  REFORMER_CHECK(a.task == "lm" || a.task == "copy", "--task '", a.task, "' is not a task; use lm (bytes of --data) or copy");
  REFORMER_CHECK(a.valid_data.empty() == a.test_data.empty(), "give both --valid-data and --test-data, or neither (then --data is split 90/5/5)");
}

// A run resumed on another number of ranks keeps its global batch (batch x grad_accum x ranks): the
// stored grad_accum is rescaled to this run's ranks, or the resume is refused naming both.
void keep_global_batch(const CLI::App& cmd, const TrainArgs& given, nlohmann::json& stored, const TrainerState& state,
                       int ranks, const std::string& out) {
  const auto it = state.metadata.find("ranks");
  int64_t old_ranks = 1;  // older checkpoints: one process
  if (it != state.metadata.end()) {
    char* end = nullptr;
    old_ranks = std::strtoll(it->second.c_str(), &end, 10);
    REFORMER_CHECK(end && *end == '\0' && old_ranks >= 1 && old_ranks <= limits::kMaxBatch, state.dir, "/", kTrainerStateFile,
                   ": metadata ranks '", it->second, "' is not a number of ranks; the checkpoint is corrupt");
  }
  if (!stored.is_object() || !stored.contains("grad_accum") || !stored["grad_accum"].is_number_integer()) return;
  const int64_t accum = stored["grad_accum"].get<int64_t>(), micro = accum * old_ranks;
  const bool given_accum = cmd.count("--grad-accum") > 0;
  REFORMER_CHECK(!given_accum || given.grad_accum * ranks == micro, "--grad-accum ", given.grad_accum, " on ", ranks,
                 " ranks makes ", given.grad_accum * ranks, " micro-batches per step, but the run in ", out, " takes ", micro,
                 " (--grad-accum ", accum, " x ", old_ranks, " ranks); drop --grad-accum to keep the run's global batch");
  if (old_ranks == ranks) return;
  REFORMER_CHECK(micro % ranks == 0, "the run in ", out, " takes ", micro, " micro-batches per step (--grad-accum ", accum,
                 " x ", old_ranks, " ranks), which ", ranks, " ranks cannot share evenly; resume it on a number of ranks "
                 "that divides ", micro);
  stored["grad_accum"] = micro / ranks;
}

void train(CLI::App& cmd, TrainCommand& c, int& exit_code, bool& created_out) {
  Communicator& comm = world_communicator();  // this process alone unless started by mpirun/srun
  const bool writer = comm.rank() == 0;       // rank 0 alone writes checkpoints, metrics and progress
  set_threads(c.threads);
  const int64_t max_memory = parse_memory_flag(c.max_memory);
  TrainArgs args = c.args;
  std::optional<TrainerState> state;
  if (c.resume) {
    state = read_trainer_state(c.out);
    for (const std::string& note : writer ? state->ignored : std::vector<std::string>{})
      std::fprintf(stderr, "warning: ignoring incomplete checkpoint %s\n", note.c_str());
    const auto it = state->metadata.find("train_args");
    REFORMER_CHECK(it != state->metadata.end(), state->dir, "/", kTrainerStateFile, " has no training options; it was not written by `reformer train`");
    nlohmann::json stored;
    try {
      stored = nlohmann::json::parse(it->second);
    } catch (const nlohmann::json::exception& e) {
      fail(state->dir, "/", kTrainerStateFile, ": metadata train_args is not valid JSON (", e.what(), "); the checkpoint is corrupt");
    }
    keep_global_batch(cmd, args, stored, *state, comm.size(), c.out);
    args = merge_resumed_args(cmd, args, stored, c.out);
  } else {
    REFORMER_CHECK(!has_checkpoint(c.out), c.out, " already holds a checkpoint; continue it with --resume or choose another --out");
  }
  check_args(args);
  const std::string schedule = schedule_spec(cmd, args);
  created_out = writer && ensure_writable_dir(c.out);

  const bool copy = args.task == "copy";
  const int64_t vocab = copy ? args.copy_vocab : kByteVocab;
  ReformerConfig config;
  if (state) {
    config = ReformerConfig::load((fs::path(state->dir) / "config.json").string());
    if (c.model.any_given(cmd)) {
      // The flags are applied to the run's own config, so repeating one with its value is no change.
      const ReformerConfig requested = c.model.config_file ? c.model.build(vocab) : c.model.apply_to(config);
      REFORMER_CHECK(requested.to_json() == config.to_json(), "the model flags describe a different model than the checkpoint in ",
                     c.out, " (", differences(requested.to_json(), config.to_json()), "); drop the model flags when resuming");
    }
  } else {
    config = c.model.build(vocab);
  }
  // (After the checks above, so a resumed command that contradicts the run is still refused.)
  if (state && state->step >= args.steps) {
    // Nothing to train: evaluating and saving again would only append duplicate records.
    if (writer)
      std::printf("the run in %s already finished: its checkpoint is at step %lld of --steps %lld; give a larger --steps to "
                "train further\n", c.out.c_str(), static_cast<long long>(state->step), static_cast<long long>(args.steps));
    return;
  }
  const int64_t L = config.max_length();

  // Data first: a missing or too small file fails before anything big is allocated.
  std::optional<ByteDataset> data;
  CopyTask task{L, static_cast<int32_t>(vocab)};
  if (copy) {
    validate(task);
  } else {
    data = args.valid_data.empty() ? ByteDataset::from_file(args.data) : ByteDataset::from_files(args.data, args.valid_data, args.test_data);
    data->check_fits(Split::Train, L);
    data->check_fits(Split::Validation, L);
  }

  const MemoryEstimate mem = estimate_training_memory(config, args.batch, L, args.optimizer, omp_get_max_threads());
  // An impossible plan is refused here, with its size, instead of being OOM-killed later.
  check_memory_plan(mem, max_memory);
  if (max_memory > 0) mem_set_limit(max_memory);
  if (writer)
    std::printf("model: %zu layers (%s), hidden %lld, %lld heads x %lld, seq len %lld; training needs about %s\n",
              config.attn_layers.size(), nlohmann::json(config.attn_layers).dump().c_str(), static_cast<long long>(config.hidden_size),
              static_cast<long long>(config.num_attention_heads), static_cast<long long>(config.attention_head_size),
              static_cast<long long>(L), format_bytes(mem.total()).c_str());

  ReformerModel model(config, args.seed);
  TrainerOptions options;
  options.steps = args.steps;
  options.grad_accum = args.grad_accum;
  options.clip_norm = args.clip_norm;
  options.seed = args.seed;
  options.log_interval = args.log_interval;
  options.eval_interval = args.eval_interval;
  options.save_interval = args.save_interval;
  options.save_total_limit = args.save_total_limit;
  options.out_dir = c.out;
  options.optimizer = args.optimizer;
  options.schedule = schedule;
  options.communicator = &comm;
  options.checkpoint_metadata = {{"train_args", nlohmann::json(args).dump()},
                                 {"threads", std::to_string(omp_get_max_threads())}};

  std::optional<MetricsLog> log;
  if (writer) log.emplace((fs::path(c.out) / "metrics.jsonl").string(), state ? std::optional<int64_t>(state->step) : std::nullopt);
  TrainerHooks hooks;
  const int64_t B = args.batch;
  const EvalShard shard{comm.rank(), comm.size()};  // evaluation is split over the ranks and summed
  if (copy) {
    hooks.batch = [&, B](TokenBatch& out, int64_t i) { copy_task_batch(out, task, B, args.seed, i); };
    hooks.evaluate = [&, B] { return evaluate_copy(model, task, B, (args.eval_windows + B - 1) / B, args.seed, shard); };
  } else {
    hooks.batch = [&, B, L](TokenBatch& out, int64_t i) { data->train_batch(out, B, L, args.seed, i); };
    hooks.evaluate = [&, B, L] { return evaluate_bytes(model, *data, Split::Validation, L, B, args.eval_windows, args.seed, shard); };
  }
  if (writer) hooks.metrics = [&](const nlohmann::json& record) { log->write(record); };
  hooks.stop_requested = [] { return interrupt_requested(); };

  Trainer trainer(model, options, hooks);
  if (state) {
    trainer.resume(state->dir);
    if (writer) std::printf("resuming from step %lld (%s)\n", static_cast<long long>(trainer.step()), state->dir.c_str());
  }
  // Ctrl-C or SIGTERM: save a checkpoint and exit after the current step; a second one exits at once.
  clear_interrupt();
  set_graceful_interrupts(true);
  Progress progress(stdout, isatty(fileno(stdout)) != 0);
  const TrainResult result = trainer.run(progress);
  set_graceful_interrupts(false);
  if (result == TrainResult::Interrupted) {
    if (writer) progress.message("stopped by Ctrl-C (or SIGTERM); continue with: reformer train --out " + c.out + " --resume");
    exit_code = kInterruptedExit;
  }
}

// A failed run removes the --out directory it created, as long as nothing was written into it.
void run_train(CLI::App& cmd, TrainCommand& c, int& exit_code) {
  bool created_out = false;
  try {
    train(cmd, c, exit_code, created_out);
    world_communicator().finish();  // all ranks got here (a failed rank ends without it)
  } catch (...) {
    std::error_code ec;
    if (created_out && fs::is_directory(c.out, ec) && fs::is_empty(c.out, ec)) fs::remove(c.out, ec);
    throw;
  }
}

}  // namespace

void add_train_command(CLI::App& app, int& exit_code) {
  auto c = std::make_shared<TrainCommand>();
  CLI::App* cmd = app.add_subcommand("train", "Train a byte-level language model on a file (or the copy task)");
  c->model.add_to(*cmd);
  TrainArgs& a = c->args;
  cmd->add_option("--out", c->out, "output directory: checkpoint-<step>/ directories, the newest one's config.json + model.safetensors, metrics.jsonl")->required();
  cmd->add_flag("--resume", c->resume, "continue the run in --out from its last checkpoint");
  cmd->add_option("--task", a.task, "lm (bytes of --data) or copy (the paper's duplication task)")->capture_default_str();
  cmd->add_option("--data", a.data, "text or byte file (plain, gzip or dictzip), split 90/5/5 into train/validation/test")->capture_default_str();
  cmd->add_option("--valid-data", a.valid_data, "separate validation file (then --data is the training file)");
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
                  "and cap the allocator at it")->capture_default_str();
  cmd->add_option("--threads", c->threads, "OpenMP threads (default: OMP_NUM_THREADS or all cores); same seed + same threads = same losses");
  cmd->callback([cmd, c, &exit_code] { run_train(*cmd, *c, exit_code); });
}

}  // namespace reformer::cli
