#pragma once
// ReformerModel: the language model of the spec (sections 3-5) with Hugging Face's weight names.
//   ids -> word embedding (+dropout) + positional embedding -> (X1, X2) = (e, e)
//   -> N reversible layers  Y1 = X1 + Attn(LN_a(X2)),  Y2 = X2 + FF(Y1)
//   -> LN(concat[Y1, Y2]) -> dropout -> LM head -> logits; loss as HF (logits[t] vs labels[t+1]).
// The head follows config().model_class(): the LM head above (ReformerForMaskedLM: loss unshifted,
// logits[t] vs labels[t]), none (bare ReformerModel), or a task head (model/heads.h).
// Training keeps only the last layer's two streams: the backward reconstructs each layer's inputs
// from its outputs (reversible mode, the default), so activation memory does not grow with depth.
// Stored-activation mode keeps every layer's inputs instead (for comparison and tests).
// The LM head and loss run in row chunks, so (B*L, vocab) logits are never held during training.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "reformer/config.h"
#include "reformer/decode.h"
#include "reformer/tensor.h"

namespace reformer {

class ModelImpl;

struct NamedParameter {
  std::string name;  // HF state-dict name (spec 6.2)
  Tensor* param;
  Tensor* grad;
};

// A contiguous range of the model's gradient arena: the gradients that one part of the backward
// finalises together (data parallelism reduces one group with one all-reduce).
struct GradGroup {
  std::string name;  // "head", "layer.3", "embeddings"
  float* data;
  int64_t size;      // floats, including the 64-byte alignment padding between tensors (kept zero)
};

// The gradient group of a parameter of a model with num_layers layers, by its name:
// 0 the head (everything outside the embeddings and the layers), num_layers - i layer i,
// num_layers + 1 the embeddings. Each tensor starts kGradAlignFloats-aligned in the arena.
int grad_group_index(const std::string& name, int64_t num_layers);
inline constexpr int64_t kGradAlignFloats = 16;  // 64 bytes, as the tensor's own allocation was

struct Batch {
  const int32_t* ids = nullptr;              // (B, L)
  int64_t batch = 1, length = 0;
  const uint8_t* attention_mask = nullptr;   // (B, L) 1 = token, 0 = padding; nullptr = none
  const int32_t* labels = nullptr;           // (B, L), -100 = ignore; nullptr = ids (HF default)
  // Targets of the other classes (config.h ModelClass, model/heads.h), one row per sequence:
  const int32_t* class_labels = nullptr;     // sequence classification, single label: (B) class ids, -100 = ignore
  const float* target_values = nullptr;      // sequence classification, regression / multi-label: (B, num_labels)
  const int32_t* start_positions = nullptr;  // question answering: (B) answer start, clamped to [0, L] as HF
  const int32_t* end_positions = nullptr;    // question answering: (B) answer end
  const float* output_grad = nullptr;        // bare ReformerModel: d loss / d last_hidden_state (B, L, 2 hidden)
};

struct StepOptions {
  bool training = true;      // dropout on
  uint64_t seed = 0;         // keys dropout masks and rotations
  uint64_t step = 0;
  float loss_scale = 0.f;    // gradient of (loss_scale * summed loss); 0 = 1 / count (mean loss)
};

struct LossStats {
  double loss_sum = 0, count = 0, correct = 0;
  double bytes = 0;  // text bytes the scored tokens stand for (set by text evaluation; 0 = not known)
  double mean() const { return count > 0 ? loss_sum / count : 0.0; }
};

// Called with (name, data, shape) for named intermediates (e.g. "layer.3.attn_input"): for
// narrowing down parity failures layer by layer.
using DumpHook = std::function<void(const std::string&, const float*, const Shape&)>;

// What a layer of a training step keeps from its forward for its backward: the levels of the
// per-layer memory plan (ReformerModel::set_layer_plan, plan_stored_layers).
enum class LayerKeep : uint8_t {
  // Reversible: the backward reconstructs the layer's inputs X2 = Y2 - G(Y1) and X1 = Y1 - F(X2)
  // and recomputes its forward.
  nothing,
  // Reversible, but X2 is kept (one (B, L, D) copy): the backward skips X2's reconstruction, that
  // is the feed-forward's output product and its subtraction.
  input,
  // Stored: X2, Y1 (under another stored layer only: stored_layer_keeps_y1), the feed-forward's
  // hidden activations and the attention's projections (stored_layer_bytes); the backward
  // recomputes nothing but LayerNorm.
  all,
};

// Whether stored layer `layer` of `plan` (missing entries: nothing) keeps its own copy of Y1: only
// under another stored layer. Under a layer that is not stored, that layer's backward reconstructs
// its input X1, which is this Y1, in the stream (one output projection and a pass, instead of a
// (B, L, D) copy); the top layer's Y1 is the stream itself.
inline bool stored_layer_keeps_y1(const std::vector<LayerKeep>& plan, size_t layer) {
  auto stored = [&](size_t l) { return l < plan.size() && plan[l] == LayerKeep::all; };
  return stored(layer) && stored(layer + 1);
}

class ReformerModel {
 public:
  // Random initialisation as in HF (spec 3.6), deterministic for a seed.
  explicit ReformerModel(const ReformerConfig& config, uint64_t init_seed = 0);
  ~ReformerModel();
  ReformerModel(const ReformerModel&) = delete;
  ReformerModel& operator=(const ReformerModel&) = delete;

