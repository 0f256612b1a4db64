#include "support/attention_reference.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cpu/chunk_attention.h"
#include "reformer/memory.h"
#include "reformer/rng.h"
#include "support/gradcheck.h"

namespace reformer::test {
namespace {

// Softmax attention of one query over gathered keys, in double. scores: masked logits (in),
// overwritten by the (dropped) probabilities. Returns the logsumexp.
double softmax_row(std::vector<double>& scores, float dropout, uint64_t seed, uint64_t stream, uint64_t base) {
  const double mx = *std::max_element(scores.begin(), scores.end());
  double sum = 0;
  for (double s : scores) sum += std::exp(s - mx);
  const double lse = mx + std::log(sum);
  for (size_t j = 0; j < scores.size(); ++j) {
    double p = std::exp(scores[j] - lse);
    if (dropout > 0.f) p = rng_keep(seed, stream, base + j, dropout) ? p / (1.0 - dropout) : 0.0;
    scores[j] = p;
  }
  return lse;
}

double dot(const float* a, const float* b, int64_t d) {
  double s = 0;
  for (int64_t c = 0; c < d; ++c) s += static_cast<double>(a[c]) * b[c];
  return s;
}

// y (rows x out) = x W^T in double, stored as float.
std::vector<float> linear(const float* x, const float* w, int64_t rows, int64_t in, int64_t out, double scale) {
  std::vector<float> y(rows * out);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) y[r * out + o] = static_cast<float>(scale * dot(x + r * in, w + o * in, in));
  return y;
}

}  // namespace

void reference_block_attention(float* o, float* lse, const float* q, const float* k, const float* v,
                               const int32_t* qpos, const int32_t* kpos, const uint8_t* key_valid,
                               int64_t nq, int64_t nk, int64_t d, bool causal, bool self_mask, float dropout,
                               uint64_t seed, uint64_t stream, uint64_t dropout_base) {
  std::vector<double> s(nk);
  for (int64_t i = 0; i < nq; ++i) {
    for (int64_t j = 0; j < nk; ++j) {
      s[j] = dot(q + i * d, k + j * d, d);
      if ((causal && kpos[j] > qpos[i]) || (key_valid && !key_valid[j])) s[j] = kMaskValue;
      if (self_mask && kpos[j] == qpos[i]) s[j] = kSelfMaskValue;
    }
    lse[i] = static_cast<float>(softmax_row(s, dropout, seed, stream, dropout_base + i * nk));
    for (int64_t c = 0; c < d; ++c) {
      double acc = 0;
      for (int64_t j = 0; j < nk; ++j) acc += s[j] * v[j * d + c];
      o[i * d + c] = static_cast<float>(acc);
    }
  }
}

void reference_qkv_attention(float* out, const float* x, const float* wq, const float* wk, const float* wv,
                             const float* wo, const ReferenceAttentionConfig& cfg) {
  const int64_t B = cfg.batch, L = cfg.length, D = cfg.hidden, H = cfg.heads, d = cfg.head_size, HD = H * d;
  const std::vector<float> q = linear(x, wq, B * L, D, HD, 1.0);
  const std::vector<float> k = linear(x, wk, B * L, D, HD, 1.0 / std::sqrt(static_cast<double>(d)));
  const std::vector<float> v = linear(x, wv, B * L, D, HD, 1.0);
  std::vector<float> o(B * L * HD);
  const bool full = L <= cfg.chunk;
  const int64_t c = full ? L : cfg.chunk;
  const int64_t n_chunks = L / c;
  const int64_t w = full ? 1 : cfg.before + 1 + cfg.after;
  const int64_t nk = w * c;
  std::vector<double> s(nk);
  std::vector<int64_t> keys(nk);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const uint64_t stream = rng_stream(RngPurpose::AttentionDropout,
                                         {cfg.step, static_cast<uint64_t>(cfg.layer), static_cast<uint64_t>(b),
                                          static_cast<uint64_t>(h)});
      for (int64_t t = 0; t < L; ++t) {
        const int64_t i = t / c;
        for (int64_t slot = 0; slot < w; ++slot) {
          const int64_t kc = full ? 0 : ((i - cfg.before + slot) % n_chunks + n_chunks) % n_chunks;
          for (int64_t r = 0; r < c; ++r) keys[slot * c + r] = kc * c + r;
        }
        const float* qt = q.data() + (b * L + t) * HD + h * d;
        for (int64_t j = 0; j < nk; ++j) {
          const int64_t kp = keys[j];
          s[j] = dot(qt, k.data() + (b * L + kp) * HD + h * d, d);
          if ((cfg.causal && kp > t) || (cfg.pad_mask && !cfg.pad_mask[b * L + kp])) s[j] = kMaskValue;
        }
        softmax_row(s, cfg.dropout, cfg.seed, stream, i * c * nk + (t % c) * nk);
        for (int64_t e = 0; e < d; ++e) {
          double acc = 0;
          for (int64_t j = 0; j < nk; ++j) acc += s[j] * v[(b * L + keys[j]) * HD + h * d + e];
          o[(b * L + t) * HD + h * d + e] = static_cast<float>(acc);
        }
      }
    }
  const std::vector<float> y = linear(o.data(), wo, B * L, HD, D, 1.0);
  std::copy(y.begin(), y.end(), out);
}

