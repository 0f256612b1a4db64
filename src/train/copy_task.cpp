#include "train/copy_task.h"

#include "reformer/error.h"
#include "reformer/rng.h"

namespace reformer {

void validate(const CopyTask& task) {
  REFORMER_CHECK(task.length >= 4 && task.length % 2 == 0, "copy task: sequence length ", task.length,
                 " must be even and at least 4 ('0 w 0 w' with w non-empty), e.g. 1024 as in the paper");
  REFORMER_CHECK(task.vocab >= 2, "copy task: vocabulary ", task.vocab,
                 " must be at least 2 (symbol 0 separates the copies), e.g. 128 as in the paper");
}

void copy_task_batch(TokenBatch& out, const CopyTask& task, int64_t batch, uint64_t seed, int64_t step) {
  validate(task);
  REFORMER_CHECK(batch >= 1, "copy task: batch ", batch, " must be at least 1");
  const int64_t L = task.length, half = L / 2;
  const auto symbols = static_cast<uint64_t>(task.vocab - 1);
  out.resize(batch, L);
  for (int64_t b = 0; b < batch; ++b) {
    int32_t* ids = out.ids.data() + b * L;
    int32_t* labels = out.labels.data() + b * L;
    const uint64_t stream = rng_stream(RngPurpose::Data, {static_cast<uint64_t>(DataStream::CopyTask),
                                                          static_cast<uint64_t>(step), static_cast<uint64_t>(b)});
    ids[0] = ids[half] = 0;
    for (int64_t j = 1; j < half; ++j) {
      const Philox4 r = philox(seed, stream, static_cast<uint64_t>(j));
      ids[j] = ids[half + j] = 1 + static_cast<int32_t>(((static_cast<uint64_t>(r.v[0]) << 32) | r.v[1]) % symbols);
    }
    for (int64_t t = 0; t < L; ++t) labels[t] = t > half ? ids[t] : kIgnoreLabel;
  }
}

}  // namespace reformer
