// The training step's memory plan (src/model/model.cpp, src/layers/*; the depth property is in
// tests/test_model.cpp): LSH and local layers share one set of projection buffers, and
// the reversible model holds at most four (B, L, D) float buffers (two streams and their gradients;
// the attention branch is streamed in row chunks). Measured with the allocator's per-category peaks.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "reformer/memory.h"
#include "reformer/model.h"

namespace reformer {
namespace {

ReformerConfig config(const std::vector<std::string>& layers, int64_t L) {
  ReformerConfig c;
  c.attn_layers = layers;
  c.hidden_size = 64;
  c.feed_forward_size = 128;
  c.num_attention_heads = 2;
  c.attention_head_size = 16;
  c.local_attn_chunk_length = 32;
  c.lsh_attn_chunk_length = 32;
  c.num_hashes = 1;
  c.vocab_size = 64;
  c.axial_pos_shape = {32, L / 32};
  c.axial_pos_embds_dim = {16, 48};
  c.max_position_embeddings = L;
  c.num_buckets = {L / 32};
  c.is_decoder = true;
  c.chunk_size_feed_forward = 256;
  return c;
}

struct Peaks {
  int64_t activations = 0, workspace = 0;
};

Peaks step_peaks(const ReformerConfig& c, int64_t L) {
  mem_reset_peaks();
  const MemStats before = mem_stats();
  ReformerModel model(c, 3);
  std::vector<int32_t> ids(static_cast<size_t>(L));
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i * 13 + 5) % 64);
  Batch b{ids.data(), 1, L, nullptr, nullptr};
  model.forward_backward(b, StepOptions{});
  const MemStats s = mem_stats();
  return {s.peak_of(MemCategory::Activations) - before.live_of(MemCategory::Activations),
          s.peak_of(MemCategory::Workspace) - before.live_of(MemCategory::Workspace)};
}

constexpr int64_t kL = 2048;

TEST(MemoryPlan, LshAndLocalLayersShareProjectionBuffers) {
  const Peaks lsh = step_peaks(config({"lsh", "lsh"}, kL), kL);
  const Peaks local = step_peaks(config({"local", "local"}, kL), kL);
  const Peaks mixed = step_peaks(config({"local", "lsh"}, kL), kL);
  // Shared: the mixed model needs about the larger of the two, far less than their sum.
  const int64_t larger = std::max(lsh.workspace, local.workspace), smaller = std::min(lsh.workspace, local.workspace);
  EXPECT_LT(mixed.workspace, larger + smaller / 2) << "lsh " << lsh.workspace << ", local " << local.workspace;
}

TEST(MemoryPlan, ReversibleModelHoldsFourFullBuffers) {
  const Peaks p = step_peaks(config({"local", "lsh", "local", "lsh"}, kL), kL);
  const int64_t full = kL * 64 * 4;                 // one (B, L, D) float buffer
  const int64_t small = 2 * kL * 4 + 2 * 2 * kL * 4;  // LayerNorm statistics, LSH buckets
  EXPECT_LE(p.activations, 4 * full + small);
}

}  // namespace
}  // namespace reformer
