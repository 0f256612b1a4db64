#pragma once
// The training progress display: one line per report with step, loss, bits per byte, learning rate,
// tokens/s, peak memory and ETA. On a terminal the line is redrawn in place; otherwise (a log file, a
// pipe, CI) every report is a plain line of its own.
#include <cstdint>
#include <cstdio>
#include <string>

#include "reformer/memory_estimate.h"  // format_bytes

namespace reformer {

struct StepReport {
  int64_t step = 0, total_steps = 0;
  double loss = 0;         // mean loss of the step (nats per predicted token)
  double bytes_per_token = 1;  // text bytes per scored token (1 for bytes): bpb = loss / ln 2 / this; 0 = no bpb
  double lr = 0, grad_norm = 0;
  double tokens_per_s = 0;
  int64_t peak_bytes = 0;  // allocator peak (include/reformer/memory.h)
  double eta_s = 0;
};

// "45s", "3m07s", "2h05m".
std::string format_duration(double seconds);

class Progress {
 public:
  // tty: redraw in place (usually isatty(fileno(out))). out nullptr: silent.
  Progress(FILE* out, bool tty) : out_(out), tty_(tty) {}
  ~Progress() { end_line(); }
  void report(const StepReport& r);
  // A line of its own (evaluation results, checkpoint notices), not overwritten by the next report.
  void message(const std::string& text);

 private:
  void end_line();
  FILE* out_;
  bool tty_;
  bool open_line_ = false;  // a redrawn line is on screen without its newline
};

}  // namespace reformer
