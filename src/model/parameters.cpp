#include "reformer/parameters.h"

#include "core/checked_math.h"
#include "reformer/attention_kinds.h"

namespace reformer {
namespace {

const char* const kWhat = "the parameter count";

}  // namespace

std::vector<ParameterShape> parameter_shapes(const ReformerConfig& c) {
  const int64_t D = c.hidden_size, F = c.feed_forward_size, V = c.vocab_size;
  const int64_t Hd = c.num_attention_heads * c.attention_head_size;
  std::vector<ParameterShape> out;
  out.push_back({"reformer.embeddings.word_embeddings.weight", "embeddings", {V, D}, ParameterInit::Normal});
  if (c.axial_pos_embds) {
    const size_t n = c.axial_pos_shape.size();
    for (size_t a = 0; a < n; ++a) {
      Shape s(n + 1, 1);
      s[a] = c.axial_pos_shape[a];
      s[n] = c.axial_pos_embds_dim.at(a);
      out.push_back({"reformer.embeddings.position_embeddings.weights." + std::to_string(a), "embeddings", s,
                     ParameterInit::AxialNormal});
    }
  } else {
    out.push_back({"reformer.embeddings.position_embeddings.embedding.weight", "embeddings", {c.max_position_embeddings, D},
                   ParameterInit::Normal});
  }
  for (int64_t i = 0; i < c.num_layers(); ++i) {
    const std::string prefix = "reformer.encoder.layers." + std::to_string(i) + ".";
    const std::string& type = c.attn_layers[static_cast<size_t>(i)];
    const std::string attn = "layer " + std::to_string(i) + " attention (" + type + ")";
    const std::string ff = "layer " + std::to_string(i) + " feed-forward";
    out.push_back({prefix + "attention.layer_norm.weight", attn, {D}, ParameterInit::Ones});
    out.push_back({prefix + "attention.layer_norm.bias", attn, {D}, ParameterInit::Zeros});
    for (const char* p : attention_kind(type).projections)
      out.push_back({prefix + "attention.self_attention." + p + ".weight", attn, {Hd, D}, ParameterInit::Normal});
    out.push_back({prefix + "attention.output.dense.weight", attn, {D, Hd}, ParameterInit::Normal});
    out.push_back({prefix + "feed_forward.layer_norm.weight", ff, {D}, ParameterInit::Ones});
    out.push_back({prefix + "feed_forward.layer_norm.bias", ff, {D}, ParameterInit::Zeros});
    out.push_back({prefix + "feed_forward.dense.dense.weight", ff, {F, D}, ParameterInit::Normal});
    out.push_back({prefix + "feed_forward.dense.dense.bias", ff, {F}, ParameterInit::Zeros});
    out.push_back({prefix + "feed_forward.output.dense.weight", ff, {D, F}, ParameterInit::Normal});
    out.push_back({prefix + "feed_forward.output.dense.bias", ff, {D}, ParameterInit::Zeros});
  }
  out.push_back({"reformer.encoder.layer_norm.weight", "final layer norm", {2 * D}, ParameterInit::Ones});
  out.push_back({"reformer.encoder.layer_norm.bias", "final layer norm", {2 * D}, ParameterInit::Zeros});
  const int64_t K = c.num_labels;
  switch (c.model_class()) {  // the head (model/heads.h)
    case ModelClass::LMHead:
    case ModelClass::MaskedLM:
      out.push_back({"lm_head.decoder.weight", "lm head", {V, 2 * D}, ParameterInit::Normal});
      out.push_back({"lm_head.decoder.bias", "lm head", {V}, ParameterInit::Zeros});
      break;
    case ModelClass::SequenceClassification:
      out.push_back({"classifier.dense.weight", "classification head", {D, 2 * D}, ParameterInit::Normal});
      out.push_back({"classifier.dense.bias", "classification head", {D}, ParameterInit::Zeros});
      out.push_back({"classifier.out_proj.weight", "classification head", {K, D}, ParameterInit::Normal});
      out.push_back({"classifier.out_proj.bias", "classification head", {K}, ParameterInit::Zeros});
      break;
    case ModelClass::QuestionAnswering:
      out.push_back({"qa_outputs.weight", "question-answering head", {K, 2 * D}, ParameterInit::Normal});
      out.push_back({"qa_outputs.bias", "question-answering head", {K}, ParameterInit::Zeros});
      break;
    case ModelClass::Base:
      break;
  }
  return out;
}

std::vector<PartCount> parameter_counts(const ReformerConfig& config) {
  std::vector<PartCount> parts;
  for (const auto& p : parameter_shapes(config)) {
    if (parts.empty() || parts.back().part != p.part) parts.push_back({p.part, 0});
    parts.back().parameters = checked_add(parts.back().parameters, shape_numel(p.shape), kWhat);
  }
  return parts;
}

int64_t count_parameters(const ReformerConfig& config) {
  int64_t total = 0;
  for (const PartCount& p : parameter_counts(config)) total = checked_add(total, p.parameters, kWhat);
  return total;
}

}  // namespace reformer
