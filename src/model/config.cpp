#include "reformer/config.h"

#include "reformer/attention_kinds.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <tuple>
#include <utility>
#include <nlohmann/json.hpp>

#include "core/checked_math.h"
#include "reformer/limits.h"
#include "io/regular_file.h"
#include "reformer/error.h"

namespace reformer {
namespace {

using nlohmann::json;

// Field readers: a present, non-null field must have exactly the JSON type of the HF field (an
// integer field refuses 32.5 and "32", a number above int64 is refused rather than wrapped), with a
// message naming the field and its value. Absent or null fields keep the default.
const json* field(const json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

[[noreturn]] void wrong_type(const char* key, const json& v, const char* want) {
  fail("config.json: field \"", key, "\" = ", v.dump(), " must be ", want);
}

int64_t as_int(const char* key, const json& v) {
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
    fail("config.json: field \"", key, "\" = ", v.dump(), " is larger than any size reformer supports");
  if (!v.is_number_integer()) wrong_type(key, v, "an integer");
  return v.get<int64_t>();
}

void read(const json& j, const char* key, int64_t& out) {
  if (const json* v = field(j, key)) out = as_int(key, *v);
}
void read(const json& j, const char* key, std::optional<int64_t>& out) {
  if (const json* v = field(j, key)) out = as_int(key, *v);
}
void read(const json& j, const char* key, double& out) {
  const json* v = field(j, key);
  if (!v) return;
  if (!v->is_number()) wrong_type(key, *v, "a number");
  out = v->get<double>();
}
void read(const json& j, const char* key, bool& out) {
  const json* v = field(j, key);
  if (!v) return;
  if (!v->is_boolean()) wrong_type(key, *v, "true or false");
  out = v->get<bool>();
}
void read(const json& j, const char* key, std::string& out) {
  const json* v = field(j, key);
  if (!v) return;
  if (!v->is_string()) wrong_type(key, *v, "a string");
  out = v->get<std::string>();
}
void read(const json& j, const char* key, std::vector<std::string>& out) {
  const json* v = field(j, key);
  if (!v) return;
  if (!v->is_array()) wrong_type(key, *v, "a list of strings");
  REFORMER_CHECK(v->size() <= static_cast<size_t>(limits::kMaxLayers) || std::string(key) != "attn_layers",
                 "config.json: attn_layers has ", v->size(), " entries, more than the ", limits::kMaxLayers,
                 " layers reformer supports");
  out.clear();
  for (const json& e : *v) {
    if (!e.is_string()) wrong_type(key, *v, "a list of strings");
    out.push_back(e.get<std::string>());
  }
}
void read(const json& j, const char* key, std::vector<int64_t>& out) {
  const json* v = field(j, key);
  if (!v) return;
  if (!v->is_array()) wrong_type(key, *v, "a list of integers");
  REFORMER_CHECK(v->size() <= static_cast<size_t>(limits::kMaxAxes), "config.json: field \"", key, "\" has ", v->size(),
                 " entries, more than the ", limits::kMaxAxes, " reformer supports");
  out.clear();
  for (const json& e : *v) {
    if (!e.is_number_integer()) wrong_type(key, *v, "a list of integers");
    out.push_back(as_int(key, e));
  }
}

// num_buckets: null, an int, or a list of ints (factorized).
std::vector<int64_t> read_buckets(const json& j) {
  auto it = j.find("num_buckets");
  if (it == j.end() || it->is_null()) return {};
  if (it->is_number_integer()) return {as_int("num_buckets", *it)};
  if (it->is_array()) {
    REFORMER_CHECK(it->size() <= static_cast<size_t>(limits::kMaxAxes), "config.json: num_buckets has ", it->size(),
                   " factors, more than the ", limits::kMaxAxes, " reformer supports");
    std::vector<int64_t> v;
    for (const auto& e : *it) {
      REFORMER_CHECK(e.is_number_integer(), "config.json: num_buckets must be an int or a list of ints, got ", it->dump());
      v.push_back(as_int("num_buckets", e));
    }
    return v;
  }
  fail("config.json: num_buckets must be null, an int or a list of ints, got ", it->dump());
}

constexpr std::pair<ModelClass, const char*> kClassNames[] = {
    {ModelClass::LMHead, "ReformerModelWithLMHead"},
    {ModelClass::MaskedLM, "ReformerForMaskedLM"},
    {ModelClass::Base, "ReformerModel"},
    {ModelClass::SequenceClassification, "ReformerForSequenceClassification"},
    {ModelClass::QuestionAnswering, "ReformerForQuestionAnswering"},
};

// id2label: {"0": "negative", "1": "positive"} (HF writes the keys as strings); keys 0..n-1.
std::vector<std::string> read_id2label(const json& j) {
  const json* v = field(j, "id2label");
  if (!v) return {};
  if (!v->is_object()) wrong_type("id2label", *v, "an object {\"0\": label, ...}");
  REFORMER_CHECK(v->size() <= static_cast<size_t>(limits::kMaxVocab), "config.json: id2label has ", v->size(),
                 " entries, more than the ", limits::kMaxVocab, " labels reformer supports");
  std::vector<std::string> labels(v->size());
  std::vector<bool> seen(v->size(), false);
  for (const auto& [key, value] : v->items()) {
    size_t used = 0;
    long long i = -1;
    try {
      i = std::stoll(key, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    REFORMER_CHECK(used == key.size() && i >= 0 && i < static_cast<long long>(labels.size()) && !seen[i],
                   "config.json: id2label key \"", key, "\" is not one of the label ids 0..", labels.size() - 1,
                   "; number the labels 0, 1, ... without gaps");
    if (!value.is_string()) wrong_type("id2label", *v, "an object of label names (strings)");
    labels[i] = value.get<std::string>();
    seen[i] = true;
  }
  return labels;
}

// Keys of HF's PretrainedConfig and generation settings that do not affect the computation.
bool is_generic_hf_key(const std::string& key) {
  static const char* const keys[] = {
      "_name_or_path", "architectures", "bad_words_ids", "begin_suppress_tokens", "bos_token_id", "classifier_dropout",
      "cross_attention_hidden_size", "decoder_start_token_id", "diversity_penalty", "do_sample", "dtype", "early_stopping",
      "encoder_no_repeat_ngram_size", "exponential_decay_length_penalty", "finetuning_task", "forced_bos_token_id",
      "forced_eos_token_id", "id2label", "label2id", "length_penalty", "max_length", "min_length", "model_type",
      "no_repeat_ngram_size", "num_beam_groups", "num_beams", "num_hidden_layers", "num_return_sequences",
      "output_attentions", "output_hidden_states", "output_past", "output_scores", "prefix", "problem_type",
      "remove_invalid_values", "repetition_penalty", "return_dict", "return_dict_in_generate", "sep_token_id",
      "suppress_tokens", "task_specific_params", "temperature", "tf_legacy_loss", "tie_encoder_decoder",
      "tokenizer_class", "top_k", "top_p", "torch_dtype", "torchscript", "transformers_version", "typical_p",
      "use_bfloat16", "use_cache", "is_encoder_decoder", "add_cross_attention", "pruned_heads"};
  for (const char* k : keys)
    if (key == k) return true;
  return false;
}

}  // namespace

const char* model_class_name(ModelClass c) {
  for (const auto& [k, name] : kClassNames)
    if (k == c) return name;
  return "ReformerModelWithLMHead";
}

std::optional<ModelClass> parse_model_class(const std::string& name) {
  for (const auto& [k, n] : kClassNames)
    if (name == n) return k;
  return std::nullopt;
}

ModelClass ReformerConfig::model_class() const {
  const std::optional<ModelClass> named = architectures.empty() ? std::nullopt : parse_model_class(architectures[0]);
  if (!named || is_language_model(*named)) return is_decoder ? ModelClass::LMHead : ModelClass::MaskedLM;
  return *named;
}

int64_t ReformerConfig::total_buckets() const {
  if (num_buckets.empty()) return 0;
  int64_t n = 1;
  for (int64_t f : num_buckets) n = checked_mul(n, f, "config: the product of num_buckets");
  return n;
}

int64_t ReformerConfig::max_length() const {
  if (!axial_pos_embds) return max_position_embeddings;
  int64_t n = 1;
  for (int64_t s : axial_pos_shape) n = checked_mul(n, s, "config: the product of axial_pos_shape");
  return n;
}

void ReformerConfig::validate() const {
  // Sizes: each within its limit (reformer/limits.h), so that no product below can overflow and no
  // impossible value reaches an allocation.
  using limits::check_range;
  check_range("config: hidden_size", hidden_size, 1, limits::kMaxWidth);
  check_range("config: feed_forward_size", feed_forward_size, 1, limits::kMaxWidth);
  check_range("config: num_attention_heads", num_attention_heads, 1, limits::kMaxHeads);
  check_range("config: attention_head_size", attention_head_size, 1, limits::kMaxWidth);
  check_range("config: vocab_size", vocab_size, 1, limits::kMaxVocab);
  check_range("config: num_hashes", num_hashes, 1, limits::kMaxHashes);
  check_range("config: lsh_attn_chunk_length", lsh_attn_chunk_length, 1, limits::kMaxLength);
  check_range("config: local_attn_chunk_length", local_attn_chunk_length, 1, limits::kMaxLength);
  check_range("config: max_position_embeddings", max_position_embeddings, 1, limits::kMaxLength);
  REFORMER_CHECK(num_layers() <= limits::kMaxLayers, "config: attn_layers has ", num_layers(), " layers, more than the limit ",
                 limits::kMaxLayers);
  // HF pads with pad_token_id (and generation fills the context with it): it must be a token.
  REFORMER_CHECK(pad_token_id >= 0 && pad_token_id < vocab_size, "config: pad_token_id = ", pad_token_id,
                 " is not a token of the vocabulary [0, ", vocab_size, "); set it to an id below vocab_size (usually 0)");
  REFORMER_CHECK(!attn_layers.empty(), "config: attn_layers is empty; give at least one of ", attention_kind_names());
  for (size_t i = 0; i < attn_layers.size(); ++i) {
    const auto& t = attn_layers[i];
    const auto& kinds = attention_kinds();
    REFORMER_CHECK(std::any_of(kinds.begin(), kinds.end(), [&](const AttentionKindSpec& k) { return t == k.name; }),
                   "config: attn_layers[", i, "] = \"", t, "\" is not a known layer type; use ", attention_kind_names());
  }
  for (auto [name, v] : {std::pair{"lsh_num_chunks_before", lsh_num_chunks_before},
                         {"lsh_num_chunks_after", lsh_num_chunks_after},
                         {"local_num_chunks_before", local_num_chunks_before},
                         {"local_num_chunks_after", local_num_chunks_after},
                         {"chunk_size_feed_forward", chunk_size_feed_forward},
                         {"chunk_size_lm_head", chunk_size_lm_head}})
    check_range(std::string("config: ") + name, v, 0,
                std::string(name).starts_with("chunk_size") ? limits::kMaxElements : limits::kMaxChunksAround);
  if (is_decoder) {
    // HF ReformerModelWithLMHead asserts this (its message wrongly says "set to 1").
    for (const AttentionKindSpec& k : attention_kinds())
      REFORMER_CHECK(!k.chunks_after || this->*k.chunks_after == 0 || !uses_attention(*this, k.kind), "config: ", k.name,
                     "_num_chunks_after = ", this->*k.chunks_after, " lets a causal model (is_decoder: true) look ahead; set it to 0");
  }
  for (size_t i = 0; i < num_buckets.size(); ++i)
    REFORMER_CHECK(num_buckets[i] >= 2 && num_buckets[i] % 2 == 0, "config: num_buckets",
                   num_buckets.size() > 1 ? "[" + std::to_string(i) + "]" : std::string(), " = ", num_buckets[i],
                   " must be an even number >= 2 (buckets come from argmax over [xR, -xR])");
  for (size_t i = 0; i < num_buckets.size(); ++i)
    check_range("config: num_buckets" + (num_buckets.size() > 1 ? "[" + std::to_string(i) + "]" : std::string()),
                num_buckets[i], 2, limits::kMaxBuckets);
  REFORMER_CHECK(total_buckets() <= limits::kMaxBuckets, "config: num_buckets multiply to ", total_buckets(),
                 " buckets, more than the limit ", limits::kMaxBuckets);
  // Every weight matrix must be a tensor the allocator can hold (the element counts are checked products).
  const int64_t Hd = checked_mul(num_attention_heads, attention_head_size, "config: num_attention_heads x attention_head_size");
  for (auto [name, a, b] : {std::tuple{"vocab_size x hidden_size (word embeddings)", vocab_size, hidden_size},
                            {"vocab_size x 2 hidden_size (LM head)", vocab_size, 2 * hidden_size},
                            {"feed_forward_size x hidden_size (feed-forward)", feed_forward_size, hidden_size},
                            {"num_attention_heads x attention_head_size x hidden_size (attention)", Hd, hidden_size},
                            {"max_position_embeddings x hidden_size (positions)", axial_pos_embds ? 1 : max_position_embeddings,
                             hidden_size}}) {
    const int64_t n = checked_mul(a, b, std::string("config: ") + name);
    REFORMER_CHECK(n <= limits::kMaxElements, "config: ", name, " = ", n, " weights in one tensor, more than the limit ",
                   limits::kMaxElements, "; use smaller sizes");
  }
  for (auto [name, p] : {std::pair{"hidden_dropout_prob", hidden_dropout_prob},
                         {"local_attention_probs_dropout_prob", local_attention_probs_dropout_prob},
                         {"lsh_attention_probs_dropout_prob", lsh_attention_probs_dropout_prob}})
    REFORMER_CHECK(p >= 0.0 && p < 1.0, "config: ", name, " = ", p, " must be in [0, 1)");
  REFORMER_CHECK(layer_norm_eps > 0, "config: layer_norm_eps = ", layer_norm_eps, " must be positive");
  REFORMER_CHECK(hidden_act == "relu" || hidden_act == "gelu" || hidden_act == "gelu_new" || hidden_act == "silu" ||
                     hidden_act == "swish",
                 "config: hidden_act = \"", hidden_act, "\" is not supported; use relu, gelu, gelu_new or silu");
  if (!architectures.empty()) {
    std::string known;
    for (const auto& [k, name] : kClassNames) known += std::string(known.empty() ? "" : ", ") + name;
    REFORMER_CHECK(parse_model_class(architectures[0]).has_value(), "config: architectures[0] = \"", architectures[0],
                   "\" is not a Reformer class reformer implements; use one of ", known);
  }
  check_range("config: num_labels", num_labels, 1, limits::kMaxVocab);
  REFORMER_CHECK(id2label.empty() || static_cast<int64_t>(id2label.size()) == num_labels, "config: num_labels = ",
                 num_labels, " but id2label names ", id2label.size(), " labels; give one name per label");
  REFORMER_CHECK(problem_type.empty() || problem_type == "regression" || problem_type == "single_label_classification" ||
                     problem_type == "multi_label_classification",
                 "config: problem_type = \"", problem_type,
                 "\" is not one of \"regression\", \"single_label_classification\", \"multi_label_classification\" (HF's)");
  if (classifier_dropout)
    REFORMER_CHECK(*classifier_dropout >= 0.0 && *classifier_dropout < 1.0, "config: classifier_dropout = ",
                   *classifier_dropout, " must be in [0, 1) (or null: hidden_dropout_prob)");
  // HF's ReformerForQuestionAnswering splits its num_labels outputs into start and end logits.
  REFORMER_CHECK(model_class() != ModelClass::QuestionAnswering || num_labels == 2, "config: num_labels = ", num_labels,
                 " but ReformerForQuestionAnswering needs 2 (start and end logits); set num_labels (id2label) to 2");
  REFORMER_CHECK(!tie_word_embeddings, "config: tie_word_embeddings = true is not supported by Reformer (HF unties them); set it to false");
  if (axial_pos_embds) {
    REFORMER_CHECK(axial_pos_shape.size() <= static_cast<size_t>(limits::kMaxAxes), "config: axial_pos_shape has ",
                   axial_pos_shape.size(), " axes, more than the ", limits::kMaxAxes, " reformer supports");
    REFORMER_CHECK(!axial_pos_shape.empty() && axial_pos_shape.size() == axial_pos_embds_dim.size(),
                   "config: axial_pos_shape has ", axial_pos_shape.size(), " axes but axial_pos_embds_dim has ",
                   axial_pos_embds_dim.size(), "; give one embedding dim per axis");
    int64_t sum = 0;
    for (size_t i = 0; i < axial_pos_shape.size(); ++i) {
      check_range("config: axial_pos_shape[" + std::to_string(i) + "]", axial_pos_shape[i], 1, limits::kMaxLength);
      check_range("config: axial_pos_embds_dim[" + std::to_string(i) + "]", axial_pos_embds_dim[i], 1, limits::kMaxWidth);
      sum += axial_pos_embds_dim[i];
    }
    check_range("config: the product of axial_pos_shape (the longest sequence)", max_length(), 1, limits::kMaxLength);
    REFORMER_CHECK(sum == hidden_size, "config: axial_pos_embds_dim sums to ", sum, " but hidden_size is ", hidden_size,
                   "; the axial embeddings are concatenated, so their dims must sum to hidden_size");
  }
}

void ReformerConfig::validate_length(int64_t L, bool training) const {
  REFORMER_CHECK(L > 0, "sequence length ", L, " must be positive");
  REFORMER_CHECK(L <= max_length(), "sequence length ", L, " exceeds the positional embedding's ", max_length(),
                 axial_pos_embds ? " (the product of axial_pos_shape)" : " (max_position_embeddings)",
                 "; use a shorter sequence or a larger positional shape");
  const ChunkRule rule = chunk_rule(*this);
  const int64_t m = rule.multiple, min_chunk = rule.shortest_chunk;
  // HF runs sequences no longer than every chunk without chunking (spec 1.11); otherwise L must be
  // a multiple of every chunk length (HF pads in eval; we ask the caller to).
  REFORMER_CHECK(L <= min_chunk || L % m == 0, "sequence length ", L, " is not a multiple of ", m,
                 " (the least common multiple of lsh_attn_chunk_length and local_attn_chunk_length); use a length like ",
                 (L + m - 1) / m * m);
  // Hugging Face also requires training lengths to equal the product of axial_pos_shape; here a
  // shorter one takes the table's first L positions in training as HF does in eval (docs/NUMERICS.md).
  (void)training;
}

std::vector<int64_t> ReformerConfig::auto_num_buckets(int64_t L) const {
  // HF: p = bit_length(2 * (L // c)) - 1, n = 2^p; factorize when n exceeds
  // 2 * max(int(sqrt(max_position_embeddings // c)), c).
  const int64_t c = lsh_attn_chunk_length;
  const int64_t target = 2 * (L / c);
  int p = 0;
  while ((int64_t{1} << (p + 1)) <= target) ++p;
  if (target < 1) p = 0;
  const int64_t n = int64_t{1} << p;
  const int64_t limit = 2 * std::max<int64_t>(static_cast<int64_t>(std::sqrt(static_cast<double>(max_position_embeddings / c))), c);
  if (n > limit) return {int64_t{1} << (p / 2), int64_t{1} << (p - p / 2)};
  return {std::max<int64_t>(n, 2)};
}

ReformerConfig ReformerConfig::from_json(const json& j) {
  REFORMER_CHECK(j.is_object(), "config.json must hold a JSON object");
  ReformerConfig c;
  read(j, "attn_layers", c.attn_layers);
  read(j, "attention_head_size", c.attention_head_size);
  read(j, "axial_norm_std", c.axial_norm_std);
  read(j, "axial_pos_embds", c.axial_pos_embds);
  read(j, "axial_pos_shape", c.axial_pos_shape);
  read(j, "axial_pos_embds_dim", c.axial_pos_embds_dim);
  read(j, "chunk_size_lm_head", c.chunk_size_lm_head);
  read(j, "chunk_size_feed_forward", c.chunk_size_feed_forward);
  read(j, "eos_token_id", c.eos_token_id);
  read(j, "feed_forward_size", c.feed_forward_size);
  read(j, "hash_seed", c.hash_seed);
  read(j, "hidden_act", c.hidden_act);
  read(j, "hidden_dropout_prob", c.hidden_dropout_prob);
  read(j, "hidden_size", c.hidden_size);
  read(j, "initializer_range", c.initializer_range);
  read(j, "is_decoder", c.is_decoder);
  read(j, "layer_norm_eps", c.layer_norm_eps);
  read(j, "local_attention_probs_dropout_prob", c.local_attention_probs_dropout_prob);
  read(j, "local_attn_chunk_length", c.local_attn_chunk_length);
  read(j, "local_num_chunks_before", c.local_num_chunks_before);
  read(j, "local_num_chunks_after", c.local_num_chunks_after);
  read(j, "lsh_attention_probs_dropout_prob", c.lsh_attention_probs_dropout_prob);
  read(j, "lsh_attn_chunk_length", c.lsh_attn_chunk_length);
  read(j, "lsh_num_chunks_before", c.lsh_num_chunks_before);
  read(j, "lsh_num_chunks_after", c.lsh_num_chunks_after);
  read(j, "max_position_embeddings", c.max_position_embeddings);
  read(j, "num_attention_heads", c.num_attention_heads);
  c.num_buckets = read_buckets(j);
  read(j, "num_hashes", c.num_hashes);
  read(j, "pad_token_id", c.pad_token_id);
  read(j, "vocab_size", c.vocab_size);
  read(j, "tie_word_embeddings", c.tie_word_embeddings);
  read(j, "architectures", c.architectures);
  c.id2label = read_id2label(j);
  if (!c.id2label.empty()) c.num_labels = static_cast<int64_t>(c.id2label.size());
  if (const json* v = field(j, "num_labels")) {  // HF accepts num_labels as a config argument too
    c.num_labels = as_int("num_labels", *v);
    REFORMER_CHECK(c.id2label.empty() || static_cast<int64_t>(c.id2label.size()) == c.num_labels,
                   "config.json: num_labels = ", c.num_labels, " but id2label names ", c.id2label.size(),
                   " labels; remove num_labels or make id2label match");
  }
  read(j, "problem_type", c.problem_type);
  {
    double p = 0;
    if (field(j, "classifier_dropout")) {
      read(j, "classifier_dropout", p);
      c.classifier_dropout = p;
    }
  }
  if (j.contains("num_hidden_layers") && j["num_hidden_layers"].is_number_integer())
    REFORMER_CHECK(as_int("num_hidden_layers", j["num_hidden_layers"]) == c.num_layers(), "config.json: num_hidden_layers = ",
                   j["num_hidden_layers"].get<int64_t>(), " disagrees with len(attn_layers) = ", c.num_layers());
  if (j.contains("model_type") && j["model_type"].is_string())
    REFORMER_CHECK(j["model_type"] == "reformer", "config.json: model_type is \"", j["model_type"].get<std::string>(),
                   "\", not \"reformer\": this is a config for a different model");
  auto is_true = [&](const char* key) { return j.contains(key) && j[key].is_boolean() && j[key].get<bool>(); };
  REFORMER_CHECK(!is_true("is_encoder_decoder") && !is_true("add_cross_attention"),
                 "config.json: encoder-decoder / cross-attention Reformer configs are not supported; set is_encoder_decoder and add_cross_attention to false");
  REFORMER_CHECK(!j.contains("pruned_heads") || j["pruned_heads"].empty(),
                 "config.json: pruned_heads = ", j.contains("pruned_heads") ? j["pruned_heads"].dump() : "",
                 " is not supported; use an unpruned checkpoint");
  c.validate();
  return c;
}

std::vector<std::string> ReformerConfig::ignored_fields(const json& j) {
  std::vector<std::string> notes;
  const json known = ReformerConfig().to_json();
  for (const auto& [key, value] : j.items())
    if (!known.contains(key) && !is_generic_hf_key(key))
      notes.push_back("config.json: unknown field \"" + key + "\" = " + value.dump() + " is ignored");
  if (j.contains("hash_seed") && !j["hash_seed"].is_null())
    notes.push_back("config.json: hash_seed = " + j["hash_seed"].dump() +
                    " is ignored: rotations come from reformer's own generator (keyed by --seed, step, layer, head), "
                    "since torch's generator cannot be reproduced (spec 1.3)");
  return notes;
}

json ReformerConfig::to_json() const {
  json j;
  // HF's auto classes read this: causal LMs load as ReformerModelWithLMHead, encoders as MLM.
  j["architectures"] = {model_class_name(model_class())};
  j["model_type"] = "reformer";
  j["attn_layers"] = attn_layers;
  j["attention_head_size"] = attention_head_size;
  j["axial_norm_std"] = axial_norm_std;
  j["axial_pos_embds"] = axial_pos_embds;
  j["axial_pos_shape"] = axial_pos_shape;
  j["axial_pos_embds_dim"] = axial_pos_embds_dim;
  j["chunk_size_lm_head"] = chunk_size_lm_head;
  j["chunk_size_feed_forward"] = chunk_size_feed_forward;
  j["eos_token_id"] = eos_token_id;
  j["feed_forward_size"] = feed_forward_size;
  j["hash_seed"] = hash_seed ? json(*hash_seed) : json(nullptr);
  j["hidden_act"] = hidden_act;
  j["hidden_dropout_prob"] = hidden_dropout_prob;
  j["hidden_size"] = hidden_size;
  j["initializer_range"] = initializer_range;
  j["is_decoder"] = is_decoder;
  j["layer_norm_eps"] = layer_norm_eps;
  j["local_attention_probs_dropout_prob"] = local_attention_probs_dropout_prob;
  j["local_attn_chunk_length"] = local_attn_chunk_length;
  j["local_num_chunks_before"] = local_num_chunks_before;
  j["local_num_chunks_after"] = local_num_chunks_after;
  j["lsh_attention_probs_dropout_prob"] = lsh_attention_probs_dropout_prob;
  j["lsh_attn_chunk_length"] = lsh_attn_chunk_length;
  j["lsh_num_chunks_before"] = lsh_num_chunks_before;
  j["lsh_num_chunks_after"] = lsh_num_chunks_after;
  j["max_position_embeddings"] = max_position_embeddings;
  j["num_attention_heads"] = num_attention_heads;
  if (num_buckets.empty()) j["num_buckets"] = nullptr;
  else if (num_buckets.size() == 1) j["num_buckets"] = num_buckets[0];
  else j["num_buckets"] = num_buckets;
  j["num_hashes"] = num_hashes;
  j["num_hidden_layers"] = num_layers();
  j["pad_token_id"] = pad_token_id;
  j["vocab_size"] = vocab_size;
  j["tie_word_embeddings"] = tie_word_embeddings;
  json id2 = json::object(), label2 = json::object();
  for (int64_t i = 0; i < num_labels; ++i) {
    const std::string name = id2label.empty() ? "LABEL_" + std::to_string(i) : id2label[i];
    id2[std::to_string(i)] = name;
    label2[name] = i;
  }
  j["id2label"] = id2;
  j["label2id"] = label2;
  j["problem_type"] = problem_type.empty() ? json(nullptr) : json(problem_type);
  j["classifier_dropout"] = classifier_dropout ? json(*classifier_dropout) : json(nullptr);
  return j;
}

ReformerConfig ReformerConfig::load(const std::string& path) {
  require_regular_file(path, "config file");
  std::ifstream in(path);
  REFORMER_CHECK(in.good(), "cannot read config file ", path, "; pass a model directory containing config.json");
  json j;
  try {
    in >> j;
  } catch (const json::exception& e) {
    fail("config file ", path, " is not valid JSON (", e.what(), "); fix or regenerate it");
  }
  try {
    ReformerConfig c = from_json(j);
    for (const auto& note : ignored_fields(j)) std::fprintf(stderr, "warning: %s: %s\n", path.c_str(), note.c_str());
    return c;
  } catch (const Error& e) {
    fail(path, ": ", e.what());
  }
}

void ReformerConfig::save(const std::string& path) const {
  const std::string tmp = path + ".tmp";
  write_temp(tmp);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    fail("could not rename ", tmp, " to ", path);
  }
}

void ReformerConfig::write_temp(const std::string& tmp) const {
  const std::string text = to_json().dump(2) + "\n";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  REFORMER_CHECK(f, "could not create ", tmp, " (directory missing or not writable?)");
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size() && std::fflush(f) == 0 && fsync(fileno(f)) == 0;
  if (std::fclose(f) != 0 || !ok) {
    std::remove(tmp.c_str());
    fail("could not write ", tmp, " (disk full or not writable?); the previous config was left unchanged");
  }
}

}  // namespace reformer
