#pragma once
// ReformerConfig: Hugging Face `ReformerConfig` names and defaults (spec 6.1), read from and written
// to config.json. validate() rejects invalid combinations at load time with a message naming the
// field and the fix. One extension: the layer type "full" (exact blockwise attention, the paper's
// baseline) besides HF's "lsh" and "local".
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace reformer {

// The Hugging Face model classes reformer loads and saves (docs/HF_INTEROP.md): a language-model
// head (causal: ReformerModelWithLMHead, bidirectional: ReformerForMaskedLM), the bare ReformerModel
// (output: the sequence output, 2 * hidden_size wide), and the two task heads.
enum class ModelClass { LMHead, MaskedLM, Base, SequenceClassification, QuestionAnswering };
const char* model_class_name(ModelClass c);  // "ReformerModelWithLMHead", ...
// The class named `name` (a Hugging Face class name), or nullopt if it is not a Reformer class.
std::optional<ModelClass> parse_model_class(const std::string& name);
// True for LMHead and MaskedLM (the same weights; is_decoder tells them apart).
inline bool is_language_model(ModelClass c) { return c == ModelClass::LMHead || c == ModelClass::MaskedLM; }

struct ReformerConfig {
  std::vector<std::string> attn_layers = {"local", "lsh", "local", "lsh", "local", "lsh"};
  int64_t attention_head_size = 64;
  double axial_norm_std = 1.0;
  bool axial_pos_embds = true;
  std::vector<int64_t> axial_pos_shape = {64, 64};
  std::vector<int64_t> axial_pos_embds_dim = {64, 192};
  int64_t chunk_size_lm_head = 0;
  int64_t chunk_size_feed_forward = 0;
  int64_t eos_token_id = 2;
  int64_t feed_forward_size = 512;
  std::optional<int64_t> hash_seed;
  std::string hidden_act = "relu";
  double hidden_dropout_prob = 0.05;
  int64_t hidden_size = 256;
  double initializer_range = 0.02;
  bool is_decoder = false;
  double layer_norm_eps = 1e-12;
  double local_attention_probs_dropout_prob = 0.05;
  int64_t local_attn_chunk_length = 64;
  int64_t local_num_chunks_before = 1;
  int64_t local_num_chunks_after = 0;
  double lsh_attention_probs_dropout_prob = 0.0;
  int64_t lsh_attn_chunk_length = 64;
  int64_t lsh_num_chunks_before = 1;
  int64_t lsh_num_chunks_after = 0;
  int64_t max_position_embeddings = 4096;
  int64_t num_attention_heads = 12;
  std::vector<int64_t> num_buckets;  // empty = unset (HF None): resolved on the first forward
  int64_t num_hashes = 1;
  int64_t pad_token_id = 0;
  int64_t vocab_size = 320;
  bool tie_word_embeddings = false;
  // Generic PretrainedConfig fields the task heads use. architectures[0] names the class (see
  // model_class()); num_labels = len(id2label) (HF default 2); problem_type "" = inferred as HF
  // does (regression for 1 label, else from the kind of labels given); classifier_dropout unset =
  // hidden_dropout_prob (HF ReformerClassificationHead).
  std::vector<std::string> architectures;
  int64_t num_labels = 2;
  std::vector<std::string> id2label;  // empty = "LABEL_<i>"
  std::string problem_type;           // "", "regression", "single_label_classification", "multi_label_classification"
  std::optional<double> classifier_dropout;

  // The class this config builds: the one architectures[0] names, except that within the language
  // models is_decoder decides (true: ReformerModelWithLMHead, false: ReformerForMaskedLM, as HF's
  // two classes require); a language model when architectures is empty.
  ModelClass model_class() const;

  int64_t num_layers() const { return static_cast<int64_t>(attn_layers.size()); }
  // Product of the buckets (factorized or not); 0 when unset.
  int64_t total_buckets() const;
  // The longest sequence the positional embedding covers (prod(axial_pos_shape) or max_position_embeddings).
  int64_t max_length() const;

  // Throws reformer::Error naming the field and the fix.
  void validate() const;
  // Checks that a batch of length L can be run: L <= max_length() and, unless L is no longer than
  // every chunk, a multiple of the chunk lengths (callers pad with an attention mask,
  // model/eval_length.h). Training and eval follow the same rule (HF additionally requires training
  // lengths to equal prod(axial_pos_shape); shorter ones use the first L positions, as HF's eval).
  void validate_length(int64_t L, bool training) const;
  // The shortest length >= n that validate_length's chunk rule allows: n when n is no longer than
  // every chunk, else the next multiple of the chunk lengths (a window is padded to it with an
  // attention mask). Not checked against max_length().
  int64_t chunk_padded_length(int64_t n) const;
  // HF `_set_num_buckets` rule for an unset num_buckets, from the first sequence length (spec 1.2).
  std::vector<int64_t> auto_num_buckets(int64_t L) const;

  static ReformerConfig from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;
  // Notes on fields of a config.json that reformer ignores (unknown keys that are not generic HF
  // settings, hash_seed); load() prints them as warnings.
  static std::vector<std::string> ignored_fields(const nlohmann::json& j);
  static ReformerConfig load(const std::string& path);  // validates
  void save(const std::string& path) const;             // atomic (temp file, fsync, rename)
  // Writes the JSON to `tmp` and fsyncs it (the first half of save(); callers that commit several
  // files together rename it themselves).
  void write_temp(const std::string& tmp) const;
};

}  // namespace reformer
