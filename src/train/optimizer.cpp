#include "train/optimizer.h"

#include <algorithm>
#include <set>

namespace reformer {

Optimizer::Optimizer(std::string name, const std::vector<ParamRef>& params) : name_(std::move(name)) {
  std::set<std::string> seen;
  for (const ParamRef& p : params) {
    REFORMER_CHECK(p.param && p.grad, name_, ": parameter '", p.name, "' has a null value or gradient pointer");
    REFORMER_CHECK(seen.insert(p.name).second, name_, ": parameter name '", p.name,
                   "' appears twice; every parameter needs a unique name for its optimizer state");
    param_names_.push_back(p.name);
    param_shapes_.push_back(p.shape);
  }
}

float* Optimizer::add_state(const std::string& slot, const ParamRef& p, Shape shape) {
  state_names_.push_back(name_ + "." + slot + "." + p.name);
  state_tensors_.push_back(Tensor::zeros(std::move(shape), MemCategory::OptimizerState));
  return state_tensors_.back().data();
}

void Optimizer::check_params(const std::vector<ParamRef>& params) const {
  REFORMER_CHECK(params.size() == param_names_.size(), name_, ": step() got ", params.size(),
                 " parameters but the optimizer was built for ", param_names_.size());
  for (size_t i = 0; i < params.size(); ++i) {
    REFORMER_CHECK(params[i].name == param_names_[i] && params[i].shape == param_shapes_[i], name_,
                   ": parameter ", i, " is '", params[i].name, "' ", shape_str(params[i].shape),
                   " but the optimizer was built for '", param_names_[i], "' ", shape_str(param_shapes_[i]));
  }
}

std::vector<NamedState> Optimizer::state() {
  std::vector<NamedState> out;
  for (size_t i = 0; i < state_tensors_.size(); ++i)
    out.push_back({state_names_[i], state_tensors_[i].shape(), state_tensors_[i].data()});
  return out;
}

void Optimizer::load_state(int64_t steps_taken, const std::vector<NamedState>& tensors) {
  REFORMER_CHECK(steps_taken >= 0, name_, ": negative step counter ", steps_taken, " in the checkpoint");
  REFORMER_CHECK(tensors.size() == state_tensors_.size(), name_, ": the checkpoint holds ", tensors.size(),
                 " optimizer state tensors but ", name_, " needs ", state_tensors_.size(),
                 "; was it written with another optimizer or model configuration?");
  for (size_t i = 0; i < state_tensors_.size(); ++i) {
    const auto it = std::find_if(tensors.begin(), tensors.end(),
                                 [&](const NamedState& s) { return s.name == state_names_[i]; });
    REFORMER_CHECK(it != tensors.end(), name_, ": optimizer state '", state_names_[i],
                   "' is missing from the checkpoint; was it written with another optimizer?");
    REFORMER_CHECK(it->shape == state_tensors_[i].shape(), name_, ": optimizer state '", it->name, "' has shape ",
                   shape_str(it->shape), " in the checkpoint but ", shape_str(state_tensors_[i].shape()),
                   " here");
    std::copy(it->data, it->data + state_tensors_[i].numel(), state_tensors_[i].data());
  }
  steps_ = steps_taken;
}

}  // namespace reformer
