// micro_attention: chunk attention forward and backward (src/kernels/cpu/chunk_attention.h), the
// inner kernel of local and LSH attention: one chunk of c queries against a window of 2c keys (one
// chunk before), head size 64, with and without the causal mask.
//
//   OMP_NUM_THREADS=2 build/micro_attention --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Shapes: C&P local and LSH chunks 64 (window 128); E8 local chunk 128 (window 256) and LSH chunk
// 256 (window 512). The lsh rows also apply the self mask (always on in LSH) and use scattered key
// positions, as after the bucket sort; the local rows use the contiguous positions of local
// attention. The C&P rows also run with the models' attention dropout (0.1), whose mask draws and
// masking are part of every training chunk.
// FLOPs, counted as the matrix products: forward 4*nq*nk*d (q k^T and p v), backward 8*nq*nk*d
// (dO v^T, p^T dO, ds k, ds^T q); the masked part of a causal window is computed all the same, so
// causal rows count the full window too.
// The layers run one chunk per OpenMP thread (gemm() single-threaded inside the region), so every
// thread here runs its own chunk, kChunksPerIteration times per iteration, and FLOP/s is the sum
// over threads.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cmath>
#include <string>
#include <vector>

#include "micro_common.h"

#include "kernels/cpu/chunk_attention.h"
#include "reformer/rng.h"

namespace {

using namespace reformer;

constexpr int64_t kD = 64;
constexpr int kChunksPerIteration = 8;  // spreads one fork/join over enough work

struct Case {
  std::string name;
  int64_t c;  // queries per chunk; the window is 2c keys
  bool lsh;   // self mask and scattered positions
};

// One thread's chunk: inputs, forward outputs (kept for the backward), gradients and scratch.
struct Chunk {
  int64_t nq, nk;
  std::vector<float> q, k, v, o, lse, dO, dq, dk, dv, scratch;
  std::vector<int32_t> qpos, kpos;

  Chunk(const Case& cs, int thread) : nq(cs.c), nk(2 * cs.c) {
    const uint64_t stream = 1000 * (thread + 1);
    auto normal = [&](std::vector<float>& x, int64_t n, uint64_t s, float std) {
      x.resize(n);
      rng_fill_normal(x.data(), n, micro::kSeed, stream + s, 0.f, std);
    };
    // q scaled by 1/sqrt(d) as the projections do, so the logits have unit variance and the
    // softmax is neither flat nor one-hot.
    normal(q, nq * kD, 1, 1.f / std::sqrt(static_cast<float>(kD)));
    normal(k, nk * kD, 2, 1.f);
    normal(v, nk * kD, 3, 1.f);
    normal(dO, nq * kD, 4, 1.f);
    o.assign(nq * kD, 0.f);
    lse.assign(nq, 0.f);
    dq.assign(nq * kD, 0.f);
    dk.assign(nk * kD, 0.f);
    dv.assign(nk * kD, 0.f);
    scratch.assign(2 * nq * nk, 0.f);  // the backward needs 2 * nq * nk, the forward nq * nk
    kpos.resize(nk);
    if (cs.lsh) {
      // Sorted by bucket, a window holds positions from all over the sequence (L = 65,536 here).
      for (int64_t j = 0; j < nk; ++j)
        kpos[j] = static_cast<int32_t>(rng_word(micro::kSeed, stream + 5, static_cast<uint64_t>(j)) % 65536);
    } else {
      for (int64_t j = 0; j < nk; ++j) kpos[j] = static_cast<int32_t>(j);
    }
    // The queries are the window's last chunk (lsh_window_source / local attention layout).
    qpos.assign(kpos.end() - nq, kpos.end());
  }

  void forward(const ChunkAttentionOptions& opt) {
    chunk_attention_forward(o.data(), kD, lse.data(), q.data(), kD, k.data(), kD, v.data(), kD, qpos.data(),
                            kpos.data(), nullptr, nq, nk, kD, opt, scratch.data());
  }
  // One-round form (LSH with one hash): o given, no upstream lse gradient. dq/dk/dv accumulate;
  // the layers zero them per chunk, which is the caller's cost and left out here.
  void backward(const ChunkAttentionOptions& opt) {
    chunk_attention_backward(dq.data(), kD, dk.data(), kD, dv.data(), kD, dO.data(), kD, nullptr, o.data(), kD,
                             lse.data(), q.data(), kD, k.data(), kD, v.data(), kD, qpos.data(), kpos.data(), nullptr,
                             nq, nk, kD, opt, scratch.data());
  }
};

bool finite(const std::vector<float>& x) {
  for (float f : x)
    if (!std::isfinite(f)) return false;
  return true;
}

void bm_chunk(benchmark::State& state, Case cs, bool causal, bool backward, float dropout) {
  const int threads = omp_get_max_threads();
  ChunkAttentionOptions opt;
  opt.causal = causal;
  opt.self_mask = cs.lsh;
  opt.dropout = dropout;
  opt.seed = micro::kSeed;
  opt.stream = 77;
  std::vector<Chunk> chunks;
  for (int t = 0; t < threads; ++t) chunks.emplace_back(cs, t);
  // Check once before timing that the kernel gives finite results on this data (and give the
  // backward the forward's o and lse).
  for (Chunk& ch : chunks) {
    ch.forward(opt);
    if (backward) ch.backward(opt);
    if (!finite(ch.o) || !finite(ch.lse) || !finite(ch.dq) || !finite(ch.dk) || !finite(ch.dv)) {
      state.SkipWithError("non-finite chunk attention output");
      return;
    }
  }
  for (auto _ : state) {
#pragma omp parallel num_threads(threads)
    {
      Chunk& ch = chunks[omp_get_thread_num()];
      for (int r = 0; r < kChunksPerIteration; ++r) {
        if (backward)
          ch.backward(opt);
        else
          ch.forward(opt);
      }
    }
    benchmark::ClobberMemory();
  }
  const double flops = (backward ? 8.0 : 4.0) * cs.c * (2 * cs.c) * kD * kChunksPerIteration * threads;
  state.counters["FLOP/s"] =
      benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::OneK::kIs1000);
  state.counters["threads"] = threads;
}

void register_all() {
  const Case cases[] = {
      {"cp_local", 64, false},
      {"cp_lsh", 64, true},
      {"e8_local", 128, false},
      {"e8_lsh", 256, true},
  };
  for (const Case& cs : cases)
    for (bool backward : {false, true})
      for (bool causal : {false, true})
        for (float dropout : {0.f, 0.1f}) {
          if (dropout > 0.f && cs.name.rfind("cp_", 0) != 0) continue;
          const std::string name = std::string("chunk_attention_") + (backward ? "bwd" : "fwd") + "/" + cs.name +
                                   "/c:" + std::to_string(cs.c) + "/window:" + std::to_string(2 * cs.c) +
                                   (causal ? "/causal" : "/bidirectional") + (dropout > 0.f ? "/dropout:0.1" : "");
          benchmark::RegisterBenchmark(name.c_str(), bm_chunk, cs, causal, backward, dropout)
              ->UseRealTime()
              ->Unit(benchmark::kMillisecond);
        }
}

}  // namespace

int main(int argc, char** argv) { return micro::run(argc, argv, register_all); }
