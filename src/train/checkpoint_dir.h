#pragma once
// The on-disk layout of a training run's checkpoints, in the convention of Hugging Face's Trainer:
//
//   OUT/checkpoint-<step>/{config.json, model.safetensors, trainer_state.safetensors}
//   OUT/config.json, OUT/model.safetensors    the newest checkpoint's model (hard links to its files)
//   OUT/metrics.jsonl
//
// A checkpoint is written into OUT/.checkpoint-<step>.tmp/, every file and the directory fsynced,
// and then renamed to checkpoint-<step> in one atomic rename: at any instant a kill leaves either no
// checkpoint-<step> or a complete one, never a mix of two saves. This file knows the names and the
// directory operations; train/trainer_state.h decides what goes into a checkpoint.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace reformer {

std::string checkpoint_name(int64_t step);                // "checkpoint-<step>"
std::string checkpoint_staging_name(int64_t step);        // ".checkpoint-<step>.tmp"
// The step of a "checkpoint-<step>" name, or -1 for any other name.
int64_t checkpoint_step(const std::string& name);

struct CheckpointScan {
  // Complete checkpoint directories, oldest first.
  std::vector<std::pair<int64_t, std::filesystem::path>> complete;
  // One line per directory that looks like a checkpoint but is not a complete one (an interrupted
  // save's staging directory, a checkpoint with missing or mismatched files), with the reason.
  std::vector<std::string> incomplete;
};
// Scans dir (which need not exist). `complete_check(path, step)` returns "" for a complete checkpoint
// or the reason it is not.
CheckpointScan scan_checkpoints(const std::filesystem::path& dir,
                                std::string (*complete_check)(const std::filesystem::path&, int64_t));

// fsync of a directory, so that renames and new entries in it survive a power cut.
void fsync_directory(const std::filesystem::path& dir);

// Atomically puts the directory `staged` at `target`: one rename(2), or, when target exists (the same
// step saved again), an atomic exchange (renameat2 RENAME_EXCHANGE) after which the old one is removed.
// The parent directory is fsynced afterwards.
void commit_directory(const std::filesystem::path& staged, const std::filesystem::path& target);

// Makes `target` the same file as `source` (a hard link, or a copy where links are impossible) via a
// temporary name and one rename, so `target` is at every instant either its old or its new version.
void replace_file_with(const std::filesystem::path& source, const std::filesystem::path& target);

}  // namespace reformer
