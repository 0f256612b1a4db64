// reformer_bench: training-step and forward sweeps of the Reformer LM, with an fp32 FMA peak
// measured in the same run, written as CSV (one row per configuration).
//
//   reformer_bench [--quick] [--out FILE] [--sweeps length,attn,forward,layers,dff,e8,long]
//                  [--reps N] [--warmup N] [--mem-limit-gib G]
//   reformer_bench --run 'key=value;key=value...'     one configuration, prints one CSV row body
//   reformer_bench --pair 'spec A' 'spec B' [--rounds N]   both in one process, stepped alternately:
//                                                     the ratio B / A per pair and its median
//   reformer_bench --fma                              the FMA peak, prints "gflops1,gflops2"
//
// Every configuration runs in its OWN child process (fork + exec of this binary with --run), so the
// process peak RSS (VmHWM) of a row belongs to that configuration alone, and a configuration that
// runs out of memory (or hits --mem-limit-gib) fails alone. The parent never touches OpenMP or
// oneDNN. The row's `command` column is the exact child command line that reproduces it.
//
// A training step is: zero_grad, forward_backward (forward, loss, reversible backward), and one
// Adam update of every parameter (src/train/adam.h, so optimizer state is included in the memory).
// Forward mode is ReformerModel::evaluate (forward + loss, no dropout, no gradients).
// Timing: `warmup` untimed steps, then `reps` timed steps; the row reports the median, min and max.
// FLOPs: the model FLOP formula of docs/PERFORMANCE.md (matrix products only, recomputation in the
// reversible backward NOT counted, so recomputation shows up as lost efficiency).
#include <immintrin.h>
#include <omp.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "bench_models.h"
#include "core/cpu_isa.h"
#include "kernels/cpu/gemm.h"
#include "reformer/attention_kinds.h"
#include "reformer/memory.h"
#include "reformer/memory_estimate.h"
#include "reformer/model.h"
#include "reformer/precision.h"
#include "train/adam.h"

namespace {

using reformer::MemCategory;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------------
// One configuration.
struct BenchConfig {
  std::string name = "run";
  std::string model = "cp";    // cp: crime-and-punishment architecture; e8: enwik8-like
  std::string attn = "mixed";  // mixed: the model's own pattern; lsh / local / full: every layer of that kind
  std::string mode = "train";  // train | forward
  int64_t length = 4096;
  int64_t layers = 0;     // 0 = the model's default depth (pattern repeated / cut to this many layers)
  int64_t d_ff = 0;       // 0 = model default
  int64_t ff_chunk = -1;  // -1 = model default (cp/e8: 4096 rows)
  int64_t hashes = 0;     // 0 = model default
  int reversible = 1;
  int64_t stored = -1;  // >= 0: the per-layer plan, the lowest `stored` layers keep their activations (overrides reversible)
  int64_t inputs = 0;   // with stored >= 0: the next `inputs` layers keep their input X2 (LayerKeep::input)
  int64_t max_memory = 0;  // > 0: the plan plan_stored_layers makes for this budget in bytes (overrides stored)
  std::string precision = "fp32";  // fp32 | bf16 (reformer/precision.h)
  int operand_copies = 1;  // bf16, 0: the products round every operand themselves (GemmOperandSlotsOff), for A/B
  int64_t row_chunk = 0;   // > 0: the attention layers' row chunk (ReformerModel::set_attention_row_chunk)
  int64_t head_chunk = 0;  // > 0: the LM head's rows per chunk (chunk_size_lm_head; 0 = the engine's default)
  int reps = 3;
  int warmup = 1;

