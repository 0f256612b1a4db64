#pragma once
// Evaluation: mean loss and next-token accuracy of a model over data it is not trained on.
//   bytes: consecutive windows covering a split (train/byte_data.h), `batch` windows per forward;
//          the last window's right padding is masked out and not scored.
//   copy:  fresh copy-task sequences keyed apart from every training step.
// Dropout is off; LSH rotations are drawn from (seed, window index), so a result is reproducible.
// Windows of any length: each is padded to the model's chunk multiple (model/eval_length.h) with an
// attention mask, and the padding is not scored. Text evaluation sets LossStats::bytes.
#include <cstdint>

#include "reformer/evaluate.h"  // bits_per_byte
#include "reformer/model.h"
#include "train/byte_data.h"
#include "train/copy_task.h"
#include "train/mlm.h"

namespace reformer {

// The part of an evaluation one rank of a data-parallel run computes: forward batch k (of `batch`
// windows or sequences) belongs to rank k % count. Summing the LossStats of all shards gives the
// unsharded result (up to the order of the sums): a batch's rotations are keyed by its position.
struct EvalShard {
  int rank = 0, count = 1;
};

// max_windows 0 = the whole split.
LossStats evaluate_bytes(ReformerModel& model, const ByteDataset& data, Split split, int64_t length, int64_t batch,
                         int64_t max_windows, uint64_t seed, EvalShard shard = {});

// Masked-LM loss and accuracy on the masked tokens of the same windows (train/mlm.h), masked with
// keys no training micro-batch uses, so every evaluation of a run sees the same masks. count = the
// masked tokens; bytes stay 0 (bits per byte do not apply).
LossStats evaluate_masked_lm(ReformerModel& model, const ByteDataset& data, Split split, int64_t length, int64_t batch,
                             int64_t max_windows, uint64_t seed, const MlmOptions& masking, EvalShard shard = {});

// The same windows and scores as evaluate_bytes, but teacher-forced through incremental decoding
// (reformer/decode.h): each window is decoded token by token from its first byte, `batch` windows
// together, so the result shows what the decoding cache costs in quality against the full forward.
LossStats evaluate_bytes_incremental(ReformerModel& model, const ByteDataset& data, Split split, int64_t length,
                                     int64_t batch, int64_t max_windows, uint64_t seed);

LossStats evaluate_copy(ReformerModel& model, const CopyTask& task, int64_t batch, int64_t batches, uint64_t seed,
                        EvalShard shard = {});

}  // namespace reformer
