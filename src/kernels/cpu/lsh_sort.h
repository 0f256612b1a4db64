#pragma once
// Sorting one head's hashed positions by bucket (spec 1.4), and the circular chunk windows over the
// sorted sequence (spec 1.6).
#include <cstdint>

namespace reformer {

// Stable sort of the nh*L offset bucket ids by (bucket, t), t = r*L + position: the permutation of
// Hugging Face's 64-bit keys (nh*L)*bucket + t. Round r's offset buckets lie in
// [r*nb_eff, (r+1)*nb_eff), so round r fills sorted slots [r*L, (r+1)*L) and a stable counting sort
// per round is exact. Outputs: sorted_pos[s] = original position of slot s (its round is s / L);
// undo[t] = slot of t. counts: nb_eff ints of scratch.
void lsh_sort(int32_t* sorted_pos, int32_t* undo, const int32_t* buckets, int64_t L, int num_hashes,
              int64_t nb_eff, int32_t* counts);

// Windows: chunk i of the sorted sequence (n_chunks chunks of c rows) looks at chunks
// i-before .. i+after modulo n_chunks, in that order. A padded copy of the sorted rows makes every
// window contiguous: padded row p holds sorted row lsh_window_source(p, ...), and chunk i's window
// is padded rows [i*c, (i + 1 + before + after)*c). The padded copy has
// (n_chunks + before + after) * c rows.
inline int64_t lsh_window_source(int64_t p, int64_t n_chunks, int64_t c, int64_t before) {
  const int64_t chunk = ((p / c - before) % n_chunks + n_chunks) % n_chunks;
  return chunk * c + p % c;
}

}  // namespace reformer
