#pragma once
// Helpers shared by the subcommands.
#include <memory>
#include <optional>
#include <string>

#include "reformer/model.h"

namespace reformer::cli {

// The text the demo and the tests train on: Debian's dict-gcide (installed by scripts/bootstrap.sh).
inline constexpr const char* kDefaultData = "/usr/share/dictd/gcide.dict.dz";

// Sets the OpenMP thread count (nullopt: leave OMP_NUM_THREADS / the default).
void set_threads(const std::optional<int>& threads);

// Loads a model directory (config.json + model.safetensors), naming the directory in errors.
std::unique_ptr<ReformerModel> open_model(const std::string& dir);

// Creates dir if needed and checks that files can be created in it, before any work is done.
void ensure_writable_dir(const std::string& dir);

}  // namespace reformer::cli
