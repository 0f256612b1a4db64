#pragma once
// The model's implementation behind reformer/model.h (ReformerModel holds one; its methods are
// documented there): the layers, parameters, gradient arena and activation buffers. Internal to
// src/model (model.cpp, decode.cpp, heads.cpp, reformer_model.cpp).
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "layers/attention.h"
#include "reformer/model.h"

namespace reformer {

class FeedForward;
struct LshWorkspace;
struct QkvWorkspace;
struct FeedForwardWorkspace;
struct FeedForwardCall;
struct TaskHead;

class ModelImpl {
 public:
  // The methods of ReformerModel (reformer/model.h, where they are documented).
  explicit ModelImpl(const ReformerConfig& config, uint64_t init_seed = 0);
  ~ModelImpl();
  ModelImpl(const ModelImpl&) = delete;
  ModelImpl& operator=(const ModelImpl&) = delete;

  const ReformerConfig& config() const { return config_; }
  std::vector<NamedParameter>& parameters() { return params_; }
  NamedParameter* find_parameter(const std::string& name);
  int64_t num_parameters() const;
  void zero_grad();
  const std::vector<GradGroup>& grad_groups() const { return grad_groups_; }
  void set_grad_ready_hook(std::function<void(int group)> hook) { grad_ready_ = std::move(hook); }

  LossStats forward_backward(const Batch& batch, const StepOptions& opt);
  LossStats evaluate(const Batch& batch, const StepOptions& opt);
  void forward_logits(Tensor& logits, const Batch& batch, const StepOptions& opt);
  void forward_outputs(std::map<std::string, Tensor>& outputs, const Batch& batch, const StepOptions& opt);
  ModelClass model_class() const { return config_.model_class(); }

  DecodeState make_decode_state(int64_t batch, int64_t capacity, uint64_t seed);
  void prefill(DecodeState& state, int64_t seq, const int32_t* ids, int64_t n, float* logits);
  void decode_step(DecodeState& state, const int64_t* seqs, const int32_t* ids, int64_t count, float* logits);

  void set_reversible(bool on) {
    reversible_ = on;
    layer_plan_.clear();
  }
  bool reversible() const;
  void set_layer_plan(std::vector<LayerKeep> plan) {
    reversible_ = true;
    layer_plan_ = std::move(plan);
  }
  LayerKeep layer_keep(size_t layer) const {
    if (!reversible_) return LayerKeep::all;
    return layer < layer_plan_.size() ? layer_plan_[layer] : LayerKeep::nothing;
  }
  bool layer_stored(size_t layer) const { return layer_keep(layer) == LayerKeep::all; }
  // stored_layer_keeps_y1 for this model's plan (all layers stored when not reversible).
  bool layer_keeps_y1(size_t layer) const {
    return layer_stored(layer) && layer + 1 < layers_.size() && layer_stored(layer + 1);
  }
  void set_num_hashes(int64_t n);
  int64_t num_hashes() const { return num_hashes_override_ ? num_hashes_override_ : config_.num_hashes; }
  void set_rotations(int layer, const float* rotations);
  void set_dump_hook(DumpHook hook) { dump_ = std::move(hook); }
  void set_attention_row_chunk(int64_t rows);
  int64_t activation_bytes() const;

