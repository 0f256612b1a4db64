#include "model_flags.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <tuple>

#include "reformer/attention_kinds.h"
#include "reformer/limits.h"
#include "reformer/error.h"

namespace reformer::cli {
namespace {

const char* const kModelFlags[] = {"--config", "--hidden-size", "--ff-size", "--heads", "--head-size", "--layers",
                                   "--attn-layers", "--seq-len", "--hashes", "--buckets", "--lsh-chunk",
                                   "--local-chunk", "--ff-chunk", "--dropout"};

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream s(text);
  for (std::string item; std::getline(s, item, ',');) out.push_back(item);
  return out;
}

void check_range(const char* flag, const std::optional<int64_t>& v, int64_t lo, int64_t limit) {
  if (v) limits::check_range(flag, *v, lo, limit);
}

}  // namespace

std::vector<int64_t> axial_shape_for(int64_t length) {
  int64_t n1 = static_cast<int64_t>(std::sqrt(static_cast<double>(length)));
  while (n1 > 1 && length % n1 != 0) --n1;
  return {n1, length / n1};
}

void ModelFlags::add_to(CLI::App& app) {
  app.add_option("--config", config_file, "Hugging Face config.json to start from (flags below override it)")
      ->check(CLI::ExistingFile);
  app.add_option("--hidden-size", hidden_size, "model width D (default 256)");
  app.add_option("--ff-size", ff_size, "feed-forward width (default 2 x hidden size)");
  app.add_option("--heads", heads, "attention heads (default 4)");
  app.add_option("--head-size", head_size, "size of each head (default 64)");
  app.add_option("--attn-layers", attn_layers, "attention layer pattern, e.g. local,lsh or lsh (types: lsh, local, full; default local,lsh)");
  app.add_option("--layers", layers, "number of layers; the pattern is repeated to this length (default: the pattern's length)");
  app.add_option("--seq-len", seq_len, "training window length, any length (a window longer than a chunk is padded to a "
                 "multiple of the chunk lengths, the padding masked); sets the positional shape to cover the padded length "
                 "(default 1024)");
  app.add_option("--hashes", hashes, "LSH hash rounds (default 1)");
  app.add_option("--buckets", buckets, "LSH buckets, e.g. 32 or 16,16 (factorized; default: Hugging Face's rule for --seq-len)");
  app.add_option("--lsh-chunk", lsh_chunk, "LSH chunk length (default 64)");
  app.add_option("--local-chunk", local_chunk, "local attention chunk length (default 64)");
  app.add_option("--ff-chunk", ff_chunk,
                 "most feed-forward rows per chunk, HF chunk_size_feed_forward (0 = no limit; default 0); the "
                 "engine may take fewer at a time for the cache");
  app.add_option("--dropout", dropout, "hidden and local-attention dropout probability (default 0.05)");
}

bool ModelFlags::any_given(const CLI::App& app) const {
  for (const char* flag : kModelFlags)
    if (app.count(flag) > 0) return true;
  return false;
}

void ModelFlags::check_ranges() const {
  // Each flag within its limit (reformer/limits.h) before it is used in any arithmetic or loop.
  for (auto [flag, v, limit] : {std::tuple{"--hidden-size", hidden_size, limits::kMaxWidth}, {"--ff-size", ff_size, limits::kMaxWidth},
                                {"--heads", heads, limits::kMaxHeads}, {"--head-size", head_size, limits::kMaxWidth},
                                {"--layers", layers, limits::kMaxLayers}, {"--seq-len", seq_len, limits::kMaxLength},
                                {"--hashes", hashes, limits::kMaxHashes}, {"--lsh-chunk", lsh_chunk, limits::kMaxLength},
                                {"--local-chunk", local_chunk, limits::kMaxLength}})
    check_range(flag, v, 1, limit);
  check_range("--ff-chunk", ff_chunk, 0, limits::kMaxElements);
  if (dropout) REFORMER_CHECK(*dropout >= 0 && *dropout < 1, "--dropout ", *dropout, " must be in [0, 1)");
  if (buckets)
    REFORMER_CHECK(!buckets->empty(), "--buckets is empty; give a number like 32 or a factor pair like 16,16, or drop the "
                   "flag for Hugging Face's rule");
}

