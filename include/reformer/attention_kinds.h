#pragma once
// The attention kinds a layer of attn_layers can be, and every rule that depends on the kind, in
// one table (as llama.cpp keeps its architecture facts): config validation, model construction,
// the memory plan, decoding and the CLI read it instead of comparing names.
//   lsh    HF's LSHSelfAttention: shared query/key projection, hashed into buckets, chunked.
//   local  HF's LocalSelfAttention: separate query/key/value, chunks attend to chunks around them.
//   full   our extension: exact attention over the whole sequence, in blocks, with local's weights.
#include <cstdint>
#include <string>
#include <vector>

#include "reformer/config.h"

namespace reformer {

enum class AttentionKind { Lsh, Local, Full };

struct AttentionKindSpec {
  AttentionKind kind;
  const char* name;                         // the attn_layers entry
  std::vector<const char*> projections;     // attention.self_attention.<p>.weight, each (heads * head_size, hidden)
  bool hashed;                              // rotations, buckets and num_hashes apply (the LSH workspace)
  // Chunked kinds run in chunks of (config.*chunk_length): a sequence longer than the chunk must be
  // a multiple of it. Unchunked kinds (full) have no length rule; block_length is their tile.
  int64_t ReformerConfig::*chunk_length;    // nullptr: not chunked
  int64_t ReformerConfig::*chunks_before;   // nullptr: not chunked
  int64_t ReformerConfig::*chunks_after;    // look-ahead; must be 0 in a causal model
  const char* chunk_length_field;           // the config field's name, for messages
  int64_t block_length;                     // unchunked kinds: rows per query/key block
};

// The table, in AttentionKind order.
const std::vector<AttentionKindSpec>& attention_kinds();
const AttentionKindSpec& attention_kind(AttentionKind kind);
// Throws reformer::Error naming `name` and the known kinds.
const AttentionKindSpec& attention_kind(const std::string& name);
// "\"lsh\", \"local\" or \"full\"", for messages.
std::string attention_kind_names();

// True when some layer of the config is of this kind.
bool uses_attention(const ReformerConfig& config, AttentionKind kind);

// The sequence-length rule of a config's chunked layers: a length L runs when L <= shortest_chunk
// (one chunk, HF runs it unchunked) or L is a multiple of `multiple` (the lcm of the chunk lengths).
struct ChunkRule {
  int64_t multiple = 1;
  int64_t shortest_chunk = INT64_MAX;
};
ChunkRule chunk_rule(const ReformerConfig& config);

}  // namespace reformer
