#include "layers/full_attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "ops/parallel.h"

namespace reformer {

FullSelfAttention::FullSelfAttention(const FullAttentionConfig& config, FullAttentionWeights weights,
                                     FullAttentionGrads grads, std::shared_ptr<QkvWorkspace> ws)
    : QkvSelfAttention(config.hidden, config.heads, config.head_size, config.causal, config.dropout, weights, grads,
                       std::move(ws)),
      block_(config.block_length) {
  REFORMER_CHECK(block_ > 0, "full attention block_length must be positive, got ", block_);
}

void FullSelfAttention::ensure_scratch(int64_t floats, int64_t length) {
  scratch_.ensure(omp_get_max_threads() * floats, MemCategory::Workspace);
  positions_.ensure(length, MemCategory::Workspace);
  std::iota(positions_.data(), positions_.data() + length, 0);
}

int64_t FullSelfAttention::core_workspace_bytes() const {
  return static_cast<int64_t>(scratch_.bytes() + positions_.bytes());
}

void FullSelfAttention::attend(float* o, float* lse, const float* q, const float* k, const float* v,
                               const AttentionCall& call) {
  const int64_t L = call.length, H = heads_, d = head_size_, hd = H * d, bs = block_;
  const int64_t nb = (L + bs - 1) / bs;
  const bool parallel = call.batch * H * L * L * d >= kOmpMinWork;  // fork/join only when it pays
  // Per thread: one key block's o and lse, the running max m and sum l, the block's scores.
  const int64_t per_thread = bs * d + 3 * bs + bs * bs;
  ensure_scratch(per_thread, L);
  const int32_t* pos = positions_.data();
#pragma omp parallel if (parallel)
  {
    float* ob = scratch_.data() + omp_get_thread_num() * per_thread;
    float* lseb = ob + bs * d;
    float* m = lseb + bs;
    float* l = m + bs;
    float* scores = l + bs;
#pragma omp for collapse(3) schedule(static)
    for (int64_t b = 0; b < call.batch; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t qb = 0; qb < nb; ++qb) {
          const int64_t qs = qb * bs, nq = std::min(bs, L - qs), head0 = b * L * hd + h * d;
          float* orow = o + head0 + qs * hd;
          const int64_t kb_end = causal_ ? qb + 1 : nb;
          for (int64_t kb = 0; kb < kb_end; ++kb) {
            const int64_t ks = kb * bs, nk = std::min(bs, L - ks);
            ChunkAttentionOptions opt = chunk_options(call, b, h);
            opt.dropout_base = static_cast<uint64_t>((qb * nb + kb) * bs * bs);
            // The first key block writes straight into o and m; later ones are merged in.
            chunk_attention_forward(kb == 0 ? orow : ob, kb == 0 ? hd : d, kb == 0 ? m : lseb, q + head0 + qs * hd,
                                    hd, k + head0 + ks * hd, hd, v + head0 + ks * hd, hd, pos + qs, pos + ks,
                                    call.pad_mask ? call.pad_mask + b * L + ks : nullptr, nq, nk, d, opt, scores);
            for (int64_t i = 0; i < nq; ++i) {
              if (kb == 0) {
                l[i] = 1.f;
                continue;
              }
              const float mx = std::max(m[i], lseb[i]);
              const float a = std::exp(m[i] - mx), c = std::exp(lseb[i] - mx);
              l[i] = l[i] * a + c;
              m[i] = mx;
              for (int64_t e = 0; e < d; ++e) orow[i * hd + e] = orow[i * hd + e] * a + ob[i * d + e] * c;
            }
          }
          // o = sum_kb exp(lse_kb - lse) o_kb with lse = m + log(l). Scaling by exp(m - lse)
          // rather than 1/l keeps p = exp(s - lse) exact for rows with no valid key (lse rounds
          // to m), which is what the backward recomputes.
          for (int64_t i = 0; i < nq; ++i) {
            const float row_lse = m[i] + std::log(l[i]);
            const float scale = std::exp(m[i] - row_lse);
            lse[(b * H + h) * L + qs + i] = row_lse;
            for (int64_t e = 0; e < d; ++e) orow[i * hd + e] *= scale;
          }
        }
  }
}

void FullSelfAttention::attend_backward(float* q_to_dq, float* dk, float* dv, const float* dO, const float* row_dlse,
                                        const float* lse, const float* k, const float* v, const AttentionCall& call) {
  const int64_t L = call.length, H = heads_, d = head_size_, hd = H * d, bs = block_;
  const int64_t nb = (L + bs - 1) / bs;
  const bool parallel = call.batch * H * L * L * d >= kOmpMinWork;  // fork/join only when it pays
  // Per thread: the scores of one block pair and the query block's dq, which replaces the block's
  // q rows once every key block has been visited.
  const int64_t per_thread = 2 * bs * bs + bs * d;
  ensure_scratch(per_thread, L);
  const int32_t* pos = positions_.data();
  const int64_t total = call.batch * L * hd;
  std::fill_n(dk, total, 0.f);
  std::fill_n(dv, total, 0.f);
  float* q = q_to_dq;
  // Every query block adds into every key block's dk/dv, so the work is split by (b, h) only:
  // race-free and deterministic without per-thread O(L * d) copies; enough while B * H >= threads.
#pragma omp parallel if (parallel)
  {
    float* scores = scratch_.data() + omp_get_thread_num() * per_thread;
    float* dqb = scores + 2 * bs * bs;
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < call.batch; ++b)
      for (int64_t h = 0; h < H; ++h) {
        const int64_t head0 = b * L * hd + h * d;
        const float* row_lse = lse + (b * H + h) * L;
        const float* dlse = row_dlse + (b * H + h) * L;
        for (int64_t qb = 0; qb < nb; ++qb) {
          const int64_t qs = qb * bs, nq = std::min(bs, L - qs), q_off = head0 + qs * hd;
          const int64_t kb_end = causal_ ? qb + 1 : nb;
          std::fill_n(dqb, nq * d, 0.f);
          for (int64_t kb = 0; kb < kb_end; ++kb) {
            const int64_t ks = kb * bs, nk = std::min(bs, L - ks), k_off = head0 + ks * hd;
            ChunkAttentionOptions opt = chunk_options(call, b, h);
            opt.dropout_base = static_cast<uint64_t>((qb * nb + kb) * bs * bs);
            chunk_attention_backward(dqb, d, dk + k_off, hd, dv + k_off, hd, dO + q_off, hd, dlse + qs, nullptr, 0,
                                     row_lse + qs, q + q_off, hd, k + k_off, hd, v + k_off, hd, pos + qs, pos + ks,
                                     call.pad_mask ? call.pad_mask + b * L + ks : nullptr, nq, nk, d, opt, scores);
          }
          for (int64_t i = 0; i < nq; ++i) std::copy_n(dqb + i * d, d, q + q_off + i * hd);
        }
      }
  }
}

}  // namespace reformer
