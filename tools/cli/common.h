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

// Parses a --max-memory value: bytes, or a number with a binary suffix K, M, G or T ("24G"); 0 = the
// machine's physical memory. Throws reformer::Error naming the flag.
int64_t parse_memory_flag(const std::string& text);

// Loads a model directory (config.json + model.safetensors), naming the directory in errors.
std::unique_ptr<ReformerModel> open_model(const std::string& dir);

// Creates dir if needed and checks that files can be created in it, before any work is done.
// Returns true when it created the directory (so that a failed command can remove it again).
bool ensure_writable_dir(const std::string& dir);

}  // namespace reformer::cli
