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
  int64_t total() const;  // overflow-checked sum
};

// A training step of `batch` sequences of `length` tokens with the optimizer spec (train/make_optimizer.h)
// on `threads` OpenMP threads (per-thread attention scratch).
MemoryEstimate estimate_training_memory(const ReformerConfig& config, int64_t batch, int64_t length,
                                        const std::string& optimizer, int threads);

// "12.3 MiB", "1.50 GiB".
std::string format_bytes(int64_t bytes);

// The memory a plan may use: `max_memory` bytes when given (> 0), else the machine's physical memory.
int64_t memory_budget(int64_t max_memory);
// Refuses (reformer::Error) a plan whose total exceeds memory_budget(max_memory), with the planned
// and available bytes in the message, before anything is allocated.
void check_memory_plan(const MemoryEstimate& plan, int64_t max_memory);

}  // namespace reformer
