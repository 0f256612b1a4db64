// micro_ops: the row-wise ops around the GEMMs, on the row chunks the models use:
//  - LayerNorm forward and backward (src/ops/layernorm.h), 4096 rows x 256 (C&P) and x 512 (E8).
//    Bytes/s counts the minimum traffic: forward reads x and writes y (2 floats per element),
//    backward reads dy and x and writes dx (3 floats per element).
//  - The LM head on one row chunk (kDefaultHeadChunk rows, model/heads.h): linear forward,
//    cross-entropy loss and gradient in one pass (dlogits over the logits, as the model does),
//    linear backward. FLOP/s counts its three GEMMs (6 * rows * in * vocab); items/s is rows. The
//    cross_entropy rows time the cross-entropy call alone, to show its share.
//  - LayerNorm's parameter-gradient column sums (kernel_accumulate_layernorm_param_grads) on one
//    thread, 4096 x 256, in column blocks of 64, 128 and 256 (ops/parallel.h: the block width).
//  - Dropout forward (src/ops/dropout.h), p = 0.1, out of place (in place would rescale the same
//    survivors every iteration), on 16M elements (streamed from memory), 2M (one C&P FF hidden
//    chunk of 4096 x 512) and 256K (1 MiB, inside L2: what the mask's Philox words cost). Bytes/s:
//    read x, write y.
//  - The dropout draws alone (rng_draws16, src/core/rng.h) on one thread, 64K draws (128 KiB, in L2)
//    per call, as the dropout passes draw them for a piece; items/s is draws.
//  - bf16 rounding (f32_to_bf16, kernels/cpu/bf16.h) on one thread, 512 values (in L1, the size of
//    a dropout piece, where the ops that write GEMM operand copies round) and 1M (from L3): normal
//    values (AVX512-BF16's instruction where the CPU has it) and subnormal ones (which that path
//    hands to the integer lanes, so the two rows compare the two ways on one machine).
//
//   OMP_NUM_THREADS=2 build/micro_ops --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// The ops parallelise internally with OpenMP, so they are called from the main thread as the
// layers call them.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "micro_common.h"

#include "kernels/cpu/bf16.h"
#include "kernels/cpu/elementwise.h"
#include "model/heads.h"
#include "ops/cross_entropy.h"
#include "ops/dropout.h"
#include "ops/layernorm.h"
#include "ops/linear.h"
#include "reformer/rng.h"

namespace {

using namespace reformer;

using micro::normals;

std::vector<float> normal_vector(int64_t n, uint64_t stream, float mean, float std) {
  const float* z = normals(n, stream);
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = mean + std * z[i];
  return v;
}

bool finite(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return false;
  return true;
}

// ---- LayerNorm ----------------------------------------------------------------------------------

constexpr int64_t kLnRows = 4096;

void bm_layernorm(benchmark::State& state, int64_t C, bool backward) {
  const int64_t N = kLnRows, n = N * C;
  const float* x = normals(n, 1);
  const float* dy = normals(n, 2);
  const std::vector<float> w = normal_vector(C, 3, 1.f, 0.1f), b = normal_vector(C, 4, 0.f, 0.1f);
  std::vector<float> y(n), dx(n), mean(N), rstd(N), dw(C), db(C);
  layernorm_forward(y.data(), mean.data(), rstd.data(), x, w.data(), b.data(), N, C, 1e-12f);
  for (auto _ : state) {
    if (backward)
      layernorm_backward(dx.data(), dw.data(), db.data(), dy, x, mean.data(), rstd.data(), w.data(), N, C);
    else
      layernorm_forward(y.data(), mean.data(), rstd.data(), x, w.data(), b.data(), N, C, 1e-12f);
    benchmark::ClobberMemory();
  }
  if (!finite(y.data(), n) || (backward && !finite(dx.data(), n))) state.SkipWithError("non-finite LayerNorm output");
  state.SetBytesProcessed(state.iterations() * n * (backward ? 3 : 2) * static_cast<int64_t>(sizeof(float)));
  state.SetItemsProcessed(state.iterations() * N);
}

// LayerNorm's parameter-gradient sums on one thread, the rows swept in column blocks of `block`
// (parallel_column_blocks' choice: 64 columns before the sixth session, now one block per thread).
void bm_layernorm_param_grads(benchmark::State& state, int64_t C, int64_t block) {
  const int64_t N = kLnRows, n = N * C;
  const float* x = normals(n, 1);
  const float* dy = normals(n, 2);
  const std::vector<float> w = normal_vector(C, 3, 1.f, 0.1f), b = normal_vector(C, 4, 0.f, 0.1f);
  std::vector<float> y(n), mean(N), rstd(N);
  std::vector<double> aw(C), ab(C);
  layernorm_forward(y.data(), mean.data(), rstd.data(), x, w.data(), b.data(), N, C, 1e-12f);
  for (auto _ : state) {
    for (int64_t j0 = 0; j0 < C; j0 += block)
      kernel_accumulate_layernorm_param_grads(aw.data() + j0, ab.data() + j0, dy + j0, x + j0, C, mean.data(),
                                              rstd.data(), N, std::min(block, C - j0));
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * n * 2 * static_cast<int64_t>(sizeof(float)));
}

// ---- LM head ------------------------------------------------------------------------------------

constexpr int64_t kHeadRows = kDefaultHeadChunk;  // the model's LM-head rows per chunk

struct Head {
  int64_t in, V;
  std::vector<float> x, w, b, logits, dx, dw, db;
  std::vector<int32_t> targets;

