// Incremental decoding for LSH attention (docs/NUMERICS.md "Incremental decoding").
//
// The new token at position t attends, in each round, to the window its slot would have in a
// forward pass over positions 0..t: the positions sorted stably by bucket, padded with the padding
// bucket to L' = the next multiple of the chunk length c, all rounds concatenated and cut into
// chunks of c; the window is its chunk and the chunks_before chunks before it (circular over all
// rounds, as in the forward), without the padding slots (the forward masks them). Rounds are
// combined by their logsumexp as in the forward. Sequences of at most c positions take Hugging
// Face's short path (every position once, no hashing), again as the forward does.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu/gemm.h"
#include "kernels/cpu/lsh_bucket_index.h"
#include "kernels/cpu/lsh_hash.h"
#include "layers/lsh_attention.h"
#include "layers/lsh_key.h"
#include "layers/lsh_workspace.h"

namespace reformer {
namespace {

constexpr MemCategory kCache = MemCategory::DecodeState;

// Every position's normalised key and value per head, the rotations of the run, one bucket index
// per head and round, and per-head scratch for one query's window.
struct LshDecodeCache : AttentionCache {
  int64_t heads = 0, d = 0, nh = 0, nb = 0, rot_cols = 0, window = 0;
  Buffer<float> keys, values;         // (H, capacity, d)
  Buffer<float> rotations;            // (H, d, nh, rot_cols), Hugging Face layout
  std::vector<LshBucketIndex> index;  // (H, nh)
  Buffer<float> wk, wv, scores;       // (H, window, d), (H, window, d), (H, window)
  Buffer<int32_t> wpos, buckets;      // (H, window), (H, nh)
  Buffer<float> o_round, lse_round;   // (H, nh, d), (H, nh)
  Buffer<float> hash;                 // (H, lsh_hash scratch)
  int64_t hash_floats = 0;

