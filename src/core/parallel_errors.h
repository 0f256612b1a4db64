#pragma once
// An exception must never leave an OpenMP region: the runtime calls std::terminate and the user
// sees "terminate called ..." and a core dump instead of the message. Loops whose body can throw
// run it through ParallelErrors::run, which keeps the first exception (the other iterations are
// skipped once one failed), and rethrow() after the region hands it to the caller unchanged.
//
//   ParallelErrors errors;
//   #pragma omp parallel for
//   for (...) errors.run([&] { body(); });
//   errors.rethrow();
#include <atomic>
#include <exception>
#include <mutex>
#include <utility>

namespace reformer {

class ParallelErrors {
 public:
  template <class F>
  void run(F&& body) noexcept {
    if (failed_.load(std::memory_order_relaxed)) return;
    try {
      body();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!first_) first_ = std::current_exception();
      failed_.store(true, std::memory_order_relaxed);
    }
  }
  bool failed() const { return failed_.load(std::memory_order_relaxed); }
  // Rethrows the first exception caught in the region, if any. Call after the region has ended.
  void rethrow() {
    if (first_) std::rethrow_exception(std::exchange(first_, nullptr));
  }

 private:
  std::atomic<bool> failed_{false};
  std::mutex mutex_;
  std::exception_ptr first_;
};

}  // namespace reformer
