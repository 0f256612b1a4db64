#include "ops/axial_position.h"

#include "ops/parallel.h"
#include "reformer/error.h"

namespace reformer {
namespace {

void check_range(int64_t L, int64_t start, int64_t max_len, const char* what) {
  REFORMER_CHECK(L >= 0 && start >= 0 && start + L <= max_len, "positions [", start, ", ", start + L,
                 ") exceed the ", what, " of ", max_len,
                 " positions; use shorter sequences or a larger positional table");
}

// Row of axis a used by position p: the a-th digit of p in the mixed radix (n_1, ..., n_k).
struct AxisIndexer {
  int64_t stride;  // prod(n_{a+1}, ..., n_k)
  int64_t size;    // n_a
  int64_t operator()(int64_t p) const { return (p / stride) % size; }
};

std::vector<AxisIndexer> indexers(const AxialShape& shape) {
  const int k = static_cast<int>(shape.sizes.size());
  std::vector<AxisIndexer> out(k);
  int64_t stride = 1;
  for (int a = k - 1; a >= 0; --a) {
    out[a] = {stride, shape.sizes[a]};
    stride *= shape.sizes[a];
  }
  return out;
}

}  // namespace

int64_t AxialShape::max_length() const {
  int64_t n = 1;
  for (int64_t s : sizes) n *= s;
  return n;
}

int64_t AxialShape::width() const {
  int64_t d = 0;
  for (int64_t x : dims) d += x;
  return d;
}

void check_axial_shape(const AxialShape& shape, int64_t D) {
  REFORMER_CHECK(!shape.sizes.empty() && shape.sizes.size() == shape.dims.size(), "axial_pos_shape has ",
                 shape.sizes.size(), " axes but axial_pos_embds_dim has ", shape.dims.size(),
                 "; give one dim per axis (at least one axis)");
  for (size_t a = 0; a < shape.sizes.size(); ++a)
    REFORMER_CHECK(shape.sizes[a] > 0 && shape.dims[a] > 0, "axial axis ", a, " has size ", shape.sizes[a],
                   " and dim ", shape.dims[a], "; both must be positive");
  REFORMER_CHECK(shape.width() == D, "axial_pos_embds_dim sums to ", shape.width(), " but hidden_size is ", D,
                 "; the axis dims must sum to hidden_size");
}

void axial_position_forward(float* x, const float* const* weights, const AxialShape& shape, int64_t B, int64_t L,
                            int64_t start) {
  const int64_t D = shape.width();
  check_axial_shape(shape, D);
  check_range(L, start, shape.max_length(), "axial positional table (prod(axial_pos_shape))");
  const std::vector<AxisIndexer> idx = indexers(shape);
  const int k = static_cast<int>(idx.size());
#pragma omp parallel for schedule(static) if (B * L * D >= kOmpMinWork)
  for (int64_t r = 0; r < B * L; ++r) {
    const int64_t p = start + r % L;
    float* dst = x + r * D;
    for (int a = 0; a < k; ++a) {
      const int64_t d = shape.dims[a];
      const float* src = weights[a] + idx[a](p) * d;
      for (int64_t j = 0; j < d; ++j) dst[j] += src[j];
      dst += d;
    }
  }
}

void axial_position_backward(float* const* dweights, const float* dx, const AxialShape& shape, int64_t B,
                             int64_t L, int64_t start) {
  const int64_t D = shape.width();
  check_axial_shape(shape, D);
  check_range(L, start, shape.max_length(), "axial positional table (prod(axial_pos_shape))");
  const std::vector<AxisIndexer> idx = indexers(shape);
  int64_t offset = 0;
  for (size_t a = 0; a < idx.size(); ++a) {
    const int64_t d = shape.dims[a];
    float* dw = dweights[a];
    parallel_column_blocks(d, B * L * d, [&](int64_t j0, int64_t j1) {
      for (int64_t r = 0; r < B * L; ++r) {
        float* dst = dw + idx[a](start + r % L) * d;
        const float* src = dx + r * D + offset;
        for (int64_t j = j0; j < j1; ++j) dst[j] += src[j];
      }
    });
    offset += d;
  }
}

void learned_position_forward(float* x, const float* table, int64_t B, int64_t L, int64_t D, int64_t max_pos,
                              int64_t start) {
  check_range(L, start, max_pos, "learned positional table (max_position_embeddings)");
  const float* rows = table + start * D;
#pragma omp parallel for schedule(static) if (B * L * D >= kOmpMinWork)
  for (int64_t r = 0; r < B * L; ++r) {
    const float* src = rows + (r % L) * D;
    float* dst = x + r * D;
    for (int64_t j = 0; j < D; ++j) dst[j] += src[j];
  }
}

void learned_position_backward(float* dtable, const float* dx, int64_t B, int64_t L, int64_t D, int64_t max_pos,
                               int64_t start) {
  check_range(L, start, max_pos, "learned positional table (max_position_embeddings)");
  float* rows = dtable + start * D;
  // Each element of the table slice belongs to one thread; the batch is summed in order.
#pragma omp parallel for schedule(static) if (B * L * D >= kOmpMinWork)
  for (int64_t e = 0; e < L * D; ++e) {
    float acc = 0.f;
    for (int64_t b = 0; b < B; ++b) acc += dx[b * L * D + e];
    rows[e] += acc;
  }
}

}  // namespace reformer