  std::string encode() const {
    std::ostringstream s;
    s << "name=" << name << ";model=" << model << ";attn=" << attn << ";mode=" << mode << ";length=" << length
      << ";layers=" << layers << ";d_ff=" << d_ff << ";ff_chunk=" << ff_chunk << ";hashes=" << hashes
      << ";reversible=" << reversible << ";reps=" << reps << ";warmup=" << warmup;
    if (stored >= 0) s << ";stored=" << stored;
    if (inputs > 0) s << ";inputs=" << inputs;
    if (max_memory > 0) s << ";max_memory=" << max_memory;
    if (precision != "fp32") s << ";precision=" << precision;
    if (operand_copies != 1) s << ";operand_copies=" << operand_copies;
    if (row_chunk > 0) s << ";row_chunk=" << row_chunk;
    if (head_chunk > 0) s << ";head_chunk=" << head_chunk;
    return s.str();
  }
  static BenchConfig decode(const std::string& text) {
    BenchConfig c;
    std::stringstream ss(text);
    std::string kv;
    while (std::getline(ss, kv, ';')) {
      const auto eq = kv.find('=');
      if (eq == std::string::npos) continue;
      const std::string k = kv.substr(0, eq), v = kv.substr(eq + 1);
      if (k == "name") c.name = v;
      else if (k == "model") c.model = v;
      else if (k == "attn") c.attn = v;
      else if (k == "mode") c.mode = v;
      else if (k == "length") c.length = std::stoll(v);
      else if (k == "layers") c.layers = std::stoll(v);
      else if (k == "d_ff") c.d_ff = std::stoll(v);
      else if (k == "ff_chunk") c.ff_chunk = std::stoll(v);
      else if (k == "hashes") c.hashes = std::stoll(v);
      else if (k == "reversible") c.reversible = std::stoi(v);
      else if (k == "stored") c.stored = std::stoll(v);
      else if (k == "inputs") c.inputs = std::stoll(v);
      else if (k == "operand_copies") c.operand_copies = std::stoi(v);
      else if (k == "row_chunk") c.row_chunk = std::stoll(v);
      else if (k == "head_chunk") c.head_chunk = std::stoll(v);
      else if (k == "max_memory") c.max_memory = std::stoll(v);
      else if (k == "precision") c.precision = v;
      else if (k == "reps") c.reps = std::stoi(v);
      else if (k == "warmup") c.warmup = std::stoi(v);
      else throw std::runtime_error("unknown bench key '" + k + "'");
    }
    return c;
  }
};

// Axial shape for L: (2^floor(log2(L)/2), L / that), e.g. 1,048,576 -> (1024, 1024), 524,288 -> (512, 1024).
std::vector<int64_t> axial_shape(int64_t L) {
  int p = 0;
  while ((int64_t{1} << (p + 1)) <= L) ++p;
  int64_t a = int64_t{1} << (p / 2);
  while (L % a) a /= 2;
  return {a, L / a};
}

reformer::ReformerConfig model_config(const BenchConfig& b) {
  reformer::ReformerConfig c;
  std::vector<std::string> pattern;
  if (b.model == "cp") {
    c = bench::crime_and_punishment();
    pattern = b.layers == 0 ? c.attn_layers : std::vector<std::string>{"local", "lsh"};
  } else if (b.model == "e8") {
    // enwik8-like: 12 layers [local, local, lsh, local] x 3, hidden 512, d_ff 2048, 8 heads x 64,
    // local chunk 128, LSH chunk 256, 2 hashes, causal, vocabulary 258, axial dims (128, 384).
    pattern = {"local", "local", "lsh", "local"};
    c.hidden_size = 512;
    c.feed_forward_size = 2048;
    c.num_attention_heads = 8;
    c.attention_head_size = 64;
    c.local_attn_chunk_length = 128;
    c.lsh_attn_chunk_length = 256;
    c.num_hashes = 2;
    c.vocab_size = 258;
    c.axial_pos_embds_dim = {128, 384};
    c.is_decoder = true;
    c.hidden_dropout_prob = 0.1;
    c.local_attention_probs_dropout_prob = 0.1;
    c.lsh_attention_probs_dropout_prob = 0.1;
    c.chunk_size_feed_forward = 4096;
    if (b.layers == 0) {
      std::vector<std::string> full;
      for (int r = 0; r < 3; ++r) full.insert(full.end(), pattern.begin(), pattern.end());
      pattern = full;
    }
  } else {
    throw std::runtime_error("unknown model '" + b.model + "' (cp or e8)");
  }
  const int64_t n = b.layers > 0 ? b.layers : static_cast<int64_t>(pattern.size());
  c.attn_layers.clear();
  for (int64_t i = 0; i < n; ++i) c.attn_layers.push_back(b.attn == "mixed" ? pattern[i % pattern.size()] : b.attn);
  if (b.d_ff > 0) c.feed_forward_size = b.d_ff;
  if (b.ff_chunk >= 0) c.chunk_size_feed_forward = b.ff_chunk;
  if (b.head_chunk > 0) c.chunk_size_lm_head = b.head_chunk;
  if (b.hashes > 0) c.num_hashes = b.hashes;
  c.axial_pos_shape = axial_shape(b.length);
  c.max_position_embeddings = b.length;
  c.num_buckets = c.auto_num_buckets(b.length);  // HF's rule for an unset num_buckets
  return c;
}

// ---------------------------------------------------------------------------------------------
// Model FLOPs per token of one forward pass (docs/PERFORMANCE.md): matrix products only.
double forward_flops_per_token(const reformer::ReformerConfig& c, int64_t L) {
  const double D = static_cast<double>(c.hidden_size), H = static_cast<double>(c.num_attention_heads);
  const double d = static_cast<double>(c.attention_head_size), Hd = H * d, F = static_cast<double>(c.feed_forward_size);
  double f = 0;
  for (const std::string& t : c.attn_layers) {
    const reformer::AttentionKindSpec& kind = reformer::attention_kind(t);
    f += 2 * D * Hd * static_cast<double>(kind.projections.size() + 1);  // the projections and the output
    double keys = 0;  // keys attended per query (per hash round for LSH)
    if (kind.chunk_length) {
      const int64_t chunk = c.*kind.chunk_length;
      keys = L > chunk ? static_cast<double>(chunk * (1 + c.*kind.chunks_before + c.*kind.chunks_after)) : static_cast<double>(L);
    } else {
      // Blockwise full attention; causal skips the blocks above the diagonal.
      const double bs = static_cast<double>(kind.block_length), nb = std::ceil(L / bs);
      keys = c.is_decoder ? bs * (nb + 1) / 2 : static_cast<double>(L);
    }
    const bool hashed_rounds = kind.hashed && L > c.lsh_attn_chunk_length;
    f += 4 * d * keys * H * static_cast<double>(hashed_rounds ? c.num_hashes : 1);
  }
  f += static_cast<double>(c.attn_layers.size()) * 4 * D * F;  // feed-forward
  f += 2 * (2 * D) * static_cast<double>(c.vocab_size);      // LM head
  return f;
}

// ---------------------------------------------------------------------------------------------
// FMA peak: kAcc independent FMA chains per thread on the widest vector registers this CPU has
// (AVX-512 zmm, else AVX2 ymm, else scalar; chosen at run time, core/cpu_isa.h), all threads at
// once. 2 FLOPs per lane per FMA. Each variant is one function compiled for its instruction set.
constexpr int kAcc = 12;  // > FMA latency x ports (4 x 2): keeps both FMA pipes busy

// Runs FMAs for `seconds`; returns the FLOPs done. VREG/SET/FMA/FIRST name the variant's vector
// type and intrinsics, LANES its floats per register.
#define REFORMER_FMA_LOOP(NAME, ATTR, VREG, SET, FMA, FIRST, LANES)                                          \
  ATTR double NAME(double seconds) {                                                                         \
    VREG a[kAcc];                                                                                            \
    for (int i = 0; i < kAcc; ++i) a[i] = SET(1.0f + 0.1f * static_cast<float>(i));                          \
    const VREG m = SET(0.999999f), c = SET(1e-7f);                                                           \
    int64_t iters = 0;                                                                                       \
    const auto start = Clock::now();                                                                         \
    while (std::chrono::duration<double>(Clock::now() - start).count() < seconds) {                          \
      for (int r = 0; r < 4096; ++r) {                                                                       \
        a[0] = FMA(a[0], m, c); a[1] = FMA(a[1], m, c); a[2] = FMA(a[2], m, c); a[3] = FMA(a[3], m, c);      \
        a[4] = FMA(a[4], m, c); a[5] = FMA(a[5], m, c); a[6] = FMA(a[6], m, c); a[7] = FMA(a[7], m, c);      \
        a[8] = FMA(a[8], m, c); a[9] = FMA(a[9], m, c); a[10] = FMA(a[10], m, c); a[11] = FMA(a[11], m, c);  \
      }                                                                                                      \
      iters += 4096;                                                                                         \
    }                                                                                                        \
    float sink = 0;                                                                                          \
    for (int i = 0; i < kAcc; ++i) sink += FIRST(a[i]);                                                      \
    if (sink == 12345.f) std::printf(" ");                                                                   \
    return 2.0 * LANES * kAcc * static_cast<double>(iters);                                                  \
  }

inline float scalar_set(float x) { return x; }
inline float scalar_fma(float a, float b, float c) { return a * b + c; }  // two FLOPs, not fused here
inline float scalar_first(float a) { return a; }
REFORMER_FMA_LOOP(fma_loop_baseline, , float, scalar_set, scalar_fma, scalar_first, 1)
#if REFORMER_ISA_VARIANTS
REFORMER_FMA_LOOP(fma_loop_avx2, __attribute__((target(REFORMER_TARGET_AVX2))), __m256, _mm256_set1_ps, _mm256_fmadd_ps,
                  _mm256_cvtss_f32, 8)
REFORMER_FMA_LOOP(fma_loop_avx512, __attribute__((target(REFORMER_TARGET_AVX512))), __m512, _mm512_set1_ps,
                  _mm512_fmadd_ps, _mm512_cvtss_f32, 16)
#endif

double fma_loop(double seconds) {
#if REFORMER_ISA_VARIANTS
  switch (reformer::isa_active()) {
    case reformer::Isa::Avx512: return fma_loop_avx512(seconds);
    case reformer::Isa::Avx2: return fma_loop_avx2(seconds);
    case reformer::Isa::Baseline: break;
  }
#endif
  return fma_loop_baseline(seconds);
}

double fma_gflops(int threads, double seconds) {
  std::vector<double> flops(threads, 0.0);
  const auto t0 = Clock::now();
#pragma omp parallel num_threads(threads)
  flops[omp_get_thread_num()] = fma_loop(seconds);
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  double total = 0;
  for (double x : flops) total += x;
  return total / elapsed / 1e9;
}

int run_fma(double seconds) {
  fma_gflops(1, 0.1);  // warm-up (clock ramp)
  std::vector<double> one, two;
  for (int r = 0; r < 3; ++r) {
    one.push_back(fma_gflops(1, seconds));
    two.push_back(fma_gflops(std::max(1, omp_get_max_threads()), seconds));
  }
  std::sort(one.begin(), one.end());
  std::sort(two.begin(), two.end());
  std::fprintf(stderr, "fma peak measured with the %s variant\n", reformer::isa_name(reformer::isa_active()));
  std::printf("%.1f,%.1f\n", one[1], two[1]);
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Child: one configuration.
std::string join(const std::vector<int64_t>& v, char sep) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? std::string(1, sep) : "") + std::to_string(v[i]);
  return s;
}

