#pragma once
// Token embedding: out[i] = table[ids[i]].
// Gradients: dtable ACCUMULATES (+=) (scatter-add, deterministic: each thread owns whole columns).
#include <cstdint>

namespace reformer {

// out: (N, D); ids: (N), each in [0, V) (else reformer::Error naming the id and V); table: (V, D).
void embedding_forward(float* out, const int32_t* ids, const float* table, int64_t N, int64_t V, int64_t D);

// dtable: (V, D); dout: (N, D).
void embedding_backward(float* dtable, const float* dout, const int32_t* ids, int64_t N, int64_t V, int64_t D);

}  // namespace reformer
