#pragma once
// The small models the model-level tests share (reversible vs stored, gradients, bf16), and their
// inputs: one definition instead of a copy per test file.
#include <cstdint>
#include <string>
#include <vector>

#include "reformer/config.h"
#include "reformer/model.h"

namespace reformer::test {

// A causal byte-free model (vocabulary 11) of the given layer kinds: hidden 16, d_ff 24, 2 heads of
// 8, chunks of 8, 4 buckets, 2 hash rounds, axial positions (4, L / 4), dropout off.
ReformerConfig tiny_config(std::vector<std::string> layers, int64_t L = 32);
// tiny_config with six layers (local, lsh) x 3 and every dropout at 0.1, so that a recomputation
// must draw the forward's masks.
ReformerConfig dropout_config();
// n ids in [0, vocab), deterministic for a seed.
std::vector<int32_t> random_ids(int64_t n, int64_t vocab, uint64_t seed);
// A copy of every parameter's gradient, in parameters() order.
std::vector<std::vector<float>> grads_of(ReformerModel& m);
// Runs the step stored, then reversible, and expects equal losses and gradients within kPathTol;
// returns the reversible step's loss statistics.
LossStats expect_reversible_matches_stored(ReformerModel& model, const Batch& batch, const StepOptions& opt);

}  // namespace reformer::test
