#include "model/eval_length.h"

#include <algorithm>

#include "reformer/attention_kinds.h"
#include "reformer/error.h"

namespace reformer {

int64_t ReformerConfig::chunk_padded_length(int64_t n) const {
  const ChunkRule rule = chunk_rule(*this);
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
  const ChunkRule rule = chunk_rule(config);
  const int64_t max = config.max_length();
  return max <= rule.shortest_chunk ? max : std::max(max / rule.multiple * rule.multiple, rule.shortest_chunk);
}

}  // namespace reformer
