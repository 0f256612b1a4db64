#include "train/adam.h"

#include <cmath>

namespace reformer {

Adam::Adam(const std::vector<ParamRef>& params, const AdamConfig& config) : Optimizer("adam", params), config_(config) {
  REFORMER_CHECK(config.b1 >= 0.f && config.b1 < 1.f, "adam: b1 = ", config.b1, " must be in [0, 1)");
  REFORMER_CHECK(config.b2 >= 0.f && config.b2 < 1.f, "adam: b2 = ", config.b2, " must be in [0, 1)");
  REFORMER_CHECK(config.eps > 0.f, "adam: eps = ", config.eps, " must be positive (trax enwik8 uses 1e-9)");
  REFORMER_CHECK(config.weight_decay >= 0.f && config.weight_decay < 1.f, "adam: weight_decay = ",
                 config.weight_decay, " must be in [0, 1) (it is a fraction of the weight removed per step)");
  for (const ParamRef& p : params) {
    m_.push_back(add_state("m", p, p.shape));
    v_.push_back(add_state("v", p, p.shape));
  }
}

void Adam::step(const std::vector<ParamRef>& params, float lr) {
  check_params(params);
  ++steps_;
  const double t = static_cast<double>(steps_);
  const float b1 = config_.b1, b2 = config_.b2, eps = config_.eps;
  const float step_size = static_cast<float>(lr / (1.0 - std::pow(static_cast<double>(b1), t)));
  const float inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(static_cast<double>(b2), t)));
  const float keep = 1.f - config_.weight_decay;
  for (size_t k = 0; k < params.size(); ++k) {
    float* w = params[k].param;
    const float* g = params[k].grad;
    float* m = m_[k];
    float* v = v_[k];
    const int64_t n = shape_numel(params[k].shape);
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; ++i) {
      m[i] = b1 * m[i] + (1.f - b1) * g[i];
      v[i] = b2 * v[i] + (1.f - b2) * g[i] * g[i];
      w[i] = keep * w[i] - step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2 + eps);
    }
  }
}

}  // namespace reformer
