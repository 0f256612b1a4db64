// ReformerModel (reformer/model.h): the public handle, forwarding to its ModelImpl
// (model/model_impl.h), so that the public header names no internal type.
#include "model/model_impl.h"

namespace reformer {

ReformerModel::ReformerModel(const ReformerConfig& config, uint64_t init_seed)
    : impl_(std::make_unique<ModelImpl>(config, init_seed)) {}
ReformerModel::~ReformerModel() = default;

const ReformerConfig& ReformerModel::config() const { return impl_->config(); }
std::vector<NamedParameter>& ReformerModel::parameters() { return impl_->parameters(); }
NamedParameter* ReformerModel::find_parameter(const std::string& name) { return impl_->find_parameter(name); }
int64_t ReformerModel::num_parameters() const { return impl_->num_parameters(); }
void ReformerModel::zero_grad() { impl_->zero_grad(); }
const std::vector<GradGroup>& ReformerModel::grad_groups() const { return impl_->grad_groups(); }
void ReformerModel::set_grad_ready_hook(std::function<void(int)> hook) { impl_->set_grad_ready_hook(std::move(hook)); }

LossStats ReformerModel::forward_backward(const Batch& batch, const StepOptions& opt) {
  return impl_->forward_backward(batch, opt);
}
LossStats ReformerModel::evaluate(const Batch& batch, const StepOptions& opt) { return impl_->evaluate(batch, opt); }
void ReformerModel::forward_logits(Tensor& logits, const Batch& batch, const StepOptions& opt) {
  impl_->forward_logits(logits, batch, opt);
}
void ReformerModel::forward_outputs(std::map<std::string, Tensor>& outputs, const Batch& batch,
                                    const StepOptions& opt) {
  impl_->forward_outputs(outputs, batch, opt);
}
ModelClass ReformerModel::model_class() const { return impl_->model_class(); }

DecodeState ReformerModel::make_decode_state(int64_t batch, int64_t capacity, uint64_t seed) {
  return impl_->make_decode_state(batch, capacity, seed);
}
void ReformerModel::prefill(DecodeState& state, int64_t seq, const int32_t* ids, int64_t n, float* logits) {
  impl_->prefill(state, seq, ids, n, logits);
}
void ReformerModel::decode_step(DecodeState& state, const int64_t* seqs, const int32_t* ids, int64_t count,
                                float* logits) {
  impl_->decode_step(state, seqs, ids, count, logits);
}

void ReformerModel::set_reversible(bool on) { impl_->set_reversible(on); }
bool ReformerModel::reversible() const { return impl_->reversible(); }
void ReformerModel::set_layer_plan(std::vector<LayerKeep> plan) { impl_->set_layer_plan(std::move(plan)); }
LayerKeep ReformerModel::layer_keep(size_t layer) const { return impl_->layer_keep(layer); }
void ReformerModel::set_stored_layers(const std::vector<bool>& stored) {
  std::vector<LayerKeep> plan;
  for (bool s : stored) plan.push_back(s ? LayerKeep::all : LayerKeep::nothing);
  impl_->set_layer_plan(std::move(plan));
}
bool ReformerModel::layer_stored(size_t layer) const { return impl_->layer_stored(layer); }
void ReformerModel::set_num_hashes(int64_t n) { impl_->set_num_hashes(n); }
int64_t ReformerModel::num_hashes() const { return impl_->num_hashes(); }
void ReformerModel::set_rotations(int layer, const float* rotations) { impl_->set_rotations(layer, rotations); }
void ReformerModel::set_dump_hook(DumpHook hook) { impl_->set_dump_hook(std::move(hook)); }
void ReformerModel::set_attention_row_chunk(int64_t rows) { impl_->set_attention_row_chunk(rows); }
int64_t ReformerModel::activation_bytes() const { return impl_->activation_bytes(); }

}  // namespace reformer
