#include "kernels/cpu/chunk_attention.h"

#include <cmath>

#include "kernels/cpu/gemm.h"
#include "reformer/rng.h"

namespace reformer {
namespace {

// scores (nq x nk) = q k^T, then masks by replacement.
void masked_scores(float* s, const float* q, int64_t ldq, const float* k, int64_t ldk, const int32_t* qpos,
                   const int32_t* kpos, const uint8_t* key_valid, int64_t nq, int64_t nk, int64_t d,
                   const ChunkAttentionOptions& opt) {
  gemm(false, true, nq, nk, d, 1.f, q, ldq, k, ldk, 0.f, s, nk);
  if (!opt.causal && !opt.self_mask && !key_valid) return;
  for (int64_t i = 0; i < nq; ++i) {
    float* row = s + i * nk;
    const int32_t qp = qpos[i];
    for (int64_t j = 0; j < nk; ++j) {
      if ((opt.causal && kpos[j] > qp) || (key_valid && !key_valid[j])) row[j] = kMaskValue;
      if (opt.self_mask && kpos[j] == qp) row[j] = kSelfMaskValue;
    }
  }
}

inline bool is_masked(const ChunkAttentionOptions& opt, const uint8_t* key_valid, int32_t qp, int32_t kp, int64_t j) {
  return (opt.causal && kp > qp) || (key_valid && !key_valid[j]) || (opt.self_mask && kp == qp);
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
    float mx = row[0];
    for (int64_t j = 1; j < nk; ++j) mx = std::max(mx, row[j]);
    float sum = 0.f;
    for (int64_t j = 0; j < nk; ++j) {
      row[j] = std::exp(row[j] - mx);
      sum += row[j];
    }
    lse[i] = mx + std::log(sum);
    // p = exp(s - lse) as Hugging Face computes it (not e / sum): identical for ordinary rows, and
    // for a row whose keys are all masked (lse rounds to kMaskValue) every p is 1, as in HF. The
    // backward recomputes p the same way, so both agree on such rows too.
    const float scale = std::exp(mx - lse[i]);
    for (int64_t j = 0; j < nk; ++j) row[j] *= scale;
    if (opt.dropout > 0.f) {
      const uint64_t base = opt.dropout_base + static_cast<uint64_t>(i * nk);
      for (int64_t j = 0; j < nk; ++j)
        row[j] = rng_keep(opt.seed, opt.stream, base + j, opt.dropout) ? row[j] * keep_scale : 0.f;
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
    for (int64_t j = 0; j < nk; ++j) p[i * nk + j] = std::exp(p[i * nk + j] - lse[i]);
  // dp' = dO v^T (gradient w.r.t. the dropped probabilities)
  gemm(false, true, nq, nk, d, 1.f, do_, ldgo, v, ldv, 0.f, dp, nk);
  const float keep_scale = opt.dropout > 0.f ? 1.f / (1.f - opt.dropout) : 1.f;
  for (int64_t i = 0; i < nq; ++i) {
    float* prow = p + i * nk;
    float* dprow = dp + i * nk;
    // D_i = dO_i . o_i = sum_j p'_ij dp'_ij
    double D = 0;
    for (int64_t c = 0; c < d; ++c) D += static_cast<double>(do_[i * ldgo + c]) * o[i * ldo + c];
    const float extra = dlse ? dlse[i] : 0.f;
    const uint64_t base = opt.dropout_base + static_cast<uint64_t>(i * nk);
    for (int64_t j = 0; j < nk; ++j) {
      float m = 1.f;
      if (opt.dropout > 0.f) m = rng_keep(opt.seed, opt.stream, base + j, opt.dropout) ? keep_scale : 0.f;
      const float pij = prow[j];
      float ds = pij * (dprow[j] * m - static_cast<float>(D)) + extra * pij;
      if (is_masked(opt, key_valid, qpos[i], kpos[j], j)) ds = 0.f;
      dprow[j] = ds;
      prow[j] = pij * m;  // p' for dv
    }
  }
  gemm(true, false, nk, d, nq, 1.f, p, nk, do_, ldgo, 1.f, dv, lddv);   // dv += p'^T dO
  gemm(false, false, nq, d, nk, 1.f, dp, nk, k, ldk, 1.f, dq, lddq);    // dq += ds k
  gemm(true, false, nk, d, nq, 1.f, dp, nk, q, ldq, 1.f, dk, lddk);     // dk += ds^T q
}

}  // namespace reformer
