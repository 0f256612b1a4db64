#pragma once
// The one tolerance policy of the test suite (docs/NUMERICS.md). Every comparison of floats uses
// |got - want| <= atol + rtol * |want|, with the constants below; integer data (bucket ids,
// permutations) is compared exactly.
#include <cstdint>
#include <string>

namespace reformer::test {

struct Tolerance {
  double atol;
  double rtol;
};

// fp32 fast kernel vs its slow scalar reference (same math, different summation order).
inline constexpr Tolerance kKernelTol{1e-5, 1e-4};
// Analytic gradient vs central finite differences in fp32 (step kFdStep): truncation plus
// rounding error of order eps_fp32 * |f| / step.
inline constexpr Tolerance kGradCheckTol{2e-3, 2e-2};
inline constexpr float kFdStep = 1e-2f;
// Two fp32 computations of the same model quantity along different paths (reversible vs stored
// activations, chunked vs unchunked): the bound of 1e-5 relative.
inline constexpr Tolerance kPathTol{1e-6, 1e-5};
// A model's fp32 decoding path vs the double-precision reference decoder (support/decode_reference.h):
// several layers of fp32 rounding between them, so looser than one kernel against its reference.
inline constexpr Tolerance kDecodeTol{1e-4, 1e-3};
// A data-parallel run (mpirun -np 2) vs one process with the same global batch: the same
// micro-batches, data and randomness, gradients summed in another order: every step's loss over
// 100 steps (tests/test_distributed.cpp; measured: about 3e-8 relative at most), and the validation loss.
inline constexpr Tolerance kDataParallelTol{1e-6, 1e-5};
// The final weights of those runs. The rounding difference of the sums feeds back through 100
// optimizer steps (Adafactor normalises each update, so an element whose gradient is ~0 moves by
// a step-sized amount either way): measured at most 2.1e-5 apart (local+LSH model), 2.4e-7 (local).
inline constexpr Tolerance kDataParallelWeightTol{1e-4, 1e-4};
// LSH hashing is an argmax: once the rounding difference has reached the weights it can flip a
// position's bucket on a step. That step's loss then differs by at most this relative amount (seen:
// 3.2e-5 and 1.9e-5 relative, steps 71 and 87 of 100 in the LSH-only model, after the 16-bit
// dropout draws changed its masks), and the final weights by at most kDataParallelFlipWeightTol
// (seen: 2.2e-4 on one of 64 LayerNorm weights).
inline constexpr double kLshBucketFlipTol = 1e-3;
inline constexpr Tolerance kDataParallelFlipWeightTol{1e-3, 1e-3};
// The training-memory estimate computed from the config (src/train/memory_estimate) vs the
// allocator's measured peak of a training step: relative error of the total.
inline constexpr double kMemoryEstimateRelTol = 0.25;
// bf16 matrix products (include/reformer/precision.h) vs gemm_reference on the fp32 inputs. NOT
// relative to |want| but to the magnitude S = |alpha| sum_k |a_ik b_kj| + |beta c_ij| of the sum
// (cancellation makes |want| meaningless): rounding a and b to bf16 (unit roundoff u = 2^-9, an
// 8-bit significand) changes each product by at most 2u + u^2 < 2^-8 relative; fp32 accumulation
// adds at most K * 2^-24 (2.4e-4 for K = 4096); 2^-7 is twice the first, with room for the second.
inline constexpr Tolerance kBf16GemmTol{1e-6, 0.0078125};
// The same products vs gemm_reference on the bf16-rounded inputs (what oneDNN multiplies exactly):
// only fp32 accumulation error is left, so kKernelTol's bounds, but relative to S as above.
inline constexpr Tolerance kBf16RoundedGemmTol{1e-5, 1e-4};
// The loss of a model run with bf16 products vs the same model in fp32 (tiny models, losses ~2-3
// nats): each product is off by ~2^-8 relative, and the errors average out over the features
// feeding one logit; measured 1.1e-4 relative at most (Bf16.TrainingStepsGiveLossesCloseToFp32
// prints it); 1% is the bound for the demo's final loss.
inline constexpr Tolerance kBf16LossTol{0.0, 0.01};
// Hugging Face parity fixtures (fp32): max abs diff 1e-4 on outputs, 1e-4 relative on gradients.
inline constexpr Tolerance kParityTol{1e-4, 1e-4};

// Compares element by element; on failure returns a message naming the first mismatches and the
// max abs/rel difference, else an empty string.
std::string compare(const float* got, const float* want, int64_t n, Tolerance tol, const std::string& name);

}  // namespace reformer::test

// EXPECT_CLOSE(got_ptr, want_ptr, n, tol, "name")
#define EXPECT_CLOSE(got, want, n, tol, name)                                       \
  do {                                                                              \
    const std::string _msg = ::reformer::test::compare((got), (want), (n), (tol), (name)); \
    EXPECT_TRUE(_msg.empty()) << _msg;                                              \
  } while (0)
