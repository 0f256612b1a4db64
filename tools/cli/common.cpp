#include "common.h"

#include <omp.h>
#include <unistd.h>

#include <filesystem>

#include "reformer/checkpoint.h"
#include "reformer/error.h"

namespace reformer::cli {

namespace fs = std::filesystem;

void set_threads(const std::optional<int>& threads) {
  if (!threads) return;
  REFORMER_CHECK(*threads >= 1, "--threads ", *threads, " must be at least 1");
  omp_set_num_threads(*threads);
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

void ensure_writable_dir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  REFORMER_CHECK(!ec, "cannot create output directory ", dir, ": ", ec.message(), "; choose another --out");
  REFORMER_CHECK(access(dir.c_str(), W_OK | X_OK) == 0, "output directory ", dir,
                 " is not writable; choose another --out or fix its permissions");
}

}  // namespace reformer::cli
