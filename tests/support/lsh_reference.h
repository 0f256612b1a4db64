#pragma once
// Slow, obviously-correct LSH self-attention (spec section 1) in double precision, query by query:
// hash every position naively, sort with 64-bit keys, and for every query of every round gather its
// window of keys from the sorted order, apply the masks, softmax, then combine the rounds. Used to
// test the fast kernels and layer (src/kernels/cpu/lsh_*, src/layers/lsh_attention).
#include <cstdint>
#include <vector>

#include "layers/lsh_attention.h"

namespace reformer::test {

// Bucket of one vector in one round from its rotated coordinates y (sum(factors)/2 values): argmax
// over the explicit concatenation [y, -y] per factor (first maximum wins), combined a1 + f1*a2 + ...
int64_t lsh_bucket_reference(const double* y, const std::vector<int64_t>& factors);

// Output (B, L, D) of LSH attention with config (num_hashes taken from num_hashes, not config),
// weights in torch layout, rotations in Hugging Face's layout (H, d, num_hashes, rot_cols).
// Dropout follows the layer's documented counter-based masks when call.training.
std::vector<double> lsh_attention_reference(const LshAttentionConfig& config, int num_hashes,
                                            const float* rotations, const float* x, const float* w_query_key,
                                            const float* w_value, const float* w_output, const AttentionCall& call);

}  // namespace reformer::test