  int64_t bytes() const override {
    int64_t n = static_cast<int64_t>(keys.bytes() + values.bytes() + rotations.bytes() + wk.bytes() + wv.bytes() +
                                     scores.bytes() + wpos.bytes() + buckets.bytes() + o_round.bytes() +
                                     lse_round.bytes() + hash.bytes());
    for (const LshBucketIndex& x : index) n += x.bytes();
    return n;
  }
  void clear() override {
    length = 0;
    for (LshBucketIndex& x : index) x.clear();
  }
  float* key(int64_t h, int64_t pos) { return keys.data() + (h * capacity + pos) * d; }
  float* value(int64_t h, int64_t pos) { return values.data() + (h * capacity + pos) * d; }
  const float* head_rotations(int64_t h) const { return rotations.data() + h * d * nh * rot_cols; }
};

}  // namespace

std::unique_ptr<AttentionCache> LshSelfAttention::make_cache(int64_t capacity, const AttentionCall& call) const {
  REFORMER_CHECK(capacity >= 1 && capacity < std::numeric_limits<int32_t>::max(), "decoding cache capacity ",
                 capacity, " must be in [1, 2^31 - 1)");
  REFORMER_CHECK(cfg_.causal, "incremental decoding needs a causal model (is_decoder: true)");
  auto c = std::make_unique<LshDecodeCache>();
  const int64_t H = cfg_.heads, d = cfg_.head_size;
  c->capacity = capacity;
  c->heads = H;
  c->d = d;
  c->nh = num_hashes_;
  c->nb = total_buckets_;
  c->rot_cols = rot_cols_;
  // The window of one round (at least c slots, so it also holds the short path's <= c positions).
  c->window = cfg_.chunk_length * (1 + cfg_.chunks_before + cfg_.chunks_after);
  c->keys = Buffer<float>(H * capacity * d, kCache);
  c->values = Buffer<float>(H * capacity * d, kCache);
  c->rotations = Buffer<float>(H * d * c->nh * rot_cols_, kCache);
  draw_rotations(c->rotations.data(), call);
  c->index.resize(static_cast<size_t>(H * c->nh));
  for (LshBucketIndex& x : c->index) x.reset(capacity, c->nb, kCache);
  c->wk = Buffer<float>(H * c->window * d, kCache);
  c->wv = Buffer<float>(H * c->window * d, kCache);
  c->scores = Buffer<float>(H * c->window, kCache);
  c->wpos = Buffer<int32_t>(H * c->window, kCache);
  c->buckets = Buffer<int32_t>(H * c->nh, kCache);
  c->o_round = Buffer<float>(H * c->nh * d, kCache);
  c->lse_round = Buffer<float>(H * c->nh, kCache);
  c->hash_floats = lsh_hash_scratch_floats(static_cast<int>(c->nh), cfg_.num_buckets);
  c->hash = Buffer<float>(H * c->hash_floats, kCache);
  return c;
}

void LshSelfAttention::fill_cache(AttentionCache& cache, const AttentionCall& call, int64_t b, int64_t n) const {
  auto& c = static_cast<LshDecodeCache&>(cache);
  REFORMER_CHECK(b >= 0 && b < call.batch && n >= 0 && n <= call.length && n <= c.capacity, "fill_cache: positions ",
                 n, " of batch element ", b, " do not fit a call of batch ", call.batch, ", length ", call.length,
                 " and a cache of ", c.capacity);
  const int64_t d = c.d, Hd = c.heads * d, L = call.length;
  const float* qk = ws_->qk().data() + b * L * Hd;
  const float* v = ws_->v().data() + b * L * Hd;
  c.clear();
  // The prompt's buckets, hashed again here with the cache's rotations (the same ones the forward
  // used) but without a padding bucket: the cache holds real positions only.
  Buffer<int32_t> buckets(c.nh * std::max<int64_t>(n, 1), MemCategory::Workspace);
  for (int64_t h = 0; h < c.heads; ++h) {
    for (int64_t pos = 0; pos < n; ++pos) {
      normalize_key(c.key(h, pos), qk + pos * Hd + h * d, d);
      std::memcpy(c.value(h, pos), v + pos * Hd + h * d, static_cast<size_t>(d) * sizeof(float));
    }
    if (n == 0) continue;
    lsh_hash(buckets.data(), qk + h * d, Hd, c.head_rotations(h), nullptr, false, n, d, static_cast<int>(c.nh),
             cfg_.num_buckets, c.hash.data() + h * c.hash_floats);
    for (int64_t pos = 0; pos < n; ++pos)
      for (int64_t r = 0; r < c.nh; ++r)
        c.index[h * c.nh + r].append(static_cast<int32_t>(buckets[r * n + pos] - r * c.nb));
  }
  c.length = n;
}

void LshSelfAttention::decode(float* out, const float* x, int64_t rows, AttentionCache* const* caches) {
  const int64_t H = cfg_.heads, d = cfg_.head_size, Hd = H * d, D = cfg_.hidden, ch = cfg_.chunk_length;
  for (int64_t i = 0; i < rows; ++i)
    REFORMER_CHECK(caches[i]->length < caches[i]->capacity, "decoding cache is full (", caches[i]->capacity,
                   " positions); start again from a shorter context");
  Tensor& qk_all = ws_->qk();
  Tensor& v_all = ws_->v();
  Tensor& o_all = ws_->o();
  for (Tensor* t : {&qk_all, &v_all, &o_all}) t->ensure({rows, Hd}, MemCategory::Workspace);
  gemm(false, true, rows, Hd, D, 1.f, x, D, w_.query_key, D, 0.f, qk_all.data(), Hd);
  gemm(false, true, rows, Hd, D, 1.f, x, D, w_.value, D, 0.f, v_all.data(), Hd);
  ChunkAttentionOptions opt;
  opt.causal = true;
  opt.self_mask = true;  // always in LSH (spec 1.7)
  // On the calling thread: ReformerModel::decode_step runs a step on one thread (decode.cpp says why).
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t h = 0; h < H; ++h) {
      auto& c = static_cast<LshDecodeCache&>(*caches[i]);
      const int64_t t = c.length, n = t + 1, nh = c.nh;
      const float* q = qk_all.data() + i * Hd + h * d;
      float* o = o_all.data() + i * Hd + h * d;
      normalize_key(c.key(h, t), q, d);
      std::memcpy(c.value(h, t), v_all.data() + i * Hd + h * d, static_cast<size_t>(d) * sizeof(float));
      int32_t* bk = c.buckets.data() + h * nh;
      lsh_hash(bk, q, Hd, c.head_rotations(h), nullptr, false, 1, d, static_cast<int>(nh), cfg_.num_buckets,
               c.hash.data() + h * c.hash_floats);
      for (int64_t r = 0; r < nh; ++r) c.index[h * nh + r].append(static_cast<int32_t>(bk[r] - r * c.nb));
      const int32_t qpos = static_cast<int32_t>(t);
      int32_t* wpos = c.wpos.data() + h * c.window;
      float* scores = c.scores.data() + h * c.window;
      if (n <= ch) {
        // Short path (spec 1.11): every position once, keys in position order.
        for (int64_t j = 0; j < n; ++j) wpos[j] = static_cast<int32_t>(j);
        float lse;
        chunk_attention_forward(o, Hd, &lse, q, Hd, c.key(h, 0), d, c.value(h, 0), d, &qpos, wpos, nullptr, 1, n, d,
                                opt, scores);
        continue;
      }
      const int64_t per_round = (n + ch - 1) / ch, n_chunks = nh * per_round;  // chunks of L' = per_round * c
      float* wk = c.wk.data() + h * c.window * d;
      float* wv = c.wv.data() + h * c.window * d;
      float* o_round = c.o_round.data() + h * nh * d;
      float* lse_round = c.lse_round.data() + h * nh;
      for (int64_t r = 0; r < nh; ++r) {
        const int64_t chunk = r * per_round + c.index[h * nh + r].newest_rank() / ch;
        int64_t m = 0;
        for (int64_t j = chunk - cfg_.chunks_before; j <= chunk + cfg_.chunks_after; ++j) {
          const int64_t jj = (j % n_chunks + n_chunks) % n_chunks;
          const int64_t round = jj / per_round, first = (jj % per_round) * ch;
          const int64_t count = std::min(first + ch, n) - first;  // the real slots of the chunk
          c.index[h * nh + round].positions(first, count, wpos + m);
          m += count;
        }
        for (int64_t j = 0; j < m; ++j) {
          std::memcpy(wk + j * d, c.key(h, wpos[j]), static_cast<size_t>(d) * sizeof(float));
          std::memcpy(wv + j * d, c.value(h, wpos[j]), static_cast<size_t>(d) * sizeof(float));
        }
        chunk_attention_forward(o_round + r * d, d, lse_round + r, q, Hd, wk, d, wv, d, &qpos, wpos, nullptr, 1, m, d,
                                opt, scores);
      }
      if (nh == 1) {
        std::memcpy(o, o_round, static_cast<size_t>(d) * sizeof(float));
        continue;
      }
      // Rounds combined by their logsumexp exactly as the forward does (spec 1.9).
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t r = 0; r < nh; ++r) mx = std::max(mx, lse_round[r]);
      float sum = 0.f;
      for (int64_t r = 0; r < nh; ++r) sum += std::exp(lse_round[r] - mx);
      const float lse_all = mx + std::log(sum);
      std::fill(o, o + d, 0.f);
      for (int64_t r = 0; r < nh; ++r) {
        const float w = std::exp(lse_round[r] - lse_all);
        for (int64_t j = 0; j < d; ++j) o[j] += w * o_round[r * d + j];
      }
    }
  for (int64_t i = 0; i < rows; ++i) ++caches[i]->length;
  gemm(false, true, rows, D, Hd, 1.f, o_all.data(), Hd, w_.output, Hd, 0.f, out, D);
}

}  // namespace reformer