// One configuration's model, optimizer and batch, stepped by step(); run_one times one of these,
// run_pair two in the same process.
class Trial {
 public:
  explicit Trial(const BenchConfig& b)
      : b_(b), precision_(reformer::parse_precision(b.precision, "precision=")), cfg_(model_config(b)), model_(cfg_, 1) {
    const reformer::ScopedPrecision scope(precision_);
    const int64_t L = b.length;
    model_.set_reversible(b.reversible != 0);
    if (b.row_chunk > 0) model_.set_attention_row_chunk(b.row_chunk);
    if (b.max_memory > 0) {  // what `reformer train --max-memory` would store
      const reformer::LayerPlan plan =
          reformer::plan_stored_layers(cfg_, 1, L, "adam", omp_get_max_threads(), b.max_memory);
      model_.set_layer_plan(plan.keep);
      std::fprintf(stderr, "plan: %s\n", reformer::describe_plan(plan).c_str());
    } else if (b.stored >= 0) {
      std::vector<reformer::LayerKeep> plan(cfg_.attn_layers.size(), reformer::LayerKeep::nothing);
      for (size_t l = 0; l < plan.size(); ++l) {
        const auto i = static_cast<int64_t>(l);
        if (i < b.stored) plan[l] = reformer::LayerKeep::all;
        else if (i < b.stored + b.inputs) plan[l] = reformer::LayerKeep::input;
      }
      model_.set_layer_plan(plan);
    }
    for (auto& p : model_.parameters()) refs_.push_back({p.name, p.param->data(), p.grad->data(), p.param->shape()});
    if (b.mode == "train") adam_ = std::make_unique<reformer::Adam>(refs_);
    ids_.resize(static_cast<size_t>(L));
    uint64_t s = 88172645463325252ull;
    for (auto& id : ids_) {
      s ^= s << 13; s ^= s >> 7; s ^= s << 17;
      id = static_cast<int32_t>(s % static_cast<uint64_t>(cfg_.vocab_size));
    }
  }
  const reformer::ReformerConfig& config() const { return cfg_; }

