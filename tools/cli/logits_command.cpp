// reformer logits: runs a model on token ids from a safetensors file and writes the logits to another,
// for parity checks against Hugging Face (scripts/check_hf_roundtrip.py, docs/HF_INTEROP.md).
//
//   reformer logits --model DIR --input IN.safetensors --out OUT.safetensors
//                   [--rotations ROT.safetensors] [--num-hashes N] [--shift-right] [--hidden-states]
//
// IN holds `input_ids` (B, L) (or (L) for one sequence), any integer dtype, and optionally
// `attention_mask` of the same shape (1 = token, 0 = padding). LSH rotations in Hugging Face's layout
// (H, d, num_hashes, rotation columns), one tensor `rotations.<layer>` per LSH layer, are taken from
// --rotations, or from IN when --rotations is not given (so a fixture's data.safetensors works as
// is). A layer without injected rotations draws its own from the engine's generator (--seed).
// OUT receives the model class's outputs under Hugging Face's names, F32: `logits` (B, L, vocab) for a
// language model, (B, num_labels) for sequence classification; `start_logits` and `end_logits` (B, L)
// for question answering; `last_hidden_state` (B, L, 2 hidden) for a bare ReformerModel; and, with
// --hidden-states, HF's `hidden_states.<j>`
// (j = 0 the embedding output, j = i + 1 the X2 stream after layer i), each (B, L, hidden).
// The forward runs in eval mode (no dropout).
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "commands.h"
#include "common.h"
#include "reformer/safetensors.h"
#include "reformer/attention_kinds.h"
#include "reformer/error.h"
#include "reformer/model.h"
#include "reformer/threads.h"