ReformerConfig ModelFlags::build(int64_t vocab) const {
  check_ranges();
  ReformerConfig c;
  if (config_file) {
    c = ReformerConfig::load(*config_file);
    REFORMER_CHECK(c.vocab_size == vocab, *config_file, " has vocab_size ", c.vocab_size, " but the data needs ", vocab,
                   " (the tokenizer's vocabulary, or the copy task's symbols); set \"vocab_size\": ", vocab);
  } else {
    c.hidden_size = 256;
    c.feed_forward_size = 512;
    c.num_attention_heads = 4;
    c.attention_head_size = 64;
    c.attn_layers = {"local", "lsh"};
    c.vocab_size = vocab;
    c.is_decoder = true;
    c.axial_pos_shape = axial_shape_for(1024);
    c.max_position_embeddings = 1024;
    // HF initialises axial positions with std axial_norm_std = 1.0 but word embeddings with 0.02,
    // so position swamps token identity at the start. From scratch, positions at the word
    // embeddings' scale learn much faster (gcide, hidden 128, local+lsh, 600 steps: validation
    // 3.11 vs 3.62 bits/byte). Saved in config.json, so HF rebuilds the same model.
    c.axial_norm_std = c.initializer_range;
  }
  return apply(std::move(c), config_file.has_value());
}

ReformerConfig ModelFlags::apply_to(ReformerConfig base) const {
  check_ranges();
  return apply(std::move(base), /*from_file=*/true, /*positions_from_seq_len=*/false);
}

ReformerConfig ModelFlags::apply(ReformerConfig c, bool from_file, bool positions_from_seq_len) const {
  if (hidden_size) c.hidden_size = *hidden_size;
  if (ff_size) c.feed_forward_size = *ff_size;
  else if (!from_file) c.feed_forward_size = 2 * c.hidden_size;
  if (heads) c.num_attention_heads = *heads;
  if (head_size) c.attention_head_size = *head_size;
  if (hashes) c.num_hashes = *hashes;
  if (lsh_chunk) c.lsh_attn_chunk_length = *lsh_chunk;
  if (local_chunk) c.local_attn_chunk_length = *local_chunk;
  if (ff_chunk) c.chunk_size_feed_forward = *ff_chunk;
  if (dropout) c.hidden_dropout_prob = c.local_attention_probs_dropout_prob = *dropout;
  if (attn_layers || layers) {
    const std::vector<std::string> pattern = attn_layers ? split_list(*attn_layers) : c.attn_layers;
    REFORMER_CHECK(!pattern.empty(), "--attn-layers is empty; give e.g. local,lsh");
    const size_t n = layers ? static_cast<size_t>(*layers) : pattern.size();
    c.attn_layers.clear();
    for (size_t i = 0; i < n; ++i) c.attn_layers.push_back(pattern[i % pattern.size()]);
  }
  if (seq_len && positions_from_seq_len) {
    // Positions for the window padded to the chunk multiple (training pads it with an attention mask).
    const int64_t positions = c.chunk_padded_length(*seq_len);
    limits::check_range("--seq-len padded to a multiple of the chunk lengths", positions, 1, limits::kMaxLength);
    c.axial_pos_shape = axial_shape_for(positions);
    c.max_position_embeddings = positions;
  }
  // Axial dims: a quarter of the width on the first axis, as HF's default (64, 192) for 256.
  if (!from_file || hidden_size || (seq_len && positions_from_seq_len)) {
    const int64_t d1 = c.hidden_size / 4;
    c.axial_pos_embds_dim = {d1, c.hidden_size - d1};
  }
  if (buckets) {
    c.num_buckets.clear();
    for (const auto& b : split_list(*buckets)) {
      try {
        c.num_buckets.push_back(std::stoll(b));
      } catch (const std::exception&) {
        fail("--buckets \"", *buckets, "\" is not a number or a comma-separated pair of numbers, e.g. 32 or 16,16");
      }
    }
  }
  c.validate();
  c.validate_length(c.max_length(), /*training=*/true);
  // Fix the buckets in the config, so the saved model evaluates with the buckets it was trained with.
  if (c.num_buckets.empty() && uses_attention(c, AttentionKind::Lsh))
    c.num_buckets = c.auto_num_buckets(c.max_length());
  return c;
}

}  // namespace reformer::cli
