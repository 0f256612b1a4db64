#include "reformer/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "reformer/error.h"
#include "reformer/rng.h"

namespace reformer {

void validate(const SamplingOptions& o) {
  REFORMER_CHECK(std::isfinite(o.temperature) && o.temperature >= 0, "temperature ", o.temperature,
                 " must be >= 0 (0 = greedy, 1 = the model's distribution)");
  REFORMER_CHECK(o.top_k >= 0, "top-k ", o.top_k, " must be >= 0 (0 = no top-k filtering)");
  REFORMER_CHECK(o.top_p > 0 && o.top_p <= 1, "top-p ", o.top_p, " must be in (0, 1] (1 = no nucleus filtering)");
}

Sampler::Sampler(const SamplingOptions& options, uint64_t seed) : options_(options), seed_(seed) { validate(options); }

int64_t Sampler::sample(const float* logits, int64_t n, int64_t first_id, uint64_t index) {
  REFORMER_CHECK(first_id >= 0 && first_id < n, "sampling: no ids to draw from (", n, " logits, first id ", first_id, ")");
  order_.resize(static_cast<size_t>(n - first_id));
  std::iota(order_.begin(), order_.end(), first_id);
  // Most likely first; ties by id, so the order (and the draw) is fully determined.
  auto more_likely = [&](int64_t a, int64_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  if (options_.temperature == 0) return *std::min_element(order_.begin(), order_.end(), more_likely);

  size_t keep = order_.size();
  if (options_.top_k > 0 && static_cast<size_t>(options_.top_k) < keep) {
    keep = static_cast<size_t>(options_.top_k);
    std::partial_sort(order_.begin(), order_.begin() + static_cast<std::ptrdiff_t>(keep), order_.end(), more_likely);
  } else {
    std::sort(order_.begin(), order_.end(), more_likely);
  }
  probs_.resize(keep);
  const double top = logits[order_[0]];
  double total = 0;
  for (size_t i = 0; i < keep; ++i) total += probs_[i] = std::exp((logits[order_[i]] - top) / options_.temperature);
  // Nucleus: the shortest prefix of the sorted ids whose probability mass reaches top_p.
  if (options_.top_p < 1) {
    double mass = 0;
    for (size_t i = 0; i < keep; ++i) {
      mass += probs_[i] / total;
      if (mass >= options_.top_p) {
        keep = i + 1;
        break;
      }
    }
    total = std::accumulate(probs_.begin(), probs_.begin() + static_cast<std::ptrdiff_t>(keep), 0.0);
  }
  const double u = rng_uniform(seed_, rng_stream(RngPurpose::Sampling, {}), index) * total;
  double cumulative = 0;
  for (size_t i = 0; i < keep; ++i) {
    cumulative += probs_[i];
    if (u < cumulative) return order_[i];
  }
  return order_[keep - 1];  // u rounded up to the total
}

}  // namespace reformer
