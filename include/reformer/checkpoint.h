#pragma once
// Model directories in Hugging Face's layout: config.json + model.safetensors with the weight names
// of spec 6.2. Both files are written atomically (temporary file, fsync, rename), so an interrupted
// save never destroys the previous checkpoint.
#include <map>
#include <memory>
#include <string>

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

}  // namespace reformer
