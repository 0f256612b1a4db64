#pragma once
// Adam (Kingma & Ba 2015) with bias correction and decoupled weight decay, as trax's Adam:
//   m = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g^2,  t = steps taken including this one
//   w = (1 - weight_decay) w - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
// weight_decay is the fraction of w removed per step, NOT scaled by lr (trax's convention; torch's
// AdamW removes lr * weight_decay). Defaults are the trax enwik8 preset (spec 8.2).
// State: "adam.m.<param>", "adam.v.<param>", each shaped like the parameter.
#include <vector>

#include "train/optimizer.h"

namespace reformer {

struct AdamConfig {
  float b1 = 0.9f;
  float b2 = 0.98f;
  float eps = 1e-9f;
  float weight_decay = 0.0f;
};

class Adam final : public Optimizer {
 public:
  Adam(const std::vector<ParamRef>& params, const AdamConfig& config = {});
  void step(const std::vector<ParamRef>& params, float lr) override;

 private:
  AdamConfig config_;
  std::vector<float*> m_, v_;
};

}  // namespace reformer
