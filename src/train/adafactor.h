#pragma once
// Adafactor (Shazeer & Stern 2018) with trax's defaults, the optimizer of the Reformer paper.
// Per parameter, with t = steps taken including this one and G = g^2 + epsilon1:
//   decay = 1 - t^(-decay_rate)                      (0 at t = 1: the first step uses G alone)
//   ndim >= 2 (factored; the last two dims are rows x cols, leading dims are independent matrices):
//     r = decay r + (1 - decay) mean_cols(G),  c = decay c + (1 - decay) mean_rows(G)
//     y = g / sqrt(r_i / mean(r) * c_j)
//   otherwise: v = decay v + (1 - decay) G,  y = g / sqrt(v)
//   y /= max(1, RMS(y) / clipping_threshold)          (update clipping; threshold 0 = off)
//   u = lr * max(epsilon2, RMS(w)) * y                (lr alone if !multiply_by_parameter_scale)
//   beta1 > 0: m = beta1 m + (1 - beta1) u, u = m     (first moment only then)
//   w = (1 - weight_decay) w - u                      (decay not scaled by lr, as trax)
// RMS and means run over the whole parameter. State: "adafactor.v_row.<param>" (shape[:-1]),
// "adafactor.v_col.<param>" (shape[:-2] + shape[-1:]) or "adafactor.v.<param>", and
// "adafactor.m.<param>" when beta1 > 0.
#include <vector>

#include "train/optimizer.h"

namespace reformer {

struct AdafactorConfig {
  bool factored = true;
  bool multiply_by_parameter_scale = true;
  float beta1 = 0.0f;
  float decay_rate = 0.8f;
  float clipping_threshold = 1.0f;
  float weight_decay = 0.0f;
  float epsilon1 = 1e-30f;
  float epsilon2 = 1e-3f;
};

class Adafactor final : public Optimizer {
 public:
  Adafactor(const std::vector<ParamRef>& params, const AdafactorConfig& config = {});
  void step(const std::vector<ParamRef>& params, float lr) override;

 private:
  struct Slots {
    float* v_row = nullptr;  // factored
    float* v_col = nullptr;
    float* v = nullptr;      // unfactored
    float* m = nullptr;      // beta1 > 0
  };
  // Updates the second-moment state from g and writes y (before clipping) into out.
  void factored_update(const ParamRef& p, const Slots& s, float decay, float* out);
  void unfactored_update(const ParamRef& p, const Slots& s, float decay, float* out);

  AdafactorConfig config_;
  std::vector<Slots> slots_;
  Buffer<float> y_;         // the raw update of one parameter, reused
  Buffer<double> col_sum_;  // per-column sums of one matrix, reused
};

}  // namespace reformer