  Head(int64_t in_, int64_t V_) : in(in_), V(V_) {
    x = normal_vector(kHeadRows * in, 10, 0.f, 1.f);  // the final LayerNorm's output
    w = normal_vector(V * in, 11, 0.f, 0.02f);        // HF initializer_range
    b = normal_vector(V, 12, 0.f, 0.02f);
    logits.resize(kHeadRows * V);
    dx.resize(kHeadRows * in);
    dw.resize(V * in);
    db.resize(V);
    targets.resize(kHeadRows);
    for (int64_t i = 0; i < kHeadRows; ++i) targets[i] = static_cast<int32_t>(rng_word(micro::kSeed, 13, i) % V);
  }
  double cross_entropy() {  // the loss and dlogits over the logits in one pass, as the model does
    return cross_entropy_forward_backward(logits.data(), logits.data(), targets.data(), kHeadRows, V, 1.f / kHeadRows)
        .loss_sum;
  }
  double step() {
    linear_forward(logits.data(), x.data(), w.data(), b.data(), kHeadRows, in, V);
    const double loss = cross_entropy();
    linear_backward(dx.data(), dw.data(), db.data(), logits.data(), x.data(), w.data(), kHeadRows, in, V);
    return loss;
  }
};

void bm_lm_head(benchmark::State& state, int64_t in, int64_t V, bool ce_only) {
  Head h(in, V);
  double loss = h.step();
  if (!std::isfinite(loss) || loss <= 0 || !finite(h.dx.data(), kHeadRows * in)) {
    state.SkipWithError("non-finite LM head loss or gradient");
    return;
  }
  for (auto _ : state) {
    if (ce_only) {
      // The backward overwrote the logits with dlogits: restore them first, untimed.
      state.PauseTiming();
      linear_forward(h.logits.data(), h.x.data(), h.w.data(), h.b.data(), kHeadRows, in, V);
      state.ResumeTiming();
      loss = h.cross_entropy();
    } else {
      loss = h.step();
    }
    benchmark::DoNotOptimize(loss);
  }
  state.counters["loss/row"] = loss / kHeadRows;
  if (!ce_only)
    state.counters["FLOP/s"] = benchmark::Counter(6.0 * kHeadRows * in * V, benchmark::Counter::kIsIterationInvariantRate,
                                                  benchmark::Counter::OneK::kIs1000);
  state.SetItemsProcessed(state.iterations() * kHeadRows);
}

// ---- Dropout ------------------------------------------------------------------------------------

void bm_dropout(benchmark::State& state, int64_t n) {
  const float* x = normals(n, 20);
  std::vector<float> y(n);
  const uint64_t stream = hidden_dropout_stream(/*step=*/1, /*layer=*/0, DropoutSite::FeedForwardOutput);
  for (auto _ : state) {
    dropout_forward(y.data(), x, n, 0.1f, micro::kSeed, stream, 0);
    benchmark::ClobberMemory();
  }
  int64_t dropped = 0;
  for (int64_t i = 0; i < n; ++i) dropped += y[i] == 0.f;
  state.counters["dropped"] = static_cast<double>(dropped) / n;  // should be close to 0.1
  if (!finite(y.data(), n)) state.SkipWithError("non-finite dropout output");
  state.SetBytesProcessed(state.iterations() * n * 2 * static_cast<int64_t>(sizeof(float)));
  state.SetItemsProcessed(state.iterations() * n);
}

void bm_draws16(benchmark::State& state, int64_t n) {
  std::vector<uint16_t> out(n);
  uint64_t stream = 0;
  for (auto _ : state) {
    rng_draws16(out.data(), n, micro::kSeed, ++stream, 0);
    benchmark::ClobberMemory();
  }
  if (out[static_cast<size_t>(n - 1)] != rng_draw16(micro::kSeed, stream, static_cast<uint64_t>(n - 1)))
    state.SkipWithError("the last draw differs from rng_draw16");
  state.SetItemsProcessed(state.iterations() * n);
}

// ---- bf16 rounding -------------------------------------------------------------------------------

void bm_bf16_round(benchmark::State& state, int64_t n, bool subnormal) {
  std::vector<float> x(normals(n, 21), normals(n, 21) + n);
  if (subnormal)
    for (float& v : x) v *= 1e-39f;  // below FLT_MIN (1.18e-38): every value subnormal or zero
  std::vector<uint16_t> y(n);
  for (auto _ : state) {
    f32_to_bf16(y.data(), x.data(), n);
    benchmark::ClobberMemory();
  }
  for (int64_t i = 0; i < n; ++i)
    if (y[i] != f32_to_bf16(x[i])) state.SkipWithError("bf16 rounding differs from its definition");
  state.SetItemsProcessed(state.iterations() * n);
}

void register_all() {
  for (bool backward : {false, true})
    for (int64_t C : {256, 512}) {
      const std::string name = std::string("layernorm_") + (backward ? "bwd" : "fwd") + "/rows:" +
                               std::to_string(kLnRows) + "/width:" + std::to_string(C);
      benchmark::RegisterBenchmark(name.c_str(), bm_layernorm, C, backward)->UseRealTime()->Unit(benchmark::kMillisecond);
    }
  for (int64_t block : {64, 128, 256}) {
    const std::string name = "layernorm_param_grads_1thread/rows:" + std::to_string(kLnRows) + "/width:256/block:" +
                             std::to_string(block);
    benchmark::RegisterBenchmark(name.c_str(), bm_layernorm_param_grads, int64_t{256}, block)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
  struct HeadShape {
    const char* model;
    int64_t in, V;
  };
  for (bool ce_only : {false, true})
    for (const HeadShape& s : {HeadShape{"cp", 512, 320}, HeadShape{"e8", 1024, 258}}) {
      const std::string name = std::string(ce_only ? "cross_entropy_fwd_bwd/" : "lm_head_fwd_bwd/") + s.model +
                               "/rows:" + std::to_string(kHeadRows) + "/in:" + std::to_string(s.in) +
                               "/vocab:" + std::to_string(s.V);
      benchmark::RegisterBenchmark(name.c_str(), bm_lm_head, s.in, s.V, ce_only)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
  for (int64_t log2n : {24, 21, 18}) {
    const std::string name = "dropout_fwd/n:" + std::to_string((int64_t{1} << log2n) >> 10) + "K/p:0.1";
    benchmark::RegisterBenchmark(name.c_str(), bm_dropout, int64_t{1} << log2n)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  }
  benchmark::RegisterBenchmark("rng_draws16_1thread/n:64K", bm_draws16, int64_t{1} << 16)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
  for (int64_t n : {int64_t{512}, int64_t{1} << 20})
    for (bool subnormal : {false, true}) {
      const std::string name = "bf16_round/n:" + std::to_string(n) + (subnormal ? "/subnormal" : "/normal");
      benchmark::RegisterBenchmark(name.c_str(), bm_bf16_round, n, subnormal)->UseRealTime();
    }
}

}  // namespace

int main(int argc, char** argv) { return micro::run(argc, argv, register_all); }
