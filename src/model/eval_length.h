#pragma once
// The lengths a model runs (ReformerConfig::validate_length): anything up to the
// shortest chunk length, longer ones a multiple of every chunk length (their least common
// multiple), never more than the positional embedding covers.
#include <cstdint>

#include "reformer/config.h"

namespace reformer {

// The shortest length >= n that the model runs (in eval mode and, since training pads the same way,
// in training); throws when n exceeds every such length.
int64_t padded_eval_length(const ReformerConfig& config, int64_t n);
// The longest length the model runs in eval mode.
int64_t longest_eval_length(const ReformerConfig& config);

}  // namespace reformer
