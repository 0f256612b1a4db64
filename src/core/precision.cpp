#include "reformer/precision.h"

#include <atomic>

#include "core/cpu_isa.h"
#include "reformer/error.h"

namespace reformer {
namespace {

std::atomic<int>& active() {
  static std::atomic<int> a{static_cast<int>(Precision::fp32)};
  return a;
}

}  // namespace

const char* precision_name(Precision p) { return p == Precision::bf16 ? "bf16" : "fp32"; }

Precision parse_precision(const std::string& s, const char* what) {
  if (s == "fp32") return Precision::fp32;
  if (s == "bf16") return Precision::bf16;
  fail(what, " '", s, "' is not a precision; use fp32 (the default) or bf16 (bf16 matrix products with fp32 "
       "accumulation, on CPUs with AVX512-BF16 or AMX-BF16)");
}

bool precision_supported(Precision p) { return p == Precision::fp32 || bf16_native(); }

void check_precision(Precision p, const char* what) {
  if (precision_supported(p)) return;
  if (cpu_has_amx_bf16() || cpu_has_avx512_bf16())  // the CPU has it, REFORMER_ISA turned it off
    fail(what, " bf16 needs AVX512-BF16 or AMX-BF16 with the AVX-512 variants, and REFORMER_ISA=", isa_name(isa_active()),
         " turns those off; use ", what, " fp32 (or unset REFORMER_ISA)");
  fail(what, " bf16 needs a CPU with AVX512-BF16 or AMX-BF16, and this CPU has neither (its widest variant is ",
       isa_name(isa_active()), "); use ", what, " fp32");
}

Precision precision_active() { return static_cast<Precision>(active().load(std::memory_order_relaxed)); }

ScopedPrecision::ScopedPrecision(Precision p, const char* what) : saved_(precision_active()) {
  check_precision(p, what);
  active().store(static_cast<int>(p), std::memory_order_relaxed);
}

ScopedPrecision::~ScopedPrecision() { active().store(static_cast<int>(saved_), std::memory_order_relaxed); }

}  // namespace reformer
