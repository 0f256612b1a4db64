#include "kernels/cpu/lsh_hash.h"

#include <algorithm>
#include <limits>

#include "kernels/cpu/gemm.h"
#include "reformer/error.h"

namespace reformer {
namespace {

constexpr int64_t kHashRows = 128;  // rows rotated per GEMM: bounds the scratch independently of L

// argmax over the virtual concatenation [y_0..y_{h-1}, -y_0..-y_{h-1}], first maximum wins.
int64_t signed_argmax(const float* y, int64_t half) {
  int64_t best = 0;
  float best_v = y[0];
  for (int64_t k = 1; k < half; ++k)
    if (y[k] > best_v) best_v = y[k], best = k;
  for (int64_t k = 0; k < half; ++k)
    if (-y[k] > best_v) best_v = -y[k], best = half + k;
  return best;
}

}  // namespace

int64_t lsh_total_buckets(const std::vector<int64_t>& factors) {
  int64_t n = 1;
  for (int64_t f : factors) n *= f;
  return n;
}

int64_t lsh_rotation_columns(const std::vector<int64_t>& factors) {
  int64_t s = 0;
  for (int64_t f : factors) s += f;
  return s / 2;
}

void lsh_check_bucket_factors(const std::vector<int64_t>& factors) {
  REFORMER_CHECK(!factors.empty(), "LSH num_buckets is empty; the model must resolve it to an int or a factor list");
  for (int64_t f : factors)
    REFORMER_CHECK(f >= 2 && f % 2 == 0, "LSH num_buckets factor ", f, " is invalid: every bucket count must be even and >= 2");
  REFORMER_CHECK(lsh_total_buckets(factors) < std::numeric_limits<int32_t>::max() / 2,
                 "LSH num_buckets product ", lsh_total_buckets(factors), " is too large for 32-bit bucket ids");
}

int64_t lsh_hash_scratch_floats(int num_hashes, const std::vector<int64_t>& factors) {
  return kHashRows * num_hashes * lsh_rotation_columns(factors);
}

void lsh_hash(int32_t* buckets, const float* qk, int64_t ldqk, const float* rotations, const uint8_t* valid,
              bool padding_bucket, int64_t L, int64_t d, int num_hashes, const std::vector<int64_t>& factors,
              float* scratch) {
  const int64_t rc = lsh_rotation_columns(factors);
  const int64_t cols = num_hashes * rc;
  const int64_t nb = lsh_total_buckets(factors);
  const int64_t nb_eff = nb + (padding_bucket ? 1 : 0);
  for (int64_t t0 = 0; t0 < L; t0 += kHashRows) {
    const int64_t rows = std::min(kHashRows, L - t0);
    gemm_f32(false, false, rows, cols, d, 1.f, qk + t0 * ldqk, ldqk, rotations, cols, 0.f, scratch, cols);
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t t = t0 + i;
      const bool pad = padding_bucket && valid && !valid[t];
      for (int r = 0; r < num_hashes; ++r) {
        int64_t b = nb;  // the padding bucket
        if (!pad) {
          const float* y = scratch + i * cols + r * rc;
          b = 0;
          int64_t stride = 1;  // product of the previous factors
          for (int64_t f : factors) {
            b += stride * signed_argmax(y, f / 2);
            y += f / 2;
            stride *= f;
          }
        }
        buckets[r * L + t] = static_cast<int32_t>(b + r * nb_eff);
      }
    }
  }
}

}  // namespace reformer
