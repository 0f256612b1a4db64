// micro_lsh: LSH hashing (lsh_hash, src/kernels/cpu/lsh_hash.h) and the bucket sort (lsh_sort,
// src/kernels/cpu/lsh_sort.h) of one head's L = 65,536 positions, C&P layout (2 heads x 64, so the
// rows of one head have stride H*d = 128), 1 and 4 hash rounds.
//
//   OMP_NUM_THREADS=2 build/micro_lsh --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Buckets: "32x64" is what HF's rule (ReformerConfig::auto_num_buckets) resolves for C&P at
// L = 65,536: 2048 buckets, factorized, 48 rotation columns per round; "128" is the plain int
// count it resolves at L <= 4,096 (64 rotation columns per round).
// The model hashes and sorts one (batch, head) pair per OpenMP thread (LshSelfAttention::attend_all),
// so here every thread works on its own head, and items/s counts the positions x rounds of all
// threads. Bytes/s: hashing reads L*d floats per head; sorting reads the L*rounds bucket ids and
// writes sorted positions and the inverse permutation (3 int32 per position and round).
#include <benchmark/benchmark.h>
#include <omp.h>

#include <string>
#include <vector>

#include "micro_common.h"

#include "kernels/cpu/lsh_hash.h"
#include "kernels/cpu/lsh_sort.h"
#include "reformer/config.h"
#include "reformer/rng.h"

namespace {

using namespace reformer;

constexpr int64_t kL = 65536, kHeads = 2, kD = 64, kHd = kHeads * kD, kChunk = 64;

using micro::normals;

// Per-thread state for one head: its rows in the shared (L, H*d) projection, its rotations, and
// the outputs and scratch of lsh_hash and lsh_sort.
struct HeadWork {
  const float* qk;
  std::vector<float> rotations, hash_scratch;
  std::vector<int32_t> buckets, sorted_pos, undo, counts;
};

std::vector<HeadWork> make_work(int num_hashes, const std::vector<int64_t>& factors) {
  const int threads = omp_get_max_threads();
  const float* qk = normals(kL * kHd, 1);
  const int64_t rot = kD * num_hashes * lsh_rotation_columns(factors);
  const int64_t nb = lsh_total_buckets(factors);
  std::vector<HeadWork> work(threads);
  for (int t = 0; t < threads; ++t) {
    HeadWork& w = work[t];
    w.qk = qk + (t % kHeads) * kD;  // more threads than heads: extra threads re-read a head
    const float* r = normals(rot, 100 + t);
    w.rotations.assign(r, r + rot);
    w.hash_scratch.assign(lsh_hash_scratch_floats(num_hashes, factors), 0.f);
    w.buckets.assign(num_hashes * kL, 0);
    w.sorted_pos.assign(num_hashes * kL, 0);
    w.undo.assign(num_hashes * kL, 0);
    w.counts.assign(nb, 0);
  }
  // Real buckets for the sort benchmark. Hashed inside a parallel region, like the timed loop:
  // outside one, each of lsh_hash's 512 small GEMMs would fork its own team, which on a busy
  // machine costs a scheduler tick per call.
#pragma omp parallel num_threads(threads)
  {
    HeadWork& w = work[omp_get_thread_num()];
    lsh_hash(w.buckets.data(), w.qk, kHd, w.rotations.data(), nullptr, false, kL, kD, num_hashes, factors,
             w.hash_scratch.data());
  }
  return work;
}

bool buckets_in_range(const HeadWork& w, int num_hashes, int64_t nb) {
  for (int64_t i = 0; i < num_hashes * kL; ++i) {
    const int64_t lo = (i / kL) * nb;
    if (w.buckets[i] < lo || w.buckets[i] >= lo + nb) return false;
  }
  return true;
}

void bm_hash(benchmark::State& state, std::vector<int64_t> factors, int num_hashes) {
  std::vector<HeadWork> work = make_work(num_hashes, factors);
  const int threads = static_cast<int>(work.size());
  for (auto _ : state) {
#pragma omp parallel num_threads(threads)
    {
      HeadWork& w = work[omp_get_thread_num()];
      lsh_hash(w.buckets.data(), w.qk, kHd, w.rotations.data(), nullptr, false, kL, kD, num_hashes, factors,
               w.hash_scratch.data());
    }
    benchmark::ClobberMemory();
  }
  for (const HeadWork& w : work)
    if (!buckets_in_range(w, num_hashes, lsh_total_buckets(factors))) state.SkipWithError("bucket id out of range");
  state.SetItemsProcessed(state.iterations() * kL * num_hashes * threads);
  state.SetBytesProcessed(state.iterations() * kL * kD * static_cast<int64_t>(sizeof(float)) * threads);
  state.counters["threads"] = threads;
}

void bm_sort(benchmark::State& state, std::vector<int64_t> factors, int num_hashes) {
  std::vector<HeadWork> work = make_work(num_hashes, factors);
  const int threads = static_cast<int>(work.size());
  const int64_t nb = lsh_total_buckets(factors);
  for (auto _ : state) {
#pragma omp parallel num_threads(threads)
    {
      HeadWork& w = work[omp_get_thread_num()];
      lsh_sort(w.sorted_pos.data(), w.undo.data(), w.buckets.data(), kL, num_hashes, nb, w.counts.data());
    }
    benchmark::ClobberMemory();
  }
  // The sort must be a permutation whose inverse is undo: spot-check it.
  for (const HeadWork& w : work)
    for (int64_t s = 0; s < num_hashes * kL; s += 997)
      if (w.undo[(s / kL) * kL + w.sorted_pos[s]] != s) state.SkipWithError("sorted_pos and undo disagree");
  state.SetItemsProcessed(state.iterations() * kL * num_hashes * threads);
  state.SetBytesProcessed(state.iterations() * kL * num_hashes * 3 * static_cast<int64_t>(sizeof(int32_t)) * threads);
  state.counters["threads"] = threads;
}

std::string buckets_name(const std::vector<int64_t>& factors) {
  std::string s;
  for (int64_t f : factors) s += (s.empty() ? "" : "x") + std::to_string(f);
  return s;
}

void register_all() {
  // C&P's factorized buckets as the model resolves them at this L (max_position_embeddings = L, as
  // reformer_bench sets it), and the int count it resolves at L = 4,096.
  ReformerConfig cp;
  cp.lsh_attn_chunk_length = kChunk;
  cp.max_position_embeddings = kL;
  const std::vector<std::vector<int64_t>> bucket_sets = {cp.auto_num_buckets(kL), cp.auto_num_buckets(4096)};
  for (const char* op : {"lsh_hash", "lsh_sort"})
    for (const auto& factors : bucket_sets)
      for (int nh : {1, 4}) {
        const std::string name = std::string(op) + "/cp/L:" + std::to_string(kL) + "/buckets:" + buckets_name(factors) +
                                 "/hashes:" + std::to_string(nh);
        auto* b = std::string(op) == "lsh_hash" ? benchmark::RegisterBenchmark(name.c_str(), bm_hash, factors, nh)
                                                : benchmark::RegisterBenchmark(name.c_str(), bm_sort, factors, nh);
        b->UseRealTime()->Unit(benchmark::kMillisecond);
      }
}

}  // namespace

int main(int argc, char** argv) { return micro::run(argc, argv, register_all); }
