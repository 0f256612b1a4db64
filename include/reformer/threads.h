#pragma once
// Threads are a per-call setting of the API: every entry point that computes takes `threads`
// (0 = OpenMP's default: OMP_NUM_THREADS, else all cores) and applies it for that call only.
// Results depend on the thread count only through summation order (same seed + same threads =
// same losses).

namespace reformer {

// The OpenMP threads a parallel region started now would use.
int max_threads();

// Checks 1 <= threads <= limits::kMaxThreads (0 passes: the default), naming `what` (e.g.
// "--threads") in the error.
void check_threads(int threads, const char* what = "threads");

// Sets OpenMP's thread count for the lifetime of the object and restores it after; 0 changes nothing.
class ScopedThreads {
 public:
  explicit ScopedThreads(int threads);
  ~ScopedThreads();
  ScopedThreads(const ScopedThreads&) = delete;
  ScopedThreads& operator=(const ScopedThreads&) = delete;

 private:
  int saved_ = 0;
};

}  // namespace reformer
