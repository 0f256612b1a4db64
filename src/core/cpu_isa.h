#pragma once
// Run-time choice of the vector instruction set (docs/PERFORMANCE.md, "Builds and instruction sets").
// The build targets baseline x86-64 (SSE2) only; the few kernels that gain from wide vectors have
// per-ISA variants compiled into the same binary (GCC `#pragma GCC target` / `target` attributes,
// see REFORMER_ISA_VARIANTS) and pick one through isa_active() on every call. oneDNN dispatches
// its GEMMs by itself. Every variant gives bit-identical results (tests/test_cpu_isa.cpp).
#include <vector>

// Per-ISA variants need GCC's target pragmas on x86-64; other compilers (clang: the fuzz build) get
// the baseline only.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define REFORMER_ISA_VARIANTS 1
// The target strings of the variants; AVX-512 means the Skylake-server subset (F, BW, DQ, VL).
#define REFORMER_TARGET_AVX2 "avx2,fma"
#define REFORMER_TARGET_AVX512 "avx2,fma,avx512f,avx512bw,avx512dq,avx512vl,prefer-vector-width=512"
#else
#define REFORMER_ISA_VARIANTS 0
#endif

namespace reformer {

enum class Isa : int { Baseline = 0, Avx2 = 1, Avx512 = 2 };

const char* isa_name(Isa isa);  // "baseline", "avx2", "avx512"
// True when this CPU (and OS) can run the variant and this build has it.
bool isa_supported(Isa isa);
// The supported variants, baseline first.
std::vector<Isa> isa_supported_list();
// The variant the dispatched kernels use: the widest supported, chosen once at start-up; the
// environment variable REFORMER_ISA=baseline|avx2|avx512 lowers it (never above what is supported:
// asking for more is an Error naming what the CPU has).
Isa isa_active();
// Replaces the active variant (tests and benchmarks); an unsupported one is an Error.
void isa_set_active(Isa isa);

}  // namespace reformer
