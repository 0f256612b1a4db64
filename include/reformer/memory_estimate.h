#pragma once
// What a model and a training step will need, computed from the config alone, before anything is
// allocated (`reformer info`, and a check before training starts).
//   parameters: reformer/parameters.h;
//   memory: parameters, gradients, optimizer state, and the activations and workspaces that the
//   model and every layer size on their first step (layers keep their own workspaces; the
//   reversible backward keeps only the last layer's two streams).
// The activation/workspace formula mirrors the buffers the model and layers allocate; it is tested
// against the allocator's measured peak (tests/test_memory_estimate.cpp).
#include <cstdint>
#include <string>
#include <vector>

#include "reformer/config.h"
#include "reformer/model.h"
#include "reformer/parameters.h"
#include "reformer/tensor.h"

namespace reformer {


// What one data-parallel step all-reduces: the gradient arena (ReformerModel::grad_groups), one
// all-reduce per group (the head, each layer, the embeddings).
struct AllReducePlan {
  int64_t bytes = 0, groups = 0, largest_group_bytes = 0;
};
AllReducePlan allreduce_plan(const ReformerConfig& config);

struct MemoryEstimate {
  int64_t parameters = 0, gradients = 0, optimizer_state = 0, activations = 0, workspace = 0;
  int64_t outputs = 0;  // what a forward hands back: the (B, L, vocab) logits (0 for a training step)
  int64_t total() const;  // overflow-checked sum
};

// A training step of `batch` sequences of `length` tokens with the optimizer spec (train/make_optimizer.h)
// on `threads` OpenMP threads (per-thread attention scratch).
// plan: what each layer keeps for its backward (kept_layer_bytes; missing entries are reversible).
MemoryEstimate estimate_training_memory(const ReformerConfig& config, int64_t batch, int64_t length,
                                        const std::string& optimizer, int threads, const std::vector<LayerKeep>& plan);
// The same with the lowest `stored_layers` layers stored (LayerKeep::all), the others reversible.
MemoryEstimate estimate_training_memory(const ReformerConfig& config, int64_t batch, int64_t length,
                                        const std::string& optimizer, int threads, int64_t stored_layers = 0);
// A forward pass over `batch` sequences of `length` tokens on `threads` threads, as `reformer eval`
// (loss, the LM head in row chunks) or, with `logits`, `reformer logits` (plus the (B, L, vocab)
// output). Incremental decoding holds a DecodeState besides (its bytes(), reformer/decode.h).
MemoryEstimate estimate_forward_memory(const ReformerConfig& config, int64_t batch, int64_t length, int threads,
                                       bool logits = false);

// The bytes stored layer `layer` keeps from its forward for its backward, for `batch` sequences of
// `length` tokens, under another stored layer (planned_layer_bytes: otherwise it keeps no copy of
// Y1, stored_layer_keeps_y1). Activations: its inputs X2 and Y1 (B, L, D) and its feed-forward's hidden
// activation (B, L, d_ff), twice when the activation is not ReLU (whose backward needs only the
// activation). Workspace: its attention's projections, a set of the shared projection buffers the
// layer holds from its forward to its backward (local/full: q, k, v, o (B, L, H*d) and the
// logsumexp (B, H, L); LSH: qk and v).
struct StoredLayerBytes {
  int64_t activations = 0, workspace = 0;
  int64_t total() const;
};
StoredLayerBytes stored_layer_bytes(const ReformerConfig& config, int64_t batch, int64_t length, int64_t layer);
// What layer `layer` keeps at a level of the plan: nothing, its input X2 ((B, L, D) activations), or
// stored_layer_bytes.
StoredLayerBytes kept_layer_bytes(const ReformerConfig& config, int64_t batch, int64_t length, int64_t layer,
                                  LayerKeep keep);
// What layer `layer` keeps under `plan` (missing entries: nothing): kept_layer_bytes, less the copy
// of Y1 where a stored layer keeps none.
StoredLayerBytes planned_layer_bytes(const ReformerConfig& config, int64_t batch, int64_t length,
                                     const std::vector<LayerKeep>& plan, int64_t layer);

// The per-layer memory plan of a training step (LayerKeep, ReformerModel::set_layer_plan): the
// lowest `stored_count` layers are stored, the next `input_count` keep their input X2, the rest are
// plain reversible. Stored layers lowest first: every stored layer then sits below all reversible
// ones, so none of them has to hand a reconstructed X1 down, and each skips its whole
// reconstruction (the FF output product and the attention output projection, plus their dropout
// and subtraction passes; the layer above the top stored one still reconstructs its X1, the top
// stored layer's Y1, which that layer keeps no copy of) and the recomputation of its forward: the
// feed-forward's hidden layer (that product, and its mask), the attention's projections and, for
// local/full attention, the attention itself. A layer that keeps X2 (one (B, L, D) copy, a
// quarter of a C&P layer's stored bytes or less) skips the FF output product and X2's
// subtraction: where no stored layer fits, as at 65,536 tokens in a quarter of Hugging Face's
// memory, it is what the room still buys.
struct LayerPlan {
  std::vector<LayerKeep> keep;       // per layer
  int64_t stored_count = 0;          // layers at LayerKeep::all (the lowest ones)
  int64_t input_count = 0;           // layers at LayerKeep::input (the next ones)
  int64_t kept_bytes = 0;            // kept by those layers (planned_layer_bytes, summed)
  int64_t budget = 0;                // the bytes the plan had to fit in
  MemoryEstimate estimate;           // the step's memory with this plan
  double recompute_flops = 0;        // recompute_flops(...).reversible: all layers reversible
  double recompute_flops_saved = 0;  // recompute_flops(...).saved: what the plan skips of it
};
// The matrix-product FLOPs per step that the backward recomputes with every layer reversible, and
// how many of them `plan` skips: a stored layer its feed-forward's two products and its attention's
// projections, one that keeps X2 the feed-forward's output product; a layer reconstructs X1 = Y1 - F
// (the output projection) for the layer below unless that one keeps its own Y1 (stored under a
// stored layer) or there is none, so the layer above the top stored one adds that product back.
struct RecomputeFlops {
  double reversible = 0, saved = 0;
};
RecomputeFlops recompute_flops(const ReformerConfig& config, int64_t batch, int64_t length,
                               const std::vector<LayerKeep>& plan);

// The share of the budget a plan may fill with stored layers (the rest is headroom for what the
// estimate does not see: the allocator's rounding, libraries, the program itself).
inline constexpr double kPlanBudgetShare = 0.9;
// The plan for kPlanBudgetShare of the budget (`max_memory` bytes when > 0, else the memory
// available now, available_memory()): of the plans that store the lowest k layers and have as many
// of the next ones keep X2 as the rest holds, the one that skips the most recomputation
// (recompute_flops). A budget below the all-reversible plan keeps nothing (check_memory_plan
// refuses such a plan).
LayerPlan plan_stored_layers(const ReformerConfig& config, int64_t batch, int64_t length, const std::string& optimizer,
                             int threads, int64_t max_memory);
// MemAvailable from /proc/meminfo (free memory the kernel can hand out without swapping); the
// physical memory where it cannot be read.
int64_t available_memory();
// "layers 0-3 of 6 stored (352.25 MiB kept), 2 reversible", "layer 0 of 6 stored, layers 1-4 keep X2
// (...), 1 reversible", "layers 0-5 of 6 keep X2 (...)", "all 6 layers reversible".
std::string describe_plan(const LayerPlan& plan);

// "12.3 MiB", "1.50 GiB".
std::string format_bytes(int64_t bytes);

// The memory a plan may use: `max_memory` bytes when given (> 0), else the machine's physical memory.
int64_t memory_budget(int64_t max_memory);
// Refuses (reformer::Error) a plan whose total exceeds memory_budget(max_memory), with the planned
// and available bytes in the message, before anything is allocated.
void check_memory_plan(const MemoryEstimate& plan, int64_t max_memory);

}  // namespace reformer
