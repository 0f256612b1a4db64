#pragma once
// The sequence output and the task heads of Hugging Face's Reformer classes (modeling_reformer.py).
//   sequence output  S = dropout(LN(concat[Y1, Y2])), rows of 2 * hidden (HF ReformerModel's
//                    last_hidden_state; every head reads it)
//   ReformerForSequenceClassification: ReformerClassificationHead on the first position,
//                    logits = out_proj(dropout(tanh(dense(dropout(S[:, 0])))))          (B, num_labels)
//                    loss by problem_type: regression (MSE), single_label_classification
//                    (cross-entropy, label -100 ignored), multi_label_classification (BCE with logits)
//   ReformerForQuestionAnswering: (start, end) = split(qa_outputs(S)), (B, L) each; loss = the mean
//                    of the two cross-entropies, positions clamped to [0, L] and L ignored (HF).
// Gradients: parameter gradients ACCUMULATE (+=), activation gradients are ASSIGNED (=).
#include <cstdint>
#include <string>
#include <vector>

#include "reformer/model.h"
#include "reformer/tensor.h"

namespace reformer {

// The LM head's rows per chunk when the config's chunk_size_lm_head is 0 (HF: no chunking): the
// chunk's concat, normalized rows and logits are workspace, 3.6 MiB for C&P at 512 rows (14.5 MiB at
// 2,048, which ran no faster, twelfth session).
inline constexpr int64_t kDefaultHeadChunk = 512;

struct FinalNorm {
  const float *w, *b;  // (2D)
  float *wg, *bg;      // their gradients (backward only)
  int64_t hidden;      // D
  float eps;
};

struct DropoutKey {
  float p = 0.f;  // 0 = off
  uint64_t seed = 0, stream = 0;
};

// Rows r = first + i * stride (i < n) of S over the streams x1, x2 (rows of D): cat (n, 2D) receives
// [x1[r], x2[r]], s (n, 2D) S's rows, mean / rstd (n) LN's statistics. The dropout mask of element
// (r, j) is keyed by r * 2D + j, so any subset of rows gets the mask of the full sequence output.
void sequence_output_rows(float* s, float* cat, float* mean, float* rstd, const float* x1, const float* x2,
                          const FinalNorm& ln, const DropoutKey& drop, int64_t first, int64_t n, int64_t stride);
// Backward of those rows: ds (n, 2D) is consumed (overwritten); rows r of dx1 and dx2 are assigned.
void sequence_output_rows_backward(float* dx1, float* dx2, float* ds, const float* cat, const float* mean,
                                   const float* rstd, const FinalNorm& ln, const DropoutKey& drop, int64_t first,
                                   int64_t n, int64_t stride);

struct ClassifierWeights {
  const float *dense_w, *dense_b, *out_w, *out_b;  // (D, 2D), (D), (num_labels, D), (num_labels)
};
struct ClassifierGrads {
  float *dense_w, *dense_b, *out_w, *out_b;
};

// s0: (B, 2D) the first position's S of each sequence. Saved for the backward: x (B, 2D) =
// dropout(s0), t (B, D) = tanh(dense(x)), h (B, D) = dropout(t). Dropout masks are keyed by
// sequence * width + column.
void classifier_forward(float* logits, float* x, float* t, float* h, const float* s0, const ClassifierWeights& w,
                        int64_t B, int64_t D, int64_t num_labels, const DropoutKey& in, const DropoutKey& hidden);
// ds0 (B, 2D) assigned; dh (B, D) scratch.
void classifier_backward(float* ds0, float* dh, const ClassifierGrads& g, const float* dlogits, const float* x,
                         const float* t, const float* h, const ClassifierWeights& w, int64_t B, int64_t D,
                         int64_t num_labels, const DropoutKey& in, const DropoutKey& hidden);

enum class ClassificationProblem { Regression, SingleLabel, MultiLabel };
// HF's choice: problem_type when set; else regression for one label, single-label classification
// when integer labels are given, multi-label otherwise.
ClassificationProblem classification_problem(const std::string& problem_type, int64_t num_labels, bool integer_labels);

// HF's sequence-classification loss over logits (B, num_labels): labels (B) class ids or -100 for
// SingleLabel, targets (B, num_labels) for Regression and MultiLabel. Returns loss_sum / count = HF's
// loss (count: counted labels for SingleLabel, B * num_labels otherwise; correct: argmax hits for
// SingleLabel). dlogits (or nullptr) = d(scale * loss_sum) with scale = loss_scale, or 1 / count
// when loss_scale is 0.
LossStats classification_loss(float* dlogits, const float* logits, ClassificationProblem problem, const int32_t* labels,
                              const float* targets, int64_t B, int64_t num_labels, float loss_scale);

// HF's question-answering loss over start/end logits (B, L): (CE(start) + CE(end)) / 2, each CE the
// mean over its counted positions (a position is clamped to [0, L]; L is ignored; a term with no
// counted position adds 0 where HF gives nan). Returns loss_sum = B * loss, count = B, correct =
// sequences whose start and end argmax both hit. dstart/dend (or nullptr) = d(scale * loss_sum),
// scale as in classification_loss.
LossStats span_loss(float* dstart, float* dend, const float* start, const float* end, const int32_t* start_positions,
                    const int32_t* end_positions, int64_t B, int64_t L, float loss_scale);

// The model's task head (ModelClass Base, SequenceClassification, QuestionAnswering): its
// parameters (owned by the model) and workspaces.
struct TaskHead {
  ModelClass cls = ModelClass::Base;
  Tensor *w1 = nullptr, *b1 = nullptr, *w2 = nullptr, *b2 = nullptr;      // classifier dense/out_proj, or qa_outputs (w1, b1)
  Tensor *w1g = nullptr, *b1g = nullptr, *w2g = nullptr, *b2g = nullptr;  // gradients
  Tensor cat, seq, dseq, mean, rstd, x, t, h, dh, logits, dlogits, start, end, dstart, dend;
};

}  // namespace reformer
