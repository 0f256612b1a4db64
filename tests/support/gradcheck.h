#pragma once
// Finite-difference gradient checks. A test builds a scalar loss = sum_i w_i * out_i with fixed
// random weights w (so every output element matters), computes the analytic gradient with the op's
// backward (upstream gradient = w), then compares against central differences
// (f(x+h) - f(x-h)) / 2h, h = kFdStep, under kGradCheckTol.
#include <cstdint>
#include <functional>
#include <string>

#include "support/tolerance.h"

namespace reformer::test {

// Perturbs x[i] in place (restored afterwards) for up to max_checks indices spread over [0, n) and
// compares (loss(x+h) - loss(x-h)) / 2h with analytic[i]. loss must be evaluated in double.
std::string check_gradient(const std::function<double()>& loss, float* x, int64_t n, const float* analytic,
                           const std::string& name, int64_t max_checks = 64, Tolerance tol = kGradCheckTol,
                           float step = kFdStep);

// sum_i w[i] * out[i] in double.
double weighted_sum(const float* out, const float* w, int64_t n);

// Fills with uniform values in [lo, hi) from a seeded generator (deterministic).
void fill_uniform(float* x, int64_t n, uint64_t seed, float lo = -1.f, float hi = 1.f);

}  // namespace reformer::test

#define EXPECT_GRAD_OK(...)                                            \
  do {                                                                 \
    const std::string _msg = ::reformer::test::check_gradient(__VA_ARGS__); \
    EXPECT_TRUE(_msg.empty()) << _msg;                                 \
  } while (0)
