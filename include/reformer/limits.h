#pragma once
// The one place that says how large any size may be. Every size read from config.json, a flag, a
// safetensors header or a trainer state is checked against these before anything is allocated, so
// an impossible value is refused at load with a message naming the field, the value and the limit.
// The limits are far above any model that fits a machine (they exist so that the products of sizes
// cannot overflow and that 32-bit positions and bucket ids stay exact), not tuning knobs.
#include <cstdint>
#include <string>

#include "reformer/error.h"

namespace reformer::limits {

inline constexpr int64_t kMaxWidth = int64_t{1} << 20;        // hidden_size, feed_forward_size, head size
inline constexpr int64_t kMaxHeads = 4096;                     // num_attention_heads
inline constexpr int64_t kMaxLayers = 4096;                    // len(attn_layers), --layers
inline constexpr int64_t kMaxVocab = int64_t{1} << 30;         // vocab_size (ids are int32)
inline constexpr int64_t kMaxLength = int64_t{1} << 30;        // sequence length, max_position_embeddings
inline constexpr int64_t kMaxHashes = 1024;                    // num_hashes
inline constexpr int64_t kMaxBuckets = int64_t{1} << 24;       // product of num_buckets
inline constexpr int64_t kMaxChunksAround = 1024;              // *_num_chunks_before / *_num_chunks_after
inline constexpr int64_t kMaxAxes = 8;                         // axial_pos_shape entries
inline constexpr int64_t kMaxBatch = int64_t{1} << 20;         // --batch
inline constexpr int64_t kMaxThreads = 1024;                   // --threads
inline constexpr int64_t kMaxSteps = int64_t{1} << 40;         // --steps and step counters
inline constexpr int64_t kMaxElements = int64_t{1} << 40;      // one tensor (4 TiB of float32)

// Error unless lo <= v <= limit: "<field> = v must be between lo and limit".
inline void check_range(const std::string& field, int64_t v, int64_t lo, int64_t limit) {
  REFORMER_CHECK(v >= lo && v <= limit, field, " = ", v, " must be between ", lo, " and ", limit,
                 v > limit ? " (the largest value reformer supports)" : "");
}

}  // namespace reformer::limits
