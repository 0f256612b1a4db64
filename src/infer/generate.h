#pragma once
// Autoregressive byte generation by re-running the forward pass on the growing context (simple and
// exact; no decoding cache). The context is padded on the right with the pad id up to a length the
// model accepts; the causal mask hides the padding from the real positions, whose logits are read.
// When the context outgrows the model's longest sequence, the oldest bytes drop out of it.
#include <cstdint>
#include <functional>
#include <string>

#include "infer/sampling.h"
#include "reformer/model.h"

namespace reformer {

struct GenerateOptions {
  int64_t bytes = 200;
  SamplingOptions sampling;
  uint64_t seed = 0;
};

// The shortest length >= n that the model runs in eval mode (ReformerConfig::validate_length).
int64_t padded_context_length(const ReformerConfig& config, int64_t n);

// Generates options.bytes bytes after `prompt` (non-empty) with a byte-level model (train/byte_data.h:
// id = byte + 2), calling on_byte for each as it is drawn. Ids 0 (padding) and 1 (EOS) are never drawn.
void generate_bytes(ReformerModel& model, const std::string& prompt, const GenerateOptions& options,
                    const std::function<void(char)>& on_byte);

}  // namespace reformer
