#pragma once
// The paper's synthetic duplication task (Kitaev et al. 2020, section 2.1; spec 8.6): every sequence
// is `0 w 0 w`, with w a uniformly random string over the symbols 1 .. vocab-1 of length L/2 - 1,
// so L must be even. The paper uses vocab 128, L 1024.
//
// Only the second copy of w is predictable, so only it is scored: with h = L/2,
// labels[t] = ids[t] for t in [h+1, L-1] and kIgnoreLabel elsewhere (train/token_batch.h: the loss
// compares logits[t] with labels[t+1], so the predictions that count are those made at positions
// h .. L-2). Sequence b of step s is drawn from the counter-based RNG keyed by (seed, step, b).
#include <cstdint>

#include "train/token_batch.h"

namespace reformer {

struct CopyTask {
  int64_t length = 1024;
  int32_t vocab = 128;  // symbol 0 is the separator; w uses 1 .. vocab-1
};

// Throws reformer::Error for an odd or too short length or a vocabulary below 2.
void validate(const CopyTask& task);

void copy_task_batch(TokenBatch& out, const CopyTask& task, int64_t batch, uint64_t seed, int64_t step);

}  // namespace reformer
