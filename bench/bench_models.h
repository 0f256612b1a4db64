#pragma once
// Model configurations shared by the benchmark programs (reformer_bench, decode_bench).
#include "reformer/config.h"

namespace bench {

// google/reformer-crime-and-punishment: 6 layers [local, lsh] x 3, hidden 256, d_ff 512, 2 heads x
// 64, chunks 64 with one chunk before, 1 hash, causal, vocabulary 320, axial dims (64, 192),
// feed-forward chunks of 4096 rows. Positions and buckets are the caller's to set.
inline reformer::ReformerConfig crime_and_punishment() {
  reformer::ReformerConfig c;
  c.attn_layers = {"local", "lsh", "local", "lsh", "local", "lsh"};
  c.hidden_size = 256;
  c.feed_forward_size = 512;
  c.num_attention_heads = 2;
  c.attention_head_size = 64;
  c.local_attn_chunk_length = 64;
  c.lsh_attn_chunk_length = 64;
  c.num_hashes = 1;
  c.vocab_size = 320;
  c.axial_pos_embds_dim = {64, 192};
  c.is_decoder = true;
  c.hidden_dropout_prob = 0.05;
  c.local_attention_probs_dropout_prob = 0.05;
  c.lsh_attention_probs_dropout_prob = 0.0;
  c.chunk_size_feed_forward = 4096;
  return c;
}

}  // namespace bench