  const ReformerConfig& config() const;
  std::vector<NamedParameter>& parameters();
  NamedParameter* find_parameter(const std::string& name);
  int64_t num_parameters() const;
  void zero_grad();
  // All gradients live in one arena (as llm.c's grads_memory), grouped in the order the backward
  // finalises them: the head (final LayerNorm, LM head), the layers from last to first, the
  // embeddings. Each group is one contiguous range.
  const std::vector<GradGroup>& grad_groups() const;
  // Called by forward_backward with a group's index as soon as that call's gradients of the group
  // are final (nothing later in the call touches them); empty = none.
  void set_grad_ready_hook(std::function<void(int group)> hook);

  // Forward + loss + backward: gradients accumulate into the parameters' grad tensors.
  LossStats forward_backward(const Batch& batch, const StepOptions& opt);
  // Forward + loss only (no gradients); the LM head runs in chunks.
  LossStats evaluate(const Batch& batch, const StepOptions& opt);
  // Forward to logits (B, L, vocab) for generation and parity checks (language-model classes only).
  void forward_logits(Tensor& logits, const Batch& batch, const StepOptions& opt);
  // Forward to the class's outputs under Hugging Face's names: "logits" (LM: (B, L, vocab);
  // sequence classification: (B, num_labels)), "start_logits" and "end_logits" (B, L) (question
  // answering), "last_hidden_state" (B, L, 2 hidden) (bare ReformerModel).
  void forward_outputs(std::map<std::string, Tensor>& outputs, const Batch& batch, const StepOptions& opt);
  ModelClass model_class() const;

  // Incremental decoding (reformer/decode.h, docs/NUMERICS.md). A state for `batch` sequences of
  // up to `capacity` positions each (0 = max_length()); `seed` fixes the LSH rotations of the run.
  // Needs a causal model (is_decoder) without look-ahead. An unset num_buckets is resolved from the
  // capacity, as Hugging Face resolves it from the first hashed sequence.
  DecodeState make_decode_state(int64_t batch = 1, int64_t capacity = 0, uint64_t seed = 0);
  // Runs ids[0..n) (1 <= n <= capacity) as sequence `seq` through one chunked forward pass (padded
  // with an attention mask to a length the model runs), replacing what the sequence held, and
  // writes the logits of its last position (vocab floats) to `logits`.
  void prefill(DecodeState& state, int64_t seq, const int32_t* ids, int64_t n, float* logits);
  // One new token per listed sequence: ids[i] is appended to sequence seqs[i] (distinct, each with
  // room for one more position) and logits (count, vocab) receive the next-token logits.
  void decode_step(DecodeState& state, const int64_t* seqs, const int32_t* ids, int64_t count, float* logits);

  // All layers reversible (on, the default) or all stored (off); clears a per-layer plan.
  void set_reversible(bool on);
  // True when every layer is reversible.
  bool reversible() const;
  // The per-layer plan (reformer/memory_estimate.h, plan_stored_layers): what each layer keeps from
  // the forward for its backward (LayerKeep). Missing entries are reversible. Results do not depend
  // on the plan (tested).
  void set_layer_plan(std::vector<LayerKeep> plan);
  LayerKeep layer_keep(size_t layer) const;
  // The plan with LayerKeep::all where stored[l], LayerKeep::nothing elsewhere.
  void set_stored_layers(const std::vector<bool>& stored);
  bool layer_stored(size_t layer) const;  // layer_keep(layer) == LayerKeep::all
  // Overrides num_hashes of every LSH layer (the paper evaluates with more hashes than it trains with);
  // 0 goes back to the config's.
  void set_num_hashes(int64_t n);
  int64_t num_hashes() const;
  // Injects rotations for LSH layer `layer` in HF layout (H, d, num_hashes, rot_cols); nullptr clears.
  void set_rotations(int layer, const float* rotations);
  void set_dump_hook(DumpHook hook);
  // Rows per chunk of the attention branch's streamed input and output (default 4096): a memory /
  // GEMM-size trade-off that must not change results (tests use small chunks).
  void set_attention_row_chunk(int64_t rows);

  // Activation and workspace bytes the model holds now (streams, layer workspaces).
  int64_t activation_bytes() const;

 private:
  std::unique_ptr<ModelImpl> impl_;  // src/model/model_impl.h
};

}  // namespace reformer
