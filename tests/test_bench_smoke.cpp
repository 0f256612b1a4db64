// Smoke run of the benchmark program (bench/reformer_bench.cpp): `--quick` runs every sweep at tiny
// sizes in seconds; the CSV must have the documented header, one well-formed row per configuration,
// every row "ok", and positive timings, throughput, FLOP/s, allocator peaks and peak RSS.
// No timing assertions: this checks that the benchmark works, not how fast the machine is.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace {

// Splits one CSV line; a field may be double-quoted (the command column).
std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  for (char ch : line) {
    if (ch == '"') quoted = !quoted;
    else if (ch == ',' && !quoted) {
      out.push_back(cur);
      cur.clear();
    } else cur += ch;
  }
  out.push_back(cur);
  return out;
}

std::filesystem::path bench_exe() {
  const char* env = std::getenv("REFORMER_BINARY_DIR");
  return std::filesystem::path(env && *env ? env : REFORMER_BUILD_DIR) / "reformer_bench";
}

TEST(BenchSmoke, QuickRunWritesValidCsv) {
  const std::filesystem::path exe = bench_exe();
  if (!std::filesystem::exists(exe)) GTEST_SKIP() << exe << " was not built (REFORMER_BENCH=OFF)";
  const std::filesystem::path csv = std::filesystem::temp_directory_path() / ("bench_smoke_" + std::to_string(::getpid()) + ".csv");
  const std::string cmd = "OMP_NUM_THREADS=2 '" + exe.string() + "' --quick --out '" + csv.string() + "' 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;

  std::ifstream in(csv);
  ASSERT_TRUE(in.good());
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  const std::vector<std::string> header = split_csv(line);
  for (const char* col : {"sweep", "attn", "mode", "length", "layers", "d_ff", "ff_chunk", "reversible", "reps",
                          "warmup", "sec_per_step", "tokens_per_s", "model_flop_per_step", "achieved_gflops",
                          "fma_peak_gflops", "alloc_peak_total", "alloc_peak_activations", "alloc_peak_workspace",
                          "peak_rss", "status", "command"})
    EXPECT_NE(std::find(header.begin(), header.end(), col), header.end()) << "missing column " << col;
  std::map<std::string, size_t> at;
  for (size_t i = 0; i < header.size(); ++i) at[header[i]] = i;

  int rows = 0;
  std::map<std::string, int> attn_seen, mode_seen;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const std::vector<std::string> f = split_csv(line);
    ASSERT_EQ(f.size(), header.size()) << line;
    ++rows;
    EXPECT_EQ(f[at["status"]], "ok") << line;
    for (const char* col : {"sec_per_step", "tokens_per_s", "model_flop_per_step", "achieved_gflops",
                            "fma_peak_gflops", "alloc_peak_total", "alloc_peak_parameters", "peak_rss"})
      EXPECT_GT(std::atof(f[at[col]].c_str()), 0.0) << col << " in " << line;
    EXPECT_NE(f[at["command"]].find("--run"), std::string::npos);
    ++attn_seen[f[at["attn"]]];
    ++mode_seen[f[at["mode"]]];
  }
  EXPECT_GE(rows, 8);
  for (const char* a : {"lsh", "local", "full", "mixed"}) EXPECT_GT(attn_seen[a], 0) << a;
  for (const char* m : {"train", "forward"}) EXPECT_GT(mode_seen[m], 0) << m;
  std::filesystem::remove(csv);
}

// --pair: two configurations in one process, stepped alternately. Two identical specs step the
// same model on the same data with the same seeds, so their losses agree; every pair's times are
// positive and its ratio is their quotient.
TEST(BenchSmoke, PairStepsBothConfigurationsAlternately) {
  const std::filesystem::path exe = bench_exe();
  if (!std::filesystem::exists(exe)) GTEST_SKIP() << exe << " was not built (REFORMER_BENCH=OFF)";
  const std::filesystem::path out = std::filesystem::temp_directory_path() / ("bench_pair_" + std::to_string(::getpid()) + ".txt");
  const std::string spec = "name=p;model=cp;attn=mixed;mode=train;length=256;layers=2;d_ff=0;hashes=0;reversible=1";
  const std::string cmd = "OMP_NUM_THREADS=2 '" + exe.string() + "' --pair '" + spec + "' '" + spec + "' --rounds 3 > '" +
                          out.string() + "' 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream in(out);
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  EXPECT_EQ(line, "round,a_s,b_s,b_over_a");
  for (int r = 1; r <= 3; ++r) {
    ASSERT_TRUE(std::getline(in, line));
    const std::vector<std::string> f = split_csv(line);
    ASSERT_EQ(f.size(), 4u) << line;
    EXPECT_EQ(std::stoi(f[0]), r);
    const double a = std::stod(f[1]), b = std::stod(f[2]), ratio = std::stod(f[3]);
    EXPECT_GT(a, 0.0) << line;
    EXPECT_GT(b, 0.0) << line;
    EXPECT_NEAR(ratio, b / a, 1e-3 * ratio + 1e-4) << line;
  }
  ASSERT_TRUE(std::getline(in, line));
  EXPECT_EQ(line.rfind("median b/a ", 0), 0u) << line;
  double la = 0, lb = 0;
  ASSERT_EQ(std::sscanf(line.c_str() + line.find("losses a"), "losses a %lf b %lf", &la, &lb), 2) << line;
  EXPECT_GT(la, 0.0);
  EXPECT_EQ(la, lb) << line;  // the same configuration, data and seeds
  std::filesystem::remove(out);
}

}  // namespace
