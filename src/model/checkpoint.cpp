#include "reformer/checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string_view>
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
constexpr std::string_view kBasePrefix = "reformer.";   // HF's base_model_prefix

// The state-dict name of parameter `name` (internal names carry "reformer."): a bare ReformerModel
// saves its keys without the prefix, as HF's save_pretrained does.
std::string stored_name(const std::string& name, bool prefixed) {
  return prefixed || !name.starts_with(kBasePrefix) ? name : name.substr(kBasePrefix.size());
}

// Whether the base model's keys in `file` carry the "reformer." prefix (HF accepts both forms).
bool has_base_prefix(const SafetensorsFile& file) {
  return file.contains("reformer.embeddings.word_embeddings.weight") || !file.contains("embeddings.word_embeddings.weight");
}

// The class whose head weights `file` holds (a language model's kind comes from is_decoder).
ModelClass class_of_weights(const SafetensorsFile& file, const ReformerConfig& config) {
  bool lm = false, cls = false, qa = false;
  for (const auto& name : file.names()) {
    lm |= name.starts_with("lm_head.");
    cls |= name.starts_with("classifier.");
    qa |= name.starts_with("qa_outputs.");
  }
  REFORMER_CHECK(lm + cls + qa <= 1, file.path(), ": holds the weights of more than one head (",
                 lm ? "lm_head.* " : "", cls ? "classifier.* " : "", qa ? "qa_outputs.*" : "",
                 "); a Reformer checkpoint has at most one");
  if (lm) return config.is_decoder ? ModelClass::LMHead : ModelClass::MaskedLM;
  return cls ? ModelClass::SequenceClassification : qa ? ModelClass::QuestionAnswering : ModelClass::Base;
}

const char* head_keys(ModelClass c) {
  switch (c) {
    case ModelClass::LMHead:
    case ModelClass::MaskedLM: return "lm_head.* weights";
    case ModelClass::SequenceClassification: return "classifier.* weights";
    case ModelClass::QuestionAnswering: return "qa_outputs.* weights";
    case ModelClass::Base: break;
  }
  return "no head weights";
}

}  // namespace

