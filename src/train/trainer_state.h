#pragma once
// The training state beside a model checkpoint: dir/trainer_state.safetensors holds every optimizer
// state tensor under its NamedState name, and metadata with the step, the optimizer's update count
// and what the caller adds (seed, training options, data position). model.safetensors carries the
// same step in its metadata, so a checkpoint whose two files come from different saves (a save
// interrupted between them) is detected on load instead of silently resuming wrong.
#include <cstdint>
#include <map>
#include <string>

#include "reformer/model.h"
#include "train/optimizer.h"

namespace reformer {

inline constexpr const char* kTrainerStateFile = "trainer_state.safetensors";

// True when dir holds any checkpoint file (config.json, model.safetensors or the trainer state).
bool has_checkpoint(const std::string& dir);

// Writes the model (config.json + model.safetensors) and the trainer state, each file atomically.
void save_checkpoint(const std::string& dir, ReformerModel& model, Optimizer& optimizer, int64_t step,
                     const std::map<std::string, std::string>& metadata);

struct TrainerState {
  int64_t step = 0;
  std::map<std::string, std::string> metadata;
};

// Reads the trainer state's metadata only (to rebuild the run before the optimizer exists).
TrainerState read_trainer_state(const std::string& dir);

// Loads the weights into `model` and the optimizer state into `optimizer`; checks that both files
// belong to the same save. Throws reformer::Error naming the file and the problem.
TrainerState load_checkpoint(const std::string& dir, ReformerModel& model, Optimizer& optimizer);

}  // namespace reformer
