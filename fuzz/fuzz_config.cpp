// libFuzzer harness: config.json text through ReformerConfig::load (parse, strict field types,
// bounds, validation) and, when it loads, the memory plan of a training step. Only success or a
// reformer::Error may come out.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "reformer/config.h"
#include "reformer/error.h"
#include "reformer/memory_estimate.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/reformer_fuzz_config_" + std::to_string(getpid()) + ".json";
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    const reformer::ReformerConfig c = reformer::ReformerConfig::load(path);
    reformer::estimate_training_memory(c, 1, c.max_length(), "adam", 1);
    reformer::parameter_counts(c);
  } catch (const reformer::Error&) {
  }
  return 0;
}
