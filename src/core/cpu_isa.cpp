#include "core/cpu_isa.h"

#include <atomic>
#include <cstdlib>
#include <string>

#include "reformer/error.h"

#if REFORMER_ISA_VARIANTS
#include <cpuid.h>
#endif

namespace reformer {
namespace {

bool cpu_has(Isa isa) {
#if REFORMER_ISA_VARIANTS
  // libgcc's cpu model checks XCR0 too, so a feature the OS does not save counts as absent.
  __builtin_cpu_init();
  switch (isa) {
    case Isa::Baseline: return true;
    case Isa::Avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::Avx512:
      return cpu_has(Isa::Avx2) && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  }
  return false;
#else
  return isa == Isa::Baseline;
#endif
}

Isa best_supported() {
  for (Isa isa : {Isa::Avx512, Isa::Avx2})
    if (cpu_has(isa)) return isa;
  return Isa::Baseline;
}

Isa parse_isa(const std::string& s) {
  for (Isa isa : {Isa::Baseline, Isa::Avx2, Isa::Avx512})
    if (s == isa_name(isa)) return isa;
  throw Error("REFORMER_ISA=" + s + " is not an instruction set; use baseline, avx2 or avx512");
}

Isa initial_isa() {
  const Isa best = best_supported();
  const char* env = std::getenv("REFORMER_ISA");
  if (!env || !*env) return best;
  const Isa want = parse_isa(env);
  REFORMER_CHECK(static_cast<int>(want) <= static_cast<int>(best), "REFORMER_ISA=", env, " is not supported here; this CPU runs up to ",
                 isa_name(best));
  return want;
}

std::atomic<int>& active() {
  static std::atomic<int> a{static_cast<int>(initial_isa())};
  return a;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Baseline: return "baseline";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
  }
  return "?";
}

bool isa_supported(Isa isa) { return cpu_has(isa); }

std::vector<Isa> isa_supported_list() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::Baseline, Isa::Avx2, Isa::Avx512})
    if (cpu_has(isa)) out.push_back(isa);
  return out;
}

Isa isa_active() { return static_cast<Isa>(active().load(std::memory_order_relaxed)); }

void isa_set_active(Isa isa) {
  REFORMER_CHECK(cpu_has(isa), "instruction set ", isa_name(isa), " is not supported on this CPU (up to ", isa_name(best_supported()),
                 ")");
  active().store(static_cast<int>(isa), std::memory_order_relaxed);
}

namespace {

bool ask_avx512_bf16() {
#if REFORMER_ISA_VARIANTS
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
  return cpu_has(Isa::Avx512) && (a & (1u << 5)) != 0;  // CPUID.(7,1):EAX bit 5 = AVX512_BF16
#else
  return false;
#endif
}

bool ask_amx_bf16() {
#if REFORMER_ISA_VARIANTS
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool amx_bf16 = (d & (1u << 22)) != 0, amx_tile = (d & (1u << 24)) != 0;  // CPUID.(7,0):EDX
  if (!amx_bf16 || !amx_tile || !cpu_has(Isa::Avx512)) return false;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return false;  // OSXSAVE
  unsigned lo = 0, hi = 0;
  __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (lo & (3u << 17)) == (3u << 17);  // XCR0: XTILECFG and XTILEDATA enabled by the OS
#else
  return false;
#endif
}

}  // namespace

// Asked once: CPUID traps to the hypervisor in a VM (microseconds), and every bf16 product asks.
bool cpu_has_avx512_bf16() {
  static const bool has = ask_avx512_bf16();
  return has;
}

bool cpu_has_amx_bf16() {
  static const bool has = ask_amx_bf16();
  return has;
}

bool bf16_native() { return isa_active() == Isa::Avx512 && (cpu_has_amx_bf16() || cpu_has_avx512_bf16()); }

const char* bf16_isa_name() {
  if (isa_active() != Isa::Avx512) return "none";
  if (cpu_has_amx_bf16()) return "amx-bf16";
  if (cpu_has_avx512_bf16()) return "avx512-bf16";
  return "none";
}

}  // namespace reformer
