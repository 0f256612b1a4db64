#include "common.h"

#include <cmath>
#include <filesystem>

#include "reformer/checkpoint.h"
#include "reformer/error.h"
#include "reformer/threads.h"

namespace reformer::cli {

namespace fs = std::filesystem;

int thread_flag(const std::optional<int>& threads) {
  if (!threads) return 0;
  REFORMER_CHECK(*threads >= 1, "--threads ", *threads, " must be at least 1");
  check_threads(*threads, "--threads");
  return *threads;
}

std::unique_ptr<ReformerModel> open_model(const std::string& dir) {
  REFORMER_CHECK(fs::is_directory(dir), "model directory ", dir, " does not exist; give the --out directory of a `reformer train` run "
                 "or a Hugging Face model directory (config.json + model.safetensors)");
  try {
    return load_model(dir);
  } catch (const Error& e) {
    fail("cannot load the model in ", dir, ": ", e.what());
  }
}

int64_t parse_memory_flag(const std::string& text) {
  size_t used = 0;
  double v = -1;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  const std::string suffix = used ? text.substr(used) : "";
  const double scale = suffix.empty() ? 1 : suffix == "K" ? 0x1p10 : suffix == "M" ? 0x1p20 : suffix == "G" ? 0x1p30
                                              : suffix == "T" ? 0x1p40 : -1;
  REFORMER_CHECK(used > 0 && scale > 0 && std::isfinite(v) && v >= 0 && v * scale < 0x1p62, "--max-memory '", text,
                 "' is not a memory size; give bytes or a number with K, M, G or T, e.g. 24G (0 = physical memory)");
  return static_cast<int64_t>(v * scale);
}

}  // namespace reformer::cli
