#include "support/lsh_reference.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "kernels/cpu/chunk_attention.h"
#include "reformer/rng.h"

namespace reformer::test {
namespace {

using Matrix = std::vector<std::vector<double>>;  // rows of a (L x d) head projection

Matrix project(const float* x, const float* w, int64_t L, int64_t D, int64_t h, int64_t d) {
  Matrix m(L, std::vector<double>(d, 0.0));
  for (int64_t t = 0; t < L; ++t)
    for (int64_t j = 0; j < d; ++j)
      for (int64_t k = 0; k < D; ++k) m[t][j] += static_cast<double>(x[t * D + k]) * w[(h * d + j) * D + k];
  return m;
}

std::vector<double> normalized_key(const std::vector<double>& q) {
  double ms = 0;
  for (double v : q) ms += v * v;
  ms /= q.size();
  std::vector<double> k(q.size());
  for (size_t j = 0; j < q.size(); ++j) k[j] = q[j] / std::sqrt(ms + 1e-6) / std::sqrt(static_cast<double>(q.size()));
  return k;
}

// Hugging Face keeps every logsumexp in fp32 and then forms exp(x - lse) (spec 1.8, 1.9). For a
// row or round combination near the self-mask value -1e5 the fp32 rounding of lse (ulp 0.0078) is
// visible in the result, so the reference rounds lse to fp32 too; elsewhere it changes nothing.
double fp32_logsumexp(const std::vector<double>& x) {
  const double mx = *std::max_element(x.begin(), x.end());
  double sum = 0;
  for (double v : x) sum += std::exp(v - mx);
  return static_cast<float>(mx + std::log(sum));
}

// One round of one query: its logsumexp and output.
struct Attended {
  double lse;
  std::vector<double> o;
};

}  // namespace

int64_t lsh_bucket_reference(const double* y, const std::vector<int64_t>& factors) {
  int64_t bucket = 0, stride = 1;
  for (int64_t f : factors) {
    std::vector<double> cat;
    for (int64_t k = 0; k < f / 2; ++k) cat.push_back(y[k]);
    for (int64_t k = 0; k < f / 2; ++k) cat.push_back(-y[k]);
    bucket += stride * (std::max_element(cat.begin(), cat.end()) - cat.begin());  // first maximum
    y += f / 2;
    stride *= f;
  }
  return bucket;
}

std::vector<double> lsh_attention_reference(const LshAttentionConfig& cfg, int num_hashes, const float* rotations,
                                            const float* x, const float* w_query_key, const float* w_value,
                                            const float* w_output, const AttentionCall& call) {
  const int64_t B = call.batch, L = call.length, D = cfg.hidden, H = cfg.heads, d = cfg.head_size;
  const bool hashed = L > cfg.chunk_length;
  const int64_t nh = hashed ? num_hashes : 1;
  const int64_t c = hashed ? cfg.chunk_length : L;
  const int64_t before = hashed ? cfg.chunks_before : 0, after = hashed ? cfg.chunks_after : 0;
  const int64_t window = c * (1 + before + after), n_chunks = nh * L / c;
  int64_t nb = 1, rot_cols = 0;
  for (int64_t f : cfg.num_buckets) nb *= f, rot_cols += f / 2;
  bool any_pad = false;
  for (int64_t i = 0; call.pad_mask && i < B * L; ++i) any_pad |= call.pad_mask[i] == 0;
  const int64_t nb_eff = nb + (any_pad ? 1 : 0);

  std::vector<double> out(B * L * D, 0.0);
  for (int64_t b = 0; b < B; ++b) {
    const float* xb = x + b * L * D;
    const uint8_t* valid = call.pad_mask ? call.pad_mask + b * L : nullptr;
    for (int64_t h = 0; h < H; ++h) {
      const Matrix qk = project(xb, w_query_key, L, D, h, d), v = project(xb, w_value, L, D, h, d);
      // sorted[s] = t = r*L + pos; identity on the short path.
      std::vector<int64_t> sorted(nh * L);
      std::iota(sorted.begin(), sorted.end(), 0);
      if (hashed) {
        std::vector<int64_t> key(nh * L);
        for (int64_t r = 0; r < nh; ++r)
          for (int64_t t = 0; t < L; ++t) {
            std::vector<double> y(rot_cols, 0.0);
            for (int64_t col = 0; col < rot_cols; ++col)
              for (int64_t j = 0; j < d; ++j) y[col] += qk[t][j] * rotations[((h * d + j) * nh + r) * rot_cols + col];
            int64_t bucket = (valid && !valid[t] && any_pad) ? nb : lsh_bucket_reference(y.data(), cfg.num_buckets);
            bucket += r * nb_eff;
            key[r * L + t] = (nh * L) * bucket + (r * L + t);  // Hugging Face's _stable_argsort key
          }
        std::sort(sorted.begin(), sorted.end(), [&](int64_t a, int64_t z) { return key[a] < key[z]; });
      }
      std::vector<int64_t> slot_of(nh * L);
      for (int64_t s = 0; s < nh * L; ++s) slot_of[sorted[s]] = s;

      const uint64_t stream = rng_stream(RngPurpose::AttentionDropout,
                                         {call.step, static_cast<uint64_t>(call.layer), static_cast<uint64_t>(b),
                                          static_cast<uint64_t>(h)});
      const double drop = call.training ? cfg.dropout : 0.0;
      for (int64_t pos = 0; pos < L; ++pos) {
        std::vector<Attended> rounds;
        for (int64_t r = 0; r < nh; ++r) {
          const int64_t s = slot_of[r * L + pos], chunk = s / c, row = s % c;
          std::vector<double> logits(window);
          std::vector<int64_t> kpos(window);
          for (int64_t j = 0; j < window; ++j) {
            const int64_t kchunk = ((chunk - before + j / c) % n_chunks + n_chunks) % n_chunks;
            const int64_t kp = sorted[kchunk * c + j % c] % L;
            const std::vector<double> k = normalized_key(qk[kp]);
            double logit = 0;
            for (int64_t e = 0; e < d; ++e) logit += qk[pos][e] * k[e];
            if ((cfg.causal && kp > pos) || (valid && !valid[kp])) logit = kMaskValue;
            if (kp == pos) logit = kSelfMaskValue;
            logits[j] = logit;
            kpos[j] = kp;
          }
          Attended a{fp32_logsumexp(logits), std::vector<double>(d, 0.0)};
          for (int64_t j = 0; j < window; ++j) {
            double p = std::exp(logits[j] - a.lse);
            if (drop > 0) {
              const uint64_t index = static_cast<uint64_t>(chunk * c * window + row * window + j);
              p = rng_keep(call.seed, stream, index, static_cast<float>(drop)) ? p / (1.0 - drop) : 0.0;
            }
            for (int64_t e = 0; e < d; ++e) a.o[e] += p * v[kpos[j]][e];
          }
          rounds.push_back(a);
        }
        std::vector<double> lses;
        for (const Attended& a : rounds) lses.push_back(a.lse);
        const double lse_all = fp32_logsumexp(lses);
        for (const Attended& a : rounds) {
          const double w = std::exp(a.lse - lse_all);
          for (int64_t k = 0; k < D; ++k)
            for (int64_t e = 0; e < d; ++e)
              out[(b * L + pos) * D + k] += w * a.o[e] * w_output[k * (H * d) + h * d + e];
        }
      }
    }
  }
  return out;
}

}  // namespace reformer::test
