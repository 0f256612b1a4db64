#pragma once
// The parameters of a model, from its config alone: every tensor's Hugging Face state-dict name,
// shape, part (for `reformer info`) and initialisation (spec 3.6, as HF initialises). The model
// allocates exactly this list (model.cpp), so the names and shapes are written once.
#include <cstdint>
#include <string>
#include <vector>

#include "reformer/config.h"
#include "reformer/tensor.h"

namespace reformer {

enum class ParameterInit {
  Normal,       // N(0, initializer_range)
  AxialNormal,  // N(0, axial_norm_std): the axial position embeddings
  Zeros,        // biases
  Ones,         // layer-norm weights
};

struct ParameterShape {
  std::string name;  // HF state-dict name
  std::string part;  // "embeddings", "layer 0 attention (lsh)", "layer 0 feed-forward", "final layer norm", "lm head"
  Shape shape;
  ParameterInit init;
};

// In model order (embeddings, layers, final layer norm, the class's head).
std::vector<ParameterShape> parameter_shapes(const ReformerConfig& config);

struct PartCount {
  std::string part;
  int64_t parameters = 0;
};
// In model order; parts with the same name are summed.
std::vector<PartCount> parameter_counts(const ReformerConfig& config);
// All parameters of the model (overflow-checked).
int64_t count_parameters(const ReformerConfig& config);

}  // namespace reformer