  // Step r (its dropout masks depend on r); returns its wall time and leaves its loss in loss().
  double step(int r) {
    const reformer::ScopedPrecision scope(precision_);
    std::optional<reformer::GemmOperandSlotsOff> slots_off;
    if (!b_.operand_copies) slots_off.emplace();
    const reformer::Batch batch{ids_.data(), 1, b_.length, nullptr, nullptr};
    reformer::StepOptions opt;
    opt.step = static_cast<uint64_t>(r);
    opt.seed = 7;
    const auto t0 = Clock::now();
    if (b_.mode == "train") {
      model_.zero_grad();
      loss_ = model_.forward_backward(batch, opt).mean();
      adam_->step(refs_, 1e-4f);
    } else {
      opt.training = false;
      loss_ = model_.evaluate(batch, opt).mean();
    }
    const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    std::fprintf(stderr, "  [%s L=%lld] step %d: %.3f s, loss %.4f\n", b_.name.c_str(),
                 static_cast<long long>(b_.length), r, dt, loss_);
    return dt;
  }
  double loss() const { return loss_; }

 private:
  BenchConfig b_;
  reformer::Precision precision_;
  reformer::ReformerConfig cfg_;
  reformer::ReformerModel model_;
  std::vector<reformer::ParamRef> refs_;
  std::unique_ptr<reformer::Adam> adam_;
  std::vector<int32_t> ids_;
  double loss_ = 0;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

int run_one(const BenchConfig& b) {
  Trial trial(b);
  const reformer::ReformerConfig& cfg = trial.config();
  const int64_t L = b.length;
  reformer::mem_reset_peaks();
  std::vector<double> times;
  for (int r = 0; r < b.warmup + b.reps; ++r) {
    const double dt = trial.step(r);
    if (r >= b.warmup) times.push_back(dt);
  }
  const double loss = trial.loss();
  std::sort(times.begin(), times.end());
  const double med = median(times);
  const double flops = forward_flops_per_token(cfg, L) * static_cast<double>(L) * (b.mode == "train" ? 3.0 : 1.0);
  const reformer::MemStats m = reformer::mem_stats();
  std::printf("%s,%d,%.6f,%.6f,%.6f,%.1f,%.4e,%.4e,%.2f,%lld,%lld,%lld,%lld,%lld,%lld,%lld,%.5f\n",
              join(cfg.num_buckets, '|').c_str(), omp_get_max_threads(), med, times.front(), times.back(),
              static_cast<double>(L) / med, med / static_cast<double>(L), flops, flops / med / 1e9,
              static_cast<long long>(m.peak_total), static_cast<long long>(m.peak_of(MemCategory::Parameters)),
              static_cast<long long>(m.peak_of(MemCategory::Gradients)),
              static_cast<long long>(m.peak_of(MemCategory::OptimizerState)),
              static_cast<long long>(m.peak_of(MemCategory::Activations)),
              static_cast<long long>(m.peak_of(MemCategory::Workspace)),
              static_cast<long long>(reformer::process_peak_rss_bytes()), loss);
  return 0;
}

// Two configurations in one process, stepped alternately (A B, then B A, ...) after one warm-up
// step each: slow drifts of the machine's speed (this workplace's step times move by +-20% between
// processes) hit both alike. Prints each pair's times and B / A, then the median and the range of
// the ratios; the memory columns of run_one do not apply (both models are alive).
int run_pair(const BenchConfig& a, const BenchConfig& b, int rounds) {
  Trial ta(a), tb(b);
  ta.step(0);
  tb.step(0);
  std::vector<double> ratios;
  std::printf("round,a_s,b_s,b_over_a\n");
  for (int r = 1; r <= rounds; ++r) {
    double da = 0, db = 0;
    if (r % 2) {
      da = ta.step(r);
      db = tb.step(r);
    } else {
      db = tb.step(r);
      da = ta.step(r);
    }
    ratios.push_back(db / da);
    std::printf("%d,%.6f,%.6f,%.6f\n", r, da, db, db / da);
  }
  std::fflush(stdout);
  const auto [lo, hi] = std::minmax_element(ratios.begin(), ratios.end());
  std::printf("median b/a %.4f (range %.4f-%.4f over %d pairs); losses a %.5f b %.5f\n", median(ratios), *lo, *hi,
              rounds, ta.loss(), tb.loss());
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Parent: sweeps, each configuration in a child process.
struct ChildResult {
  int status = -1;
  std::string out;
};

ChildResult spawn(const std::string& exe, const std::vector<std::string>& args, double mem_limit_gib) {
  int fd[2];
  if (pipe(fd) != 0) return {};
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fd[1], STDOUT_FILENO);
    close(fd[0]);
    close(fd[1]);
    if (mem_limit_gib > 0) {
      const rlim_t lim = static_cast<rlim_t>(mem_limit_gib * 1073741824.0);
      rlimit rl{lim, lim};
      setrlimit(RLIMIT_AS, &rl);
    }
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(exe.c_str()));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(exe.c_str(), argv.data());
    _exit(127);
  }
  close(fd[1]);
  ChildResult r;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd[0], buf, sizeof buf)) > 0) r.out.append(buf, static_cast<size_t>(n));
  close(fd[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  while (!r.out.empty() && (r.out.back() == '\n' || r.out.back() == '\r')) r.out.pop_back();
  // Keep only the last line (the CSV body).
  const auto nl = r.out.rfind('\n');
  if (nl != std::string::npos) r.out = r.out.substr(nl + 1);
  return r;
}

std::string self_exe() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "reformer_bench";
  buf[n] = 0;
  return buf;
}

