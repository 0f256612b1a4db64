#pragma once
// Softmax cross-entropy over logits (N, V) with int32 targets; rows whose target equals
// ignore_index (HF -100) contribute nothing. Numerically stable (max subtraction).
// Gradients: dlogits is ASSIGNED.
#include <cstdint>

namespace reformer {

inline constexpr int32_t kIgnoreIndex = -100;  // HF / torch CrossEntropyLoss default

struct CrossEntropyStats {
  double loss_sum = 0;  // sum over counted rows of -log softmax(logits)[target]
  double count = 0;     // rows with target != ignore_index
  double correct = 0;   // counted rows whose argmax (lowest index on ties) equals the target
};

// Targets must be in [0, V) or equal ignore_index (else reformer::Error naming the row and value).
// Deterministic for a fixed thread count.
CrossEntropyStats cross_entropy_forward(const float* logits, const int32_t* targets, int64_t N, int64_t V,
                                        int32_t ignore_index = kIgnoreIndex);

// dlogits = scale * (softmax(logits) - onehot(target)); ignored rows -> 0. For a mean loss pass
// scale = 1 / count. dlogits may alias logits (saves a (N, V) buffer).
void cross_entropy_backward(float* dlogits, const float* logits, const int32_t* targets, int64_t N, int64_t V,
                            float scale, int32_t ignore_index = kIgnoreIndex);

// Both at once: the loss statistics of cross_entropy_forward and the gradient of
// cross_entropy_backward, bit for bit, with each row's exponentials taken once instead of twice.
CrossEntropyStats cross_entropy_forward_backward(float* dlogits, const float* logits, const int32_t* targets, int64_t N,
                                                 int64_t V, float scale, int32_t ignore_index = kIgnoreIndex);

}  // namespace reformer
