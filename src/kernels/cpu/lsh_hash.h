#pragma once
// Angular LSH hashing (spec 1.2): bucket = argmax over [x R, -x R] per hash round, optionally
// factorized, with a padding bucket and per-round offsets. Hashing has no gradient.
#include <cstdint>
#include <vector>

namespace reformer {

// factors: the bucket counts, one element = plain int case, several = factorized (every factor
// even). Total buckets = product; rotation columns per round = sum / 2.
int64_t lsh_total_buckets(const std::vector<int64_t>& factors);
int64_t lsh_rotation_columns(const std::vector<int64_t>& factors);
// Throws naming the bad factor unless every factor is even and >= 2 and the list is not empty.
void lsh_check_bucket_factors(const std::vector<int64_t>& factors);

// Floats of scratch lsh_hash needs.
int64_t lsh_hash_scratch_floats(int num_hashes, const std::vector<int64_t>& factors);

// buckets[r * L + t] = bucket of position t in round r, plus the round offset r * nb_eff, where
// nb_eff = total buckets (+1 with padding_bucket). qk: L x d (row stride ldqk). rotations: one
// head's d x num_hashes x rot_cols block (Hugging Face layout, row j holds rounds then columns).
// With padding_bucket, positions with valid[t] == 0 get bucket nb_eff - 1 in every round (valid
// may be nullptr: no padding in this sequence). Ties go to the first maximal index (torch/jnp).
void lsh_hash(int32_t* buckets, const float* qk, int64_t ldqk, const float* rotations, const uint8_t* valid,
              bool padding_bucket, int64_t L, int64_t d, int num_hashes, const std::vector<int64_t>& factors,
              float* scratch);

}  // namespace reformer
