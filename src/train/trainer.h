#pragma once
// The training loop: micro-batches -> forward/backward with gradient accumulation -> global-norm
// clipping -> learning rate from the schedule -> optimizer step; progress reports, a metrics record
// per step, periodic evaluation and checkpoints (train/trainer_state.h).
//
// Determinism: a step takes G = grad_accum x ranks micro-batches; micro-batch i of step s has the
// global index s*G + i, and its data (the data sources: a pure function of (seed, index)), dropout
// masks and LSH rotations (keyed by (seed, index)) depend on nothing else. The optimizer state and
// step are checkpointed, so a resumed run computes the same losses as an uninterrupted one (same
// machine, same thread count).
//
// Data parallelism (docs/DISTRIBUTED.md): rank r of N computes micro-batches r, r+N, ..., so N ranks
// with grad_accum A compute the step of one process with grad_accum A*N, up to the order of the
// gradient sum. During a step's last micro-batch each gradient group (ReformerModel::grad_groups)
// is summed over the ranks as soon as the backward has finished it, while the backward continues;
// the optimizer step waits for all of them. Every rank then holds the same gradient, clips by the
// same global norm and takes the same optimizer step. Losses, token counts and evaluation sums are
// reduced, so what is logged is global. Rank 0 alone writes checkpoints, metrics and progress.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "dist/communicator.h"
#include "reformer/model.h"
#include "train/optimizer.h"
#include "train/progress.h"
#include "train/schedule.h"
#include "train/token_batch.h"

namespace reformer {

class Tokenizer;

struct TrainerOptions {
  int64_t steps = 1000;        // total optimizer steps of the run (a resumed run continues to this)
  int64_t grad_accum = 1;      // micro-batches per step
  double clip_norm = 1.0;      // global gradient-norm clipping; 0 = off
  uint64_t seed = 0;           // dropout and LSH rotations (data sources take theirs separately)
  int64_t log_interval = 10;   // steps between progress lines
  int64_t eval_interval = 0;   // steps between evaluations; 0 = only at the end
  int64_t save_interval = 0;   // steps between checkpoints; 0 = only at the end
  int64_t save_total_limit = 0;  // checkpoints kept (the newest); 0 = all
  std::string out_dir;
  std::string optimizer = "adam";
  std::string schedule = "rsqrt";
  std::map<std::string, std::string> checkpoint_metadata;  // stored with every checkpoint
  Communicator* communicator = nullptr;  // the ranks of a data-parallel run; nullptr = this process alone
  const Tokenizer* tokenizer = nullptr;  // saved into every checkpoint (spiece.model); nullptr or bytes = none
  bool bits_per_byte = true;  // progress lines show bits per byte (false: masked LM, classification)
};

// One evaluation: the loss (and accuracy) and what else the task reports (e.g. {"f1": ...}).
struct Evaluation {
  LossStats stats;
  nlohmann::json metrics = nlohmann::json::object();
  bool bits_per_byte = true;   // report bits per byte (language models of text); false: masked LM, classification
  std::string unit = "tokens";  // what stats.count counts, the record's key for it
  // True: stats are this rank's shard of a data-parallel run, summed over the ranks by the trainer.
  // False: every rank evaluated everything (metrics such as F1 need all the predictions).
  bool sharded = true;
};

struct TrainerHooks {
  std::function<void(TokenBatch& out, int64_t index)> batch;  // training micro-batch number `index`
  std::function<Evaluation()> evaluate;                       // held-out loss; may be empty
  std::function<void(const nlohmann::json&)> metrics;         // one record per step and per evaluation
  std::function<bool()> stop_requested;                       // polled before every step (Ctrl-C); any
                                                              // rank's request stops every rank
};

enum class TrainResult { Finished, Interrupted };

class Trainer {
 public:
  Trainer(ReformerModel& model, TrainerOptions options, TrainerHooks hooks);
  ~Trainer();

  // Continues from a checkpoint directory (weights, optimizer state, step): TrainerState::dir of
  // read_trainer_state(options.out_dir).
  void resume(const std::string& checkpoint_dir);
  int64_t step() const { return step_; }
  // Trains up to options.steps; saves a checkpoint at the end and when stopped.
  TrainResult run(Progress& progress);

 private:
  // One optimizer step; returns the mean loss of its micro-batches.
  double train_step(double& grad_norm, double& lr);
  void evaluate(Progress& progress);
  void save(Progress& progress);  // every rank; rank 0 writes
  void write_checkpoint(Progress& progress);
  bool writer() const { return comm_->rank() == 0; }

  ReformerModel& model_;
  TrainerOptions options_;
  TrainerHooks hooks_;
  Schedule schedule_;
  std::vector<ParamRef> params_;
  std::unique_ptr<Optimizer> optimizer_;
  TokenBatch tokens_;
  int64_t step_ = 0;
  double step_loss_sum_ = 0, step_bytes_ = 0, step_scored_ = 0;  // the last step's summed loss, text bytes, scored tokens
  using Clock = std::chrono::steady_clock;
  Clock::time_point backward_start_;
  double backward_s_ = 0;  // the last step's backward behind which its reductions ran (ranks > 1)
  std::vector<bool> started_;  // gradient groups whose all-reduce this step has started
  std::unique_ptr<Communicator> single_;  // when options.communicator is nullptr
  Communicator* comm_;
};

}  // namespace reformer
