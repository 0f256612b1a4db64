#pragma once
// Masked-language-model inputs, as BERT and Hugging Face's DataCollatorForLanguageModeling make them:
// each token (not padding) is selected with probability p (0.15); a selected token keeps its id as
// its label and is replaced by [MASK] with probability 0.8, by a random token with 0.1 and left as
// it is with 0.1; every other position is labelled kIgnoreLabel, so the loss (unshifted, as
// ReformerForMaskedLM's) counts the selected positions only.
//
// Randomness: position t of row b of micro-batch `index` draws one Philox block keyed by
// (seed, MlmMask, index, b, t): word 0 selects (uniform < p), word 1 chooses the replacement
// (uniform < 0.8: [MASK]; < 0.9: random), words 2-3 the random token, uniform over the text ids
// [first_random_id, vocab) (HF draws over the whole vocabulary, special tokens included; padding
// and control ids are left out here). So a resumed run masks exactly as an uninterrupted one.
// A batch in which no token is selected (possible for tiny batches) gets one: the token of row 0
// at a position drawn from (seed, MlmMask, index, batch), so every batch has a loss.
#include <cstdint>

#include "train/token_batch.h"

namespace reformer {

struct MlmOptions {
  double probability = 0.15;  // HF's mlm_probability
  int32_t mask_id = -1;       // the tokenizer's [MASK] (reformer/tokenizer.h Tokenizer::mask_id)
  int32_t first_random_id = 0;
  int32_t vocab = 0;
};

// Throws reformer::Error for a probability outside (0, 1), a missing mask id or an empty id range.
void validate(const MlmOptions& options);

// Masks `tokens` in place: tokens.labels must hold the unmasked ids (kIgnoreLabel on padding), as
// the language-model data sources fill them. Sets scored_bytes to 0 (masked tokens are not text
// in order: bits per byte do not apply).
void apply_mlm_mask(TokenBatch& tokens, const MlmOptions& options, uint64_t seed, int64_t index);

}  // namespace reformer
