#include "reformer/config.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <nlohmann/json.hpp>

#include "reformer/error.h"

namespace reformer {
namespace {

using nlohmann::json;

// Reads field `key` into `out` if present (null leaves the default), with a clear type error.
template <typename T>
void read(const json& j, const char* key, T& out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  try {
    out = it->get<T>();
  } catch (const json::exception&) {
    fail("config.json: field \"", key, "\" has value ", it->dump(), " of the wrong type; see Hugging Face ReformerConfig for its type");
  }
}

// num_buckets: null, an int, or a list of ints (factorized).
std::vector<int64_t> read_buckets(const json& j) {
  auto it = j.find("num_buckets");
  if (it == j.end() || it->is_null()) return {};
  if (it->is_number_integer()) return {it->get<int64_t>()};
  if (it->is_array()) {
    std::vector<int64_t> v;
    for (const auto& e : *it) {
      REFORMER_CHECK(e.is_number_integer(), "config.json: num_buckets must be an int or a list of ints, got ", it->dump());
      v.push_back(e.get<int64_t>());
    }
    return v;
  }
  fail("config.json: num_buckets must be null, an int or a list of ints, got ", it->dump());
}

int64_t lcm_chunks(const ReformerConfig& c) {
  int64_t m = 1;
  for (const auto& t : c.attn_layers) {
    if (t == "lsh") m = std::lcm(m, c.lsh_attn_chunk_length);
    if (t == "local") m = std::lcm(m, c.local_attn_chunk_length);
  }
  return m;
}

bool uses(const ReformerConfig& c, const char* type) {
  for (const auto& t : c.attn_layers)
    if (t == type) return true;
  return false;
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

int64_t ReformerConfig::total_buckets() const {
  if (num_buckets.empty()) return 0;
  int64_t n = 1;
  for (int64_t f : num_buckets) n *= f;
  return n;
}

int64_t ReformerConfig::max_length() const {
  if (!axial_pos_embds) return max_position_embeddings;
  int64_t n = 1;
  for (int64_t s : axial_pos_shape) n *= s;
  return n;
}

void ReformerConfig::validate() const {
  auto positive = [](const char* name, int64_t v) {
    REFORMER_CHECK(v > 0, "config: ", name, " = ", v, " must be positive");
  };
  positive("hidden_size", hidden_size);
  positive("feed_forward_size", feed_forward_size);
  positive("num_attention_heads", num_attention_heads);
  positive("attention_head_size", attention_head_size);
  positive("vocab_size", vocab_size);
  positive("num_hashes", num_hashes);
  positive("lsh_attn_chunk_length", lsh_attn_chunk_length);
  positive("local_attn_chunk_length", local_attn_chunk_length);
  positive("max_position_embeddings", max_position_embeddings);
  REFORMER_CHECK(!attn_layers.empty(), "config: attn_layers is empty; give at least one of \"lsh\", \"local\", \"full\"");
  for (size_t i = 0; i < attn_layers.size(); ++i) {
    const auto& t = attn_layers[i];
    REFORMER_CHECK(t == "lsh" || t == "local" || t == "full", "config: attn_layers[", i, "] = \"", t,
                   "\" is not a known layer type; use \"lsh\", \"local\" or \"full\"");
  }
  for (auto [name, v] : {std::pair{"lsh_num_chunks_before", lsh_num_chunks_before},
                         {"lsh_num_chunks_after", lsh_num_chunks_after},
                         {"local_num_chunks_before", local_num_chunks_before},
                         {"local_num_chunks_after", local_num_chunks_after},
                         {"chunk_size_feed_forward", chunk_size_feed_forward},
                         {"chunk_size_lm_head", chunk_size_lm_head}})
    REFORMER_CHECK(v >= 0, "config: ", name, " = ", v, " must be >= 0");
  if (is_decoder) {
    // HF ReformerModelWithLMHead asserts this (its message wrongly says "set to 1").
    REFORMER_CHECK(lsh_num_chunks_after == 0 || !uses(*this, "lsh"), "config: lsh_num_chunks_after = ", lsh_num_chunks_after,
                   " lets a causal model (is_decoder: true) look ahead; set it to 0");
    REFORMER_CHECK(local_num_chunks_after == 0 || !uses(*this, "local"), "config: local_num_chunks_after = ", local_num_chunks_after,
                   " lets a causal model (is_decoder: true) look ahead; set it to 0");
  }
  for (size_t i = 0; i < num_buckets.size(); ++i)
    REFORMER_CHECK(num_buckets[i] >= 2 && num_buckets[i] % 2 == 0, "config: num_buckets",
                   num_buckets.size() > 1 ? "[" + std::to_string(i) + "]" : std::string(), " = ", num_buckets[i],
                   " must be an even number >= 2 (buckets come from argmax over [xR, -xR])");
  for (auto [name, p] : {std::pair{"hidden_dropout_prob", hidden_dropout_prob},
                         {"local_attention_probs_dropout_prob", local_attention_probs_dropout_prob},
                         {"lsh_attention_probs_dropout_prob", lsh_attention_probs_dropout_prob}})
    REFORMER_CHECK(p >= 0.0 && p < 1.0, "config: ", name, " = ", p, " must be in [0, 1)");
  REFORMER_CHECK(layer_norm_eps > 0, "config: layer_norm_eps = ", layer_norm_eps, " must be positive");
  REFORMER_CHECK(hidden_act == "relu" || hidden_act == "gelu" || hidden_act == "gelu_new" || hidden_act == "silu" ||
                     hidden_act == "swish",
                 "config: hidden_act = \"", hidden_act, "\" is not supported; use relu, gelu, gelu_new or silu");
  REFORMER_CHECK(!tie_word_embeddings, "config: tie_word_embeddings = true is not supported by Reformer (HF unties them); set it to false");
  if (axial_pos_embds) {
    REFORMER_CHECK(!axial_pos_shape.empty() && axial_pos_shape.size() == axial_pos_embds_dim.size(),
                   "config: axial_pos_shape has ", axial_pos_shape.size(), " axes but axial_pos_embds_dim has ",
                   axial_pos_embds_dim.size(), "; give one embedding dim per axis");
    int64_t sum = 0;
    for (size_t i = 0; i < axial_pos_shape.size(); ++i) {
      REFORMER_CHECK(axial_pos_shape[i] > 0, "config: axial_pos_shape[", i, "] = ", axial_pos_shape[i], " must be positive");
      REFORMER_CHECK(axial_pos_embds_dim[i] > 0, "config: axial_pos_embds_dim[", i, "] = ", axial_pos_embds_dim[i], " must be positive");
      sum += axial_pos_embds_dim[i];
    }
    REFORMER_CHECK(sum == hidden_size, "config: axial_pos_embds_dim sums to ", sum, " but hidden_size is ", hidden_size,
                   "; the axial embeddings are concatenated, so their dims must sum to hidden_size");
  }
}

void ReformerConfig::validate_length(int64_t L, bool training) const {
  REFORMER_CHECK(L > 0, "sequence length ", L, " must be positive");
  REFORMER_CHECK(L <= max_length(), "sequence length ", L, " exceeds the positional embedding's ", max_length(),
                 axial_pos_embds ? " (the product of axial_pos_shape)" : " (max_position_embeddings)",
                 "; use a shorter sequence or a larger positional shape");
  const int64_t m = lcm_chunks(*this);
  int64_t min_chunk = INT64_MAX;
  for (const auto& t : attn_layers) {
    if (t == "lsh") min_chunk = std::min(min_chunk, lsh_attn_chunk_length);
    if (t == "local") min_chunk = std::min(min_chunk, local_attn_chunk_length);
  }
  // HF runs sequences no longer than every chunk without chunking (spec 1.11); otherwise L must be
  // a multiple of every chunk length (HF pads in eval; we ask the caller to).
  REFORMER_CHECK(L <= min_chunk || L % m == 0, "sequence length ", L, " is not a multiple of ", m,
                 " (the least common multiple of lsh_attn_chunk_length and local_attn_chunk_length); use a length like ",
                 (L + m - 1) / m * m);
  if (training && axial_pos_embds)
    REFORMER_CHECK(L == max_length(), "training sequence length ", L, " must equal the product of axial_pos_shape (",
                   max_length(), ") as in Hugging Face; set axial_pos_shape to factors of ", L);
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
  if (j.contains("hash_seed") && !j["hash_seed"].is_null()) c.hash_seed = j["hash_seed"].get<int64_t>();
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
  if (j.contains("num_hidden_layers") && j["num_hidden_layers"].is_number_integer())
    REFORMER_CHECK(j["num_hidden_layers"].get<int64_t>() == c.num_layers(), "config.json: num_hidden_layers = ",
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
  // HF's auto classes read this: causal models load as ReformerModelWithLMHead, encoders as MLM.
  j["architectures"] = {is_decoder ? "ReformerModelWithLMHead" : "ReformerForMaskedLM"};
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
  return j;
}

ReformerConfig ReformerConfig::load(const std::string& path) {
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
