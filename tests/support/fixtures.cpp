#include "support/fixtures.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "reformer/error.h"

namespace fs = std::filesystem;

namespace reformer::test {

std::string source_dir() {
  if (const char* env = std::getenv("REFORMER_SOURCE_DIR"); env && *env) return env;
  // Running a test binary by hand from the build directory: look upwards for the source tree.
  for (fs::path p = fs::current_path(); !p.empty(); p = p.parent_path()) {
    if (fs::is_directory(p / "tests" / "fixtures")) return p.string();
    if (p == p.parent_path()) break;
  }
  fail("cannot find the source tree (no tests/fixtures above ", fs::current_path().string(),
       "); set REFORMER_SOURCE_DIR to the repository root");
}

std::string fixture_path(const std::string& relative) { return source_dir() + "/tests/fixtures/" + relative; }

std::vector<std::string> hf_fixture_cases() { return fixture_cases("hf"); }

std::vector<std::string> fixture_cases(const std::string& relative) {
  const fs::path root = fixture_path(relative);
  REFORMER_CHECK(fs::is_directory(root), "no fixture directory ", root.string(),
                 "; run scripts/make_hf_fixtures.py (see tests/fixtures/", relative, "/README.md)");
  std::vector<std::string> out;
  for (const fs::directory_entry& e : fs::directory_iterator(root))
    if (e.is_directory() && fs::exists(e.path() / "config.json")) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

HfFixture load_hf_fixture(const std::string& name) {
  HfFixture f;
  f.name = name;
  f.dir = fixture_path("hf/" + name);
  const std::string config_path = f.dir + "/config.json";
  std::ifstream in(config_path);
  REFORMER_CHECK(in.good(), "cannot open fixture config ", config_path,
                 "; is the case name right? (see tests/fixtures/hf/README.md)");
  try {
    f.config = nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    fail("fixture config ", config_path, " is not valid JSON: ", e.what());
  }
  f.weights = SafetensorsFile::open(f.dir + "/model.safetensors");
  f.data = SafetensorsFile::open(f.dir + "/data.safetensors");
  return f;
}

}  // namespace reformer::test
