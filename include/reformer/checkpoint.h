#pragma once
// Model directories in Hugging Face's layout: config.json + model.safetensors with the weight names
// of spec 6.2. Both files are written atomically (temporary file, fsync, rename), so an interrupted
// save never destroys the previous checkpoint.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "reformer/model.h"

namespace reformer {

// Writes dir/config.json and dir/model.safetensors (creating dir). `metadata` goes into the
// safetensors header (HF writes {"format": "pt"}; we add it too).
// Creates dir if needed and checks that files can be created in it, before any work is done.
// Returns true when it created the directory (so that a failed command can remove it again).
bool ensure_writable_dir(const std::string& dir);

void save_model(const std::string& dir, ReformerModel& model, const std::map<std::string, std::string>& metadata = {});

// Reads a model directory written by save_model or by Hugging Face (save_pretrained with
// safetensors). Every parameter must be present with its exact shape; legacy mask buffers of old
// checkpoints are skipped; any other unknown tensor is an error naming it.
std::unique_ptr<ReformerModel> load_model(const std::string& dir);

// Copies the weights of dir/model.safetensors into an existing model (shapes must match).
void load_weights(ReformerModel& model, const std::string& safetensors_path);

// The config a model directory loads with: config.json, with architectures set to the class whose
// head weights model.safetensors holds (what load_model builds), without reading the weights.
ReformerConfig load_model_config(const std::string& dir);

// Fine-tuning (`reformer train --init-from`): copies the base model's weights ("reformer.*", with
// or without the prefix) from `safetensors_path` into `model`; with `with_head`, the head's weights
// too (the file must hold the model's class). Without it the model's head keeps its initialisation
// and the file's head weights are ignored. Shapes must match. Returns the names of the parameters
// left at their initialisation.
std::vector<std::string> load_base_weights(ReformerModel& model, const std::string& safetensors_path, bool with_head);

}  // namespace reformer
