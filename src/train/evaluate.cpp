#include "train/evaluate.h"

#include <algorithm>
#include <functional>
#include <cmath>
#include <numeric>
#include <vector>

#include "model/eval_length.h"
#include "ops/cross_entropy.h"

namespace reformer {
namespace {

// Copy-task evaluation sequences use step numbers no training run reaches.
constexpr int64_t kHeldOutSteps = int64_t{1} << 62;

void accumulate(LossStats& total, const LossStats& s) {
  total.loss_sum += s.loss_sum;
  total.count += s.count;
  total.correct += s.correct;
  total.bytes += s.bytes;
}

// The windows of evaluate_bytes (this shard's batches), each batch passed through `prepare` (if
// given) before it is scored.
LossStats evaluate_windows(ReformerModel& model, const ByteDataset& data, Split split, int64_t length, int64_t batch,
                           int64_t max_windows, uint64_t seed, EvalShard shard,
                           const std::function<void(TokenBatch&, int64_t)>& prepare) {
  REFORMER_CHECK(batch >= 1, "evaluation batch ", batch, " must be at least 1");
  REFORMER_CHECK(max_windows >= 0, "number of evaluation windows ", max_windows, " must be >= 0 (0 = the whole split)");
  const int64_t padded = padded_eval_length(model.config(), length);
  int64_t windows = data.eval_windows(split, length);
  if (max_windows > 0) windows = std::min(windows, max_windows);
  TokenBatch tokens;
  LossStats total;
  for (int64_t first = shard.rank * batch; first < windows; first += batch * shard.count) {
    const int64_t b = std::min(batch, windows - first);
    data.eval_batch(tokens, split, first, b, length, padded);
    if (prepare) prepare(tokens, first);
    Batch in{tokens.ids.data(), b, padded, tokens.mask_or_null(), tokens.labels.data()};
    StepOptions opt;
    opt.training = false;
    opt.seed = seed;
    opt.step = static_cast<uint64_t>(first);
    LossStats s = model.evaluate(in, opt);
    s.bytes = tokens.scored_bytes;
    accumulate(total, s);
  }
  return total;
}

}  // namespace

LossStats evaluate_bytes(ReformerModel& model, const ByteDataset& data, Split split, int64_t length, int64_t batch,
                         int64_t max_windows, uint64_t seed, EvalShard shard) {
  return evaluate_windows(model, data, split, length, batch, max_windows, seed, shard, nullptr);
}

LossStats evaluate_masked_lm(ReformerModel& model, const ByteDataset& data, Split split, int64_t length, int64_t batch,
                             int64_t max_windows, uint64_t seed, const MlmOptions& masking, EvalShard shard) {
  return evaluate_windows(model, data, split, length, batch, max_windows, seed, shard, [&](TokenBatch& tokens, int64_t first) {
    apply_mlm_mask(tokens, masking, seed, kHeldOutSteps + first);
  });
}

LossStats evaluate_bytes_incremental(ReformerModel& model, const ByteDataset& data, Split split, int64_t length,
                                     int64_t batch, int64_t max_windows, uint64_t seed) {
  REFORMER_CHECK(batch >= 1, "evaluation batch ", batch, " must be at least 1");
  REFORMER_CHECK(max_windows >= 0, "number of evaluation windows ", max_windows, " must be >= 0 (0 = the whole split)");
  // Token by token: any length the decoding state holds (no chunk rule).
  REFORMER_CHECK(length >= 1 && length <= model.config().max_length(), "window length ", length, " is outside [1, ",
                 model.config().max_length(), "], the positions of the model's positional embedding");
  int64_t windows = data.eval_windows(split, length);
  if (max_windows > 0) windows = std::min(windows, max_windows);
  const int64_t V = model.config().vocab_size;
  DecodeState state = model.make_decode_state(std::min(batch, std::max<int64_t>(windows, 1)), length, seed);
  TokenBatch tokens;
  std::vector<float> logits(static_cast<size_t>(state.batch() * V));
  std::vector<int32_t> ids, targets;
  std::vector<int64_t> seqs;
  LossStats total;
  auto score = [&](const float* rows, int64_t n, int64_t t) {
    // logits at position t predict the label at t + 1 (HF), window by window.
    targets.resize(static_cast<size_t>(n));
    for (int64_t b = 0; b < n; ++b) targets[b] = t + 1 < length ? tokens.labels[b * length + t + 1] : kIgnoreIndex;
    const CrossEntropyStats ce = cross_entropy_forward(rows, targets.data(), n, V);
    total.loss_sum += ce.loss_sum;
    total.count += ce.count;
    total.correct += ce.correct;
  };
  for (int64_t first = 0; first < windows; first += batch) {
    const int64_t b = std::min(batch, windows - first);
    data.eval_batch(tokens, split, first, b, length);
    total.bytes += tokens.scored_bytes;
    for (int64_t i = 0; i < b; ++i) model.prefill(state, i, &tokens.ids[i * length], 1, logits.data() + i * V);
    score(logits.data(), b, 0);
    seqs.resize(static_cast<size_t>(b));
    std::iota(seqs.begin(), seqs.end(), 0);
    ids.resize(static_cast<size_t>(b));
    for (int64_t t = 1; t < length; ++t) {
      for (int64_t i = 0; i < b; ++i) ids[i] = tokens.ids[i * length + t];
      model.decode_step(state, seqs.data(), ids.data(), b, logits.data());
      score(logits.data(), b, t);
    }
  }
  return total;
}

LossStats evaluate_copy(ReformerModel& model, const CopyTask& task, int64_t batch, int64_t batches, uint64_t seed,
                        EvalShard shard) {
  REFORMER_CHECK(batches >= 1, "number of evaluation batches ", batches, " must be at least 1");
  TokenBatch tokens;
  LossStats total;
  for (int64_t i = shard.rank; i < batches; i += shard.count) {
    copy_task_batch(tokens, task, batch, seed, kHeldOutSteps + i);
    Batch in{tokens.ids.data(), batch, task.length, nullptr, tokens.labels.data()};
    StepOptions opt;
    opt.training = false;
    opt.seed = seed;
    opt.step = static_cast<uint64_t>(i);
    accumulate(total, model.evaluate(in, opt));
  }
  return total;
}

double bits_per_byte(double mean_loss) { return mean_loss / std::log(2.0); }

double bits_per_byte(const LossStats& s) { return s.bytes > 0 ? s.loss_sum / s.bytes / std::log(2.0) : bits_per_byte(s.mean()); }

}  // namespace reformer
