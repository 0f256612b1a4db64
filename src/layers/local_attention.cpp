#include "layers/local_attention.h"

#include <omp.h>

#include <algorithm>

#include "ops/parallel.h"

namespace reformer {
namespace {

// The chunking of one call: chunks of c positions, n chunks, windows of w chunks (nk keys)
// starting `before` chunks back.
struct Plan {
  int64_t c, n, before, w, nk, d;
  int64_t floats_per_thread() const { return 4 * nk * d + 2 * c * nk + c * d; }
  int64_t ints_per_thread() const { return c + nk; }
};

Plan make_plan(const LocalAttentionConfig& cfg, int64_t L) {
  const int64_t c = cfg.chunk_length, d = cfg.head_size;
  // HF: a sequence that fits in one chunk gets plain attention over its L positions.
  if (L <= c) return Plan{L, 1, 0, 1, L, d};
  REFORMER_CHECK(L % c == 0, "local attention: sequence length ", L, " must be a multiple of chunk_length ", c,
                 " (or at most chunk_length); pad the sequence to a multiple of ", c);
  const int64_t w = cfg.chunks_before + 1 + cfg.chunks_after;
  return Plan{c, L / c, cfg.chunks_before, w, w * c, d};
}

// One thread's scratch, loaded with one chunk: its window's key/value rows with their positions
// and padding flags, the chunk's query positions, and where the chunk's rows start in the
// (B, L, H*d) and (B, H, L) tensors. A window that does not wrap around the sequence is a run of
// consecutive positions: its keys and values are read (and their gradients added) in place, with
// the tensors' row stride; only a wrapping window is copied into the scratch (stride d).
struct ChunkWork {
  float *k_buf, *v_buf, *dk_buf, *dv_buf, *scores, *dq;  // dk_buf, dv_buf adjacent; scores: 2 * c * nk; dq: c * d
  int32_t *qpos, *kpos;
  uint8_t* flags;
  const float *k = nullptr, *v = nullptr;  // the window's rows: in place or the buffers
  int64_t ld = 0;                          // their row stride
  bool in_place = false;
  const uint8_t* valid = nullptr;  // padding flags of the window, or nullptr without a padding mask
  int64_t head_row0 = 0;           // offset of (b, position 0, head h)
  int64_t window_off = 0;          // in place: offset of the window's first row
  int64_t q_off = 0;               // offset of the chunk's first query row
  int64_t lse_off = 0;

  ChunkWork(const Plan& p, float* f, int32_t* ints, uint8_t* fl)
      : k_buf(f), v_buf(f + p.nk * p.d), dk_buf(f + 2 * p.nk * p.d), dv_buf(f + 3 * p.nk * p.d),
        scores(f + 4 * p.nk * p.d), dq(f + 4 * p.nk * p.d + 2 * p.c * p.nk), qpos(ints), kpos(ints + p.c), flags(fl) {}

