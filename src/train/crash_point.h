#pragma once
// Fault injection for the crash-safety tests: crash_point("name", step) ends the process at once
// (std::_Exit, no destructors, no flushing: what a kill -9 or a power cut leaves behind) when the
// environment variable REFORMER_CRASH_AT is "name" or "name@step". Checkpoint saving calls it
// between every two of its steps, so a test can kill a save at each of them deterministically
// instead of relying on timing. Unset (always, outside tests), it costs one getenv per call.
#include <cstdint>

namespace reformer {

inline constexpr int kCrashExitCode = 86;  // the exit status of an injected crash

void crash_point(const char* name, int64_t step);

}  // namespace reformer
