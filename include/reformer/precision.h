#pragma once
// The precision of the engine's matrix products (the projections, the feed-forward, the LM head: every
// product through kernels/cpu/gemm.h except the chunk attention tiles and the LSH rotations), a
// per-call setting of the API like `threads` (threads.h): a front end passes it to train() (TrainArgs::
// precision, `--precision`), and the run applies it with ScopedPrecision for its duration.
//
// bf16: both operands are rounded to bfloat16 (round to nearest even), the products are accumulated
// in fp32 and the result is fp32 (oneDNN's bf16 matmul). Everything else stays fp32: master weights,
// optimizer state, the residual streams, reductions, LayerNorm, softmax, attention scores, the loss
// (docs/NUMERICS.md, "bf16 matrix products"). It needs a CPU with AVX512-BF16 or AMX-BF16 and the
// AVX-512 variant active (REFORMER_ISA=avx2 or baseline turns it off).
//
// The setting is process-wide (every thread's products follow it), not per thread.
#include <string>

namespace reformer {

enum class Precision { fp32, bf16 };

const char* precision_name(Precision p);  // "fp32", "bf16"
// "fp32" or "bf16"; anything else is an Error naming `what` (e.g. "--precision") and the choices.
Precision parse_precision(const std::string& s, const char* what = "--precision");
// True when this CPU runs products in this precision (fp32 always).
bool precision_supported(Precision p);
// Throws reformer::Error when !precision_supported(p), naming `what`, what the CPU lacks and the fix.
void check_precision(Precision p, const char* what = "--precision");
// The precision products use now (fp32 unless a ScopedPrecision says otherwise).
Precision precision_active();

// Sets the precision for the lifetime of the object and restores the previous one after;
// an unsupported precision is an Error (check_precision).
class ScopedPrecision {
 public:
  explicit ScopedPrecision(Precision p, const char* what = "--precision");
  ~ScopedPrecision();
  ScopedPrecision(const ScopedPrecision&) = delete;
  ScopedPrecision& operator=(const ScopedPrecision&) = delete;

 private:
  Precision saved_;
};

}  // namespace reformer
