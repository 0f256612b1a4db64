#include "model/eval_length.h"

#include <algorithm>
#include <numeric>

#include "reformer/error.h"

namespace reformer {
namespace {

struct ChunkRule {
  int64_t multiple = 1, shortest_chunk = INT64_MAX;
  explicit ChunkRule(const ReformerConfig& config) {
    for (const auto& type : config.attn_layers) {
      if (type == "full") continue;
      const int64_t c = type == "lsh" ? config.lsh_attn_chunk_length : config.local_attn_chunk_length;
      multiple = std::lcm(multiple, c);
      shortest_chunk = std::min(shortest_chunk, c);
    }
  }
};

}  // namespace

int64_t ReformerConfig::chunk_padded_length(int64_t n) const {
  const ChunkRule rule(*this);
  return n <= rule.shortest_chunk ? n : (n + rule.multiple - 1) / rule.multiple * rule.multiple;
}

int64_t padded_eval_length(const ReformerConfig& config, int64_t n) {
  const int64_t L = config.chunk_padded_length(n);
  REFORMER_CHECK(L <= config.max_length(), "a window of ", n, " tokens is padded to ", L,
                 " (a multiple of the chunk lengths), more than the ", config.max_length(),
                 " positions of the model's positional embedding; use a --seq-len of at most ", longest_eval_length(config));
  config.validate_length(L, /*training=*/false);
  return L;
}

int64_t longest_eval_length(const ReformerConfig& config) {
  const ChunkRule rule(config);
  const int64_t max = config.max_length();
  return max <= rule.shortest_chunk ? max : std::max(max / rule.multiple * rule.multiple, rule.shortest_chunk);
}

}  // namespace reformer
