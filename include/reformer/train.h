#pragma once
// A training run, exactly as `reformer train` runs it (the CLI and the Python package both call
// train() below): a language model on a text file (task lm: causal; mlm: masked, for bidirectional
// encoders), sequence classification on JSON-lines files (classify), or the copy task; from scratch
// or from a checkpoint (init_from: fine-tuning); checkpoints in out_dir/checkpoint-<step>/,
// metrics.jsonl, periodic evaluation, resume, graceful stop.
//
// Fine-tuning (init_from = a directory load_model reads: ours or Hugging Face's): the model keeps
// DIR's config and weights; the task sets the head (lm: ReformerModelWithLMHead, mlm:
// ReformerForMaskedLM, classify: ReformerForSequenceClassification with num_labels) and is_decoder
// (lm: true; mlm, classify: false), and a head of another kind (or another num_labels) starts from
// its initialisation. Model options may change only kChangeableOnInit (dropout, chunk lengths,
// num_hashes, num_buckets); any other change is refused, naming the field.
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
  // task: lm, mlm, classify or copy. classify: data and valid_data are JSON-lines files of
  // {"text": ..., "label": ...}.
  std::string data = kDefaultData, valid_data, test_data, task = "lm";
  // Fine-tuning: start from this model directory's weights (empty = from scratch).
  std::string init_from;
  // classify: classes of the head; 0 = the init_from classifier's, else 1 + the largest label of data.
  int64_t num_labels = 0;
  // mlm: the share of tokens selected for prediction (HF's mlm_probability).
  double mlm_probability = 0.15;
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
  // Matrix products: fp32, or bf16 (bf16 inputs, fp32 accumulation; include/reformer/precision.h).
  // A resumed run keeps its precision unless given (it may change: a run can move between CPUs).
  std::string precision = "fp32";
  NLOHMANN_DEFINE_TYPE_INTRUSIVE(TrainArgs, data, valid_data, test_data, task, init_from, num_labels, mlm_probability, tokenizer, seq_len, copy_vocab, batch, steps, grad_accum,
                                 warmup, eval_interval, eval_windows, save_interval, save_total_limit, log_interval, lr,
                                 clip_norm, schedule, optimizer, seed, precision)
};

// The TrainArgs keys a resumed run may change; the others must stay as the checkpoint has them.
const std::vector<std::string>& changeable_on_resume();
// The config fields a fine-tuning run (init_from) may change: those that leave the weights valid.
const std::vector<std::string>& changeable_on_init();

// The model of a run. `vocab` is what the task needs (the tokenizer's vocabulary, or copy_vocab); `resumed` is the
// config of the run being resumed, or of the init_from checkpoint as the task adapts it (nullptr for
// a new run from scratch). Return nullopt to keep that config; a config returned on resume must equal
// it, and one returned for init_from may differ only in changeable_on_init() (else the run is
// refused, naming the fields that differ).
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
  int rank = 0, ranks = 1;      // this process in a data-parallel run (mpirun -np N; docs/DISTRIBUTED.md)
  ReformerConfig config;
};

// Validates everything (options, model, data, memory plan) before allocating or writing anything;
// throws reformer::Error naming the bad value and the fix. A failed run removes the out_dir it
// created when nothing was written into it.
TrainSummary train(const TrainRequest& request, const TrainCallbacks& callbacks = {});

}  // namespace reformer
