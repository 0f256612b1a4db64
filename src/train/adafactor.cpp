#include "train/adafactor.h"

#include <algorithm>
#include <cmath>

namespace reformer {
namespace {

constexpr int64_t kParallelMin = 32768;  // below this, threads cost more than they save
constexpr int64_t kColumnBlock = 64;     // columns per thread task when summing over rows

bool is_factored(const AdafactorConfig& c, const Shape& shape) { return c.factored && shape.size() >= 2; }

double mean_square(const float* x, int64_t n) {
  double s = 0.0;
#pragma omp parallel for reduction(+ : s) schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * x[i];
  return n > 0 ? s / static_cast<double>(n) : 0.0;
}

}  // namespace

Adafactor::Adafactor(const std::vector<ParamRef>& params, const AdafactorConfig& config)
    : Optimizer("adafactor", params), config_(config) {
  REFORMER_CHECK(config.beta1 >= 0.f && config.beta1 < 1.f, "adafactor: beta1 = ", config.beta1,
                 " must be in [0, 1) (0 = no first moment, trax's default)");
  REFORMER_CHECK(config.decay_rate > 0.f, "adafactor: decay_rate = ", config.decay_rate,
                 " must be positive (trax default 0.8)");
  REFORMER_CHECK(config.clipping_threshold >= 0.f, "adafactor: clipping_threshold = ", config.clipping_threshold,
                 " must be >= 0 (0 turns update clipping off; trax default 1.0)");
  REFORMER_CHECK(config.weight_decay >= 0.f && config.weight_decay < 1.f, "adafactor: weight_decay = ",
                 config.weight_decay, " must be in [0, 1) (a fraction of the weight removed per step)");
  REFORMER_CHECK(config.epsilon1 > 0.f && config.epsilon2 >= 0.f, "adafactor: epsilon1 = ", config.epsilon1,
                 " must be positive and epsilon2 = ", config.epsilon2, " non-negative (defaults 1e-30, 1e-3)");
  int64_t max_numel = 0, max_cols = 0;
  for (const ParamRef& p : params) {
    Slots s;
    if (is_factored(config, p.shape)) {
      const Shape rows(p.shape.begin(), p.shape.end() - 1);
      Shape cols(p.shape.begin(), p.shape.end() - 2);
      cols.push_back(p.shape.back());
      s.v_row = add_state("v_row", p, rows);
      s.v_col = add_state("v_col", p, cols);
      max_cols = std::max(max_cols, p.shape.back());
    } else {
      s.v = add_state("v", p, p.shape);
    }
    if (config.beta1 > 0.f) s.m = add_state("m", p, p.shape);
    slots_.push_back(s);
    max_numel = std::max(max_numel, shape_numel(p.shape));
  }
  y_ = Buffer<float>(max_numel, MemCategory::Workspace);
  col_sum_ = Buffer<double>(max_cols, MemCategory::Workspace);
}

void Adafactor::factored_update(const ParamRef& p, const Slots& s, float decay, float* out) {
  const int64_t rows = p.shape[p.shape.size() - 2], cols = p.shape.back();
  const int64_t matrices = rows * cols > 0 ? shape_numel(p.shape) / (rows * cols) : 0;
  const double mix = 1.0 - decay, eps1 = config_.epsilon1;
  double* col = col_sum_.data();
  const bool par = rows * cols > kParallelMin;
  for (int64_t b = 0; b < matrices; ++b) {
    const float* g = p.grad + b * rows * cols;
    float* v_row = s.v_row + b * rows;
    float* v_col = s.v_col + b * cols;
    float* y = out + b * rows * cols;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t i = 0; i < rows; ++i) {
      double acc = 0.0;
      for (int64_t j = 0; j < cols; ++j) acc += static_cast<double>(g[i * cols + j]) * g[i * cols + j] + eps1;
      v_row[i] = static_cast<float>(decay * v_row[i] + mix * acc / static_cast<double>(cols));
    }
#pragma omp parallel for schedule(static) if (par)
    for (int64_t j0 = 0; j0 < cols; j0 += kColumnBlock) {
      const int64_t j1 = std::min(cols, j0 + kColumnBlock);
      for (int64_t j = j0; j < j1; ++j) col[j] = 0.0;
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = j0; j < j1; ++j) col[j] += static_cast<double>(g[i * cols + j]) * g[i * cols + j] + eps1;
      for (int64_t j = j0; j < j1; ++j) {
        v_col[j] = static_cast<float>(decay * v_col[j] + mix * col[j] / static_cast<double>(rows));
        col[j] = 1.0 / std::sqrt(static_cast<double>(v_col[j]));  // now the column factor
      }
    }
    double row_mean = 0.0;
    for (int64_t i = 0; i < rows; ++i) row_mean += v_row[i];
    row_mean /= static_cast<double>(rows);
#pragma omp parallel for schedule(static) if (par)
    for (int64_t i = 0; i < rows; ++i) {
      const double row_factor = std::sqrt(row_mean / v_row[i]);
      for (int64_t j = 0; j < cols; ++j) y[i * cols + j] = static_cast<float>(g[i * cols + j] * row_factor * col[j]);
    }
  }
}

void Adafactor::unfactored_update(const ParamRef& p, const Slots& s, float decay, float* out) {
  const int64_t n = shape_numel(p.shape);
  const float mix = 1.f - decay, eps1 = config_.epsilon1;
  const float* g = p.grad;
  float* v = s.v;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    v[i] = decay * v[i] + mix * (g[i] * g[i] + eps1);
    out[i] = g[i] / std::sqrt(v[i]);
  }
}

void Adafactor::step(const std::vector<ParamRef>& params, float lr) {
  check_params(params);
  ++steps_;
  const float decay = static_cast<float>(1.0 - std::pow(static_cast<double>(steps_), -config_.decay_rate));
  const float keep = 1.f - config_.weight_decay, beta1 = config_.beta1;
  for (size_t k = 0; k < params.size(); ++k) {
    const ParamRef& p = params[k];
    const Slots& s = slots_[k];
    const int64_t n = shape_numel(p.shape);
    float* y = y_.data();
    if (s.v_row) {
      factored_update(p, s, decay, y);
    } else {
      unfactored_update(p, s, decay, y);
    }
    double scale = lr;
    if (config_.clipping_threshold > 0.f)
      scale /= std::max(1.0, std::sqrt(mean_square(y, n)) / config_.clipping_threshold);
    if (config_.multiply_by_parameter_scale)
      scale *= std::max(static_cast<double>(config_.epsilon2), std::sqrt(mean_square(p.param, n)));
    const float coef = static_cast<float>(scale);
    float* w = p.param;
    float* m = s.m;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) {
      float u = coef * y[i];
      if (m) u = m[i] = beta1 * m[i] + (1.f - beta1) * u;
      w[i] = keep * w[i] - u;
    }
  }
}

}  // namespace reformer
