#pragma once
// The model flags shared by `train` and `info`: a Hugging Face config.json and/or flags for size,
// layer pattern, sequence length, hashing and chunking. A flag given explicitly overrides the file;
// without a file, the defaults below apply. The sequence length picks the axial positional shape.
#include <cstdint>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "reformer/config.h"

namespace reformer::cli {

struct ModelFlags {
  std::optional<std::string> config_file;
  std::optional<int64_t> hidden_size, ff_size, heads, head_size, layers, seq_len, hashes, lsh_chunk, local_chunk;
  std::optional<int64_t> ff_chunk;
  std::optional<std::string> attn_layers, buckets;
  std::optional<double> dropout;

  void add_to(CLI::App& app);
  // True when any model flag (or --config) was given on the command line.
  bool any_given(const CLI::App& app) const;
  // The config for a model with `vocab` ids; validated, num_buckets resolved for the sequence length.
  ReformerConfig build(int64_t vocab) const;
  // The given flags applied on top of `base` (a resumed run's config, or the --init-from
  // checkpoint's), as if base were --config: a flag repeated with the value the run already has
  // gives back base unchanged. --seq-len is then only the window: base's positions stay.
  ReformerConfig apply_to(ReformerConfig base) const;

 private:
  void check_ranges() const;
  ReformerConfig apply(ReformerConfig c, bool from_file, bool positions_from_seq_len = true) const;
};

// n1 * n2 = L with n1 the largest factor <= sqrt(L) (1024 -> 32 x 32, 512 x 1024 as in HF's
// Crime-and-Punishment model for 524288).
std::vector<int64_t> axial_shape_for(int64_t length);

}  // namespace reformer::cli
