// micro_gemm: the engine's GEMM wrapper gemm() (src/kernels/cpu/gemm.h, oneDNN) on the exact
// shapes the C&P and E8 models run, reported as FLOP/s (2*M*N*K per call).
//
//   OMP_NUM_THREADS=2 build/micro_gemm --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Two kinds of rows:
//  - gemm/<model>/<site>/...: the row-chunk GEMMs (projections, output, feed-forward, LM head and
//    their backward and weight-gradient products), called from the main thread as the layers do, so
//    oneDNN spreads one call over the OpenMP threads.
//  - gemm/<model>/tile_*: the per-chunk attention products inside chunk_attention_*. The model runs
//    those inside an OpenMP region, one chunk per thread, where gemm() is single-threaded; the
//    benchmark does the same (every thread multiplies its own tiles) and counts all threads' FLOPs.
// Names: <site>/<opA><opB>/MxNxK, with N = as stored, T = transposed. An fp32 row's label is the
// path gemm_f32 takes for it; .../sgemm and .../matmul: the same product on each path (bm_gemm_path).
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "micro_common.h"

#include "kernels/cpu/gemm.h"
#include "layers/feed_forward.h"
#include "layers/row_stream.h"
#include "model/heads.h"
#include "reformer/precision.h"
#include "reformer/rng.h"

