#pragma once
// Shared by the Google Benchmark microbenchmarks (bench/micro_*.cpp): cached deterministic inputs,
// and the main() that registers a program's benchmarks at run time and runs them.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <map>
#include <vector>

#include "reformer/rng.h"

namespace micro {

inline constexpr uint64_t kSeed = 2024;

// Deterministic N(0, 1) data, generated once per stream and kept: Google Benchmark calls each
// benchmark function several times (iteration probing, repetitions), and regenerating and
// first-touching tens of MB on every call would dominate the run.
inline const float* normals(int64_t n, uint64_t stream) {
  static std::map<uint64_t, std::vector<float>> cache;
  std::vector<float>& v = cache[stream];
  if (static_cast<int64_t>(v.size()) < n) {
    v.resize(static_cast<size_t>(n));
    reformer::rng_fill_normal(v.data(), n, kSeed, stream);
  }
  return v.data();
}

// main() of a program whose benchmarks register_all registers (shapes come from tables, so they
// are registered at run time rather than with BENCHMARK macros).
inline int run(int argc, char** argv, void (*register_all)()) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace micro
