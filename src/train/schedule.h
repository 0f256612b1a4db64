#pragma once
// Learning-rate schedules. `step` is the number of the update about to be taken, counting from 1,
// so the rsqrt schedule peaks exactly at step == warmup (trax enwik8: 0.03125 / sqrt(2000) = 6.99e-4).
//
//   rsqrt     lr = constant * min(1, step / warmup) / sqrt(max(step, warmup))
//             trax multifactor "constant * linear_warmup * rsqrt_decay" (spec 8.2)
//   cosine    lr = constant * step / warmup while step < warmup; then a half cosine from constant
//             down to final * constant at step == steps; final * constant afterwards. (Not trax's
//             cyclic cosine_decay multiplied by the warm-up factor; a single decay to a floor.)
//   constant  lr = constant * min(1, step / warmup)   (warmup 0: no warm-up)
//
// Spec strings (train/option_spec.h): "rsqrt" (the enwik8 preset) or e.g.
// "rsqrt:constant=0.05,warmup=4000", "cosine:constant=0.01,warmup=100,steps=1000,final=0.1",
// "constant:constant=1e-4". rsqrt defaults to constant 0.03125, warmup 2000; cosine and constant
// need `constant`, cosine needs `steps`.
#include <cstdint>
#include <string>

namespace reformer {

enum class ScheduleKind { Rsqrt, Cosine, Constant };

struct Schedule {
  ScheduleKind kind = ScheduleKind::Rsqrt;
  double constant = 0.03125;
  int64_t warmup = 2000;
  int64_t steps = 0;     // cosine only: the step at which the decay ends
  double final = 0.0;    // cosine only: the floor, as a fraction of constant
};

// Throws reformer::Error naming the bad value.
Schedule parse_schedule(const std::string& spec);
void validate(const Schedule& s);
// step >= 1.
double learning_rate(const Schedule& s, int64_t step);

}  // namespace reformer