namespace {

using reformer::gemm;

using micro::normals;

struct Shape {
  std::string site;
  bool ta, tb;
  int64_t M, N, K;
  float beta;  // 1 where the model accumulates (weight gradients), else 0
};

void set_flops(benchmark::State& state, double flops_per_iteration) {
  state.counters["FLOP/s"] = benchmark::Counter(flops_per_iteration, benchmark::Counter::kIsIterationInvariantRate,
                                                benchmark::Counter::OneK::kIs1000);
}

bool all_finite(const std::vector<float>& v) {
  for (float x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

// Row-major operands stored contiguously: A is M x K (K x M when transposed), B is K x N (N x K).
// `precision` is the engine's (bf16: operands rounded per call, oneDNN's bf16 matmul).
void bm_gemm(benchmark::State& state, Shape s, reformer::Precision precision) {
  reformer::ScopedPrecision scoped(precision, "micro_gemm");
  const int64_t lda = s.ta ? s.M : s.K, ldb = s.tb ? s.K : s.N;
  const float* A = normals(s.M * s.K, 1);
  const float* B = normals(s.K * s.N, 2);
  std::vector<float> C(s.M * s.N);  // zero-filled here: first touch stays out of the timed loop
  for (auto _ : state) {
    gemm(s.ta, s.tb, s.M, s.N, s.K, 1.f, A, lda, B, ldb, s.beta, C.data(), s.N);
    benchmark::ClobberMemory();
  }
  if (!all_finite(C)) state.SkipWithError("non-finite GEMM output");
  set_flops(state, 2.0 * s.M * s.N * s.K);
  if (precision == reformer::Precision::fp32)
    state.SetLabel(reformer::gemm_f32_uses_matmul(s.ta, s.tb, s.M, s.N, s.K) ? "matmul" : "sgemm");
}

// One fp32 path whatever the shape: gemm_f32 picks between them by gemm_f32_uses_matmul (the main
// row's label says which), and these rows say, per machine, whether that rule still holds.
using GemmFn = void (*)(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
                        float, float*, int64_t);

void bm_gemm_path(benchmark::State& state, Shape s, GemmFn path) {
  const int64_t lda = s.ta ? s.M : s.K, ldb = s.tb ? s.K : s.N;
  const float* A = normals(s.M * s.K, 1);
  const float* B = normals(s.K * s.N, 2);
  std::vector<float> C(s.M * s.N);
  for (auto _ : state) {
    path(s.ta, s.tb, s.M, s.N, s.K, 1.f, A, lda, B, ldb, s.beta, C.data(), s.N);
    benchmark::ClobberMemory();
  }
  if (!all_finite(C)) state.SkipWithError("non-finite GEMM output");
  set_flops(state, 2.0 * s.M * s.N * s.K);
}

// Per-chunk tiles: each thread owns its operands and multiplies them kTilesPerIteration times per
// iteration (a chunk's operands stay in cache across its products, as in the kernel), so one
// fork/join is spread over enough work to be negligible.
constexpr int kTilesPerIteration = 16;

void bm_tile(benchmark::State& state, Shape s) {
  const int threads = omp_get_max_threads();
  const int64_t lda = s.ta ? s.M : s.K, ldb = s.tb ? s.K : s.N;
  std::vector<std::vector<float>> A(threads), B(threads), C(threads);
  for (int t = 0; t < threads; ++t) {
    const float* a = normals(s.M * s.K, 10 + 2 * t);
    const float* b = normals(s.K * s.N, 11 + 2 * t);
    A[t].assign(a, a + s.M * s.K);
    B[t].assign(b, b + s.K * s.N);
    C[t].assign(s.M * s.N, 0.f);
  }
  for (auto _ : state) {
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num();
      for (int r = 0; r < kTilesPerIteration; ++r)
        gemm(s.ta, s.tb, s.M, s.N, s.K, 1.f, A[t].data(), lda, B[t].data(), ldb, s.beta, C[t].data(), s.N);
    }
    benchmark::ClobberMemory();
  }
  for (const auto& c : C)
    if (!all_finite(c)) state.SkipWithError("non-finite GEMM output");
  state.counters["threads"] = threads;
  set_flops(state, 2.0 * s.M * s.N * s.K * kTilesPerIteration * threads);
}

struct Model {
  std::string name;
  int64_t D, Hd, F, V;         // hidden, heads * head size, d_ff, vocabulary
  int64_t d;                   // head size
  int64_t local_c, lsh_c;      // chunk lengths; each chunk also sees one chunk before
};

constexpr int64_t kRows = reformer::kRowChunk;                     // row chunk of the attention projections
constexpr int64_t kFeedForwardRows = reformer::kFeedForwardBlockRows;  // the feed-forward's row block
constexpr int64_t kHeadRows = reformer::kDefaultHeadChunk;           // row chunk of the LM head

// The GEMMs of one model, as src/layers/row_stream.cpp, src/ops/linear.cpp (feed-forward, LM head)
// call them. Weights are torch (out, in); y = x W^T, dx = dy W, dW += dy^T x.
std::vector<Shape> row_chunk_shapes(const Model& m) {
  const int64_t n = kRows, f = kFeedForwardRows, D = m.D, Hd = m.Hd, F = m.F, V = m.V, D2 = 2 * m.D;
  return {
      {"qkv_proj", false, true, n, Hd, D, 0.f},       // q, k, v = x W^T
      {"out_proj", false, true, n, D, Hd, 0.f},       // o Wo^T
      {"out_proj_dO", false, false, n, Hd, D, 0.f},   // dO = dout Wo
      {"out_proj_dWo", true, false, D, Hd, n, 1.f},   // dWo += dout^T o
      {"qkv_proj_dx", false, false, n, D, Hd, 1.f},   // dx += dq W (summed over q, k, v)
      {"qkv_proj_dW", true, false, Hd, D, n, 1.f},    // dW += dq^T x
      {"ff1", false, true, f, F, D, 1.f},             // h = x W1^T + b1 (bias preloaded, beta 1)
      {"ff2", false, true, f, D, F, 1.f},             // y = a W2^T + b2
      {"ff2_dx", false, false, f, F, D, 0.f},         // da = dy W2
      {"ff2_dW", true, false, D, F, f, 1.f},          // dW2 += dy^T a
      {"ff1_dx", false, false, f, D, F, 0.f},         // dx = dh W1
      {"ff1_dW", true, false, F, D, f, 1.f},          // dW1 += dh^T x
      {"lm_head", false, true, kHeadRows, V, D2, 1.f},   // logits = norm W^T + b
      {"lm_head_dx", false, false, kHeadRows, D2, V, 0.f},
      {"lm_head_dW", true, false, V, D2, kHeadRows, 1.f},
  };
}

// chunk_attention_forward: s = q k^T (c x window x d), o = p v (c x d x window). The backward's
// products have the same sizes (dP = dO v^T like q k^T; dv, dq, dk like p v).
std::vector<Shape> tile_shapes(const Model& m) {
  std::vector<Shape> out;
  auto add = [&](const std::string& kind, int64_t c) {
    const int64_t w = 2 * c;  // one chunk before
    out.push_back({"tile_" + kind + "_qk", false, true, c, w, m.d, 0.f});
    out.push_back({"tile_" + kind + "_pv", false, false, c, m.d, w, 0.f});
  };
  add("local", m.local_c);
  if (m.lsh_c != m.local_c) add("lsh", m.lsh_c);  // C&P: LSH tiles = local tiles
  return out;
}

std::string shape_name(const Model& m, const Shape& s) {
  return "gemm/" + m.name + "/" + s.site + "/" + (s.ta ? "T" : "N") + (s.tb ? "T" : "N") + "/" +
         std::to_string(s.M) + "x" + std::to_string(s.N) + "x" + std::to_string(s.K);
}

void register_all() {
  const Model models[] = {
      {"cp", 256, 128, 512, 320, 64, 64, 64},      // crime-and-punishment: D 256, 2 x 64 heads
      {"e8", 512, 512, 2048, 258, 64, 128, 256},  // enwik8-like: D 512, 8 x 64 heads
  };
  for (const Model& m : models) {
    for (const Shape& s : row_chunk_shapes(m))
      benchmark::RegisterBenchmark(shape_name(m, s).c_str(), bm_gemm, s, reformer::Precision::fp32)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    if (reformer::precision_supported(reformer::Precision::bf16))  // gemm_bf16/...: the same shapes in bf16
      for (const Shape& s : row_chunk_shapes(m))
        benchmark::RegisterBenchmark(("gemm_bf16" + shape_name(m, s).substr(4)).c_str(), bm_gemm, s,
                                     reformer::Precision::bf16)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
    for (const Shape& s : row_chunk_shapes(m))
      for (const auto& [name, path] : {std::pair{"sgemm", &reformer::gemm_f32_sgemm}, std::pair{"matmul", &reformer::gemm_f32_matmul}})
        benchmark::RegisterBenchmark((shape_name(m, s) + "/" + name).c_str(), bm_gemm_path, s, path)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
    for (const Shape& s : tile_shapes(m))
      benchmark::RegisterBenchmark(shape_name(m, s).c_str(), bm_tile, s)->UseRealTime()->Unit(benchmark::kMillisecond);
  }
}

}  // namespace

int main(int argc, char** argv) { return micro::run(argc, argv, register_all); }
