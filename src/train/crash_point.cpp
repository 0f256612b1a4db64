#include "train/crash_point.h"

#include <cstdio>
#include <cstdlib>
#include <string>

namespace reformer {

void crash_point(const char* name, int64_t step) {
  const char* at = std::getenv("REFORMER_CRASH_AT");
  if (!at) return;
  const std::string want = at, here = name;
  if (want == here || want == here + "@" + std::to_string(step)) {
    std::fprintf(stderr, "REFORMER_CRASH_AT=%s: crashing at %s (step %lld)\n", at, name, static_cast<long long>(step));
    std::_Exit(kCrashExitCode);
  }
}

}  // namespace reformer
