#include "kernels/cpu/lsh_bucket_index.h"

#include <cstdlib>
#include <limits>

namespace reformer {

void LshBucketIndex::reset(int64_t capacity, int64_t buckets, MemCategory category) {
  REFORMER_CHECK(capacity >= 0 && capacity < std::numeric_limits<int32_t>::max(), "LSH bucket index: capacity ",
                 capacity, " must be in [0, 2^31 - 1)");
  REFORMER_CHECK(buckets >= 1 && buckets < std::numeric_limits<int32_t>::max(), "LSH bucket index: ", buckets,
                 " buckets must be in [1, 2^31 - 1)");
  next_ = Buffer<int32_t>(capacity, category);
  prev_ = Buffer<int32_t>(capacity, category);
  last_ = Buffer<int32_t>(buckets, category);
  tree_ = Buffer<int32_t>(buckets, category);
  clear();
}

void LshBucketIndex::clear() {
  last_.fill(-1);
  tree_.fill(0);
  size_ = 0;
  head_ = tail_ = -1;
  newest_rank_ = -1;
}

int64_t LshBucketIndex::count_below(int64_t bucket) const {
  int64_t n = 0;
  for (int64_t i = bucket; i > 0; i -= i & -i) n += tree_[i - 1];
  return n;
}

void LshBucketIndex::tree_add(int64_t bucket) {
  for (int64_t i = bucket + 1; i <= buckets(); i += i & -i) ++tree_[i - 1];
}

int64_t LshBucketIndex::bucket_of_rank(int64_t rank) const {
  // Fenwick descent: the largest prefix of buckets holding <= rank positions ends just before the
  // bucket that holds rank `rank`.
  int64_t pos = 0, remaining = rank;
  int64_t step = 1;
  while (step * 2 <= buckets()) step *= 2;
  for (; step > 0; step /= 2)
    if (pos + step <= buckets() && tree_[pos + step - 1] <= remaining) {
      pos += step;
      remaining -= tree_[pos - 1];
    }
  return pos;
}

int64_t LshBucketIndex::append(int32_t bucket) {
  REFORMER_CHECK(size_ < capacity(), "LSH bucket index is full (", capacity(), " positions)");
  REFORMER_CHECK(bucket >= 0 && bucket < buckets(), "LSH bucket index: bucket ", bucket, " outside [0, ", buckets(),
                 ")");
  const int32_t t = static_cast<int32_t>(size_);
  const int64_t below = count_below(bucket);
  // The new position follows its bucket's newest member, or else the last member of the nearest
  // non-empty bucket below (the one holding rank below - 1), or else it is the new head.
  int32_t after = last_[bucket];
  if (after < 0 && below > 0) after = last_[bucket_of_rank(below - 1)];
  prev_[t] = after;
  next_[t] = after < 0 ? head_ : next_[after];
  if (after < 0)
    head_ = t;
  else
    next_[after] = t;
  if (next_[t] < 0)
    tail_ = t;
  else
    prev_[next_[t]] = t;
  last_[bucket] = t;
  tree_add(bucket);
  ++size_;
  // The newest position is the last of its bucket: its rank is everything in its bucket or below, minus one.
  newest_rank_ = count_below(bucket + 1) - 1;
  return newest_rank_;
}

void LshBucketIndex::positions(int64_t first, int64_t n, int32_t* out) const {
  REFORMER_CHECK(first >= 0 && n >= 0 && first + n <= size_, "LSH bucket index: ranks [", first, ", ", first + n,
                 ") outside [0, ", size_, ")");
  if (n == 0) return;
  // Start from the anchor nearest to `first`: the head (rank 0), the tail (rank size - 1) or the
  // newest position.
  int32_t node = head_;
  int64_t rank = 0;
  if (size_ - 1 - first < first - rank) node = tail_, rank = size_ - 1;
  const int64_t newest = size_ - 1;
  if (newest_rank_ >= 0 && std::abs(newest_rank_ - first) < std::abs(rank - first))
    node = static_cast<int32_t>(newest), rank = newest_rank_;
  for (; rank < first; ++rank) node = next_[node];
  for (; rank > first; --rank) node = prev_[node];
  for (int64_t i = 0; i < n; ++i, node = next_[node]) out[i] = node;
}

}  // namespace reformer
