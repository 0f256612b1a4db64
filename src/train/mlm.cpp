#include "train/mlm.h"

#include <cmath>

#include "reformer/error.h"
#include "reformer/rng.h"

namespace reformer {
namespace {

// True with probability p: the upper 24 bits of `word` below ceil(p * 2^24) (as dropout decides).
bool below(uint32_t word, double p) { return (word >> 8) < static_cast<uint32_t>(std::ceil(p * 16777216.0)); }

uint64_t mask_stream(int64_t index, int64_t row) {
  return rng_stream(RngPurpose::Data, {static_cast<uint64_t>(DataStream::MlmMask), static_cast<uint64_t>(index),
                                       static_cast<uint64_t>(row)});
}

uint64_t draw(const Philox4& r, uint64_t n) { return ((static_cast<uint64_t>(r.v[2]) << 32) | r.v[3]) % n; }

}  // namespace

void validate(const MlmOptions& o) {
  REFORMER_CHECK(std::isfinite(o.probability) && o.probability > 0 && o.probability < 1, "--mlm-probability ", o.probability,
                 " must be in (0, 1); BERT and Hugging Face use 0.15");
  REFORMER_CHECK(o.mask_id >= 0 && o.mask_id < o.vocab, "--task mlm needs a [MASK] token, but the tokenizer has none (mask id ",
                 o.mask_id, "); train a SentencePiece model with `reformer tokenizer train --mask-piece`, or use one with a "
                 "<mask> or [MASK] piece");
  REFORMER_CHECK(o.first_random_id >= 0 && o.first_random_id < o.vocab, "masked LM: no text ids to draw random tokens from "
                 "(first text id ", o.first_random_id, ", vocabulary ", o.vocab, ")");
}

void apply_mlm_mask(TokenBatch& t, const MlmOptions& o, uint64_t seed, int64_t index) {
  validate(o);
  const auto random_ids = static_cast<uint64_t>(o.vocab - o.first_random_id);
  int64_t selected = 0;
  for (int64_t b = 0; b < t.batch; ++b) {
    const uint64_t stream = mask_stream(index, b);
    for (int64_t i = b * t.length; i < (b + 1) * t.length; ++i) {
      if (t.labels[i] == kIgnoreLabel) continue;  // padding is never selected
      const Philox4 r = philox(seed, stream, static_cast<uint64_t>(i - b * t.length));
      if (!below(r.v[0], o.probability)) {
        t.labels[i] = kIgnoreLabel;
        continue;
      }
      ++selected;
      if (below(r.v[1], 0.8)) t.ids[i] = o.mask_id;
      else if (below(r.v[1], 0.9)) t.ids[i] = o.first_random_id + static_cast<int32_t>(draw(r, random_ids));
    }
  }
  if (selected == 0 && t.batch > 0) {
    // Row 0's tokens were all unselected, so its labels are kIgnoreLabel now; its ids are the text.
    int64_t real = 0;
    while (real < t.length && (t.mask.empty() || t.mask[real])) ++real;
    REFORMER_CHECK(real > 0, "masked LM: the first sequence of micro-batch ", index, " has no tokens");
    const Philox4 r = philox(seed, mask_stream(index, t.batch), 0);
    const int64_t pos = static_cast<int64_t>(draw(r, static_cast<uint64_t>(real)));
    t.labels[pos] = t.ids[pos];
    t.ids[pos] = o.mask_id;
  }
  t.scored_bytes = 0;
}

}  // namespace reformer
