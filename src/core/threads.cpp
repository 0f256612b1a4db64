#include "reformer/threads.h"

#include <omp.h>

#include "reformer/error.h"
#include "reformer/limits.h"

namespace reformer {

int max_threads() { return omp_get_max_threads(); }

void check_threads(int threads, const char* what) {
  // libgomp allocates per-thread stacks up front: an absurd count crashes it instead of failing.
  REFORMER_CHECK(threads >= 0 && threads <= limits::kMaxThreads, what, " ", threads, " must be between 1 and ",
                 limits::kMaxThreads, " (0 = the default; this machine has ", omp_get_num_procs(), " cores)");
}

ScopedThreads::ScopedThreads(int threads) {
  check_threads(threads);
  if (threads == 0) return;
  saved_ = omp_get_max_threads();
  omp_set_num_threads(threads);
}

ScopedThreads::~ScopedThreads() {
  if (saved_ > 0) omp_set_num_threads(saved_);
}

}  // namespace reformer
