#include "model/eval_length.h"

#include <algorithm>
#include <numeric>

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

int64_t padded_eval_length(const ReformerConfig& config, int64_t n) {
  const ChunkRule rule(config);
  const int64_t L = n <= rule.shortest_chunk ? n : (n + rule.multiple - 1) / rule.multiple * rule.multiple;
  config.validate_length(L, /*training=*/false);
  return L;
}

int64_t longest_eval_length(const ReformerConfig& config) {
  const ChunkRule rule(config);
  const int64_t max = config.max_length();
  return max <= rule.shortest_chunk ? max : std::max(max / rule.multiple * rule.multiple, rule.shortest_chunk);
}

}  // namespace reformer
