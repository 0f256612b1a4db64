#include "train/grad_clip.h"

#include <cmath>

#include "reformer/error.h"

namespace reformer {

double grad_norm(const std::vector<ParamRef>& params) {
  double sum = 0.0;
  for (const ParamRef& p : params) {
    const float* g = p.grad;
    const int64_t n = shape_numel(p.shape);
#pragma omp parallel for reduction(+ : sum) schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(g[i]) * g[i];
  }
  return std::sqrt(sum);
}

double clip_grad_norm(const std::vector<ParamRef>& params, double max_norm) {
  REFORMER_CHECK(max_norm > 0.0, "gradient clipping norm ", max_norm,
                 " must be positive; to turn clipping off, do not call clip_grad_norm");
  const double norm = grad_norm(params);
  if (!std::isfinite(norm) || norm <= max_norm) return norm;
  const float scale = static_cast<float>(max_norm / norm);
  for (const ParamRef& p : params) {
    float* g = p.grad;
    const int64_t n = shape_numel(p.shape);
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; ++i) g[i] *= scale;
  }
  return norm;
}

}  // namespace reformer
