#pragma once
// Slow, obviously-correct incremental decoding (docs/NUMERICS.md "Incremental decoding"), in double
// precision wherever it computes: a model is run token by token, every layer keeping the history of
// its attention inputs (LN_a(X2) of each position, as computed when that position was the newest);
// for each new token at position t every attention layer gathers its whole history, pads it with
// masked slots to t' = the next multiple of its chunk length (LSH) or runs it unpadded (local, full),
// and computes the token's output with the slow layer references (lsh_reference.h: hash, sort,
// window, naive softmax; attention_reference.h), then the feed-forward, final norm and LM head.
// LSH rotations are drawn as the layer documents (stream (Rotations, {step 0, layer, head})).
#include <cstdint>
#include <vector>

#include "reformer/model.h"

namespace reformer::test {

// Logits (ids.size(), vocab) of decoding ids one at a time from position 0 with seed `seed`.
std::vector<double> reference_decode(ReformerModel& model, const std::vector<int32_t>& ids, uint64_t seed);

}  // namespace reformer::test
