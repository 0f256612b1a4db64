#pragma once
// A training run, exactly as `reformer train` runs it (the CLI and the Python package both call
// train() below): a byte-level language model on a file, or the copy task; checkpoints in
// out_dir/checkpoint-<step>/, metrics.jsonl, periodic evaluation, resume, graceful stop.
//
// A checkpoint stores the TrainArgs (as JSON, keys = the CLI's flag names with '-' -> '_'), so a
// resumed run continues the same run: options not given take the checkpoint's values, and a given
// option that differs is refused unless it is one of kChangeableOnResume.
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "reformer/bytes.h"
#include "reformer/config.h"

namespace reformer {

// The text the demo and the tests train on: Debian's dict-gcide (installed by scripts/bootstrap.sh).
inline constexpr const char* kDefaultData = "/usr/share/dictd/gcide.dict.dz";

struct TrainArgs {
  std::string data = kDefaultData, valid_data, test_data, task = "lm";
  // SentencePiece model (spiece.model) for the text; empty = bytes (a resumed run uses its own copy).
  std::string tokenizer;
  // Training window in tokens, any length up to the positions (padded to the chunk multiple with an
  // attention mask); 0 = the model's max_length().
  int64_t seq_len = 0;
  int64_t copy_vocab = 128, batch = 4, steps = 1000, grad_accum = 1, warmup = -1;  // warmup -1: steps / 10, at most 1000
  int64_t eval_interval = 0, eval_windows = 16, save_interval = 0, save_total_limit = 0, log_interval = 10;
  double lr = 1e-3, clip_norm = 1.0;
  std::string schedule = "cosine", optimizer = "adam";
  uint64_t seed = 0;
  NLOHMANN_DEFINE_TYPE_INTRUSIVE(TrainArgs, data, valid_data, test_data, task, tokenizer, seq_len, copy_vocab, batch, steps, grad_accum,
                                 warmup, eval_interval, eval_windows, save_interval, save_total_limit, log_interval, lr,
                                 clip_norm, schedule, optimizer, seed)
};

// The TrainArgs keys a resumed run may change; the others must stay as the checkpoint has them.
const std::vector<std::string>& changeable_on_resume();

// The model of a run. `vocab` is what the task needs (the tokenizer's vocabulary, or copy_vocab); `resumed` is the
// config of the run being resumed (nullptr for a new run). Return nullopt to keep the resumed
// run's config; a config returned on resume must equal it (else the run is refused, naming the
// fields that differ).
using ModelSpec = std::function<std::optional<ReformerConfig>(int64_t vocab, const ReformerConfig* resumed)>;

struct TrainRequest {
  std::string out_dir;
  bool resume = false;               // continue the run in out_dir from its newest complete checkpoint
  TrainArgs args;
  std::set<std::string> given;       // the TrainArgs keys set explicitly (by flag or keyword)
  ModelSpec model;
  int64_t max_memory = 0;            // refuse a plan above this many bytes and cap the allocator; 0 = physical memory
  int threads = 0;                   // OpenMP threads for this run; 0 = OMP_NUM_THREADS or all cores
  FILE* progress = stdout;           // progress lines and notices; nullptr = silent
  bool progress_in_place = false;    // redraw the progress line in place (a terminal)
};

struct TrainCallbacks {
  // Every metrics record as metrics.jsonl receives it: {"step", "split": "train", "loss", ...} per
  // step and {"split": "validation", ...} per evaluation. An exception thrown here propagates out of
  // train() (checkpoints already written stay).
  std::function<void(const nlohmann::json&)> on_record;
  // Polled before every step: true saves a checkpoint and ends the run (TrainSummary::interrupted).
  std::function<bool()> stop_requested;
};

struct TrainSummary {
  int64_t step = 0;             // the step the run ended at
  bool interrupted = false;     // stopped by stop_requested, after saving
  bool already_finished = false;  // a resumed run whose checkpoint is at args.steps already
  TrainArgs args;               // the options the run used (a resumed run's merged ones)
  ReformerConfig config;
};

// Validates everything (options, model, data, memory plan) before allocating or writing anything;
// throws reformer::Error naming the bad value and the fix. A failed run removes the out_dir it
// created when nothing was written into it.
TrainSummary train(const TrainRequest& request, const TrainCallbacks& callbacks = {});

}  // namespace reformer