AttentionCall test_call(int64_t batch, int64_t length, const uint8_t* pad_mask, bool training) {
  AttentionCall call;
  call.batch = batch;
  call.length = length;
  call.pad_mask = pad_mask;
  call.training = training;
  call.seed = 42;
  call.step = 3;
  call.layer = 1;
  return call;
}

std::vector<uint8_t> right_padding(int64_t batch, int64_t length, int64_t padded) {
  std::vector<uint8_t> mask(batch * length, 1);
  for (int64_t t = std::max<int64_t>(1, length - padded); t < length; ++t) mask[(batch - 1) * length + t] = 0;
  return mask;
}

QkvParams::QkvParams(int64_t hidden_, int64_t heads, int64_t head_size, uint64_t seed) : hidden(hidden_) {
  const int64_t n = hidden * heads * head_size;
  uint64_t s = seed;
  for (std::vector<float>* w : {&wq, &wk, &wv, &wo}) {
    w->resize(n);
    fill_uniform(w->data(), n, s++, -0.5f, 0.5f);
  }
  for (std::vector<float>* g : {&gq, &gk, &gv, &go}) g->assign(n, 0.f);
}

void expect_qkv_layer_gradients_ok(AttentionLayer& layer, QkvParams& params, std::vector<float>& x,
                                   const AttentionCall& call) {
  const int64_t n_out = call.batch * call.length * params.hidden;
  std::vector<float> out(n_out), w(n_out), dx(n_out), recomputed(n_out);
  fill_uniform(w.data(), n_out, 99);
  layer.forward(out.data(), x.data(), call);
  for (std::vector<float>* g : {&params.gq, &params.gk, &params.gv, &params.go}) std::fill(g->begin(), g->end(), 0.f);
  layer.backward(dx.data(), recomputed.data(), w.data(), x.data(), call);
  EXPECT_EQ(recomputed, out) << "backward's recomputed output differs from forward's";
  auto loss = [&] {
    layer.forward(out.data(), x.data(), call);
    return weighted_sum(out.data(), w.data(), n_out);
  };
  EXPECT_GRAD_OK(loss, x.data(), n_out, dx.data(), "x");
  EXPECT_GRAD_OK(loss, params.wq.data(), static_cast<int64_t>(params.wq.size()), params.gq.data(), "Wq");
  EXPECT_GRAD_OK(loss, params.wk.data(), static_cast<int64_t>(params.wk.size()), params.gk.data(), "Wk");
  EXPECT_GRAD_OK(loss, params.wv.data(), static_cast<int64_t>(params.wv.size()), params.gv.data(), "Wv");
  EXPECT_GRAD_OK(loss, params.wo.data(), static_cast<int64_t>(params.wo.size()), params.go.data(), "Wo");
}

int64_t peak_bytes_forward_backward(const std::function<std::unique_ptr<AttentionLayer>()>& make, int64_t hidden,
                                    const AttentionCall& call) {
  const int64_t n = call.batch * call.length * hidden;
  std::vector<float> x(n), out(n), dout(n), dx(n);
  fill_uniform(x.data(), n, 5);
  fill_uniform(dout.data(), n, 6);
  mem_reset_peaks();
  const int64_t before = mem_stats().live_total;
  {
    std::unique_ptr<AttentionLayer> layer = make();
    layer->forward(out.data(), x.data(), call);
    layer->backward(dx.data(), out.data(), dout.data(), x.data(), call);
  }
  return mem_stats().peak_total - before;
}

}  // namespace reformer::test
