#pragma once
// The working memory of LshSelfAttention (internal to src/layers: lsh_attention.cpp, lsh_decode.cpp).
#include <memory>
#include <vector>

#include "layers/attention_projections.h"
#include "reformer/tensor.h"

namespace reformer {

// Per-thread working memory for one (batch, head) pair. Only the per-slot outputs are O(nh * L * d),
// and only with several rounds (one round's output is the head's output, written straight to o);
// queries, keys and values are gathered per chunk (c + window rows) into chunk-sized buffers, and
// the gradients are scattered straight into the (B, L, H*d) dqk/dv (one thread owns a head, so the
// scatter is race-free). Memory note: holding sorted copies of q, k, v and their gradients would
// cost 8 * nh * L * d floats per thread (4 GiB at L = 1M with two threads); this costs one.
struct LshHeadScratch {
  Buffer<int32_t> spos, undo, counts;        // sorted positions, inverse permutation, sort counts
  Buffer<float> o_slot, lse, weight;         // per sorted slot: output, logsumexp, round weight
  Buffer<float> chunk, hash;                 // chunk-kernel and hashing scratch
  Buffer<float> co;                          // one chunk's outputs (single round)
  // One chunk: queries (c x d), window keys/values (window x d), their positions and validity;
  // backward: dO, dlse of the queries, dq, dk, dv of the chunk.
  Buffer<float> cq, ck, cv, cdo, cdlse, cdq, cdk, cdv;
  Buffer<int32_t> ckpos;
  Buffer<uint8_t> ckvalid;

  int64_t bytes() const {
    return static_cast<int64_t>(spos.bytes() + undo.bytes() + counts.bytes() + o_slot.bytes() + co.bytes() +
                                lse.bytes() + weight.bytes() + chunk.bytes() + hash.bytes() + cq.bytes() + ck.bytes() +
                                cv.bytes() +
                                cdo.bytes() + cdlse.bytes() + cdq.bytes() + cdk.bytes() + cdv.bytes() +
                                ckpos.bytes() + ckvalid.bytes());
  }
};

// The (B, L, H*d) projections and their gradients live in a QkvWorkspace, which a model shares with
// its local/full layers (attention layers run one at a time and recompute their projections in the
// backward, so nothing in these buffers outlives a call): qk -> q, v -> v, o -> o, dO -> k,
// dqk -> dk, dv -> dv. Memory: max(LSH, local) of these instead of their sum.
struct LshWorkspace {
  std::shared_ptr<QkvWorkspace> pool;
  std::vector<LshHeadScratch> scratch;  // one per thread
  Tensor& qk() { return pool->q; }
  Tensor& v() { return pool->v; }
  Tensor& o() { return pool->o; }
  Tensor& dO() { return pool->k; }
  Tensor& dqk() { return pool->dk; }
  Tensor& dv() { return pool->dv; }
  RowScratch& rows() { return pool->rows; }
};

}  // namespace reformer
