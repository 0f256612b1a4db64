#pragma once
// Memory accounting. Every float buffer of the engine comes from here, tagged with a category, so
// live and peak bytes are known exactly per category and in total. Big buffers are allocated with
// huge-page advice (first touch of fresh 4 KiB pages is slow on these machines) and are meant to
// be allocated once and reused.
#include <cstddef>
#include <cstdint>
#include <string>

namespace reformer {

// DecodeState: the caches of incremental decoding (include/reformer/decode.h).
enum class MemCategory : int { Parameters = 0, Gradients, OptimizerState, Activations, Workspace, DecodeState, Count };
const char* to_string(MemCategory c);

struct MemStats {
  int64_t live[static_cast<int>(MemCategory::Count)] = {};
  int64_t peak[static_cast<int>(MemCategory::Count)] = {};
  int64_t live_total = 0;
  int64_t peak_total = 0;
  int64_t allocations = 0;  // number of allocate() calls since the last reset
  int64_t live_of(MemCategory c) const { return live[static_cast<int>(c)]; }
  int64_t peak_of(MemCategory c) const { return peak[static_cast<int>(c)]; }
};

// Thread-safe. Returned memory is 64-byte aligned and uninitialised.
void* mem_allocate(size_t bytes, MemCategory category);
void mem_free(void* ptr, size_t bytes, MemCategory category);

MemStats mem_stats();
// A ceiling on the live bytes of all categories together (0 = none, the default): an allocation that
// would pass it throws reformer::Error with the bytes asked for, the limit and the table of live
// bytes, instead of growing until the kernel's OOM killer ends the process without a word.
void mem_set_limit(int64_t bytes);
int64_t mem_limit();
// Peaks restart from the current live values; the allocation counter restarts from 0.
void mem_reset_peaks();
// Human-readable table of live and peak bytes per category.
std::string mem_report();

// Process peak resident set size in bytes (VmHWM), or -1 where unavailable.
int64_t process_peak_rss_bytes();

}  // namespace reformer