namespace reformer::cli {
namespace {

namespace fs = std::filesystem;

struct LogitsCommand {
  std::string model_dir, input, out;
  std::optional<std::string> rotations;
  std::optional<int64_t> num_hashes;
  bool shift_right = false, hidden_states = false;
  uint64_t seed = 0;
  std::optional<int> threads;
};

bool is_integer(SafeDType t) {
  return t == SafeDType::I64 || t == SafeDType::I32 || t == SafeDType::I16 || t == SafeDType::I8 || t == SafeDType::U8 ||
         t == SafeDType::BOOL;
}

// Reads an integer (B, L) tensor (a 1-D tensor is one row); returns its shape as (B, L).
std::vector<int64_t> read_ids(const SafetensorsFile& f, const std::string& name, int64_t& B, int64_t& L) {
  const SafeTensorInfo& info = f.info(name);
  REFORMER_CHECK(is_integer(info.dtype), f.path(), ": \"", name, "\" has dtype ", to_string(info.dtype),
                 "; it must be an integer tensor (I64 or I32)");
  REFORMER_CHECK(info.shape.size() == 1 || info.shape.size() == 2, f.path(), ": \"", name, "\" has shape ",
                 shape_str(info.shape), "; it must be (batch, length) or (length)");
  B = info.shape.size() == 2 ? info.shape[0] : 1;
  L = info.shape.back();
  REFORMER_CHECK(B > 0 && L > 0, f.path(), ": \"", name, "\" is empty (shape ", shape_str(info.shape), ")");
  return f.read_i64(name);
}

// Layer index of a "rotations.<i>" name, or -1 for other names.
int rotation_layer(const std::string& name) {
  static const std::string prefix = "rotations.";
  if (name.rfind(prefix, 0) != 0) return -1;
  const std::string rest = name.substr(prefix.size());
  if (rest.empty() || rest.find_first_not_of("0123456789") != std::string::npos || rest.size() > 6) return -2;
  return std::stoi(rest);
}

// Loads the model; when num_buckets is unset (HF resolves it on the first forward) it is resolved
// here from L, so that rotations can be checked against their shape before the forward.
std::unique_ptr<ReformerModel> open_for_length(const std::string& dir, int64_t L) {
  auto model = open_model(dir);
  ReformerConfig c = model->config();
  if (!uses_attention(c, AttentionKind::Lsh) || !c.num_buckets.empty() || L <= c.lsh_attn_chunk_length) return model;
  c.num_buckets = c.auto_num_buckets(L);
  auto resolved = std::make_unique<ReformerModel>(c);
  auto& from = model->parameters();
  auto& to = resolved->parameters();
  REFORMER_CHECK(from.size() == to.size(), "internal: parameter lists differ after resolving num_buckets");
  for (size_t i = 0; i < from.size(); ++i) {
    REFORMER_CHECK(from[i].name == to[i].name && from[i].param->numel() == to[i].param->numel(),
                   "internal: parameter ", from[i].name, " differs after resolving num_buckets");
    std::memcpy(to[i].param->data(), from[i].param->data(), sizeof(float) * static_cast<size_t>(from[i].param->numel()));
  }
  return resolved;
}

void run_logits(const LogitsCommand& c) {
  const ScopedThreads threads(thread_flag(c.threads));
  REFORMER_CHECK(fs::exists(c.input), "--input ", c.input, " does not exist; give a safetensors file with \"input_ids\"");
  const SafetensorsFile in = SafetensorsFile::open(c.input);
  REFORMER_CHECK(in.contains("input_ids"), c.input, " has no tensor \"input_ids\" (it holds: ",
                 in.names().empty() ? std::string("nothing") : [&] {
                   std::string s;
                   for (const auto& n : in.names()) s += (s.empty() ? "" : ", ") + n;
                   return s;
                 }(),
                 "); write the token ids as an integer (batch, length) tensor named input_ids");
  int64_t B = 0, L = 0;
  const std::vector<int64_t> ids64 = read_ids(in, "input_ids", B, L);
  std::vector<uint8_t> mask;
  if (in.contains("attention_mask")) {
    int64_t mb = 0, ml = 0;
    const std::vector<int64_t> m = read_ids(in, "attention_mask", mb, ml);
    REFORMER_CHECK(mb == B && ml == L, c.input, ": attention_mask has shape ", shape_str(in.shape("attention_mask")),
                   " but input_ids has ", shape_str(in.shape("input_ids")), "; they must have the same shape");
    for (int64_t v : m) {
      REFORMER_CHECK(v == 0 || v == 1, c.input, ": attention_mask holds ", v, "; use 1 for tokens and 0 for padding");
      mask.push_back(static_cast<uint8_t>(v));
    }
  }

  if (c.num_hashes) REFORMER_CHECK(*c.num_hashes >= 1, "--num-hashes ", *c.num_hashes, " must be at least 1");
  REFORMER_CHECK(fs::is_directory(c.model_dir), "model directory ", c.model_dir, " does not exist; give the --out directory of a "
                 "`reformer train` run or a Hugging Face model directory (config.json + model.safetensors)");
  {
    // Check the length before loading a possibly large model.
    const ReformerConfig config = ReformerConfig::load((fs::path(c.model_dir) / "config.json").string());
    try {
      config.validate_length(L, /*training=*/false);
    } catch (const Error& e) {
      fail(c.input, ": input_ids has length ", L, " which the model in ", c.model_dir, " cannot run: ", e.what());
    }
  }
  auto model = open_for_length(c.model_dir, L);
  const ReformerConfig& config = model->config();
  if (c.num_hashes) model->set_num_hashes(*c.num_hashes);

  std::vector<int32_t> ids(ids64.size());
  for (size_t i = 0; i < ids64.size(); ++i) {
    REFORMER_CHECK(ids64[i] >= 0 && ids64[i] < config.vocab_size, c.input, ": input_ids[", i / L, "][", i % L, "] = ",
                   ids64[i], " is outside the vocabulary [0, ", config.vocab_size, ")");
    ids[i] = static_cast<int32_t>(ids64[i]);
  }
  if (c.shift_right) {
    // trax's ShiftRight (spec 5): position 0 holds id 0, position t the token t - 1.
    for (int64_t b = 0; b < B; ++b) {
      int32_t* row = ids.data() + b * L;
      std::memmove(row + 1, row, sizeof(int32_t) * static_cast<size_t>(L - 1));
      row[0] = 0;
      if (!mask.empty()) {
        uint8_t* m = mask.data() + b * L;
        std::memmove(m + 1, m, static_cast<size_t>(L - 1));
        m[0] = 1;
      }
    }
  }

  // Rotations: every rotations.<i> of the source must name an LSH layer and have HF's shape.
  const std::string rot_path = c.rotations.value_or(c.input);
  std::optional<SafetensorsFile> rot_file;
  if (c.rotations) {
    REFORMER_CHECK(fs::exists(*c.rotations), "--rotations ", *c.rotations, " does not exist");
    rot_file = SafetensorsFile::open(*c.rotations);
  }
  const SafetensorsFile& rf = rot_file ? *rot_file : in;
  const int64_t nh = c.num_hashes.value_or(config.num_hashes);
  int64_t cols = 0;
  for (int64_t f : config.num_buckets) cols += f / 2;
  int injected = 0;
  for (const auto& name : rf.names()) {
    const int layer = rotation_layer(name);
    if (layer == -1) continue;
    REFORMER_CHECK(layer >= 0 && layer < config.num_layers(), rot_path, ": \"", name, "\" does not name a layer of the model (",
                   config.num_layers(), " layers); name rotations rotations.<layer index>");
    REFORMER_CHECK(attention_kind(config.attn_layers[layer]).hashed, rot_path, ": \"", name, "\" is for layer ", layer, " which is a \"",
                   config.attn_layers[layer], "\" layer; only LSH layers take rotations");
    const Shape want{config.num_attention_heads, config.attention_head_size, nh, cols};
    REFORMER_CHECK(rf.shape(name) == want, rot_path, ": \"", name, "\" has shape ", shape_str(rf.shape(name)),
                   " but layer ", layer, " needs (heads, head size, num_hashes, num_buckets/2) = ", shape_str(want),
                   c.num_hashes ? "" : "; if it was drawn for another number of hash rounds, pass --num-hashes");
    const Tensor rot = rf.read_f32(name, MemCategory::Workspace);
    model->set_rotations(layer, rot.data());
    ++injected;
  }
  if (c.rotations)
    REFORMER_CHECK(injected > 0, *c.rotations, " holds no \"rotations.<layer>\" tensors");

  std::map<std::string, Tensor> hidden;
  if (c.hidden_states) {
    std::map<std::string, std::string> names{{"embeddings", "hidden_states.0"}};
    for (int i = 0; i < config.num_layers(); ++i) names["layer." + std::to_string(i) + ".y2"] = "hidden_states." + std::to_string(i + 1);
    model->set_dump_hook([&hidden, names](const std::string& name, const float* data, const Shape& shape) {
      auto it = names.find(name);
      if (it == names.end()) return;
      Tensor& t = hidden[it->second];
      t.ensure(shape, MemCategory::Workspace);
      std::memcpy(t.data(), data, sizeof(float) * static_cast<size_t>(t.numel()));
    });
  }

  Batch batch;
  batch.ids = ids.data();
  batch.batch = B;
  batch.length = L;
  batch.attention_mask = mask.empty() ? nullptr : mask.data();
  StepOptions opt;
  opt.training = false;
  opt.seed = c.seed;
  std::map<std::string, Tensor> outputs;
  model->forward_outputs(outputs, batch, opt);

  std::vector<NamedTensorView> views;
  std::string written;
  for (const auto& [name, t] : outputs) {
    views.emplace_back(name, t);
    written += (written.empty() ? "" : ", ") + name + " " + shape_str(t.shape());
  }
  for (const auto& [name, t] : hidden) views.emplace_back(name, t);
  std::map<std::string, std::string> meta{{"model", c.model_dir}, {"input", c.input},
                                          {"model_class", model_class_name(config.model_class())},
                                          {"num_hashes", std::to_string(nh)},
                                          {"injected_rotations", std::to_string(injected)},
                                          {"shift_right", c.shift_right ? "true" : "false"}};
  write_safetensors(c.out, views, meta);
  std::fprintf(stderr, "%s: %s written to %s (%d LSH layer(s) with injected rotations)\n",
               model_class_name(config.model_class()), written.c_str(), c.out.c_str(), injected);
}

}  // namespace

void add_logits_command(CLI::App& app, int& exit_code) {
  auto c = std::make_shared<LogitsCommand>();
  CLI::App* cmd = app.add_subcommand(
      "logits", "Write a model's outputs (eval mode, Hugging Face names) for token ids read from a safetensors file: parity checks against Hugging Face");
  cmd->add_option("--model", c->model_dir, "model directory (config.json + model.safetensors; `reformer train` or Hugging Face)")
      ->required();
  cmd->add_option("--input", c->input, "safetensors file with input_ids (batch, length) and optional attention_mask")->required();
  cmd->add_option("--out", c->out, "safetensors file to write: the outputs under Hugging Face's names (logits; start_logits, end_logits; "
                  "last_hidden_state), F32")->required();
  cmd->add_option("--rotations", c->rotations,
                  "safetensors file with rotations.<layer> (heads, head size, num_hashes, num_buckets/2) per LSH layer, as "
                  "Hugging Face draws them (default: those in --input, if any)");
  cmd->add_option("--num-hashes", c->num_hashes, "LSH hash rounds (default: the config's num_hashes)");
  cmd->add_flag("--shift-right", c->shift_right,
                "feed id 0 at position 0 and token t-1 at position t, as trax-trained checkpoints expect; logits[t] then predicts token t");
  cmd->add_flag("--hidden-states", c->hidden_states, "also write hidden_states.<j> as Hugging Face's output_hidden_states");
  cmd->add_option("--seed", c->seed, "seed for rotations of LSH layers without injected ones")->capture_default_str();
  cmd->add_option("--threads", c->threads, "OpenMP threads");
  cmd->callback([c, &exit_code] {
    run_logits(*c);
    exit_code = 0;
  });
}

}  // namespace reformer::cli
