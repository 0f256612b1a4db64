#include "train/schedule.h"

#include <algorithm>
#include <cmath>

#include "reformer/error.h"
#include "train/option_spec.h"

namespace reformer {
namespace {

int64_t whole_steps(OptionSpec& spec, const char* key, int64_t fallback) {
  const double v = spec.number(key, static_cast<double>(fallback));
  REFORMER_CHECK(v >= 0 && v == std::floor(v) && v < 9e18, key, " = ", v, " in learning-rate schedule '",
                 spec.text(), "' must be a whole number of steps >= 0");
  return static_cast<int64_t>(v);
}

double warmup_factor(const Schedule& s, int64_t step) {
  return s.warmup > 0 ? std::min(1.0, static_cast<double>(step) / static_cast<double>(s.warmup)) : 1.0;
}

}  // namespace

Schedule parse_schedule(const std::string& text) {
  OptionSpec spec(text, "learning-rate schedule");
  Schedule s;
  if (spec.kind() == "rsqrt") {
    s.kind = ScheduleKind::Rsqrt;
  } else if (spec.kind() == "cosine" || spec.kind() == "constant") {
    s.kind = spec.kind() == "cosine" ? ScheduleKind::Cosine : ScheduleKind::Constant;
    s.warmup = 0;
    REFORMER_CHECK(spec.has("constant"), "learning-rate schedule '", text, "' needs the peak rate, e.g. '",
                   spec.kind(), ":constant=1e-3'");
  } else {
    fail("unknown learning-rate schedule '", spec.kind(), "' in '", text,
         "'; use rsqrt, cosine or constant, e.g. 'rsqrt:constant=0.03125,warmup=2000'");
  }
  s.constant = spec.number("constant", s.constant);
  s.warmup = whole_steps(spec, "warmup", s.warmup);
  if (s.kind == ScheduleKind::Cosine) {
    REFORMER_CHECK(spec.has("steps"), "cosine schedule '", text,
                   "' needs steps=N, the step at which the decay reaches its floor");
    s.steps = whole_steps(spec, "steps", 0);
    s.final = spec.number("final", s.final);
  }
  spec.finish();
  validate(s);
  return s;
}

void validate(const Schedule& s) {
  REFORMER_CHECK(s.constant > 0 && std::isfinite(s.constant), "learning-rate constant ", s.constant,
                 " must be a positive number");
  REFORMER_CHECK(s.warmup >= 0, "warm-up of ", s.warmup, " steps must be >= 0");
  REFORMER_CHECK(s.kind != ScheduleKind::Rsqrt || s.warmup > 0,
                 "rsqrt schedule needs warmup >= 1 (lr = constant / sqrt(max(step, warmup)))");
  if (s.kind == ScheduleKind::Cosine) {
    REFORMER_CHECK(s.steps > s.warmup, "cosine schedule: steps = ", s.steps, " must exceed warmup = ", s.warmup);
    REFORMER_CHECK(s.final >= 0 && s.final <= 1, "cosine schedule: final = ", s.final,
                   " must be a fraction of the peak rate in [0, 1]");
  }
}

double learning_rate(const Schedule& s, int64_t step) {
  REFORMER_CHECK(step >= 1, "learning-rate step ", step, " must be >= 1 (steps count from 1)");
  const double warm = warmup_factor(s, step);
  switch (s.kind) {
    case ScheduleKind::Rsqrt:
      return s.constant * warm / std::sqrt(static_cast<double>(std::max(step, s.warmup)));
    case ScheduleKind::Constant:
      return s.constant * warm;
    case ScheduleKind::Cosine: {
      if (step < s.warmup) return s.constant * warm;
      const double progress = std::min(1.0, static_cast<double>(step - s.warmup) / static_cast<double>(s.steps - s.warmup));
      return s.constant * (s.final + (1.0 - s.final) * 0.5 * (1.0 + std::cos(M_PI * progress)));
    }
  }
  fail("unhandled schedule kind");
}

}  // namespace reformer
