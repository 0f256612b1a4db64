#pragma once
// A temporary directory holding the small text the tests that run `reformer train` train on (the
// losses a run logged: run_cli.h).
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

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

}  // namespace reformer::test
