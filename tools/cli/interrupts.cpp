#include "interrupts.h"

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <thread>

namespace reformer::cli {
namespace {

std::atomic<bool> g_graceful{false}, g_requested{false};

sigset_t watched_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

}  // namespace

void start_interrupt_watcher() {
  const sigset_t set = watched_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set] {
    for (;;) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      if (g_graceful.load() && !g_requested.exchange(true)) continue;  // the first one: stop cleanly
      _exit(128 + sig);
    }
  }).detach();
}

void set_graceful_interrupts(bool on) { g_graceful.store(on); }
bool interrupt_requested() { return g_requested.load(); }
void clear_interrupt() { g_requested.store(false); }

}  // namespace reformer::cli
