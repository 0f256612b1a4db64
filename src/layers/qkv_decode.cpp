// Incremental decoding for attention with separate query/key/value projections (local and full
// attention): the new token's query meets the cached keys [decode_first_key(t), t] of its own
// sequence, which are exactly the keys the forward lets position t see (causal mask), in the same
// order, so a cached step equals the forward at that position up to rounding.
#include <algorithm>
#include <cstring>

#include "kernels/cpu/gemm.h"
#include "layers/attention_projections.h"

namespace reformer {
namespace {

// Each head's keys and values (scaled as the forward scales them) of the last `keep` positions,
// position p at ring row p % keep; per-head scratch for one query's scores and, when the ring can
// wrap, a gathered copy of the window.
struct KvCache : AttentionCache {
  int64_t heads = 0, d = 0, keep = 0;
  Buffer<float> k, v;         // (H, keep, d)
  Buffer<float> gk, gv;       // (H, keep, d), only when keep < capacity
  Buffer<float> scores;       // (H, keep)
  Buffer<int32_t> kpos;       // (H, keep)

  int64_t bytes() const override {
    return static_cast<int64_t>(k.bytes() + v.bytes() + gk.bytes() + gv.bytes() + scores.bytes() + kpos.bytes());
  }
  float* key(int64_t h, int64_t pos) { return k.data() + (h * keep + pos % keep) * d; }
  float* value(int64_t h, int64_t pos) { return v.data() + (h * keep + pos % keep) * d; }
};

constexpr MemCategory kCache = MemCategory::DecodeState;

}  // namespace

std::unique_ptr<AttentionCache> QkvSelfAttention::make_cache(int64_t capacity, const AttentionCall&) const {
  REFORMER_CHECK(capacity >= 1, "decoding cache capacity ", capacity, " must be at least 1");
  REFORMER_CHECK(causal_, "incremental decoding needs a causal model (is_decoder: true)");
  auto c = std::make_unique<KvCache>();
  c->capacity = capacity;
  c->heads = heads_;
  c->d = head_size_;
  c->keep = decode_keep(capacity);
  const int64_t n = heads_ * c->keep * head_size_;
  c->k = Buffer<float>(n, kCache);
  c->v = Buffer<float>(n, kCache);
  if (c->keep < capacity) {
    c->gk = Buffer<float>(n, kCache);
    c->gv = Buffer<float>(n, kCache);
  }
  c->scores = Buffer<float>(heads_ * c->keep, kCache);
  c->kpos = Buffer<int32_t>(heads_ * c->keep, kCache);
  return c;
}

void QkvSelfAttention::fill_cache(AttentionCache& cache, const AttentionCall& call, int64_t b, int64_t n) const {
  auto& c = static_cast<KvCache&>(cache);
  REFORMER_CHECK(b >= 0 && b < call.batch && n >= 0 && n <= call.length && n <= c.capacity, "fill_cache: positions ",
                 n, " of batch element ", b, " do not fit a call of batch ", call.batch, ", length ", call.length,
                 " and a cache of ", c.capacity);
  const int64_t hd = heads_ * head_size_, d = head_size_;
  const float* k = ws_->k.data() + b * call.length * hd;
  const float* v = ws_->v.data() + b * call.length * hd;
  for (int64_t pos = std::max<int64_t>(0, n - c.keep); pos < n; ++pos)
    for (int64_t h = 0; h < heads_; ++h) {
      std::memcpy(c.key(h, pos), k + pos * hd + h * d, static_cast<size_t>(d) * sizeof(float));
      std::memcpy(c.value(h, pos), v + pos * hd + h * d, static_cast<size_t>(d) * sizeof(float));
    }
  c.length = n;
}

void QkvSelfAttention::decode(float* out, const float* x, int64_t rows, AttentionCache* const* caches) {
  const int64_t hd = heads_ * head_size_, d = head_size_, D = hidden_;
  for (int64_t i = 0; i < rows; ++i)
    REFORMER_CHECK(caches[i]->length < caches[i]->capacity, "decoding cache is full (", caches[i]->capacity,
                   " positions); start again from a shorter context");
  for (Tensor* t : {&ws_->q, &ws_->k, &ws_->v, &ws_->o}) t->ensure({rows, hd}, MemCategory::Workspace);
  gemm(false, true, rows, hd, D, 1.f, x, D, w_.query, D, 0.f, ws_->q.data(), hd);
  gemm(false, true, rows, hd, D, key_scale(), x, D, w_.key, D, 0.f, ws_->k.data(), hd);
  gemm(false, true, rows, hd, D, 1.f, x, D, w_.value, D, 0.f, ws_->v.data(), hd);
  // On the calling thread: ReformerModel::decode_step runs a step on one thread (decode.cpp says why).
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t h = 0; h < heads_; ++h) {
      auto& c = static_cast<KvCache&>(*caches[i]);
      const int64_t t = c.length;
      std::memcpy(c.key(h, t), ws_->k.data() + i * hd + h * d, static_cast<size_t>(d) * sizeof(float));
      std::memcpy(c.value(h, t), ws_->v.data() + i * hd + h * d, static_cast<size_t>(d) * sizeof(float));
      const int64_t first = decode_first_key(t), m = t - first + 1;
      const float* k = c.key(h, first);
      const float* v = c.value(h, first);
      if (first % c.keep + m > c.keep) {  // the window wraps around the ring: gather it in order
        float* gk = c.gk.data() + h * c.keep * d;
        float* gv = c.gv.data() + h * c.keep * d;
        for (int64_t j = 0; j < m; ++j) {
          std::memcpy(gk + j * d, c.key(h, first + j), static_cast<size_t>(d) * sizeof(float));
          std::memcpy(gv + j * d, c.value(h, first + j), static_cast<size_t>(d) * sizeof(float));
        }
        k = gk;
        v = gv;
      }
      int32_t* kpos = c.kpos.data() + h * c.keep;
      for (int64_t j = 0; j < m; ++j) kpos[j] = static_cast<int32_t>(first + j);
      const int32_t qpos = static_cast<int32_t>(t);
      float lse;
      ChunkAttentionOptions opt;  // every key is at or before t: no mask applies
      chunk_attention_forward(ws_->o.data() + i * hd + h * d, hd, &lse, ws_->q.data() + i * hd + h * d, hd, k, d, v,
                              d, &qpos, kpos, nullptr, 1, m, d, opt, c.scores.data() + h * c.keep);
    }
  for (int64_t i = 0; i < rows; ++i) ++caches[i]->length;
  gemm(false, true, rows, D, hd, 1.f, ws_->o.data(), hd, w_.output, hd, 0.f, out, D);
}

}  // namespace reformer
