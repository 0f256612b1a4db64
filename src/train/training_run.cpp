// train(): a whole training run (include/reformer/train.h), shared by `reformer train` and Python.
#include "reformer/train.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <optional>

#include "dist/communicator.h"
#include "reformer/checkpoint.h"
#include "reformer/error.h"
#include "reformer/limits.h"
#include "reformer/memory.h"
#include "reformer/memory_estimate.h"
#include "reformer/precision.h"
#include "reformer/threads.h"
#include "reformer/tokenizer.h"
#include "model/eval_length.h"
#include "train/byte_data.h"
#include "train/classify_data.h"
#include "train/copy_task.h"
#include "train/evaluate.h"
#include "train/init_from.h"
#include "train/metrics_log.h"
#include "train/mlm.h"
#include "train/progress.h"
#include "train/trainer.h"
#include "train/trainer_state.h"

namespace reformer {
namespace {

namespace fs = std::filesystem;

// "batch" -> "--batch": the CLI's name of an option, used in messages (Python's keyword is the key).
std::string flag_name(std::string key) {
  std::replace(key.begin(), key.end(), '_', '-');
  return "--" + key;
}

bool changeable(const std::string& key) {
  const auto& keys = changeable_on_resume();
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

// Options not given take the checkpoint's values; a given option with a different value is an
// error unless it may change.
TrainArgs merge_resumed_args(const TrainRequest& r, const nlohmann::json& stored) {
  REFORMER_CHECK(stored.is_object(), "the training options stored in the checkpoint in ", r.out_dir, " are ", stored.dump(),
                 ", not an object; the checkpoint is corrupt");
  nlohmann::json merged = r.args;
  for (const auto& [key, value] : stored.items()) {
    if (!merged.contains(key)) continue;
    if (!r.given.count(key)) {
      merged[key] = value;
    } else if (merged[key] != value && !changeable(key)) {
      fail(flag_name(key), " ", merged[key].dump(), " differs from ", value.dump(), " of the run in ", r.out_dir,
           "; a resumed run keeps its training options (only --steps, --precision and the log/eval/save intervals may change): drop "
           "the option, or start a new run in another output directory");
    }
  }
  try {
    return merged.get<TrainArgs>();
  } catch (const nlohmann::json::exception& e) {
    fail("the training options stored in the checkpoint in ", r.out_dir, " (", stored.dump(), ") are malformed: ", e.what(),
         "; the checkpoint is corrupt or from another program");
  }
}

// Every config field where two configs differ (leaving out those `ignored` accepts), for the
// "different model" messages; empty when none.
std::string differences(const nlohmann::json& a, const nlohmann::json& b,
                        const std::function<bool(const std::string&)>& ignored = nullptr) {
  std::string out;
  for (const auto& [key, value] : a.items())
    if ((!b.contains(key) || b[key] != value) && !(ignored && ignored(key)))
      out += (out.empty() ? "" : ", ") + key + " = " + value.dump() + " vs " + (b.contains(key) ? b[key].dump() : "missing");
  return out;
}

std::string schedule_spec(const TrainRequest& r, const TrainArgs& a) {
  if (a.schedule.find(':') != std::string::npos) {
    REFORMER_CHECK(!r.given.count("lr") && !r.given.count("warmup"), "--schedule '", a.schedule,
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
  // Upper bounds (reformer/limits.h), so that no product of these can overflow.
  limits::check_range("--steps", a.steps, 0, limits::kMaxSteps);
  limits::check_range("--batch", a.batch, 1, limits::kMaxBatch);
  limits::check_range("--grad-accum", a.grad_accum, 1, limits::kMaxBatch);
  limits::check_range("--eval-windows", a.eval_windows, 1, limits::kMaxBatch);
  limits::check_range("--warmup", a.warmup, -1, limits::kMaxSteps);  // -1: not given (steps / 10)
  limits::check_range("--save-total-limit", a.save_total_limit, 0, limits::kMaxSteps);
  limits::check_range("--log-interval", a.log_interval, 1, limits::kMaxSteps);
  limits::check_range("--eval-interval", a.eval_interval, 0, limits::kMaxSteps);
  limits::check_range("--save-interval", a.save_interval, 0, limits::kMaxSteps);
  if (a.task == "copy") limits::check_range("--copy-vocab", a.copy_vocab, 2, limits::kMaxVocab);
  REFORMER_CHECK(a.task == "lm" || a.task == "mlm" || a.task == "classify" || a.task == "copy", "--task '", a.task,
                 "' is not a task; use lm (causal language model of --data), mlm (masked language model), classify "
                 "(sequence classification of JSON lines) or copy");
  if (a.task == "classify") {
    REFORMER_CHECK(a.data != kDefaultData && !a.valid_data.empty(), "--task classify needs --data TRAIN.jsonl and --valid-data "
                   "VALID.jsonl, JSON-lines files of {\"text\": ..., \"label\": ...}");
    REFORMER_CHECK(a.test_data.empty(), "--task classify evaluates on --valid-data only; drop --test-data");
    limits::check_range("--num-labels", a.num_labels, 0, limits::kMaxVocab);
  } else {
    REFORMER_CHECK(a.valid_data.empty() == a.test_data.empty(), "give both --valid-data and --test-data, or neither (then --data is split 90/5/5)");
    REFORMER_CHECK(a.num_labels == 0, "--num-labels ", a.num_labels, " is for --task classify only; drop it");
  }
  if (a.task == "mlm")
    REFORMER_CHECK(std::isfinite(a.mlm_probability) && a.mlm_probability > 0 && a.mlm_probability < 1, "--mlm-probability ",
                   a.mlm_probability, " must be in (0, 1); BERT and Hugging Face use 0.15");
  REFORMER_CHECK(a.task != "copy" || a.tokenizer.empty(), "--tokenizer ", a.tokenizer,
                 " tokenizes text; the copy task has no text (drop --tokenizer or use --task lm)");
  REFORMER_CHECK(a.init_from.empty() || a.task != "copy", "--init-from is for the text tasks (lm, mlm, classify), not copy");
}

// A run resumed on another number of ranks keeps its global batch (batch x grad_accum x ranks): the
// stored grad_accum is rescaled to this run's ranks, or the resume is refused naming both.
void keep_global_batch(const TrainRequest& r, nlohmann::json& stored, const TrainerState& state, int ranks) {
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
  const int64_t given = r.args.grad_accum;
  REFORMER_CHECK(!r.given.count("grad_accum") || given * ranks == micro, "--grad-accum ", given, " on ", ranks,
                 " ranks makes ", given * ranks, " micro-batches per step, but the run in ", r.out_dir, " takes ", micro,
                 " (--grad-accum ", accum, " x ", old_ranks, " ranks); drop --grad-accum to keep the run's global batch");
  if (old_ranks == ranks) return;
  REFORMER_CHECK(micro % ranks == 0, "the run in ", r.out_dir, " takes ", micro, " micro-batches per step (--grad-accum ", accum,
                 " x ", old_ranks, " ranks), which ", ranks, " ranks cannot share evenly; resume it on a number of ranks "
                 "that divides ", micro);
  stored["grad_accum"] = micro / ranks;
}

TrainSummary run(const TrainRequest& r, const TrainCallbacks& callbacks, bool& created_out) {
  REFORMER_CHECK(!r.out_dir.empty(), "no output directory given; give --out (Python: out_dir)");
  const ScopedThreads threads(r.threads);
  Communicator& comm = world_communicator();  // this process alone unless started by mpirun/srun
  const bool writer = comm.rank() == 0;       // rank 0 alone writes checkpoints, metrics and progress
  Progress progress(writer ? r.progress : nullptr, r.progress_in_place);
  TrainSummary summary;
  summary.rank = comm.rank();
  summary.ranks = comm.size();
  TrainArgs args = r.args;
  std::optional<TrainerState> state;
  if (r.resume) {
    state = read_trainer_state(r.out_dir);
    for (const std::string& note : state->ignored) progress.message("warning: ignoring incomplete checkpoint " + note);
    const auto it = state->metadata.find("train_args");
    REFORMER_CHECK(it != state->metadata.end(), state->dir, "/", kTrainerStateFile, " has no training options; it was not written by `reformer train`");
    nlohmann::json stored;
    try {
      stored = nlohmann::json::parse(it->second);
    } catch (const nlohmann::json::exception& e) {
      fail(state->dir, "/", kTrainerStateFile, ": metadata train_args is not valid JSON (", e.what(), "); the checkpoint is corrupt");
    }
    keep_global_batch(r, stored, *state, comm.size());
    args = merge_resumed_args(r, stored);
  } else {
    REFORMER_CHECK(!has_checkpoint(r.out_dir), r.out_dir, " already holds a checkpoint; continue it with --resume or choose another --out");
  }
  check_args(args);
  const std::string schedule = schedule_spec(r, args);
  // Before anything is written: a CPU without bf16 refuses --precision bf16, naming the fix.
  const ScopedPrecision precision(parse_precision(args.precision, "--precision"), "--precision");

  const bool copy = args.task == "copy", mlm = args.task == "mlm", classify = args.task == "classify";
  const bool init = !args.init_from.empty() && !state;
  // The text's tokenizer: a resumed run's own copy, else --tokenizer, else the --init-from model's, else bytes.
  std::unique_ptr<Tokenizer> tokenizer = make_byte_tokenizer();
  if (!copy) {
    const fs::path own = state ? fs::path(state->dir) / kSentencePieceFile : fs::path();
    std::error_code ec;
    tokenizer = state && fs::exists(own, ec) ? load_sentencepiece(own.string())
                                             : tokenizer_for(init ? args.init_from : std::string(), args.tokenizer);
  }
  const int64_t vocab = copy ? args.copy_vocab : tokenizer->vocab_size();
  MlmOptions masking;
  if (mlm) {
    masking = {args.mlm_probability, tokenizer->mask_id(), tokenizer->first_text_id(), static_cast<int32_t>(vocab)};
    validate(masking);
  }
  // Classification data first: the number of classes of a new head comes from its labels.
  std::optional<ClassificationData> ctrain, cvalid;
  if (classify) {
    if (!tokenizer->is_bytes()) progress.message("tokenizing the data with " + tokenizer->kind());
    ctrain = ClassificationData::from_jsonl(args.data, *tokenizer);
    cvalid = ClassificationData::from_jsonl(args.valid_data, *tokenizer);
  }
  ReformerConfig config;
  ReformerConfig init_config;  // the --init-from checkpoint's, as load_model reads it
  if (state) {
    config = ReformerConfig::load((fs::path(state->dir) / "config.json").string());
    if (r.model) {
      const std::optional<ReformerConfig> requested = r.model(vocab, &config);
      REFORMER_CHECK(!requested || requested->to_json() == config.to_json(), "the model options describe a different model than the checkpoint in ",
                     r.out_dir, " (", differences(requested->to_json(), config.to_json()), "); drop the model options when resuming");
    }
  } else if (init) {
    init_config = load_model_config(args.init_from);
    check_tokenizer_vocab(*tokenizer, init_config.vocab_size, args.init_from);
    config = config_for_task(init_config, args, ctrain ? &*ctrain : nullptr, progress);
    if (std::optional<ReformerConfig> requested = r.model ? r.model(vocab, &config) : std::nullopt) {
      // The head's fields are the task's (and --num-labels'), whatever the model options say.
      requested->architectures = config.architectures;
      requested->is_decoder = config.is_decoder;
      requested->problem_type = config.problem_type;
      requested->num_labels = config.num_labels;
      requested->id2label = config.id2label;
      const std::string refused = differences(requested->to_json(), config.to_json(), may_change_on_init);
      REFORMER_CHECK(refused.empty(), "--init-from ", args.init_from, ": the model options change ", refused,
                     " of the checkpoint, which would break its weights; fine-tuning may change only dropout, chunk lengths, "
                     "num_hashes and num_buckets (drop the other model options)");
      config = *requested;
    }
    config.validate();
  } else {
    std::optional<ReformerConfig> requested = r.model ? r.model(vocab, nullptr) : std::nullopt;
    REFORMER_CHECK(requested, "a new run needs a model: give model flags or --config (Python: config=)");
    config = *requested;
    if (mlm || classify) config = config_for_task(config, args, ctrain ? &*ctrain : nullptr, progress);
    config.validate();
    if (!copy) check_tokenizer_vocab(*tokenizer, config.vocab_size, "the model");
    REFORMER_CHECK(config.vocab_size == vocab, "the model's vocab_size ", config.vocab_size, " does not fit --task ", args.task,
                   ", which needs ", vocab, copy ? " (--copy-vocab)" : " (bytes + 2)", "; set vocab_size to ", vocab);
  }
  if (mlm)
    REFORMER_CHECK(config.model_class() == ModelClass::MaskedLM, "--task mlm trains a ReformerForMaskedLM (is_decoder false), "
                   "but the run's model is a ", model_class_name(config.model_class()), "; start a new run for masked LM");
  if (classify) {
    REFORMER_CHECK(config.model_class() == ModelClass::SequenceClassification, "--task classify trains a "
                   "ReformerForSequenceClassification, but the run's model is a ", model_class_name(config.model_class()));
    REFORMER_CHECK(args.num_labels == 0 || args.num_labels == config.num_labels, "--num-labels ", args.num_labels,
                   " differs from the model's num_labels ", config.num_labels);
    ctrain->resolve_labels(config.num_labels, config.id2label);
    cvalid->resolve_labels(config.num_labels, config.id2label);
  }
  summary.args = args;
  summary.config = config;
  // (After the checks above, so a resumed run that contradicts its checkpoint is still refused.)
  if (state && state->step >= args.steps) {
    // Nothing to train: evaluating and saving again would only append duplicate records.
    progress.message("the run in " + r.out_dir + " already finished: its checkpoint is at step " + std::to_string(state->step) +
                     " of --steps " + std::to_string(args.steps) + "; give a larger --steps to train further");
    summary.step = state->step;
    summary.already_finished = true;
    return summary;
  }
  // The window may be shorter than the positions: it is padded to P, a length the model runs.
  // Classification: the longest text (truncated to the positions) unless --seq-len says otherwise.
  if (classify && args.seq_len == 0)
    args.seq_len = std::min(config.max_length(), std::max(ctrain->longest(), cvalid->longest()));
  if (args.seq_len == 0 || copy) args.seq_len = config.max_length();
  limits::check_range("--seq-len", args.seq_len, classify ? 1 : 2, limits::kMaxLength);
  REFORMER_CHECK(args.seq_len <= config.max_length(), "--seq-len ", args.seq_len, " is longer than the model's ",
                 config.max_length(), " positions; give a --seq-len of at most ", config.max_length());
  const int64_t L = args.seq_len, P = padded_eval_length(config, L);
  summary.args = args;

  // Data first: a missing or too small file fails before anything big is allocated or written.
  std::optional<ByteDataset> data;
  CopyTask task{L, static_cast<int32_t>(vocab)};
  if (copy) {
    validate(task);
  } else if (!classify) {
    data = args.valid_data.empty() ? ByteDataset::from_file(args.data) : ByteDataset::from_files(args.data, args.valid_data, args.test_data);
    if (!tokenizer->is_bytes()) progress.message("tokenizing the data with " + (args.tokenizer.empty() ? std::string("the run's tokenizer") : args.tokenizer));
    data->tokenize(*tokenizer);
    data->check_fits(Split::Train, L);
    data->check_fits(Split::Validation, L);
  }

  const MemoryEstimate mem = estimate_training_memory(config, args.batch, P, args.optimizer, max_threads());
  // An impossible plan is refused here, with its size, instead of being OOM-killed later.
  check_memory_plan(mem, r.max_memory);
  created_out = writer && ensure_writable_dir(r.out_dir);
  if (r.max_memory > 0) mem_set_limit(r.max_memory);
  // The run's directory is self-contained: its tokenizer beside the model (and in every checkpoint).
  save_tokenizer(*tokenizer, r.out_dir);
  const std::string padding = P > L ? " (padded to " + std::to_string(P) + ")" : "";
  char line[512];
  std::snprintf(line, sizeof line, "model: %s, %zu layers (%s), hidden %lld, %lld heads x %lld, seq len %lld%s, %s tokens; training needs about %s",
                model_class_name(config.model_class()), config.attn_layers.size(), nlohmann::json(config.attn_layers).dump().c_str(),
                static_cast<long long>(config.hidden_size), static_cast<long long>(config.num_attention_heads),
                static_cast<long long>(config.attention_head_size), static_cast<long long>(L), padding.c_str(),
                copy ? "copy-task" : tokenizer->kind().c_str(), format_bytes(mem.total()).c_str());
  progress.message(line);
  // Spend what the budget leaves on stored layers (no reconstruction in their backward), then on
  // kept inputs.
  const LayerPlan plan = plan_stored_layers(config, args.batch, P, args.optimizer, max_threads(), r.max_memory);
  progress.message("layer plan: " + describe_plan(plan) + "; predicted peak " + format_bytes(plan.estimate.total()) + " of a " +
                   format_bytes(plan.budget) + " budget");

  ReformerModel model(config, args.seed);
  if (init) {
    const std::vector<std::string> fresh =
        load_base_weights(model, (fs::path(args.init_from) / "model.safetensors").string(), same_head(init_config, config));
    std::string heads;
    for (const std::string& name : fresh) heads += (heads.empty() ? "" : ", ") + name;
    progress.message("initialised from " + args.init_from + " (a " + model_class_name(init_config.model_class()) + ")" +
                     (fresh.empty() ? std::string("") : "; new head, initialised from --seed: " + heads));
  }
  model.set_layer_plan(plan.keep);
  TrainerOptions options;
  options.steps = args.steps;
  options.grad_accum = args.grad_accum;
  options.clip_norm = args.clip_norm;
  options.seed = args.seed;
  options.log_interval = args.log_interval;
  options.eval_interval = args.eval_interval;
  options.save_interval = args.save_interval;
  options.save_total_limit = args.save_total_limit;
  options.out_dir = r.out_dir;
  options.optimizer = args.optimizer;
  options.schedule = schedule;
  options.communicator = &comm;
  options.checkpoint_metadata = {{"train_args", nlohmann::json(args).dump()}, {"threads", std::to_string(max_threads())}};
  options.tokenizer = tokenizer.get();
  options.bits_per_byte = !mlm && !classify;

  std::optional<MetricsLog> log;
  if (writer) log.emplace((fs::path(r.out_dir) / "metrics.jsonl").string(), state ? std::optional<int64_t>(state->step) : std::nullopt);
  TrainerHooks hooks;
  const int64_t B = args.batch;
  const EvalShard shard{comm.rank(), comm.size()};  // evaluation is split over the ranks and summed
  if (copy) {
    hooks.batch = [&, B](TokenBatch& out, int64_t i) { copy_task_batch(out, task, B, args.seed, i); };
    hooks.evaluate = [&, B] { return Evaluation{evaluate_copy(model, task, B, (args.eval_windows + B - 1) / B, args.seed, shard)}; };
  } else if (classify) {
    hooks.batch = [&, B, L, P](TokenBatch& out, int64_t i) { ctrain->train_batch(out, B, L, P, args.seed, i); };
    hooks.evaluate = [&, B, L] {
      Evaluation e;
      e.stats = evaluate_classification(model, *cvalid, L, B, args.seed, e.metrics);
      e.bits_per_byte = false;
      e.unit = "examples";
      e.sharded = false;  // every rank scores the whole file: F1 needs all the predictions
      return e;
    };
  } else if (mlm) {
    hooks.batch = [&, B, L, P](TokenBatch& out, int64_t i) {
      data->train_batch(out, B, L, args.seed, i, P);
      apply_mlm_mask(out, masking, args.seed, i);
    };
    hooks.evaluate = [&, B, L] {
      Evaluation e;
      e.stats = evaluate_masked_lm(model, *data, Split::Validation, L, B, args.eval_windows, args.seed, masking, shard);
      e.bits_per_byte = false;
      e.unit = "masked_tokens";
      return e;
    };
  } else {
    hooks.batch = [&, B, L, P](TokenBatch& out, int64_t i) { data->train_batch(out, B, L, args.seed, i, P); };
    hooks.evaluate = [&, B, L] { return Evaluation{evaluate_bytes(model, *data, Split::Validation, L, B, args.eval_windows, args.seed, shard)}; };
  }
  if (writer)
    hooks.metrics = [&](const nlohmann::json& record) {
      log->write(record);
      if (callbacks.on_record) callbacks.on_record(record);
    };
  hooks.stop_requested = callbacks.stop_requested;

  Trainer trainer(model, options, hooks);
  if (state) {
    trainer.resume(state->dir);
    progress.message("resuming from step " + std::to_string(trainer.step()) + " (" + state->dir + ")");
  }
  summary.interrupted = trainer.run(progress) == TrainResult::Interrupted;
  summary.step = trainer.step();
  return summary;
}

}  // namespace

const std::vector<std::string>& changeable_on_resume() {
  static const std::vector<std::string> keys = {"steps", "log_interval", "eval_interval", "save_interval", "save_total_limit",
                                                "eval_windows", "precision"};
  return keys;
}

TrainSummary train(const TrainRequest& request, const TrainCallbacks& callbacks) {
  bool created_out = false;
  try {
    return run(request, callbacks, created_out);
  } catch (...) {
    std::error_code ec;
    if (created_out && fs::is_directory(request.out_dir, ec) && fs::is_empty(request.out_dir, ec)) fs::remove(request.out_dir, ec);
    world_communicator().abandon();  // this rank ends without MPI_Finalize, which makes mpirun end the others
    throw;
  }
}

}  // namespace reformer
