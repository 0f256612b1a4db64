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

// bf16 matrix products (include/reformer/precision.h): the CPU's native bf16 dot products, asked
// through CPUID (and XCR0 for AMX's tile state). AMX-BF16 is what oneDNN's bf16 matmul uses where
// it exists (Sapphire Rapids and later), else AVX512-BF16 (Cooper Lake, Zen 4 and later).
bool cpu_has_avx512_bf16();
bool cpu_has_amx_bf16();
// True when bf16 products run natively here: the active variant is AVX-512 (so REFORMER_ISA=avx2
// or baseline turns bf16 off) and the CPU has AVX512-BF16 or AMX-BF16.
bool bf16_native();
// "amx-bf16", "avx512-bf16" or "none": what bf16_native() rests on, for messages.
const char* bf16_isa_name();

}  // namespace reformer
