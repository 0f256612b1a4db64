#include "train/progress.h"

#include <cmath>

namespace reformer {

std::string format_bytes(int64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) v /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", v, units[u]);
  return buf;
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = static_cast<int64_t>(std::llround(seconds));
  char buf[32];
  if (s < 60) std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  else std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600), static_cast<long long>(s / 60 % 60));
  return buf;
}

void Progress::report(const StepReport& r) {
  if (!out_) return;
  char line[256];
  char bpb[32] = "";
  if (r.bytes_per_token > 0) std::snprintf(bpb, sizeof bpb, "  bpb %.4f", r.loss / std::log(2.0) / r.bytes_per_token);
  std::snprintf(line, sizeof line, "step %lld/%lld  loss %.4f%s  lr %.3g  |g| %.3g  %.0f tok/s  peak %s  eta %s",
                static_cast<long long>(r.step), static_cast<long long>(r.total_steps), r.loss, bpb, r.lr, r.grad_norm,
                r.tokens_per_s, format_bytes(r.peak_bytes).c_str(), format_duration(r.eta_s).c_str());
  if (tty_) {
    std::fprintf(out_, "\r\033[K%s", line);
    open_line_ = true;
  } else {
    std::fprintf(out_, "%s\n", line);
  }
  std::fflush(out_);
}

void Progress::message(const std::string& text) {
  if (!out_) return;
  end_line();
  std::fprintf(out_, "%s\n", text.c_str());
  std::fflush(out_);
}

void Progress::end_line() {
  if (!open_line_) return;
  std::fputc('\n', out_);
  std::fflush(out_);
  open_line_ = false;
}

}  // namespace reformer
