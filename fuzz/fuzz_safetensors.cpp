// libFuzzer harness: SafetensorsFile::open and reading every tensor of arbitrary bytes. Anything but
// success or a reformer::Error (a crash, a sanitizer report, another exception type, a hang) is a bug.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "reformer/safetensors.h"
#include "reformer/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/reformer_fuzz_safetensors_" + std::to_string(getpid());
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    const reformer::SafetensorsFile file = reformer::SafetensorsFile::open(path);
    for (const std::string& name : file.names()) {
      const reformer::SafeTensorInfo& info = file.info(name);
      if (info.end - info.begin > (int64_t{1} << 24)) continue;  // the header was checked against the file size
      const bool is_float = info.dtype == reformer::SafeDType::F32 || info.dtype == reformer::SafeDType::F16 ||
                            info.dtype == reformer::SafeDType::BF16 || info.dtype == reformer::SafeDType::F64;
      if (is_float) file.read_f32(name, reformer::MemCategory::Workspace);
      else file.read_i64(name);
    }
  } catch (const reformer::Error&) {
  }
  return 0;
}
