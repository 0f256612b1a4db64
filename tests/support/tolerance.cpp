#include "support/tolerance.h"

#include <cmath>
#include <sstream>

namespace reformer::test {

std::string compare(const float* got, const float* want, int64_t n, Tolerance tol, const std::string& name) {
  std::ostringstream out;
  int64_t bad = 0;
  double max_abs = 0, max_rel = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double g = got[i], w = want[i];
    const double diff = std::fabs(g - w);
    const bool ok = std::isfinite(g) == std::isfinite(w) && (!std::isfinite(g) ? g == w : diff <= tol.atol + tol.rtol * std::fabs(w));
    if (std::isfinite(diff)) {
      max_abs = std::max(max_abs, diff);
      if (w != 0) max_rel = std::max(max_rel, diff / std::fabs(w));
    }
    if (!ok) {
      if (bad < 5) out << "  " << name << "[" << i << "]: got " << g << ", want " << w << "\n";
      ++bad;
    }
  }
  if (!bad) return "";
  std::ostringstream head;
  head << name << ": " << bad << " of " << n << " elements outside atol " << tol.atol << " + rtol "
       << tol.rtol << " (max abs diff " << max_abs << ", max rel diff " << max_rel << ")\n";
  return head.str() + out.str();
}

}  // namespace reformer::test
