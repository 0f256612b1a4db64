#include "model/eval_length.h"

#include <algorithm>

#include "reformer/attention_kinds.h"

namespace reformer {

int64_t padded_eval_length(const ReformerConfig& config, int64_t n) {
  const ChunkRule rule = chunk_rule(config);
  const int64_t L = n <= rule.shortest_chunk ? n : (n + rule.multiple - 1) / rule.multiple * rule.multiple;
  config.validate_length(L, /*training=*/false);
  return L;
}

int64_t longest_eval_length(const ReformerConfig& config) {
  const ChunkRule rule = chunk_rule(config);
  const int64_t max = config.max_length();
  return max <= rule.shortest_chunk ? max : std::max(max / rule.multiple * rule.multiple, rule.shortest_chunk);
}

}  // namespace reformer