std::vector<BenchConfig> sweep(const std::string& name, bool quick, int reps, int warmup) {
  std::vector<BenchConfig> out;
  auto add = [&](BenchConfig c) {
    c.name = name;
    c.reps = reps;
    c.warmup = warmup;
    out.push_back(c);
  };
  BenchConfig base;
  if (quick) {
    // Seconds-long: tiny sizes, every code path (each attention kind, train and forward, stored activations).
    base.layers = 2;
    base.length = 512;
    if (name == "length") for (int64_t L : {512, 1024}) { base.length = L; add(base); }
    if (name == "attn") for (const char* a : {"lsh", "local", "full"}) { base.attn = a; add(base); }
    if (name == "forward") { base.mode = "forward"; add(base); }
    if (name == "layers") for (int rev : {1, 0}) { base.reversible = rev; add(base); }
    if (name == "dff") for (int64_t ch : {0, 128}) { base.ff_chunk = ch; add(base); }
    return out;
  }
  if (name == "length")  // C&P (mixed local/LSH), training
    for (int64_t L : {1024, 4096, 8192, 16384, 65536, 262144}) { base.length = L; add(base); }
  if (name == "long")  // the memory targets: one step after one warm-up
    for (int64_t L : {524288, 1048576}) { base.length = L; add(base); out.back().reps = 1; }
  if (name == "attn")  // every layer of one kind, training
    for (const char* a : {"lsh", "local", "full"})
      for (int64_t L : {1024, 4096, 16384, 65536, 262144}) {
        if (std::string(a) == "full" && L > 16384) continue;  // quadratic: minutes per step beyond
        base.attn = a;
        base.length = L;
        add(base);
      }
  if (name == "forward")
    for (int64_t L : {4096, 16384, 65536, 262144}) { base.mode = "forward"; base.length = L; add(base); }
  if (name == "layers")  // depth at L = 65,536: reversible vs stored activations
    for (int rev : {1, 0})
      for (int64_t n : {2, 6, 12, 24}) { base.reversible = rev; base.layers = n; base.length = 65536; add(base); }
  if (name == "dff")  // d_ff at L = 65,536: chunked (4096 rows) vs unchunked feed-forward
    for (int64_t ch : {0, 4096})
      for (int64_t f : {512, 1024, 2048, 4096}) { base.ff_chunk = ch; base.d_ff = f; base.length = 65536; add(base); }
  if (name == "e8") {  // the E8 step at L = 65,536 (one timed step after one warm-up)
    base.model = "e8";
    base.length = 65536;
    add(base);
    out.back().reps = 1;
  }
  return out;
}

