#pragma once
// Positional embeddings added to the token embeddings (spec section 4 and 3.1).
//
// Axial: one weight per axis, axis a of shape (n_a, d_a) (HF `weights.a` with its size-1 dims
// dropped). The table is the CONCATENATION of the axis rows, flattened row-major:
//   pos_emb[p] = concat(W_1[i_1], ..., W_k[i_k]),  p = (i_1 * n_2 + i_2) * n_3 + i_3 ...
// i.e. the last axis varies fastest (HF code; its docs state the other order).
// Learned (HF axial_pos_embds=False): a (max_pos, D) table, position p -> row p.
//
// Forwards ADD to x; gradients ACCUMULATE (+=) into the weight gradients.
#include <cstdint>
#include <vector>

namespace reformer {

struct AxialShape {
  std::vector<int64_t> sizes;  // (n_1, ..., n_k), HF axial_pos_shape
  std::vector<int64_t> dims;   // (d_1, ..., d_k), HF axial_pos_embds_dim; sum = D
  int64_t max_length() const;  // prod(sizes)
  int64_t width() const;       // sum(dims)
};

// Throws reformer::Error unless the shape has >= 1 axis, positive sizes and dims, and width() == D.
void check_axial_shape(const AxialShape& shape, int64_t D);

// x: (B, L, D) += pos_emb[start + p] for p < L; requires start + L <= max_length().
// weights[a]: (n_a, d_a). start > 0 is for incremental decoding (positions continue).
void axial_position_forward(float* x, const float* const* weights, const AxialShape& shape, int64_t B, int64_t L,
                            int64_t start = 0);
// dweights[a]: (n_a, d_a) += the parts of dx (B, L, D) that the forward added from W_a.
void axial_position_backward(float* const* dweights, const float* dx, const AxialShape& shape, int64_t B,
                             int64_t L, int64_t start = 0);

// x: (B, L, D) += table[start + p]; table: (max_pos, D). Equals an embedding lookup with
// ids = start..start+L-1, which are contiguous rows, so no id buffer is needed.
void learned_position_forward(float* x, const float* table, int64_t B, int64_t L, int64_t D, int64_t max_pos,
                              int64_t start = 0);
// dtable: (max_pos, D) += sum over the batch of dx (B, L, D) at rows start..start+L-1.
void learned_position_backward(float* dtable, const float* dx, int64_t B, int64_t L, int64_t D, int64_t max_pos,
                               int64_t start = 0);

}  // namespace reformer
