#pragma once
// What a training checkpoint holds and how a run finds the one to resume. A checkpoint is a
// directory checkpoint-<step>/ (layout and atomic commit: train/checkpoint_dir.h) with the model
// (config.json + model.safetensors) and trainer_state.safetensors: every optimizer state tensor under
// its NamedState name, and metadata with the step, the optimizer's update count and what the caller
// adds (seed, training options, data position). model.safetensors carries the same step in its
// metadata, so files from different saves are never taken for one checkpoint.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "reformer/model.h"
#include "train/optimizer.h"

namespace reformer {

class Tokenizer;

inline constexpr const char* kTrainerStateFile = "trainer_state.safetensors";

// True when dir holds any checkpoint (complete or not) or model files.
bool has_checkpoint(const std::string& dir);

// Writes dir/checkpoint-<step>/ (committed with one atomic rename), then points dir/config.json and
// dir/model.safetensors at it, then removes the oldest checkpoints beyond the newest `keep` (0 = keep
// all). A failure removes everything it staged and leaves the previous checkpoints as they were.
// A tokenizer other than bytes is saved into the checkpoint too (spiece.model, reformer/tokenizer.h).
void save_checkpoint(const std::string& dir, ReformerModel& model, Optimizer& optimizer, int64_t step,
                     const std::map<std::string, std::string>& metadata, int64_t keep = 0,
                     const Tokenizer* tokenizer = nullptr);

struct TrainerState {
  int64_t step = 0;
  std::map<std::string, std::string> metadata;
  std::string dir;                    // the checkpoint directory it was read from
  std::vector<std::string> ignored;   // incomplete checkpoints that were skipped, with the reason
};

// The state of the checkpoint a resumed run continues: the newest complete checkpoint-<step> of
// out_dir (incomplete ones are listed in `ignored`). A run written before checkpoint directories
// existed (trainer_state.safetensors at the top of out_dir) is read from out_dir itself.
TrainerState read_trainer_state(const std::string& out_dir);

// Loads the weights into `model` and the optimizer state into `optimizer` from one checkpoint
// directory (TrainerState::dir); checks that both files belong to the same save.
TrainerState load_checkpoint(const std::string& checkpoint_dir, ReformerModel& model, Optimizer& optimizer);

}  // namespace reformer
