#include "kernels/cpu/lsh_sort.h"

#include <cstring>

#include "reformer/error.h"

namespace reformer {

void lsh_sort(int32_t* sorted_pos, int32_t* undo, const int32_t* buckets, int64_t L, int num_hashes,
              int64_t nb_eff, int32_t* counts) {
  for (int r = 0; r < num_hashes; ++r) {
    const int32_t* b = buckets + r * L;
    const int64_t offset = r * nb_eff;
    std::memset(counts, 0, static_cast<size_t>(nb_eff) * sizeof(int32_t));
    for (int64_t t = 0; t < L; ++t) {
      const int64_t local = b[t] - offset;
      REFORMER_CHECK(local >= 0 && local < nb_eff, "LSH bucket id ", b[t], " of round ", r,
                     " is outside [", offset, ", ", offset + nb_eff, "): buckets do not match num_buckets/num_hashes");
      ++counts[local];
    }
    int32_t start = static_cast<int32_t>(r * L);  // exclusive prefix sum = first slot of each bucket
    for (int64_t k = 0; k < nb_eff; ++k) {
      const int32_t n = counts[k];
      counts[k] = start;
      start += n;
    }
    for (int64_t t = 0; t < L; ++t) {
      const int32_t slot = counts[b[t] - offset]++;
      sorted_pos[slot] = static_cast<int32_t>(t);
      undo[r * L + t] = slot;
    }
  }
}

}  // namespace reformer
