#pragma once
// The attention branch of a Reformer layer, F in Y1 = X1 + F(LN(X2)): projections, attention, and
// the output projection Wo (output dropout is applied by the reversible block, not here).
// Implementations: LshSelfAttention (spec 1), LocalSelfAttention (spec 2), FullSelfAttention (the
// paper's blockwise full-attention baseline).
//
// Gradients: weight gradients ACCUMULATE (+=) into the buffers given at construction; dx is
// ASSIGNED. Scores are never stored: backward() recomputes the forward from x (with the buckets
// and dropout masks saved by forward()) and returns the recomputed output too, which is what the
// reversible backward needs (X1 = Y1 - F); a stored layer's call keeps the projections instead
// (AttentionKept), and its backward starts from them.
//
// Two forms: the streamed one (row_stream.h), which the model uses so that neither LN(X2) nor F is
// ever held for the whole sequence, and a pointer form over (B, L, D) buffers for tests and tools.
#include <cstdint>
#include <initializer_list>
#include <memory>

#include "layers/row_stream.h"
#include "reformer/tensor.h"

namespace reformer {

// A stored layer's attention state from its forward to its backward, owned by the caller (like a
// decoding cache): the layer's projections (local/full: q, k, v, o and the logsumexp; LSH: qk and
// v). forward() with AttentionCall::kept swaps them out of the shared workspace into here (no copy:
// the workspace takes the buffers kept here before, of the same size after the first step), and
// backward() swaps them back instead of recomputing them from x.
struct AttentionKept {
  Tensor t[5];
  bool valid = false;  // holds this forward's state, not yet taken by its backward
  int64_t batch = 0, length = 0;
};

struct AttentionCall {
  int64_t batch = 1;                 // B
  int64_t length = 0;                // L
  const uint8_t* pad_mask = nullptr; // (B, L), 1 = token, 0 = padding; nullptr = no padding mask
  bool training = false;             // attention-probability dropout only when training
  uint64_t seed = 0;                 // keys rotations and dropout: (seed, step, layer, head, round)
  uint64_t step = 0;
  int layer = 0;
  AttentionKept* kept = nullptr;     // a stored layer's kept state (training only; nullptr: recompute)
};

// One sequence's decoding cache of one attention layer (incremental decoding, docs/NUMERICS.md):
// owned by the caller (the model's DecodeState), never by the layer, so a layer can serve any
// number of sequences. Each kind of layer defines what it keeps; all memory is allocated when the
// cache is made, so decoding a token allocates nothing.
struct AttentionCache {
  virtual ~AttentionCache() = default;
  int64_t length = 0;    // positions cached (the next token's position)
  int64_t capacity = 0;  // positions the cache can hold
  virtual int64_t bytes() const = 0;
  virtual void clear() { length = 0; }
};

class AttentionLayer {
 public:
  virtual ~AttentionLayer() = default;
  // x: the LayerNorm-ed attention input, (B * L) rows of D, read in row chunks (possibly twice).
  // out: receives F's rows, after Wo. Every row of x is read before the first row is written.
  virtual void forward(const RowReader& x, const RowWriter& out, const AttentionCall& call) = 0;
  // Recomputes the forward exactly as forward() did (same buckets, same dropout masks), hands it to
  // out (nullptr: not needed), and backpropagates dout: dx = dF/dx^T dout, weight grads +=. Must
  // follow a forward() with the same call (LSH reuses that forward's buckets). Row chunk r of dout
  // is read before chunk r of out is written, and chunk r of x before chunk r of dx is written.
  virtual void backward(const RowReader& x, const RowReader& dout, const RowWriter& dx, const RowWriter* out,
                        const AttentionCall& call) = 0;
  // Bytes of workspace held by the layer (for the memory report).
  virtual int64_t workspace_bytes() const = 0;

  // Incremental decoding. make_cache: an empty cache for `capacity` positions; `call` keys the
  // LSH rotations (seed, step, layer), which stay fixed for the cache's life. fill_cache: stores
  // positions [0, n) of batch element b from the workspace of the forward() just run with `call`
  // (before any other layer runs). decode: x holds `rows` new tokens' attention inputs (rows, D),
  // token i at position caches[i]->length of its own sequence; writes F (rows, D), appends each
  // token to its cache. Requires a causal layer and room in every cache.
  virtual std::unique_ptr<AttentionCache> make_cache(int64_t capacity, const AttentionCall& call) const = 0;
  virtual void fill_cache(AttentionCache& cache, const AttentionCall& call, int64_t b, int64_t n) const = 0;
  virtual void decode(float* out, const float* x, int64_t rows, AttentionCache* const* caches) = 0;

  // Pointer forms over (B, L, D) buffers. out may alias x; out may alias dout and dx may alias x.
  void forward(float* out, const float* x, const AttentionCall& call);
  void backward(float* dx, float* out, const float* dout, const float* x, const AttentionCall& call);

 protected:
  explicit AttentionLayer(int64_t hidden) : hidden_(hidden) {}
  // After a forward with call.kept: swaps `buffers` into the kept state. Before a backward: true
  // when the kept state holds this call's forward, which is then swapped back into `buffers`.
  static void keep(const AttentionCall& call, std::initializer_list<Tensor*> buffers);
  static bool take_kept(const AttentionCall& call, std::initializer_list<Tensor*> buffers);
  const int64_t hidden_;  // D
};

}  // namespace reformer
