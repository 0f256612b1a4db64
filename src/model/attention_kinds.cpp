#include "reformer/attention_kinds.h"

#include <algorithm>
#include <numeric>

#include "reformer/error.h"

namespace reformer {

const std::vector<AttentionKindSpec>& attention_kinds() {
  static const std::vector<AttentionKindSpec> table = {
      {AttentionKind::Lsh, "lsh", {"query_key", "value"}, true, &ReformerConfig::lsh_attn_chunk_length,
       &ReformerConfig::lsh_num_chunks_before, &ReformerConfig::lsh_num_chunks_after, "lsh_attn_chunk_length", 0},
      {AttentionKind::Local, "local", {"query", "key", "value"}, false, &ReformerConfig::local_attn_chunk_length,
       &ReformerConfig::local_num_chunks_before, &ReformerConfig::local_num_chunks_after, "local_attn_chunk_length", 0},
      {AttentionKind::Full, "full", {"query", "key", "value"}, false, nullptr, nullptr, nullptr, "", 128},
  };
  return table;
}

const AttentionKindSpec& attention_kind(AttentionKind kind) { return attention_kinds()[static_cast<size_t>(kind)]; }

const AttentionKindSpec& attention_kind(const std::string& name) {
  for (const AttentionKindSpec& k : attention_kinds())
    if (name == k.name) return k;
  fail("\"", name, "\" is not an attention kind; use ", attention_kind_names());
}

std::string attention_kind_names() {
  std::string out;
  const auto& table = attention_kinds();
  for (size_t i = 0; i < table.size(); ++i)
    out += (i == 0 ? "" : i + 1 == table.size() ? " or " : ", ") + std::string("\"") + table[i].name + "\"";
  return out;
}

bool uses_attention(const ReformerConfig& config, AttentionKind kind) {
  return std::any_of(config.attn_layers.begin(), config.attn_layers.end(),
                     [&](const std::string& t) { return attention_kind(t).kind == kind; });
}

ChunkRule chunk_rule(const ReformerConfig& config) {
  ChunkRule rule;
  for (const std::string& t : config.attn_layers) {
    const AttentionKindSpec& k = attention_kind(t);
    if (!k.chunk_length) continue;
    const int64_t c = config.*k.chunk_length;
    rule.multiple = std::lcm(rule.multiple, c);
    rule.shortest_chunk = std::min(rule.shortest_chunk, c);
  }
  return rule;
}

}  // namespace reformer
