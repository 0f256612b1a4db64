#pragma once
// Drawing the next token from a row of logits: temperature, top-k and top-p (nucleus) filtering,
// then one uniform draw from the counter-based RNG keyed by (seed, index), so a sample depends only
// on the logits, the options, the seed and the position — never on earlier calls.
#include <cstdint>
#include <vector>

namespace reformer {

struct SamplingOptions {
  double temperature = 1.0;  // 0 = greedy (argmax)
  int64_t top_k = 0;         // keep the k most likely ids; 0 = all
  double top_p = 1.0;        // keep the smallest set of ids whose probability reaches top_p; (0, 1]
};

// Throws reformer::Error naming the bad value.
void validate(const SamplingOptions& options);

class Sampler {
 public:
  Sampler(const SamplingOptions& options, uint64_t seed);
  // Samples an id in [first_id, n) from logits[0..n); ids below first_id (padding, special ids)
  // are never drawn. `index` numbers the draw (e.g. the position in the output).
  int64_t sample(const float* logits, int64_t n, int64_t first_id, uint64_t index);

 private:
  SamplingOptions options_;
  uint64_t seed_;
  std::vector<int64_t> order_;  // candidate ids, reused
  std::vector<double> probs_;
};

}  // namespace reformer
