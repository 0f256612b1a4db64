#pragma once
// Helpers shared by the subcommands.
#include <memory>
#include <optional>
#include <string>

#include "reformer/model.h"

namespace reformer::cli {

// The value of a --threads flag for the API's `threads` arguments (reformer/threads.h): 0 when not
// given (OMP_NUM_THREADS or all cores); throws reformer::Error on a count out of range.
int thread_flag(const std::optional<int>& threads);

// Parses a --max-memory value: bytes, or a number with a binary suffix K, M, G or T ("24G"); 0 = the
// machine's physical memory. Throws reformer::Error naming the flag.
int64_t parse_memory_flag(const std::string& text);

// Loads a model directory (config.json + model.safetensors), naming the directory in errors.
std::unique_ptr<ReformerModel> open_model(const std::string& dir);

}  // namespace reformer::cli
