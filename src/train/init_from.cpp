// Fine-tuning from a checkpoint (train/init_from.h, TrainArgs::init_from).
#include "train/init_from.h"

#include <algorithm>
#include <vector>

namespace reformer {

const std::vector<std::string>& changeable_on_init() {
  static const std::vector<std::string> keys = {
      "hidden_dropout_prob", "local_attention_probs_dropout_prob", "lsh_attention_probs_dropout_prob", "classifier_dropout",
      "chunk_size_feed_forward", "chunk_size_lm_head", "lsh_attn_chunk_length", "local_attn_chunk_length",
      "lsh_num_chunks_before", "lsh_num_chunks_after", "local_num_chunks_before", "local_num_chunks_after",
      "num_hashes", "num_buckets", "hash_seed"};
  return keys;
}

bool may_change_on_init(const std::string& key) {
  const auto& keys = changeable_on_init();
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

ReformerConfig config_for_task(ReformerConfig c, const TrainArgs& a, const ClassificationData* train, Progress& progress) {
  const ReformerConfig base = c;
  if (a.task == "lm") {
    c.architectures = {model_class_name(ModelClass::LMHead)};
    c.is_decoder = true;
  } else if (a.task == "mlm") {
    c.architectures = {model_class_name(ModelClass::MaskedLM)};
    c.is_decoder = false;
  } else if (a.task == "classify") {
    const bool was_classifier = base.model_class() == ModelClass::SequenceClassification;
    if (was_classifier)
      REFORMER_CHECK(base.problem_type.empty() || base.problem_type == "single_label_classification", a.init_from,
                     " is a classifier with problem_type \"", base.problem_type, "\"; --task classify trains single-label "
                     "classification (one class per text)");
    c.architectures = {model_class_name(ModelClass::SequenceClassification)};
    // The head reads the first position, which must see the whole text.
    c.is_decoder = false;
    c.problem_type = "single_label_classification";
    const std::vector<std::string> names = train ? train->label_names() : std::vector<std::string>{};
    const int64_t from_data = train ? std::max<int64_t>(train->integer_classes(), static_cast<int64_t>(names.size())) : 0;
    c.num_labels = a.num_labels > 0 ? a.num_labels : was_classifier ? base.num_labels : std::max<int64_t>(from_data, 2);
    if (!was_classifier || c.num_labels != base.num_labels)
      c.id2label = static_cast<int64_t>(names.size()) == c.num_labels ? names : std::vector<std::string>{};
  }
  if (c.is_decoder != base.is_decoder)
    progress.message(std::string("note: --task ") + a.task + " sets is_decoder = " + (c.is_decoder ? "true" : "false") +
                     (c.is_decoder ? " (causal attention)" : " (bidirectional attention)"));
  return c;
}

bool same_head(const ReformerConfig& from, const ReformerConfig& to) {
  const ModelClass a = from.model_class(), b = to.model_class();
  if (is_language_model(a) && is_language_model(b)) return true;
  if (a != b || a == ModelClass::Base) return false;
  return a != ModelClass::SequenceClassification || from.num_labels == to.num_labels;
}

}  // namespace reformer
