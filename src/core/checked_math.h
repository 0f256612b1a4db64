#pragma once
// Overflow-checked arithmetic for products and sums of sizes. Every size that reaches an allocation
// comes from user input somewhere (config.json, flags, a safetensors header, a trainer state), so a
// product of sizes is computed here: an overflow is a reformer::Error naming what was being
// computed, never a wrapped value that allocates too little and is then written past.
#include <cstdint>
#include <initializer_list>
#include <string>

#include "reformer/error.h"

namespace reformer {

// a * b, or an Error "<what> = a x b overflows 64 bits".
inline int64_t checked_mul(int64_t a, int64_t b, const std::string& what) {
  int64_t r;
  REFORMER_CHECK(!__builtin_mul_overflow(a, b, &r), what, " = ", a, " x ", b,
                 " overflows 64 bits; use smaller sizes");
  return r;
}

// a + b, or an Error naming `what`.
inline int64_t checked_add(int64_t a, int64_t b, const std::string& what) {
  int64_t r;
  REFORMER_CHECK(!__builtin_add_overflow(a, b, &r), what, " = ", a, " + ", b,
                 " overflows 64 bits; use smaller sizes");
  return r;
}

// The product of all factors, checked.
inline int64_t checked_product(std::initializer_list<int64_t> factors, const std::string& what) {
  int64_t r = 1;
  for (int64_t f : factors) r = checked_mul(r, f, what);
  return r;
}

// The sum of all terms, checked.
inline int64_t checked_sum(std::initializer_list<int64_t> terms, const std::string& what) {
  int64_t r = 0;
  for (int64_t t : terms) r = checked_add(r, t, what);
  return r;
}

}  // namespace reformer
