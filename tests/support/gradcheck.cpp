#include "support/gradcheck.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "reformer/rng.h"

namespace reformer::test {

std::string check_gradient(const std::function<double()>& loss, float* x, int64_t n, const float* analytic,
                           const std::string& name, int64_t max_checks, Tolerance tol, float step) {
  std::ostringstream out;
  int64_t bad = 0, checked = 0;
  double max_abs = 0;
  const int64_t stride = std::max<int64_t>(1, n / std::max<int64_t>(1, max_checks));
  for (int64_t i = 0; i < n; i += stride) {
    const float orig = x[i];
    x[i] = orig + step;
    const double up = loss();
    x[i] = orig - step;
    const double down = loss();
    x[i] = orig;
    const double numeric = (up - down) / (2.0 * static_cast<double>(step));
    const double diff = std::fabs(numeric - analytic[i]);
    max_abs = std::max(max_abs, diff);
    ++checked;
    if (!(diff <= tol.atol + tol.rtol * std::fabs(numeric))) {
      if (bad < 5) out << "  d" << name << "[" << i << "]: analytic " << analytic[i] << ", numeric " << numeric << "\n";
      ++bad;
    }
  }
  if (!bad) return "";
  std::ostringstream head;
  head << "gradient of " << name << ": " << bad << " of " << checked << " checked elements outside atol "
       << tol.atol << " + rtol " << tol.rtol << " (max abs diff " << max_abs << ")\n";
  return head.str() + out.str();
}

double weighted_sum(const float* out, const float* w, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(out[i]) * w[i];
  return s;
}

void fill_uniform(float* x, int64_t n, uint64_t seed, float lo, float hi) {
  rng_fill_uniform(x, n, seed, rng_stream(RngPurpose::Init, {0xC0FFEEull}), lo, hi);
}

}  // namespace reformer::test