const char* kHeader =
    "sweep,model,attn,mode,batch,length,layers,hidden,d_ff,heads,head_size,ff_chunk,reversible,num_hashes,"
    "num_buckets,threads,reps,warmup,sec_per_step,sec_per_step_min,sec_per_step_max,tokens_per_s,sec_per_token,"
    "model_flop_per_step,achieved_gflops,fma_peak_gflops,peak_fraction,alloc_peak_total,alloc_peak_parameters,"
    "alloc_peak_gradients,alloc_peak_optimizer_state,alloc_peak_activations,alloc_peak_workspace,peak_rss,loss,"
    "status,command";

std::string config_columns(const BenchConfig& b) {
  const reformer::ReformerConfig c = model_config(b);
  std::ostringstream s;
  s << b.name << ',' << b.model << ',' << b.attn << ',' << b.mode << ",1," << b.length << ',' << c.num_layers() << ','
    << c.hidden_size << ',' << c.feed_forward_size << ',' << c.num_attention_heads << ',' << c.attention_head_size
    << ',' << c.chunk_size_feed_forward << ',' << b.reversible << ',' << c.num_hashes;
  return s.str();
}

void usage() {
  std::fprintf(stderr,
               "usage: reformer_bench [--quick] [--out FILE] [--sweeps length,long,attn,forward,layers,dff,e8]\n"
               "                      [--reps N] [--warmup N] [--mem-limit-gib G] [--fma-seconds S]\n"
               "       reformer_bench --run 'name=x;model=cp;attn=mixed;mode=train;length=4096;...'\n"
               "       reformer_bench --pair 'spec A' 'spec B' [--rounds N]   A and B stepped alternately in one process\n"
               "       reformer_bench --fma [--fma-seconds S]\n");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::vector<std::string> args(argv + 1, argv + argc);
    bool quick = false;
    std::string out_path = "bench.csv", sweeps = "length,attn,forward,layers,dff";
    int reps = 3, warmup = 1;
    double mem_limit = 0, fma_seconds = 0.5;
    for (size_t i = 0; i < args.size(); ++i) {
      const std::string& a = args[i];
      auto next = [&]() -> std::string {
        if (i + 1 >= args.size()) throw std::runtime_error("missing value after " + a);
        return args[++i];
      };
      if (a == "--run") return run_one(BenchConfig::decode(next()));
      if (a == "--pair") {
        const BenchConfig first = BenchConfig::decode(next()), second = BenchConfig::decode(next());
        const int rounds = i + 2 < args.size() && args[i + 1] == "--rounds" ? std::stoi(args[i + 2]) : 6;
        return run_pair(first, second, rounds);
      }
      if (a == "--fma-seconds") fma_seconds = std::stod(next());
      else if (a == "--fma") return run_fma(fma_seconds);
      else if (a == "--quick") quick = true;
      else if (a == "--out") out_path = next();
      else if (a == "--sweeps") sweeps = next();
      else if (a == "--reps") reps = std::stoi(next());
      else if (a == "--warmup") warmup = std::stoi(next());
      else if (a == "--mem-limit-gib") mem_limit = std::stod(next());
      else if (a == "--help" || a == "-h") { usage(); return 0; }
      else { usage(); return 2; }
    }
    if (quick) {
      reps = std::min(reps, 1);
      warmup = std::min(warmup, 1);
      fma_seconds = std::min(fma_seconds, 0.05);
    }
    std::string parent_cmd;
    for (int i = 0; i < argc; ++i) parent_cmd += (i ? " " : "") + std::string(argv[i]);
    const std::string exe = self_exe();

    // The FMA peak of this machine, measured in this run (its own child process).
    const ChildResult fma = spawn(exe, {"--fma", "--fma-seconds", std::to_string(fma_seconds)}, 0);
    double peak1 = 0, peak2 = 0;
    if (fma.status == 0) std::sscanf(fma.out.c_str(), "%lf,%lf", &peak1, &peak2);
    std::fprintf(stderr, "fp32 FMA peak: %.1f GFLOP/s (1 thread), %.1f GFLOP/s (all threads)\n", peak1, peak2);

    std::ofstream csv(out_path);
    if (!csv) throw std::runtime_error("cannot write " + out_path);
    csv << kHeader << '\n';
    std::stringstream list(sweeps);
    std::string name;
    while (std::getline(list, name, ',')) {
      for (const BenchConfig& b : sweep(name, quick, reps, warmup)) {
        const std::string enc = b.encode();
        const std::string cmd = exe + " --run '" + enc + "'";
        std::fprintf(stderr, "%s\n", cmd.c_str());
        const ChildResult r = spawn(exe, {"--run", enc}, mem_limit);
        // Columns after the configuration: see kHeader.
        std::vector<std::string> row{config_columns(b)};
        std::vector<std::string> f;
        if (r.status == 0 && !r.out.empty()) {
          // Child: buckets,threads,med,min,max,tok/s,s/tok,flop,gflops,alloc x6,rss,loss.
          std::stringstream ss(r.out);
          std::string x;
          while (std::getline(ss, x, ',')) f.push_back(x);
        }
        const bool ok = f.size() == 17;
        if (!ok) f.assign(17, "");
        char buf[64];
        row.insert(row.end(), {f[0], f[1], std::to_string(b.reps), std::to_string(b.warmup)});
        for (int i = 2; i <= 8; ++i) row.push_back(f[i]);
        std::snprintf(buf, sizeof buf, "%.1f", peak2);
        row.push_back(buf);
        if (ok && peak2 > 0) std::snprintf(buf, sizeof buf, "%.4f", std::stod(f[8]) / peak2);
        row.push_back(ok && peak2 > 0 ? buf : "");
        for (int i = 9; i <= 16; ++i) row.push_back(f[i]);
        row.push_back(ok ? "ok" : "failed(exit " + std::to_string(r.status) + ")");
        for (size_t i = 0; i < row.size(); ++i) csv << (i ? "," : "") << row[i];
        csv << ",\"" << cmd << "\"\n";
        csv.flush();
      }
    }
    std::fprintf(stderr, "wrote %s (%s)\n", out_path.c_str(), parent_cmd.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "reformer_bench: %s\n", e.what());
    return 1;
  }
}
