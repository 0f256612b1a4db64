#include "reformer/memory.h"

#include <sys/mman.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <new>
#include <sstream>

#include "reformer/error.h"

namespace reformer {
namespace {

constexpr size_t kAlign = 64;
constexpr size_t kHugePageThreshold = size_t(4) << 20;  // advise huge pages for buffers >= 4 MiB
constexpr size_t kHugePage = size_t(2) << 20;

std::mutex g_mutex;
MemStats g_stats;
std::atomic<int64_t> g_limit{0};

}  // namespace

const char* to_string(MemCategory c) {
  switch (c) {
    case MemCategory::Parameters: return "parameters";
    case MemCategory::Gradients: return "gradients";
    case MemCategory::OptimizerState: return "optimizer_state";
    case MemCategory::Activations: return "activations";
    case MemCategory::Workspace: return "workspace";
    case MemCategory::DecodeState: return "decode_state";
    default: return "?";
  }
}

void* mem_allocate(size_t bytes, MemCategory category) {
  if (bytes == 0) bytes = kAlign;
  const int64_t limit = g_limit.load();
  if (limit > 0) {
    const int64_t live = mem_stats().live_total;
    if (bytes > static_cast<size_t>(INT64_MAX - live) || live + static_cast<int64_t>(bytes) > limit)
      fail("memory limit: allocating ", bytes, " bytes for ", to_string(category), " on top of ", live,
           " live bytes would pass the limit of ", limit, " bytes (--max-memory)\n", mem_report(),
           "use a shorter sequence, a smaller batch or model, or raise --max-memory");
  }
  const bool huge = bytes >= kHugePageThreshold;
  const size_t align = huge ? kHugePage : kAlign;
  const size_t rounded = (bytes + align - 1) / align * align;
  void* p = std::aligned_alloc(align, rounded);
  if (!p) fail("out of memory: could not allocate ", bytes, " bytes for ", to_string(category),
               " (", mem_report(), "); use a shorter sequence, fewer hashes or a smaller model");
  if (huge) madvise(p, rounded, MADV_HUGEPAGE);
  std::lock_guard<std::mutex> lock(g_mutex);
  const int c = static_cast<int>(category);
  g_stats.live[c] += static_cast<int64_t>(bytes);
  g_stats.live_total += static_cast<int64_t>(bytes);
  if (g_stats.live[c] > g_stats.peak[c]) g_stats.peak[c] = g_stats.live[c];
  if (g_stats.live_total > g_stats.peak_total) g_stats.peak_total = g_stats.live_total;
  ++g_stats.allocations;
  return p;
}

void mem_free(void* ptr, size_t bytes, MemCategory category) {
  if (!ptr) return;
  if (bytes == 0) bytes = kAlign;
  std::free(ptr);
  std::lock_guard<std::mutex> lock(g_mutex);
  const int c = static_cast<int>(category);
  g_stats.live[c] -= static_cast<int64_t>(bytes);
  g_stats.live_total -= static_cast<int64_t>(bytes);
}

void mem_set_limit(int64_t bytes) { g_limit.store(bytes > 0 ? bytes : 0); }
int64_t mem_limit() { return g_limit.load(); }

MemStats mem_stats() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_stats;
}

void mem_reset_peaks() {
  std::lock_guard<std::mutex> lock(g_mutex);
  for (int c = 0; c < static_cast<int>(MemCategory::Count); ++c) g_stats.peak[c] = g_stats.live[c];
  g_stats.peak_total = g_stats.live_total;
  g_stats.allocations = 0;
}

std::string mem_report() {
  const MemStats s = mem_stats();
  std::ostringstream out;
  char line[160];
  std::snprintf(line, sizeof line, "%-16s %14s %14s\n", "category", "live MiB", "peak MiB");
  out << line;
  for (int c = 0; c < static_cast<int>(MemCategory::Count); ++c) {
    std::snprintf(line, sizeof line, "%-16s %14.2f %14.2f\n", to_string(static_cast<MemCategory>(c)),
                  s.live[c] / 1048576.0, s.peak[c] / 1048576.0);
    out << line;
  }
  std::snprintf(line, sizeof line, "%-16s %14.2f %14.2f\n", "total", s.live_total / 1048576.0,
                s.peak_total / 1048576.0);
  out << line;
  return out.str();
}

int64_t process_peak_rss_bytes() {
  std::ifstream status("/proc/self/status");
  std::string key;
  while (status >> key) {
    if (key == "VmHWM:") {
      int64_t kb = 0;
      status >> kb;
      return kb * 1024;
    }
    std::string rest;
    std::getline(status, rest);
  }
  return -1;
}

}  // namespace reformer
