#pragma once
// Running the built `reformer` program from a test: a shell command line in which $R is the binary,
// with its exit status and its stdout + stderr.
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace reformer::test {

struct Outcome {
  int rc;           // exit status, or 128 + signal
  std::string out;  // stdout and stderr
};

// The build directory's `reformer` (REFORMER_BINARY_DIR overrides the one compiled in).
inline std::string reformer_binary() {
  const char* dir = std::getenv("REFORMER_BINARY_DIR");
  return std::string(dir ? dir : REFORMER_BUILD_DIR) + "/reformer";
}

inline Outcome sh(const std::string& command) {
  const std::string line = "R='" + reformer_binary() + "'; " + command + " 2>&1";
  FILE* p = popen(line.c_str(), "r");
  std::string out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), out};
}

// `reformer ARGS` with a 60 s timeout, so that a hang (a FIFO read) fails the test with rc 124
// instead of blocking the suite.
inline Outcome reformer(const std::string& args) { return sh("timeout 60 \"$R\" " + args); }

// The whole file (empty when it cannot be read).
inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The training losses of a run's metrics.jsonl, step by step.
inline std::vector<double> train_losses(const std::filesystem::path& run) {
  std::vector<double> losses;
  std::ifstream in(run / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j["split"] == "train") losses.push_back(j["loss"].get<double>());
  }
  return losses;
}

}  // namespace reformer::test