  void load(const Plan& p, const float* kall, const float* vall, const uint8_t* pad_mask, int64_t L, int64_t H,
            int64_t b, int64_t h, int64_t i) {
    const int64_t hd = H * p.d;
    head_row0 = b * L * hd + h * p.d;
    q_off = head_row0 + i * p.c * hd;
    lse_off = (b * H + h) * L + i * p.c;
    const uint8_t* pad = pad_mask ? pad_mask + b * L : nullptr;
    const int64_t first_chunk = i - p.before;
    in_place = first_chunk >= 0 && first_chunk + p.w <= p.n;
    if (in_place) {
      const int64_t pos0 = first_chunk * p.c;
      window_off = head_row0 + pos0 * hd;
      k = kall + window_off;
      v = vall + window_off;
      ld = hd;
      for (int64_t row = 0; row < p.nk; ++row) kpos[row] = static_cast<int32_t>(pos0 + row);
      valid = pad ? pad + pos0 : nullptr;
    } else {
      for (int64_t slot = 0; slot < p.w; ++slot) {
        const int64_t kc = ((i - p.before + slot) % p.n + p.n) % p.n;  // circular neighbour chunk
        for (int64_t r = 0; r < p.c; ++r) {
          const int64_t pos = kc * p.c + r, row = slot * p.c + r;
          std::copy_n(kall + head_row0 + pos * hd, p.d, k_buf + row * p.d);
          std::copy_n(vall + head_row0 + pos * hd, p.d, v_buf + row * p.d);
          kpos[row] = static_cast<int32_t>(pos);
          if (pad) flags[row] = pad[pos];
        }
      }
      k = k_buf;
      v = v_buf;
      ld = p.d;
      valid = pad ? flags : nullptr;
    }
    for (int64_t r = 0; r < p.c; ++r) qpos[r] = static_cast<int32_t>(i * p.c + r);
  }
};

}  // namespace

LocalSelfAttention::LocalSelfAttention(const LocalAttentionConfig& config, LocalAttentionWeights weights,
                                       LocalAttentionGrads grads, std::shared_ptr<QkvWorkspace> ws)
    : QkvSelfAttention(config.hidden, config.heads, config.head_size, config.causal, config.dropout, weights, grads,
                       std::move(ws)),
      config_(config) {
  REFORMER_CHECK(config.chunk_length > 0, "local attention chunk_length must be positive, got ", config.chunk_length);
  REFORMER_CHECK(config.chunks_before >= 0 && config.chunks_after >= 0,
                 "local attention chunks_before/chunks_after must be >= 0, got ", config.chunks_before, "/",
                 config.chunks_after);
}

void LocalSelfAttention::ensure_scratch(int64_t floats, int64_t ints, int64_t flags) {
  const int64_t threads = omp_get_max_threads();
  scratch_.ensure(threads * floats, MemCategory::Workspace);
  positions_.ensure(threads * ints, MemCategory::Workspace);
  valid_.ensure(threads * flags, MemCategory::Workspace);
}

int64_t LocalSelfAttention::core_workspace_bytes() const {
  return static_cast<int64_t>(scratch_.bytes() + positions_.bytes() + valid_.bytes());
}

void LocalSelfAttention::attend(float* o, float* lse, const float* q, const float* k, const float* v,
                                const AttentionCall& call) {
  const Plan p = make_plan(config_, call.length);
  ensure_scratch(p.floats_per_thread(), p.ints_per_thread(), p.nk);
  const int64_t H = heads_, hd = H * p.d;
  const bool parallel = call.batch * H * p.n * p.c * p.nk * p.d >= kOmpMinWork;  // fork/join only when it pays
#pragma omp parallel if (parallel)
  {
    const int tid = omp_get_thread_num();
    ChunkWork cw(p, scratch_.data() + tid * p.floats_per_thread(), positions_.data() + tid * p.ints_per_thread(),
                 valid_.data() + tid * p.nk);
#pragma omp for collapse(3) schedule(static)
    for (int64_t b = 0; b < call.batch; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < p.n; ++i) {
          cw.load(p, k, v, call.pad_mask, call.length, H, b, h, i);
          ChunkAttentionOptions opt = chunk_options(call, b, h);
          opt.dropout_base = static_cast<uint64_t>(i * p.c * p.nk);
          chunk_attention_forward(o + cw.q_off, hd, lse + cw.lse_off, q + cw.q_off, hd, cw.k, cw.ld, cw.v, cw.ld,
                                  cw.qpos, cw.kpos, cw.valid, p.c, p.nk, p.d, opt, cw.scores);
        }
  }
}

void LocalSelfAttention::attend_backward(float* q_to_dq, float* dk, float* dv, const float* dO,
                                         const float* row_dlse, const float* lse, const float* k, const float* v,
                                         const AttentionCall& call) {
  const Plan p = make_plan(config_, call.length);
  ensure_scratch(p.floats_per_thread(), p.ints_per_thread(), p.nk);
  const int64_t H = heads_, hd = H * p.d;
  const bool parallel = call.batch * H * p.n * p.c * p.nk * p.d >= kOmpMinWork;  // fork/join only when it pays
  const int64_t total = call.batch * call.length * hd;
  float* q = q_to_dq;  // a chunk's query rows are read by that chunk only, then replaced by dq
  std::fill_n(dk, total, 0.f);
  std::fill_n(dv, total, 0.f);
  // Windows overlap, so two chunks whose windows share a key chunk must not add into dk/dv at the
  // same time. Colour r < w holds chunks r, r + w, r + 2w, ... below n_full (pairwise at least w
  // apart, also around the circle, hence disjoint windows); each chunk from n_full on has a colour
  // of its own. Colours run one after another, the chunks of a colour in parallel; the sums are
  // deterministic.
  const int64_t n_full = p.n / p.w * p.w;
  const int64_t colours = p.w + (p.n - n_full);
#pragma omp parallel if (parallel)
  {
    const int tid = omp_get_thread_num();
    ChunkWork cw(p, scratch_.data() + tid * p.floats_per_thread(), positions_.data() + tid * p.ints_per_thread(),
                 valid_.data() + tid * p.nk);
    for (int64_t colour = 0; colour < colours; ++colour) {
      const int64_t members = colour < p.w ? n_full / p.w : 1;
#pragma omp for collapse(3) schedule(static)
      for (int64_t b = 0; b < call.batch; ++b)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t m = 0; m < members; ++m) {
            const int64_t i = colour < p.w ? colour + m * p.w : n_full + (colour - p.w);
            cw.load(p, k, v, call.pad_mask, call.length, H, b, h, i);
            ChunkAttentionOptions opt = chunk_options(call, b, h);
            opt.dropout_base = static_cast<uint64_t>(i * p.c * p.nk);
            // An in-place window adds into dk and dv directly (its colour's windows are disjoint);
            // a wrapping one into the zeroed buffers, added to its rows after.
            float* wdk = cw.in_place ? dk + cw.window_off : cw.dk_buf;
            float* wdv = cw.in_place ? dv + cw.window_off : cw.dv_buf;
            if (!cw.in_place) std::fill_n(cw.dk_buf, 2 * p.nk * p.d, 0.f);  // the window's dk and dv
            std::fill_n(cw.dq, p.c * p.d, 0.f);
            chunk_attention_backward(cw.dq, p.d, wdk, cw.ld, wdv, cw.ld, dO + cw.q_off, hd, row_dlse + cw.lse_off,
                                     nullptr, 0, lse + cw.lse_off, q + cw.q_off, hd, cw.k, cw.ld, cw.v, cw.ld,
                                     cw.qpos, cw.kpos, cw.valid, p.c, p.nk, p.d, opt, cw.scores);
            for (int64_t r = 0; r < p.c; ++r) std::copy_n(cw.dq + r * p.d, p.d, q + cw.q_off + r * hd);
            if (cw.in_place) continue;
            for (int64_t row = 0; row < p.nk; ++row) {
              float* dk_row = dk + cw.head_row0 + cw.kpos[row] * hd;
              float* dv_row = dv + cw.head_row0 + cw.kpos[row] * hd;
              for (int64_t e = 0; e < p.d; ++e) {
                dk_row[e] += cw.dk_buf[row * p.d + e];
                dv_row[e] += cw.dv_buf[row * p.d + e];
              }
            }
          }
    }
  }
}

int64_t LocalSelfAttention::decode_keep(int64_t capacity) const {
  return std::min(capacity, (config_.chunks_before + 1) * config_.chunk_length);
}

int64_t LocalSelfAttention::decode_first_key(int64_t t) const {
  // A sequence of at most one chunk is attended whole (make_plan), which is the same set.
  return std::max<int64_t>(0, (t / config_.chunk_length - config_.chunks_before) * config_.chunk_length);
}

}  // namespace reformer
