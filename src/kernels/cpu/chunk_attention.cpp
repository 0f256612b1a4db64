#include "kernels/cpu/chunk_attention.h"

#include <bit>
#include <algorithm>
#include <cmath>

#include "kernels/cpu/gemm.h"
#include "reformer/rng.h"

namespace reformer {
namespace {

constexpr int64_t kDropoutBlock = 256;  // dropout uniforms drawn per block (one Philox per four)

// expf without a libm call, so that the softmax loops vectorise: x = n ln2 + r (Cody-Waite),
// exp(r) by Cephes' degree-6 polynomial, 2^n through the exponent bits. Within 2 ulp of expf,
// exactly 1 at 0, and exactly 0 below ln(2^-126) (masked scores, -inf). The range checks are
// integer bit masks: GCC at -O2 does not if-convert float compares or selects (they may trap), so
// a single ternary would keep the loop scalar. Unsigned compare of the bits: x < kLo for x < 0.
inline float fast_exp(float x) {
  constexpr int32_t kLo = std::bit_cast<int32_t>(-87.33654f), kHi = std::bit_cast<int32_t>(88.f);
  int32_t bits = std::bit_cast<int32_t>(x);
  const int32_t under = -static_cast<int32_t>(std::bit_cast<uint32_t>(x) > static_cast<uint32_t>(kLo));
  bits = (bits & ~under) | (kLo & under);
  const int32_t over = -static_cast<int32_t>(bits > kHi);
  bits = (bits & ~over) | (kHi & over);
  x = std::bit_cast<float>(bits);
  constexpr float kRound = 12582912.f;  // 1.5 * 2^23: adding it rounds to an integer
  const float n = (x * 1.44269504f + kRound) - kRound;
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.f;
  const float pow2n = std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
  return std::bit_cast<float>(std::bit_cast<int32_t>(y * pow2n) & ~under);
}

float row_max(const float* row, int64_t n) {
  float mx = row[0];
#pragma omp simd reduction(max : mx)
  for (int64_t j = 1; j < n; ++j) {
    const float x = row[j];
    mx = x > mx ? x : mx;
  }
  return mx;
}

// row[j] = exp(row[j] - shift); returns their sum.
float exp_shifted(float* row, int64_t n, float shift) {
  float sum = 0.f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; ++j) {
    row[j] = fast_exp(row[j] - shift);
    sum += row[j];
  }
  return sum;
}

// Replaces the masked entries of an nq x nk block: causal/padding ones by `mask`, then self ones by
// `self` (which overrides). One branch-free pass per mask kind, so that each loop vectorises.
void apply_masks(float* s, const int32_t* qpos, const int32_t* kpos, const uint8_t* key_valid, int64_t nq,
                 int64_t nk, const ChunkAttentionOptions& opt, float mask, float self) {
  for (int64_t i = 0; i < nq; ++i) {
    float* row = s + i * nk;
    const int32_t qp = qpos[i];
    if (key_valid)
#pragma omp simd
      for (int64_t j = 0; j < nk; ++j) {
        const float x = row[j];
        row[j] = key_valid[j] ? x : mask;
      }
    if (opt.causal)
#pragma omp simd
      for (int64_t j = 0; j < nk; ++j) {
        const float x = row[j];
        row[j] = kpos[j] > qp ? mask : x;
      }
    if (opt.self_mask)
#pragma omp simd
      for (int64_t j = 0; j < nk; ++j) {
        const float x = row[j];
        row[j] = kpos[j] == qp ? self : x;
      }
  }
}

// scores (nq x nk) = q k^T, then masks by replacement.
void masked_scores(float* s, const float* q, int64_t ldq, const float* k, int64_t ldk, const int32_t* qpos,
                   const int32_t* kpos, const uint8_t* key_valid, int64_t nq, int64_t nk, int64_t d,
                   const ChunkAttentionOptions& opt) {
  gemm(false, true, nq, nk, d, 1.f, q, ldq, k, ldk, 0.f, s, nk);
  apply_masks(s, qpos, kpos, key_valid, nq, nk, opt, kMaskValue, kSelfMaskValue);
}

}  // namespace

