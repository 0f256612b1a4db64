#pragma once
// A batch of token sequences for the language model, as the data sources produce it.
//
// ids and labels are (batch, length) int32, row-major. Labels are ALIGNED WITH THE INPUTS:
// labels[b][t] = ids[b][t] where token t is scored, kIgnoreLabel where it is not. The loss compares
// logits[b][t] with labels[b][t + 1] (Hugging Face's shift inside the loss), so token 0 of a row is
// never a target.
//
// mask is empty when every position is a token; otherwise (batch, length) with 1 = token, 0 =
// padding (the model's attention mask). scored_bytes: the text bytes the scored labels stand for
// (bits per byte, docs/NUMERICS.md); 0 where the source has no text (the copy task).
//
// Masked-LM batches (train/mlm.h) put labels only on the masked positions, unshifted (the loss of a
// ReformerForMaskedLM compares logits[b][t] with labels[b][t]). Sequence-classification batches
// (train/classify_data.h) fill class_labels, one per row (kIgnoreLabel = not scored), and leave
// labels all kIgnoreLabel.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace reformer {

inline constexpr int32_t kIgnoreLabel = -100;

// Tags inside the RngPurpose::Data streams, so that different data sources never share numbers.
enum class DataStream : uint64_t { ByteWindows = 1, CopyTask = 2, MlmMask = 3, ClassifyOrder = 4 };

struct TokenBatch {
  int64_t batch = 0;
  int64_t length = 0;
  std::vector<int32_t> ids;
  std::vector<int32_t> labels;
  std::vector<uint8_t> mask;
  std::vector<int32_t> class_labels;  // (batch) sequence classification only; empty otherwise
  double scored_bytes = 0;

  // Keeps the capacity, so a reused batch does not reallocate. Clears mask and scored_bytes.
  void resize(int64_t b, int64_t l) {
    batch = b;
    length = l;
    ids.resize(static_cast<size_t>(b * l));
    labels.resize(static_cast<size_t>(b * l));
    mask.clear();
    class_labels.clear();
    scored_bytes = 0;
  }
  const uint8_t* mask_or_null() const { return mask.empty() ? nullptr : mask.data(); }
  const int32_t* class_labels_or_null() const { return class_labels.empty() ? nullptr : class_labels.data(); }
};

}  // namespace reformer
