#include "reformer/checkpoint.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <vector>

#include "reformer/safetensors.h"
#include "reformer/error.h"

namespace reformer {
namespace fs = std::filesystem;

namespace {

// Scalar buffers that old HF checkpoints stored per attention layer (spec 6.2); not parameters.
bool is_legacy_buffer(const std::string& name) {
  for (const char* suffix : {"self_mask_value_float16", "self_mask_value_float32", "mask_value_float16", "mask_value_float32"})
    if (name.size() > std::string(suffix).size() && name.ends_with(suffix)) return true;
  return false;
}

// Error naming the tensor and the first element that is NaN or infinite.
void check_finite(const std::string& path, const std::string& name, const float* x, int64_t n) {
  int64_t bad = -1;
#pragma omp parallel for reduction(max : bad) schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) bad = std::max(bad, n - i);  // max of n - i = the first bad index
  if (bad < 0) return;
  const int64_t i = n - bad;
  fail(path, ": weight \"", name, "\" holds a non-finite value (", x[i], " at element ", i,
       "); the checkpoint is corrupt or its training diverged. Use an earlier checkpoint, or set "
       "REFORMER_ALLOW_NONFINITE=1 to load it anyway");
}

constexpr const char* kTiedHeadBias = "lm_head.bias";  // HF ties it to lm_head.decoder.bias

}  // namespace

void save_model(const std::string& dir, ReformerModel& model, const std::map<std::string, std::string>& metadata) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  REFORMER_CHECK(!ec, "cannot create model directory ", dir, ": ", ec.message());
  std::vector<NamedTensorView> views;
  for (const auto& p : model.parameters()) {
    views.emplace_back(p.name, *p.param);
    if (p.name == "lm_head.decoder.bias") views.emplace_back(kTiedHeadBias, *p.param);
  }
  std::map<std::string, std::string> meta = metadata;
  meta.emplace("format", "pt");
  // The config goes to a temporary file first, so a failure anywhere leaves the old pair intact;
  // the two renames at the end are the only window in which the pair can disagree.
  const std::string config_path = (fs::path(dir) / "config.json").string(), config_tmp = config_path + ".tmp";
  model.config().write_temp(config_tmp);
  try {
    write_safetensors((fs::path(dir) / "model.safetensors").string(), views, meta);
  } catch (...) {
    std::remove(config_tmp.c_str());
    throw;
  }
  REFORMER_CHECK(std::rename(config_tmp.c_str(), config_path.c_str()) == 0, "could not rename ", config_tmp, " to ", config_path);
}

void load_weights(ReformerModel& model, const std::string& path) {
  // A NaN or Inf weight would only surface later as "loss nan"; the escape hatch is for inspecting
  // such a checkpoint on purpose.
  const char* allow = std::getenv("REFORMER_ALLOW_NONFINITE");
  const bool allow_nonfinite = allow && std::string(allow) == "1";
  const SafetensorsFile file = SafetensorsFile::open(path);
  std::set<std::string> expected;
  for (auto& p : model.parameters()) {
    expected.insert(p.name);
    // transformers' save_pretrained leaves out lm_head.decoder.bias, which it ties to lm_head.bias.
    const std::string stored = p.name == "lm_head.decoder.bias" && !file.contains(p.name) && file.contains(kTiedHeadBias)
                                   ? kTiedHeadBias
                                   : p.name;
    REFORMER_CHECK(file.contains(stored), path, ": missing weight \"", p.name, "\" of shape ", shape_str(p.param->shape()),
                   "; is this a checkpoint of the same architecture as its config.json?");
    const Shape& s = file.shape(stored);
    REFORMER_CHECK(s == p.param->shape(), path, ": weight \"", stored, "\" has shape ", shape_str(s),
                   " but config.json needs ", shape_str(p.param->shape()), "; the checkpoint and its config disagree");
    file.read_f32_into(stored, p.param->data(), p.param->numel());
    if (!allow_nonfinite) check_finite(path, p.name, p.param->data(), p.param->numel());
  }
  for (const auto& name : file.names()) {
    if (expected.count(name) || is_legacy_buffer(name)) continue;
    if (name == kTiedHeadBias) {
      REFORMER_CHECK(file.shape(name) == model.find_parameter("lm_head.decoder.bias")->param->shape(), path,
                     ": lm_head.bias has shape ", shape_str(file.shape(name)), ", expected (vocab_size)");
      continue;
    }
    fail(path, ": unexpected tensor \"", name, "\" (shape ", shape_str(file.shape(name)),
         "); this checkpoint does not match a ReformerModelWithLMHead with this config.json");
  }
}

std::unique_ptr<ReformerModel> load_model(const std::string& dir) {
  REFORMER_CHECK(fs::is_directory(dir), "model directory ", dir, " does not exist; pass a directory with config.json and model.safetensors");
  const fs::path weights = fs::path(dir) / "model.safetensors";
  REFORMER_CHECK(fs::exists(weights) || fs::is_symlink(weights), "no model.safetensors in ", dir,
                 (fs::exists(fs::path(dir) / "pytorch_model.bin")
                      ? "; convert pytorch_model.bin first with scripts/convert_pytorch_bin.py"
                      : "; pass a directory written by `reformer train` or Hugging Face save_pretrained"));
  auto model = std::make_unique<ReformerModel>(ReformerConfig::load((fs::path(dir) / "config.json").string()));
  load_weights(*model, weights.string());
  return model;
}

}  // namespace reformer
