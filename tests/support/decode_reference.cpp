#include "support/decode_reference.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/lsh_hash.h"
#include "support/attention_reference.h"
#include "support/lsh_reference.h"
#include "reformer/rng.h"

namespace reformer::test {
namespace {

const float* param(ReformerModel& m, const std::string& name) {
  NamedParameter* p = m.find_parameter(name);
  REFORMER_CHECK(p, "reference_decode: no parameter ", name);
  return p->param->data();
}

std::vector<double> layer_norm(const std::vector<double>& x, const float* w, const float* b, double eps) {
  const size_t n = x.size();
  double mean = 0, var = 0;
  for (double v : x) mean += v;
  mean /= n;
  for (double v : x) var += (v - mean) * (v - mean);
  var /= n;
  std::vector<double> y(n);
  for (size_t j = 0; j < n; ++j) y[j] = (x[j] - mean) / std::sqrt(var + eps) * w[j] + b[j];
  return y;
}

// y = W x + b, W: (out, in) torch layout.
std::vector<double> dense(const std::vector<double>& x, const float* w, const float* b, int64_t out) {
  const int64_t in = static_cast<int64_t>(x.size());
  std::vector<double> y(out);
  for (int64_t i = 0; i < out; ++i) {
    double s = b ? b[i] : 0.0;
    for (int64_t j = 0; j < in; ++j) s += static_cast<double>(w[i * in + j]) * x[j];
    y[i] = s;
  }
  return y;
}

double activation(const std::string& act, double x) {
  if (act == "relu") return x > 0 ? x : 0;
  if (act == "gelu") return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
  REFORMER_CHECK(false, "reference_decode: activation ", act, " is not modelled");
  return 0;
}

std::vector<double> embedding(ReformerModel& m, int32_t id, int64_t t) {
  const ReformerConfig& c = m.config();
  const int64_t D = c.hidden_size;
  const float* we = param(m, "reformer.embeddings.word_embeddings.weight");
  std::vector<double> e(we + id * D, we + (id + 1) * D);
  if (!c.axial_pos_embds) {
    const float* table = param(m, "reformer.embeddings.position_embeddings.embedding.weight");
    for (int64_t j = 0; j < D; ++j) e[j] += table[t * D + j];
    return e;
  }
  // pos_emb[t] = concat(W_a[i_a]) with t = (i_1 n_2 + i_2) n_3 + i_3 ... (spec 4).
  const size_t k = c.axial_pos_shape.size();
  std::vector<int64_t> index(k);
  int64_t rest = t;
  for (size_t a = k; a-- > 0;) {
    index[a] = rest % c.axial_pos_shape[a];
    rest /= c.axial_pos_shape[a];
  }
  int64_t col = 0;
  for (size_t a = 0; a < k; ++a) {
    const float* w = param(m, "reformer.embeddings.position_embeddings.weights." + std::to_string(a));
    const int64_t da = c.axial_pos_embds_dim[a];
    for (int64_t j = 0; j < da; ++j) e[col + j] += w[index[a] * da + j];
    col += da;
  }
  return e;
}

// The newest position's attention output of layer l from its input history (t + 1 rows of D).
std::vector<double> attention(ReformerModel& m, int l, const std::vector<float>& history, int64_t t, uint64_t seed) {
  const ReformerConfig& c = m.config();
  const int64_t D = c.hidden_size, H = c.num_attention_heads, d = c.attention_head_size, n = t + 1;
  const std::string p = "reformer.encoder.layers." + std::to_string(l) + ".attention.";
  const std::string& type = c.attn_layers[l];
  AttentionCall call;
  call.batch = 1;
  call.seed = seed;
  call.layer = l;
  if (type == "lsh") {
    LshAttentionConfig a;
    a.hidden = D;
    a.heads = H;
    a.head_size = d;
    a.chunk_length = c.lsh_attn_chunk_length;
    a.chunks_before = c.lsh_num_chunks_before;
    a.chunks_after = c.lsh_num_chunks_after;
    a.num_hashes = static_cast<int>(c.num_hashes);
    a.num_buckets = c.num_buckets;
    a.causal = true;
    // The forward over positions 0..t, padded with masked slots to a multiple of the chunk.
    const int64_t L = n <= a.chunk_length ? n : (n + a.chunk_length - 1) / a.chunk_length * a.chunk_length;
    std::vector<float> x(static_cast<size_t>(L * D), 0.f);
    std::copy(history.begin(), history.begin() + n * D, x.begin());
    std::vector<uint8_t> mask(static_cast<size_t>(L), 0);
    std::fill(mask.begin(), mask.begin() + n, 1);
    call.length = L;
    call.pad_mask = L > n ? mask.data() : nullptr;
    const int64_t per_head = d * a.num_hashes * lsh_rotation_columns(a.num_buckets);
    std::vector<float> rot(static_cast<size_t>(H * per_head));
    for (int64_t h = 0; h < H; ++h)
      rng_fill_normal(rot.data() + h * per_head, per_head, seed,
                      rng_stream(RngPurpose::Rotations, {0, static_cast<uint64_t>(l), static_cast<uint64_t>(h)}));
    const std::vector<double> out = lsh_attention_reference(
        a, a.num_hashes, rot.data(), x.data(), param(m, p + "self_attention.query_key.weight"),
        param(m, p + "self_attention.value.weight"), param(m, p + "output.dense.weight"), call);
    return {out.begin() + t * D, out.begin() + (t + 1) * D};
  }
  // Local or full attention over positions 0..t, the newest row (its window is earlier positions only).
  const bool local = type == "local";
  const int64_t chunk = local ? c.local_attn_chunk_length : n;
  // Padded with (causally masked) later rows to at least 2 * chunks_before + 1 chunks: then the
  // circular look-back of the first chunks only reaches later, masked chunks, as in a long forward
  // (a shorter one would wrap onto earlier chunks and count their keys twice).
  const int64_t before = local ? c.local_num_chunks_before : 0;
  const int64_t L = n <= chunk ? n : std::max((n + chunk - 1) / chunk, 2 * before + 1) * chunk;
  std::vector<float> x(static_cast<size_t>(L * D), 0.f);
  std::copy(history.begin(), history.begin() + n * D, x.begin());
  ReferenceAttentionConfig r{1, L, D, H, d, local ? chunk : L, before, 0, true,
                             nullptr, 0.f, seed, 0, l};
  std::vector<float> out(static_cast<size_t>(L * D));
  reference_qkv_attention(out.data(), x.data(), param(m, p + "self_attention.query.weight"),
                          param(m, p + "self_attention.key.weight"), param(m, p + "self_attention.value.weight"),
                          param(m, p + "output.dense.weight"), r);
  return {out.begin() + t * D, out.begin() + (t + 1) * D};
}

}  // namespace

std::vector<double> reference_decode(ReformerModel& m, const std::vector<int32_t>& ids, uint64_t seed) {
  const ReformerConfig& c = m.config();
  const int64_t D = c.hidden_size, F = c.feed_forward_size, V = c.vocab_size;
  const int layers = static_cast<int>(c.num_layers());
  std::vector<std::vector<float>> history(layers);
  std::vector<double> logits;
  for (int64_t t = 0; t < static_cast<int64_t>(ids.size()); ++t) {
    std::vector<double> x1 = embedding(m, ids[t], t), x2 = x1;
    for (int l = 0; l < layers; ++l) {
      const std::string p = "reformer.encoder.layers." + std::to_string(l) + ".";
      const std::vector<double> a =
          layer_norm(x2, param(m, p + "attention.layer_norm.weight"), param(m, p + "attention.layer_norm.bias"),
                     c.layer_norm_eps);
      history[l].insert(history[l].end(), a.begin(), a.end());
      const std::vector<double> f = attention(m, l, history[l], t, seed);
      for (int64_t j = 0; j < D; ++j) x1[j] += f[j];
      std::vector<double> h = dense(layer_norm(x1, param(m, p + "feed_forward.layer_norm.weight"),
                                               param(m, p + "feed_forward.layer_norm.bias"), c.layer_norm_eps),
                                    param(m, p + "feed_forward.dense.dense.weight"),
                                    param(m, p + "feed_forward.dense.dense.bias"), F);
      for (double& v : h) v = activation(c.hidden_act, v);
      const std::vector<double> g =
          dense(h, param(m, p + "feed_forward.output.dense.weight"), param(m, p + "feed_forward.output.dense.bias"), D);
      for (int64_t j = 0; j < D; ++j) x2[j] += g[j];
    }
    std::vector<double> cat(x1);
    cat.insert(cat.end(), x2.begin(), x2.end());
    const std::vector<double> y = dense(
        layer_norm(cat, param(m, "reformer.encoder.layer_norm.weight"), param(m, "reformer.encoder.layer_norm.bias"),
                   c.layer_norm_eps),
        param(m, "lm_head.decoder.weight"), param(m, "lm_head.decoder.bias"), V);
    logits.insert(logits.end(), y.begin(), y.end());
  }
  return logits;
}

}  // namespace reformer::test
