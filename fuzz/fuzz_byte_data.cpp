// libFuzzer harness: the training-data reader (plain, gzip or dictzip bytes) on arbitrary files.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "reformer/error.h"
#include "train/read_bytes.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/reformer_fuzz_bytes_" + std::to_string(getpid());
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    reformer::read_file_bytes(path);
  } catch (const reformer::Error&) {
  }
  return 0;
}
