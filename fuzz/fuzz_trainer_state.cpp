// libFuzzer harness: a trainer state file (the safetensors header, its metadata: step, optimizer
// updates, training options) through read_trainer_state, as `reformer train --resume` reads it.
// Only success or a reformer::Error may come out.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

#include "reformer/error.h"
#include "train/trainer_state.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::filesystem::path dir = "/tmp/reformer_fuzz_state_" + std::to_string(getpid());
  static const bool made = std::filesystem::create_directories(dir) || true;
  (void)made;
  FILE* f = std::fopen((dir / reformer::kTrainerStateFile).c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    reformer::read_trainer_state(dir.string());
  } catch (const reformer::Error&) {
  }
  return 0;
}
