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

class AttentionLayer;
class FeedForward;
struct LshWorkspace;
struct QkvWorkspace;
struct FeedForwardWorkspace;
struct AttentionCall;
struct FeedForwardCall;
struct TaskHead;

struct NamedParameter {
  std::string name;  // HF state-dict name (spec 6.2)
  Tensor* param;
  Tensor* grad;
};

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

class ReformerModel {
 public:
  // Random initialisation as in HF (spec 3.6), deterministic for a seed.
  explicit ReformerModel(const ReformerConfig& config, uint64_t init_seed = 0);
  ~ReformerModel();
  ReformerModel(const ReformerModel&) = delete;
  ReformerModel& operator=(const ReformerModel&) = delete;

  const ReformerConfig& config() const { return config_; }
  std::vector<NamedParameter>& parameters() { return params_; }
  NamedParameter* find_parameter(const std::string& name);
  int64_t num_parameters() const;
  void zero_grad();

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
  ModelClass model_class() const { return config_.model_class(); }

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

  void set_reversible(bool on) { reversible_ = on; }
  bool reversible() const { return reversible_; }
  // Overrides num_hashes of every LSH layer (the paper evaluates with more hashes than it trains with);
  // 0 goes back to the config's.
  void set_num_hashes(int64_t n);
  int64_t num_hashes() const { return num_hashes_override_ ? num_hashes_override_ : config_.num_hashes; }
  // Injects rotations for LSH layer `layer` in HF layout (H, d, num_hashes, rot_cols); nullptr clears.
  void set_rotations(int layer, const float* rotations);
  void set_dump_hook(DumpHook hook) { dump_ = std::move(hook); }
  // Rows per chunk of the attention branch's streamed input and output (default 4096): a memory /
  // GEMM-size trade-off that must not change results (tests use small chunks).
  void set_attention_row_chunk(int64_t rows);

  // Activation and workspace bytes the model holds now (streams, layer workspaces).
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

  ReformerConfig config_;
  bool reversible_ = true;
  int64_t num_hashes_override_ = 0;       // 0 = config num_hashes
  int64_t attention_row_chunk_ = 0;       // 0 = the layers' default
  std::vector<int64_t> built_buckets_;    // num_buckets the layers were built with
  // Scratch shared by all layers of a kind, so workspace memory does not grow with depth.
  std::shared_ptr<LshWorkspace> lsh_ws_;
  std::shared_ptr<QkvWorkspace> qkv_ws_;
  std::shared_ptr<FeedForwardWorkspace> ff_ws_;
  std::vector<NamedParameter> params_;
  std::vector<std::unique_ptr<Tensor>> storage_;  // owns params and grads
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
  std::vector<Tensor> saved_x2_, saved_y1_;  // stored-activation mode only: each layer's X2 and Y1
  // Head workspace (chunk rows): concat, normalized, logits.
  Tensor head_cat_, head_norm_, head_logits_, head_mean_, head_rstd_, head_dcat_;
  std::vector<int32_t> targets_;
  DumpHook dump_;
};

}  // namespace reformer
