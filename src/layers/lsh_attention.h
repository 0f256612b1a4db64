#pragma once
// LSH self-attention (spec section 1, Hugging Face ReformerModel semantics): shared query/key
// projection, angular LSH per hash round, stable sort by bucket, chunked attention over circular
// neighbour-chunk windows with causal/padding/self masks, un-sort, softmax-combination of the
// rounds by their logsumexp, merge heads, Wo. Sequences with L <= chunk_length take Hugging Face's
// short path (spec 1.11): full attention over L with the same key normalisation and masks, no
// hashing, num_hashes ignored.
//
// Gradients: weight gradients ACCUMULATE (+=) into LshAttentionGrads; dx is ASSIGNED. Gradients do
// not flow through hashing; backward() reuses the buckets saved by the last forward().
// Working memory is O(nh * L * d) per concurrently processed (batch, head) pair; no L x c or L x L
// score matrix is ever held.
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/cpu/chunk_attention.h"
#include "layers/attention_projections.h"
#include "layers/attention.h"
#include "reformer/tensor.h"

namespace reformer {

struct LshAttentionConfig {
  int64_t hidden = 0;     // D
  int64_t heads = 0;      // H
  int64_t head_size = 0;  // d
  int64_t chunk_length = 64;
  int64_t chunks_before = 1;
  int64_t chunks_after = 0;
  int num_hashes = 1;
  std::vector<int64_t> num_buckets;  // 1 element: int case; more: factorized (resolved by the model)
  bool causal = false;
  float dropout = 0.f;  // attention-probability dropout (lsh_attention_probs_dropout_prob)
};

// torch Linear layout, head-major rows: query_key and value (H*d, D), output (D, H*d).
struct LshAttentionWeights {
  const float* query_key;
  const float* value;
  const float* output;
};
struct LshAttentionGrads {
  float* query_key;
  float* value;
  float* output;
};

// Projections and per-thread scratch of LSH attention. Layers run one at a time, so a model gives
// all its LSH layers one shared workspace and workspace memory does not grow with depth.
struct LshWorkspace;
struct LshHeadScratch;

class LshSelfAttention : public AttentionLayer {
 public:
  // ws: shared workspace (make_workspace()); nullptr = a private one.
  LshSelfAttention(const LshAttentionConfig& config, LshAttentionWeights weights, LshAttentionGrads grads,
                   std::shared_ptr<LshWorkspace> ws = nullptr);
  // pool: the projection buffers, shareable with local/full layers (QkvWorkspace); nullptr = own ones.
  static std::shared_ptr<LshWorkspace> make_workspace(std::shared_ptr<QkvWorkspace> pool = nullptr);
  ~LshSelfAttention() override;

  using AttentionLayer::backward;
  using AttentionLayer::forward;
  void forward(const RowReader& x, const RowWriter& out, const AttentionCall& call) override;
  void backward(const RowReader& x, const RowReader& dout, const RowWriter& dx, const RowWriter* out,
                const AttentionCall& call) override;
  int64_t workspace_bytes() const override;

  // Incremental decoding (layers/lsh_decode.cpp, docs/NUMERICS.md): the cache keeps every position's
  // normalised key and value per head and, per head and round, its bucket in an LshBucketIndex; the
  // rotations are fixed when the cache is made (injected ones, or drawn from `call` as forward() does).
  std::unique_ptr<AttentionCache> make_cache(int64_t capacity, const AttentionCall& call) const override;
  void fill_cache(AttentionCache& cache, const AttentionCall& call, int64_t b, int64_t n) const override;
  void decode(float* out, const float* x, int64_t rows, AttentionCache* const* caches) override;

  // The forward of backward(): like forward() but reuses the buckets of the last forward() instead
  // of hashing again, so that (e.g. in finite-difference checks) perturbing x never moves a bucket.
  void forward_with_saved_buckets(float* out, const float* x, const AttentionCall& call);

  // Eval-time override of the number of hash rounds (the paper evaluates with more rounds).
  void set_num_hashes(int num_hashes);
  int num_hashes() const { return num_hashes_; }

  // Injects rotations in Hugging Face's layout (H, d, num_hashes, rot_cols), rot_cols =
  // sum(num_buckets) / 2, shared by every batch element; copied. Call after set_num_hashes().
  // Without injected rotations each call draws head h's (d, num_hashes, rot_cols) block, in that
  // row-major order, as rng_fill_normal(seed = call.seed,
  // stream = rng_stream(RngPurpose::Rotations, {call.step, call.layer, h})).
  void set_rotations(const float* rotations);
  void clear_rotations();

  // Buckets of the last forward(): (B, H, num_hashes, L) int32 with round offsets r * nb_eff;
  // nullptr when the last forward took the short path (no hashing).
  const int32_t* saved_buckets() const { return saved_.valid ? buckets_.data() : nullptr; }

 private:
  struct Plan;
  struct Saved {
    bool valid = false;
    int64_t batch = 0, length = 0, nb_eff = 0;
    int num_hashes = 0;
  };

  enum class Pass { Hash, SavedBuckets, Backward };

  Plan make_plan(const AttentionCall& call) const;
  void check_saved(const Plan& plan) const;
  ChunkAttentionOptions chunk_options(const AttentionCall& call, int64_t b, int64_t h) const;
  void prepare(const Plan& plan, bool backward);
  void prepare_rotations(const AttentionCall& call);
  // Every head's rotations for `call` into dst (H, d, num_hashes, rot_cols): injected or drawn.
  void draw_rotations(float* dst, const AttentionCall& call) const;
  void project(const RowReader& x, const Plan& plan);
  void attend_all(const Plan& plan, const AttentionCall& call, Pass pass);
  void gather_chunk(const Plan& plan, const float* qk, const float* v, const uint8_t* valid, int64_t q0, bool slide,
                    LshHeadScratch& s) const;
  void sort_head(const Plan& plan, int64_t b, int64_t h, bool rehash, const uint8_t* valid, LshHeadScratch& s);
  void head_forward(const Plan& plan, const AttentionCall& call, int64_t b, int64_t h, bool rehash, LshHeadScratch& s);
  void head_backward(const Plan& plan, const AttentionCall& call, int64_t b, int64_t h, LshHeadScratch& s);
  void output(const RowWriter& out, const Plan& plan);

  LshAttentionConfig cfg_;
  LshAttentionWeights w_;
  LshAttentionGrads g_;
  int num_hashes_;
  int64_t rot_cols_;
  int64_t total_buckets_;

  Buffer<float> rotations_;  // (H, d, nh, rot_cols): injected, or drawn per call
  bool injected_ = false;
  int injected_hashes_ = 0;

  Buffer<int32_t> buckets_;  // (B, H, nh, L), saved for backward
  Saved saved_;

  std::shared_ptr<LshWorkspace> ws_;
};

}  // namespace reformer
