#pragma once
// One hash round's positions in sorted order (bucket, then position), kept up to date as positions
// arrive one at a time (incremental decoding, docs/NUMERICS.md "Incremental decoding"). It answers
// what a stable sort of positions 0..t by bucket would give, without sorting: the rank of the
// newest position, and the positions at any run of consecutive ranks.
//
// Positions arrive in increasing order, so the newest one is always the last of its bucket and
// the sorted order is a linked list: a position is inserted after the last member of its bucket
// (or of the nearest non-empty bucket below it). Counts per bucket sit in a Fenwick tree, so a rank
// costs O(log buckets). Reading n consecutive ranks walks the list from the nearest of three
// anchors (head, tail, newest position): O(n + distance to the anchor), which for a decoding
// window (ranks next to the newest position, or at the end of the round) is O(window).
// All memory is allocated by reset(); append() allocates nothing.
#include <cstdint>

#include "reformer/tensor.h"

namespace reformer {

class LshBucketIndex {
 public:
  // Room for `capacity` positions hashed into `buckets` buckets; empties the index.
  void reset(int64_t capacity, int64_t buckets, MemCategory category);
  // Forgets every position, keeps the memory.
  void clear();

  // Appends position size() with its bucket (0 <= bucket < buckets). Returns its rank.
  int64_t append(int32_t bucket);
  int64_t size() const { return size_; }
  int64_t capacity() const { return static_cast<int64_t>(next_.size()); }
  int64_t buckets() const { return static_cast<int64_t>(last_.size()); }
  // Rank of the newest position (its slot in the sorted order); -1 when empty.
  int64_t newest_rank() const { return newest_rank_; }

  // out[i] = the position at rank first + i, for 0 <= first, first + n <= size().
  void positions(int64_t first, int64_t n, int32_t* out) const;

  int64_t bytes() const {
    return static_cast<int64_t>(next_.bytes() + prev_.bytes() + last_.bytes() + tree_.bytes());
  }

 private:
  int64_t count_below(int64_t bucket) const;  // positions in buckets < bucket
  int64_t bucket_of_rank(int64_t rank) const;  // the bucket holding rank `rank`
  void tree_add(int64_t bucket);

  Buffer<int32_t> next_, prev_;  // per position: neighbours in sorted order, -1 at the ends
  Buffer<int32_t> last_;         // per bucket: its newest position, -1 when empty
  Buffer<int32_t> tree_;         // Fenwick tree of bucket counts (1-based, size buckets)
  int64_t size_ = 0;
  int32_t head_ = -1, tail_ = -1;
  int64_t newest_rank_ = -1;
};

}  // namespace reformer