void save_model(const std::string& dir, ReformerModel& model, const std::map<std::string, std::string>& metadata) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  REFORMER_CHECK(!ec, "cannot create model directory ", dir, ": ", ec.message());
  std::vector<NamedTensorView> views;
  const bool prefixed = model.model_class() != ModelClass::Base;
  for (const auto& p : model.parameters()) {
    views.emplace_back(stored_name(p.name, prefixed), *p.param);
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

namespace {

bool is_base_parameter(const std::string& name) { return name.starts_with(kBasePrefix); }

// load_weights and load_base_weights: every parameter the model takes from the file (all, or the
// base model's) must be there with its shape; a tensor of the file the model does not take is an
// error unless it belongs to a head that is not loaded (`skip_other_heads`).
std::vector<std::string> read_weights(ReformerModel& model, const std::string& path, bool with_head, bool skip_other_heads) {
  // A NaN or Inf weight would only surface later as "loss nan"; the escape hatch is for inspecting
  // such a checkpoint on purpose.
  const char* allow = std::getenv("REFORMER_ALLOW_NONFINITE");
  const bool allow_nonfinite = allow && std::string(allow) == "1";
  const SafetensorsFile file = SafetensorsFile::open(path);
  const char* cls = model_class_name(model.model_class());
  const bool prefixed = has_base_prefix(file);
  std::set<std::string> expected;
  std::vector<std::string> skipped;
  for (auto& p : model.parameters()) {
    if (!with_head && !is_base_parameter(p.name)) {
      skipped.push_back(p.name);
      continue;
    }
    const std::string name = stored_name(p.name, prefixed);
    expected.insert(name);
    // transformers' save_pretrained leaves out lm_head.decoder.bias, which it ties to lm_head.bias.
    const std::string stored = name == "lm_head.decoder.bias" && !file.contains(name) && file.contains(kTiedHeadBias)
                                   ? kTiedHeadBias
                                   : name;
    REFORMER_CHECK(file.contains(stored), path, ": missing weight \"", name, "\" of shape ", shape_str(p.param->shape()),
                   " of a ", cls, "; is this a checkpoint of the same architecture as its config.json?");
    const Shape& s = file.shape(stored);
    REFORMER_CHECK(s == p.param->shape(), path, ": weight \"", stored, "\" has shape ", shape_str(s),
                   " but config.json needs ", shape_str(p.param->shape()), "; the checkpoint and its config disagree");
    file.read_f32_into(stored, p.param->data(), p.param->numel());
    if (!allow_nonfinite) check_finite(path, p.name, p.param->data(), p.param->numel());
  }
  for (const auto& name : file.names()) {
    if (expected.count(name) || is_legacy_buffer(name)) continue;
    // A head's tensors never carry the prefix (HF's state dicts: lm_head.*, classifier.*, qa_outputs.*).
    if (skip_other_heads && (name.starts_with("lm_head.") || name.starts_with("classifier.") || name.starts_with("qa_outputs.")))
      continue;
    const NamedParameter* tied = name == kTiedHeadBias ? model.find_parameter("lm_head.decoder.bias") : nullptr;
    if (tied) {
      REFORMER_CHECK(file.shape(name) == tied->param->shape(), path,
                     ": lm_head.bias has shape ", shape_str(file.shape(name)), ", expected (vocab_size)");
      continue;
    }
    fail(path, ": unexpected tensor \"", name, "\" (shape ", shape_str(file.shape(name)),
         "); this checkpoint does not match a ", cls, " with this config.json");
  }
  return skipped;
}

}  // namespace

void load_weights(ReformerModel& model, const std::string& path) { read_weights(model, path, true, false); }

std::vector<std::string> load_base_weights(ReformerModel& model, const std::string& path, bool with_head) {
  return read_weights(model, path, with_head, !with_head);
}

ReformerConfig load_model_config(const std::string& dir) {
  REFORMER_CHECK(fs::is_directory(dir), "model directory ", dir, " does not exist; pass a directory with config.json and model.safetensors");
  const fs::path weights = fs::path(dir) / "model.safetensors";
  REFORMER_CHECK(fs::exists(weights) || fs::is_symlink(weights), "no model.safetensors in ", dir,
                 (fs::exists(fs::path(dir) / "pytorch_model.bin")
                      ? "; convert pytorch_model.bin first with scripts/convert_pytorch_bin.py"
                      : "; pass a directory written by `reformer train` or Hugging Face save_pretrained"));
  ReformerConfig config = ReformerConfig::load((fs::path(dir) / "config.json").string());
  // The class is the one whose weights the file holds; config.json's architectures must agree.
  const ModelClass found = class_of_weights(SafetensorsFile::open(weights.string()), config);
  if (!config.architectures.empty())
    REFORMER_CHECK(config.model_class() == found, dir, ": config.json's architectures names ", config.architectures[0],
                   " but model.safetensors holds ", head_keys(found), " (a ", model_class_name(found),
                   "); set architectures to [\"", model_class_name(found), "\"] or use the matching weights");
  config.architectures = {model_class_name(found)};
  return config;
}

std::unique_ptr<ReformerModel> load_model(const std::string& dir) {
  auto model = std::make_unique<ReformerModel>(load_model_config(dir));
  load_weights(*model, (fs::path(dir) / "model.safetensors").string());
  return model;
}

bool ensure_writable_dir(const std::string& dir) {
  std::error_code ec;
  const bool existed = fs::exists(dir, ec);
  fs::create_directories(dir, ec);
  REFORMER_CHECK(!ec, "cannot create output directory ", dir, ": ", ec.message(), "; choose another --out");
  REFORMER_CHECK(access(dir.c_str(), W_OK | X_OK) == 0, "output directory ", dir,
                 " is not writable; choose another --out or fix its permissions");
  return !existed;
}

}  // namespace reformer
