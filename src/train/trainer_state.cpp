#include "train/trainer_state.h"

#include <filesystem>
#include <vector>

#include "io/safetensors.h"
#include "reformer/checkpoint.h"
#include "reformer/error.h"

namespace reformer {
namespace {

namespace fs = std::filesystem;

constexpr const char* kStepKey = "step";
constexpr const char* kUpdatesKey = "optimizer_updates";

int64_t metadata_int(const std::map<std::string, std::string>& metadata, const char* key, const std::string& path) {
  const auto it = metadata.find(key);
  REFORMER_CHECK(it != metadata.end(), path, " has no \"", key, "\" in its metadata: it was not written by "
                 "`reformer train`; start a new run without --resume");
  try {
    return std::stoll(it->second);
  } catch (const std::exception&) {
    fail(path, ": metadata ", key, " = \"", it->second, "\" is not a number; the checkpoint is corrupt");
  }
}

}  // namespace

bool has_checkpoint(const std::string& dir) {
  for (const char* name : {"config.json", "model.safetensors", kTrainerStateFile})
    if (fs::exists(fs::path(dir) / name)) return true;
  return false;
}

void save_checkpoint(const std::string& dir, ReformerModel& model, Optimizer& optimizer, int64_t step,
                     const std::map<std::string, std::string>& metadata) {
  auto meta = metadata;
  meta[kStepKey] = std::to_string(step);
  meta[kUpdatesKey] = std::to_string(optimizer.steps_taken());
  meta["optimizer"] = optimizer.name();
  std::vector<NamedTensorView> tensors;
  for (const NamedState& s : optimizer.state()) tensors.emplace_back(s.name, s.shape, s.data);
  // All three files are written into a staging folder first and then renamed into place, so a
  // failed write (a full disk) leaves the previous checkpoint whole.
  const fs::path staging = fs::path(dir) / ".checkpoint-staging";
  fs::create_directories(staging);
  write_safetensors((staging / kTrainerStateFile).string(), tensors, meta);
  save_model(staging.string(), model, {{kStepKey, meta[kStepKey]}});
  for (const char* name : {kTrainerStateFile, "config.json", "model.safetensors"})
    fs::rename(staging / name, fs::path(dir) / name);
  fs::remove(staging);
}

TrainerState read_trainer_state(const std::string& dir) {
  const std::string path = (fs::path(dir) / kTrainerStateFile).string();
  REFORMER_CHECK(fs::exists(path), "no training state in ", dir, " (", kTrainerStateFile,
                 " is missing); --resume needs the --out directory of an earlier `reformer train` run");
  const SafetensorsFile file = SafetensorsFile::open(path);
  return {metadata_int(file.metadata(), kStepKey, path), file.metadata()};
}

TrainerState load_checkpoint(const std::string& dir, ReformerModel& model, Optimizer& optimizer) {
  const std::string state_path = (fs::path(dir) / kTrainerStateFile).string();
  const std::string model_path = (fs::path(dir) / "model.safetensors").string();
  const SafetensorsFile state = SafetensorsFile::open(state_path);
  const TrainerState result{metadata_int(state.metadata(), kStepKey, state_path), state.metadata()};
  const int64_t model_step = metadata_int(SafetensorsFile::open(model_path).metadata(), kStepKey, model_path);
  REFORMER_CHECK(model_step == result.step, "checkpoint in ", dir, " is inconsistent: model.safetensors is from step ",
                 model_step, " but ", kTrainerStateFile, " from step ", result.step,
                 " (a save was interrupted); start a new run in another --out directory");
  load_weights(model, model_path);

  std::vector<Tensor> storage;
  std::vector<NamedState> tensors;
  storage.reserve(state.names().size());
  for (const std::string& name : state.names()) {
    storage.push_back(state.read_f32(name, MemCategory::Workspace));
    tensors.push_back({name, storage.back().shape(), storage.back().data()});
  }
  optimizer.load_state(metadata_int(result.metadata, kUpdatesKey, state_path), tensors);
  return result;
}

}  // namespace reformer
