#pragma once
// What the tests that run `reformer train` share: a temporary directory holding the small text they
// train on, and the losses a run logged to its metrics.jsonl.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace reformer::test {

// A fresh <tmp>/<prefix><pid>/ with text.txt (40 KB of a repeated sentence with numbers).
inline std::filesystem::path make_run_dir(const std::string& prefix) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / (prefix + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::string text;
  for (int i = 0; text.size() < 40000; ++i) text += "a dog ran to the red house " + std::to_string(i % 89) + ". ";
  std::ofstream(dir / "text.txt") << text;
  return dir;
}

// The "loss" of every metrics record of the split ("train": one per step; "validation").
inline std::vector<double> logged_losses(const std::filesystem::path& run, const std::string& split = "train") {
  std::vector<double> losses;
  std::ifstream in(run / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j["split"] == split) losses.push_back(j["loss"].get<double>());
  }
  return losses;
}

}  // namespace reformer::test
