#include "train/trainer_state.h"

#include <filesystem>
#include <vector>

#include "reformer/limits.h"
#include "reformer/safetensors.h"
#include "reformer/checkpoint.h"
#include "reformer/error.h"
#include "reformer/tokenizer.h"
#include "train/checkpoint_dir.h"
#include "train/crash_point.h"

namespace reformer {
namespace {

namespace fs = std::filesystem;

constexpr const char* kStepKey = "step";
constexpr const char* kUpdatesKey = "optimizer_updates";
constexpr const char* kModelFiles[] = {"config.json", "model.safetensors"};

int64_t metadata_int(const std::map<std::string, std::string>& metadata, const char* key, const std::string& path) {
  const auto it = metadata.find(key);
  REFORMER_CHECK(it != metadata.end(), path, " has no \"", key, "\" in its metadata: it was not written by "
                 "`reformer train`; start a new run without --resume");
  int64_t v = -1;
  size_t used = 0;
  try {
    v = std::stoll(it->second, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  REFORMER_CHECK(used > 0 && used == it->second.size() && v >= 0 && v <= limits::kMaxSteps, path, ": metadata ", key,
                 " = \"", it->second, "\" is not a step count between 0 and ", limits::kMaxSteps,
                 "; the checkpoint is corrupt");
  return v;
}

// "" when dir is a complete checkpoint of `step`, else why not.
std::string complete_check(const fs::path& dir, int64_t step) {
  for (const char* name : {kTrainerStateFile, kModelFiles[0], kModelFiles[1]})
    if (!fs::exists(dir / name)) return std::string(name) + " is missing";
  try {
    for (const char* name : {kTrainerStateFile, kModelFiles[1]}) {
      const std::string path = (dir / name).string();
      const int64_t s = metadata_int(SafetensorsFile::open(path).metadata(), kStepKey, path);
      if (s != step) return std::string(name) + " is from step " + std::to_string(s);
    }
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Removes a checkpoint directory: first renamed to a staging name (one atomic step), so a kill
// during the slow recursive removal leaves a staging leftover, never a half-deleted checkpoint.
void remove_checkpoint(const fs::path& dir, int64_t step) {
  const fs::path doomed = dir.parent_path() / checkpoint_staging_name(step);
  std::error_code ec;
  fs::remove_all(doomed, ec);
  fs::rename(dir, doomed, ec);
  fs::remove_all(ec ? dir : doomed, ec);
}

}  // namespace

bool has_checkpoint(const std::string& dir) {
  for (const char* name : {kModelFiles[0], kModelFiles[1], kTrainerStateFile})
    if (fs::exists(fs::path(dir) / name)) return true;
  const CheckpointScan scan = scan_checkpoints(dir, [](const fs::path&, int64_t) { return std::string(); });
  return !scan.complete.empty() || !scan.incomplete.empty();
}

void save_checkpoint(const std::string& dir, ReformerModel& model, Optimizer& optimizer, int64_t step,
                     const std::map<std::string, std::string>& metadata, int64_t keep, const Tokenizer* tokenizer) {
  auto meta = metadata;
  meta[kStepKey] = std::to_string(step);
  meta[kUpdatesKey] = std::to_string(optimizer.steps_taken());
  meta["optimizer"] = optimizer.name();
  std::vector<NamedTensorView> tensors;
  for (const NamedState& s : optimizer.state()) tensors.emplace_back(s.name, s.shape, s.data);

  const fs::path out(dir), staged = out / checkpoint_staging_name(step), target = out / checkpoint_name(step);
  std::error_code ec;
  fs::create_directories(out, ec);
  REFORMER_CHECK(!ec, "cannot create the output directory ", dir, ": ", ec.message());
  // Leftovers of saves killed before their commit hold nothing the run needs.
  for (const std::string& note : scan_checkpoints(out, complete_check).incomplete) {
    const fs::path p = note.substr(0, note.find(" ("));
    if (p.filename().string().starts_with(".")) fs::remove_all(p, ec);
  }
  try {
    fs::create_directory(staged);
    crash_point("staged", step);
    write_safetensors((staged / kTrainerStateFile).string(), tensors, meta);
    crash_point("trainer-state-written", step);
    save_model(staged.string(), model, {{kStepKey, meta[kStepKey]}});
    crash_point("model-written", step);
    if (tokenizer) save_tokenizer(*tokenizer, staged.string());
    fsync_directory(staged);
    crash_point("synced", step);
    commit_directory(staged, target);
  } catch (...) {
    fs::remove_all(staged, ec);  // a failed save (full disk) leaves no staged files behind
    throw;
  }
  crash_point("committed", step);
  // The model at the top of the run directory is the newest checkpoint's, file by file. Between the
  // two replacements the pair still matches: config.json is the same for every checkpoint of a run.
  replace_file_with(target / kModelFiles[0], out / kModelFiles[0]);
  crash_point("top-config", step);
  replace_file_with(target / kModelFiles[1], out / kModelFiles[1]);
  fsync_directory(out);
  crash_point("top-model", step);
  fs::remove(out / kTrainerStateFile, ec);  // the layout before checkpoint directories; now stale
  if (keep > 0) {
    const CheckpointScan scan = scan_checkpoints(out, complete_check);
    int64_t excess = static_cast<int64_t>(scan.complete.size()) - keep;
    for (const auto& [s, path] : scan.complete) {
      if (excess-- <= 0) break;
      if (s != step) remove_checkpoint(path, s);
      crash_point("pruned-one", step);
    }
  }
}

TrainerState read_trainer_state(const std::string& out_dir) {
  const CheckpointScan scan = scan_checkpoints(out_dir, complete_check);
  fs::path dir;
  if (!scan.complete.empty()) {
    dir = scan.complete.back().second;
  } else {
    REFORMER_CHECK(fs::exists(fs::path(out_dir) / kTrainerStateFile), "no complete checkpoint in ", out_dir,
                   scan.incomplete.empty() ? "" : " (incomplete: ",
                   [&] {
                     std::string s;
                     for (const auto& n : scan.incomplete) s += (s.empty() ? "" : "; ") + n;
                     return s;
                   }(),
                   scan.incomplete.empty() ? "" : ")",
                   "; --resume needs the --out directory of an earlier `reformer train` run that saved a checkpoint");
    dir = out_dir;  // written before checkpoint directories existed
  }
  const std::string path = (dir / kTrainerStateFile).string();
  const SafetensorsFile file = SafetensorsFile::open(path);
  return {metadata_int(file.metadata(), kStepKey, path), file.metadata(), dir.string(), scan.incomplete};
}

TrainerState load_checkpoint(const std::string& dir, ReformerModel& model, Optimizer& optimizer) {
  const std::string state_path = (fs::path(dir) / kTrainerStateFile).string();
  const std::string model_path = (fs::path(dir) / "model.safetensors").string();
  const SafetensorsFile state = SafetensorsFile::open(state_path);
  const TrainerState result{metadata_int(state.metadata(), kStepKey, state_path), state.metadata(), dir, {}};
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