 private:
  struct Layer;
  void build_layers(const std::vector<int64_t>& buckets);
  // Builds the layers (resolving an unset num_buckets from L, as HF does) unless already built.
  void ensure_layers(int64_t L);
  void prepare(int64_t B, int64_t L, bool training, bool backward);
  AttentionCall attention_call(const Batch& batch, const StepOptions& opt, int layer) const;
  FeedForwardCall ff_call(const Batch& batch, const StepOptions& opt, int layer) const;
  float hidden_dropout(const StepOptions& opt) const;
  void add_positions(float* x, int64_t B, int64_t L) const;
  void position_dropout(float* pos, int64_t B, int64_t L, const StepOptions& opt) const;
  void embed(const Batch& batch, const StepOptions& opt);
  void embed_backward(const Batch& batch, const StepOptions& opt);
  // after_attention(l), if given, runs right after layer l's attention (its workspace still holds
  // the layer's projections: how prefill fills the decoding caches).
  void run_layers(const Batch& batch, const StepOptions& opt, bool keep_inputs,
                  const std::function<void(int)>& after_attention = nullptr);
  // Final LN + LM head of `rows` rows given as the two streams' rows (rows, D) each.
  void head_rows(float* logits, const float* x1, const float* x2, int64_t rows, float* cat) const;
  void check_decode_state(const DecodeState& state) const;
  void backward_layers(const Batch& batch, const StepOptions& opt);
  // Final LN + dropout + LM head + loss over row chunks; with grads, also d(streams) into dx1_/dx2_.
  // logits_out: optional (B*L, vocab) output.
  LossStats head(const Batch& batch, const StepOptions& opt, bool grads, float* logits_out);
  // The other classes' heads (model/heads.cpp): loss (and with grads d(streams) into dx1_/dx2_),
  // outputs under HF's names when `outputs` is given.
  LossStats task_head(const Batch& batch, const StepOptions& opt, bool loss, bool grads,
                      std::map<std::string, Tensor>* outputs);
  void dump(const std::string& name, const float* data, const Shape& shape) const;
  // Allocates the gradient arena and points every parameter's grad tensor into it (grad_groups()).
  void bind_grad_arena();
  void grads_ready(int group) const {
    if (grad_ready_) grad_ready_(group);
  }

  ReformerConfig config_;
  bool reversible_ = true;
  std::vector<LayerKeep> layer_plan_;     // per-layer memory plan (with reversible_)
  int64_t num_hashes_override_ = 0;       // 0 = config num_hashes
  int64_t attention_row_chunk_ = 0;       // 0 = the layers' default
  std::vector<int64_t> built_buckets_;    // num_buckets the layers were built with
  // Scratch shared by all layers of a kind, so workspace memory does not grow with depth.
  std::shared_ptr<LshWorkspace> lsh_ws_;
  std::shared_ptr<QkvWorkspace> qkv_ws_;
  std::shared_ptr<FeedForwardWorkspace> ff_ws_;
  std::vector<NamedParameter> params_;
  std::vector<std::unique_ptr<Tensor>> storage_;  // owns params and the grad tensors (views into grad_arena_)
  Tensor grad_arena_;
  std::vector<GradGroup> grad_groups_;
  std::function<void(int)> grad_ready_;
  std::vector<std::unique_ptr<Layer>> layers_;
  // Parameters outside the layers.
  Tensor *word_emb_ = nullptr, *word_emb_g_ = nullptr;
  std::vector<Tensor*> pos_w_, pos_g_;
  Tensor *final_ln_w_, *final_ln_b_, *final_ln_wg_, *final_ln_bg_;
  Tensor *head_w_ = nullptr, *head_b_ = nullptr, *head_wg_ = nullptr, *head_bg_ = nullptr;  // LM head
  std::unique_ptr<TaskHead> task_;  // the other classes' head; nullptr for a language model
  // Activations (sized by the batch, reused): the two streams and their gradients (the attention
  // branch is streamed in row chunks, layers/row_stream.h), and LN_a's per-row statistics.
  Tensor x1_, x2_, dx1_, dx2_, ln_mean_, ln_rstd_;
  // What a stored layer keeps from its forward for its backward (reformer/memory_estimate.h,
  // stored_layer_bytes): X2 and, under another stored layer (layer_keeps_y1), Y1 (B, L, D), the
  // feed-forward's hidden activations (B, L, d_ff):
  // a, and h unless the activation is ReLU; and the attention's projections (AttentionKept). A layer
  // that keeps its input (LayerKeep::input) holds x2 alone.
  struct StoredLayer {
    Tensor x2, y1, ff_a, ff_h;
    AttentionKept attn;
  };
  std::vector<StoredLayer> saved_;  // one per layer; empty tensors for the reversible ones
  // The call of layer l's feed-forward, with its kept activations when the layer is stored and
  // `kept` (sized here in the forward).
  FeedForwardCall stored_ff_call(const Batch& batch, const StepOptions& opt, size_t l, bool kept);
  // Head workspace (chunk rows): concat, normalized, logits.
  Tensor head_cat_, head_norm_, head_logits_, head_mean_, head_rstd_, head_dcat_;
  std::vector<int32_t> targets_;
  DumpHook dump_;
};

}  // namespace reformer