void chunk_attention_forward(float* o, int64_t ldo, float* lse, const float* q, int64_t ldq,
                             const float* k, int64_t ldk, const float* v, int64_t ldv,
                             const int32_t* qpos, const int32_t* kpos, const uint8_t* key_valid,
                             int64_t nq, int64_t nk, int64_t d, const ChunkAttentionOptions& opt,
                             float* scratch) {
  float* s = scratch;
  masked_scores(s, q, ldq, k, ldk, qpos, kpos, key_valid, nq, nk, d, opt);
  const float keep_scale = opt.dropout > 0.f ? 1.f / (1.f - opt.dropout) : 1.f;
  for (int64_t i = 0; i < nq; ++i) {
    float* row = s + i * nk;
    const float mx = row_max(row, nk);
    const float sum = exp_shifted(row, nk, mx);
    lse[i] = mx + std::log(sum);
    // p = exp(s - lse) as Hugging Face computes it (not e / sum): identical for ordinary rows, and
    // for a row whose keys are all masked (lse rounds to kMaskValue) every p is 1, as in HF. The
    // backward recomputes p the same way, so both agree on such rows too.
    const float scale = std::exp(mx - lse[i]);
#pragma omp simd
    for (int64_t j = 0; j < nk; ++j) row[j] *= scale;
    if (opt.dropout > 0.f) {
      const uint64_t base = opt.dropout_base + static_cast<uint64_t>(i * nk);
      for (int64_t j0 = 0; j0 < nk; j0 += kDropoutBlock) {
        float u[kDropoutBlock];
        const int64_t m = std::min(kDropoutBlock, nk - j0);
        rng_uniform_block(u, m, opt.seed, opt.stream, base + static_cast<uint64_t>(j0));
        for (int64_t j = 0; j < m; ++j) row[j0 + j] = u[j] >= opt.dropout ? row[j0 + j] * keep_scale : 0.f;
      }
    }
  }
  gemm(false, false, nq, d, nk, 1.f, s, nk, v, ldv, 0.f, o, ldo);
}

void chunk_attention_backward(float* dq, int64_t lddq, float* dk, int64_t lddk, float* dv, int64_t lddv,
                              const float* do_, int64_t ldgo, const float* dlse, const float* o,
                              int64_t ldo, const float* lse, const float* q, int64_t ldq, const float* k,
                              int64_t ldk, const float* v, int64_t ldv, const int32_t* qpos,
                              const int32_t* kpos, const uint8_t* key_valid, int64_t nq, int64_t nk,
                              int64_t d, const ChunkAttentionOptions& opt, float* scratch) {
  float* p = scratch;             // probabilities, later dropped probabilities
  float* dp = scratch + nq * nk;  // gradient of the (dropped) probabilities, later of the scores
  masked_scores(p, q, ldq, k, ldk, qpos, kpos, key_valid, nq, nk, d, opt);
  for (int64_t i = 0; i < nq; ++i)
#pragma omp simd
    for (int64_t j = 0; j < nk; ++j) p[i * nk + j] = fast_exp(p[i * nk + j] - lse[i]);
  // dp' = dO v^T (gradient w.r.t. the dropped probabilities)
  gemm(false, true, nq, nk, d, 1.f, do_, ldgo, v, ldv, 0.f, dp, nk);
  const float keep_scale = opt.dropout > 0.f ? 1.f / (1.f - opt.dropout) : 1.f;
  for (int64_t i = 0; i < nq; ++i) {
    float* prow = p + i * nk;
    float* dprow = dp + i * nk;
    // D_i = dO_i . o_i = sum_j p'_ij dp'_ij
    double D = 0;
    if (o)
      for (int64_t c = 0; c < d; ++c) D += static_cast<double>(do_[i * ldgo + c]) * o[i * ldo + c];
    const float extra = dlse ? dlse[i] : 0.f;
    const uint64_t base = opt.dropout_base + static_cast<uint64_t>(i * nk);
    for (int64_t j0 = 0; j0 < nk; j0 += kDropoutBlock) {
      float u[kDropoutBlock];
      const int64_t n = std::min(kDropoutBlock, nk - j0);
      if (opt.dropout > 0.f) rng_uniform_block(u, n, opt.seed, opt.stream, base + static_cast<uint64_t>(j0));
      for (int64_t j = j0; j < j0 + n; ++j) {
        const float m = opt.dropout > 0.f ? (u[j - j0] >= opt.dropout ? keep_scale : 0.f) : 1.f;
        const float pij = prow[j];
        dprow[j] = pij * (dprow[j] * m - static_cast<float>(D)) + extra * pij;
        prow[j] = pij * m;  // p' for dv
      }
    }
  }
  apply_masks(dp, qpos, kpos, key_valid, nq, nk, opt, 0.f, 0.f);  // replaced scores have no gradient
  gemm(true, false, nk, d, nq, 1.f, p, nk, do_, ldgo, 1.f, dv, lddv);   // dv += p'^T dO
  gemm(false, false, nq, d, nk, 1.f, dp, nk, k, ldk, 1.f, dq, lddq);    // dq += ds k
  gemm(true, false, nk, d, nq, 1.f, dp, nk, q, ldq, 1.f, dk, lddk);     // dk += ds^T q
}

}  // namespace reformer
