// Sequence output and task heads (model/heads.h), and ModelImpl::task_head, which runs them for
// the bare ReformerModel, ReformerForSequenceClassification and ReformerForQuestionAnswering.
// Parameter gradients ACCUMULATE (+=), activation gradients are ASSIGNED (=).
#include "model/heads.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "model/model_layer.h"
#include "ops/cross_entropy.h"
#include "ops/dropout.h"
#include "ops/layernorm.h"
#include "ops/linear.h"
#include "reformer/error.h"

namespace reformer {
namespace {

void copy(float* y, const float* x, int64_t n) { std::memcpy(y, x, static_cast<size_t>(n) * sizeof(float)); }

// Dropout (or its backward) of rows r = first + i * stride of a (rows, width) matrix held as (n, width).
void rows_dropout(float* y, int64_t n, int64_t width, const DropoutKey& k, int64_t first, int64_t stride, bool backward) {
  if (k.p == 0.f) return;
  auto apply = [&](float* p, int64_t count, int64_t row) {
    const uint64_t base = static_cast<uint64_t>(row * width);
    (backward ? dropout_backward : dropout_forward)(p, p, count * width, k.p, k.seed, k.stream, base, nullptr);
  };
  if (stride == 1) return apply(y, n, first);
  for (int64_t i = 0; i < n; ++i) apply(y + i * width, 1, first + i * stride);
}

}  // namespace

void sequence_output_rows(float* s, float* cat, float* mean, float* rstd, const float* x1, const float* x2,
                          const FinalNorm& ln, const DropoutKey& drop, int64_t first, int64_t n, int64_t stride) {
  const int64_t D = ln.hidden, D2 = 2 * D;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = first + i * stride;
    copy(cat + i * D2, x1 + r * D, D);
    copy(cat + i * D2 + D, x2 + r * D, D);
  }
  layernorm_forward(s, mean, rstd, cat, ln.w, ln.b, n, D2, ln.eps);
  rows_dropout(s, n, D2, drop, first, stride, /*backward=*/false);
}

void sequence_output_rows_backward(float* dx1, float* dx2, float* ds, const float* cat, const float* mean,
                                   const float* rstd, const FinalNorm& ln, const DropoutKey& drop, int64_t first,
                                   int64_t n, int64_t stride) {
  const int64_t D = ln.hidden, D2 = 2 * D;
  rows_dropout(ds, n, D2, drop, first, stride, /*backward=*/true);
  layernorm_backward(ds, ln.wg, ln.bg, ds, cat, mean, rstd, ln.w, n, D2);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = first + i * stride;
    copy(dx1 + r * D, ds + i * D2, D);
    copy(dx2 + r * D, ds + i * D2 + D, D);
  }
}

void classifier_forward(float* logits, float* x, float* t, float* h, const float* s0, const ClassifierWeights& w,
                        int64_t B, int64_t D, int64_t num_labels, const DropoutKey& in, const DropoutKey& hidden) {
  copy(x, s0, B * 2 * D);
  rows_dropout(x, B, 2 * D, in, 0, 1, false);
  linear_forward(t, x, w.dense_w, w.dense_b, B, 2 * D, D);
  for (int64_t i = 0; i < B * D; ++i) t[i] = std::tanh(t[i]);
  copy(h, t, B * D);
  rows_dropout(h, B, D, hidden, 0, 1, false);
  linear_forward(logits, h, w.out_w, w.out_b, B, D, num_labels);
}

void classifier_backward(float* ds0, float* dh, const ClassifierGrads& g, const float* dlogits, const float* x,
                         const float* t, const float* h, const ClassifierWeights& w, int64_t B, int64_t D,
                         int64_t num_labels, const DropoutKey& in, const DropoutKey& hidden) {
  linear_backward(dh, g.out_w, g.out_b, dlogits, h, w.out_w, B, D, num_labels);
  rows_dropout(dh, B, D, hidden, 0, 1, true);
  for (int64_t i = 0; i < B * D; ++i) dh[i] *= 1.f - t[i] * t[i];  // tanh' = 1 - tanh^2
  linear_backward(ds0, g.dense_w, g.dense_b, dh, x, w.dense_w, B, 2 * D, D);
  rows_dropout(ds0, B, 2 * D, in, 0, 1, true);
}

ClassificationProblem classification_problem(const std::string& problem_type, int64_t num_labels, bool integer_labels) {
  if (problem_type == "regression") return ClassificationProblem::Regression;
  if (problem_type == "single_label_classification") return ClassificationProblem::SingleLabel;
  if (problem_type == "multi_label_classification") return ClassificationProblem::MultiLabel;
  if (num_labels == 1) return ClassificationProblem::Regression;
  return integer_labels ? ClassificationProblem::SingleLabel : ClassificationProblem::MultiLabel;
}

LossStats classification_loss(float* dlogits, const float* logits, ClassificationProblem problem, const int32_t* labels,
                              const float* targets, int64_t B, int64_t num_labels, float loss_scale) {
  LossStats stats;
  if (problem == ClassificationProblem::SingleLabel) {
    REFORMER_CHECK(labels, "single_label_classification needs integer class labels (batch), one per sequence");
    const CrossEntropyStats ce = cross_entropy_forward(logits, labels, B, num_labels);
    stats.loss_sum = ce.loss_sum;
    stats.count = ce.count;
    stats.correct = ce.correct;
    if (dlogits) {
      const float scale = loss_scale > 0.f ? loss_scale : (ce.count > 0 ? static_cast<float>(1.0 / ce.count) : 0.f);
      cross_entropy_backward(dlogits, logits, labels, B, num_labels, scale);
    }
    return stats;
  }
  const char* what = problem == ClassificationProblem::Regression ? "regression" : "multi_label_classification";
  REFORMER_CHECK(targets, what, " needs float targets (batch, num_labels = ", num_labels, ")");
  const int64_t n = B * num_labels;
  const float scale = loss_scale > 0.f ? loss_scale : static_cast<float>(1.0 / static_cast<double>(n));
  for (int64_t i = 0; i < n; ++i) {
    const double z = logits[i], y = targets[i];
    REFORMER_CHECK(std::isfinite(y), what, " target [", i / num_labels, "][", i % num_labels, "] = ", y, " is not finite");
    double loss, grad;
    if (problem == ClassificationProblem::Regression) {  // torch MSELoss
      loss = (z - y) * (z - y);
      grad = 2 * (z - y);
    } else {  // torch BCEWithLogitsLoss, in its stable form
      loss = std::max(z, 0.0) - z * y + std::log1p(std::exp(-std::fabs(z)));
      grad = 1 / (1 + std::exp(-z)) - y;
    }
    stats.loss_sum += loss;
    if (dlogits) dlogits[i] = static_cast<float>(scale * grad);
  }
  stats.count = static_cast<double>(n);
  return stats;
}

LossStats span_loss(float* dstart, float* dend, const float* start, const float* end, const int32_t* start_positions,
                    const int32_t* end_positions, int64_t B, int64_t L, float loss_scale) {
  REFORMER_CHECK(start_positions && end_positions, "question answering needs start and end positions (batch) for a loss");
  const int32_t ignored = static_cast<int32_t>(L);  // HF: positions outside the input are clamped to L and ignored
  std::vector<int32_t> sp(B), ep(B);
  for (int64_t b = 0; b < B; ++b) {
    sp[b] = std::clamp<int32_t>(start_positions[b], 0, ignored);
    ep[b] = std::clamp<int32_t>(end_positions[b], 0, ignored);
  }
  const CrossEntropyStats cs = cross_entropy_forward(start, sp.data(), B, L, ignored);
  const CrossEntropyStats ce = cross_entropy_forward(end, ep.data(), B, L, ignored);
  auto mean = [](const CrossEntropyStats& s) { return s.count > 0 ? s.loss_sum / s.count : 0.0; };
  LossStats stats;
  stats.loss_sum = static_cast<double>(B) * 0.5 * (mean(cs) + mean(ce));
  stats.count = static_cast<double>(B);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t s = std::max_element(start + b * L, start + (b + 1) * L) - (start + b * L);
    const int64_t e = std::max_element(end + b * L, end + (b + 1) * L) - (end + b * L);
    stats.correct += sp[b] != ignored && ep[b] != ignored && s == sp[b] && e == ep[b];
  }
  // d(scale * loss_sum) = total * d(loss), loss = (mean start CE + mean end CE) / 2.
  const double total = loss_scale > 0.f ? loss_scale * static_cast<double>(B) : 1.0;
  if (dstart)
    cross_entropy_backward(dstart, start, sp.data(), B, L, cs.count > 0 ? static_cast<float>(total * 0.5 / cs.count) : 0.f,
                           ignored);
  if (dend)
    cross_entropy_backward(dend, end, ep.data(), B, L, ce.count > 0 ? static_cast<float>(total * 0.5 / ce.count) : 0.f,
                           ignored);
  return stats;
}

LossStats ModelImpl::task_head(const Batch& batch, const StepOptions& opt, bool loss, bool grads,
                                   std::map<std::string, Tensor>* outputs) {
  TaskHead& th = *task_;
  const int64_t B = batch.batch, L = batch.length, D = config_.hidden_size, D2 = 2 * D, rows = B * L;
  const int nl = static_cast<int>(layers_.size());
  // Classification reads only the first position of each sequence: only those rows are normalized.
  const bool first_only = th.cls == ModelClass::SequenceClassification;
  const int64_t n = first_only ? B : rows, stride = first_only ? L : 1;
  const FinalNorm ln{final_ln_w_->data(), final_ln_b_->data(), final_ln_wg_->data(), final_ln_bg_->data(), D,
                     static_cast<float>(config_.layer_norm_eps)};
  const DropoutKey drop{hidden_dropout(opt), opt.seed, hidden_dropout_stream(opt.step, nl, DropoutSite::FinalNorm)};
  for (Tensor* t : {&th.cat, &th.seq, &th.dseq}) t->ensure({n, D2}, MemCategory::Workspace);
  th.mean.ensure({n}, MemCategory::Workspace);
  th.rstd.ensure({n}, MemCategory::Workspace);
  sequence_output_rows(th.seq.data(), th.cat.data(), th.mean.data(), th.rstd.data(), x1_.data(), x2_.data(), ln, drop, 0,
                       n, stride);
  auto output = [&](const char* name, const Shape& shape, const float* data) {
    if (!outputs) return;
    Tensor& o = (*outputs)[name];
    o.ensure(shape, MemCategory::Activations);
    copy(o.data(), data, o.numel());
  };
  grads = grads && loss;
  LossStats stats;
  const char* cls = model_class_name(th.cls);
  if (th.cls == ModelClass::Base) {
    output("last_hidden_state", {B, L, D2}, th.seq.data());
    if (loss) {
      REFORMER_CHECK(batch.output_grad, "a bare ReformerModel has no loss of its own: pass Batch::output_grad, the gradient "
                     "of your loss with respect to last_hidden_state (batch, length, 2 * hidden_size), or load a model with a head");
      const float scale = opt.loss_scale > 0.f ? opt.loss_scale : 1.f;
      for (int64_t i = 0; i < n * D2; ++i) {
        stats.loss_sum += static_cast<double>(batch.output_grad[i]) * th.seq[i];
        th.dseq[i] = scale * batch.output_grad[i];
      }
      stats.count = 1;
    }
  } else if (th.cls == ModelClass::SequenceClassification) {
    const int64_t K = config_.num_labels;
    for (Tensor* t : {&th.x}) t->ensure({B, D2}, MemCategory::Workspace);
    for (Tensor* t : {&th.t, &th.h, &th.dh}) t->ensure({B, D}, MemCategory::Workspace);
    th.logits.ensure({B, K}, MemCategory::Workspace);
    th.dlogits.ensure({B, K}, MemCategory::Workspace);
    const float p = opt.training ? static_cast<float>(config_.classifier_dropout.value_or(config_.hidden_dropout_prob)) : 0.f;
    const DropoutKey in{p, opt.seed, hidden_dropout_stream(opt.step, nl, DropoutSite::ClassifierInput)};
    const DropoutKey hid{p, opt.seed, hidden_dropout_stream(opt.step, nl, DropoutSite::ClassifierHidden)};
    const ClassifierWeights w{th.w1->data(), th.b1->data(), th.w2->data(), th.b2->data()};
    classifier_forward(th.logits.data(), th.x.data(), th.t.data(), th.h.data(), th.seq.data(), w, B, D, K, in, hid);
    output("logits", {B, K}, th.logits.data());
    if (loss) {
      REFORMER_CHECK(batch.class_labels || batch.target_values, "a ", cls, " has no language-model loss: it needs class "
                     "labels (Batch::class_labels) or float targets (Batch::target_values); language-model commands "
                     "(eval, train, generate) need a model with an LM head");
      const ClassificationProblem problem = classification_problem(config_.problem_type, K, batch.class_labels != nullptr);
      REFORMER_CHECK(problem == ClassificationProblem::SingleLabel ? batch.class_labels != nullptr : batch.target_values != nullptr,
                     "a ", cls, " computes its loss from ",
                     problem == ClassificationProblem::SingleLabel ? "class labels (Batch::class_labels, one per sequence)"
                                                                   : "float targets (Batch::target_values, batch x num_labels)",
                     " (problem_type \"", config_.problem_type, "\", num_labels ", K,
                     "); language-model commands (eval, train, generate) need a model with an LM head");
      stats = classification_loss(grads ? th.dlogits.data() : nullptr, th.logits.data(), problem, batch.class_labels,
                                  batch.target_values, B, K, opt.loss_scale);
      if (grads)
        classifier_backward(th.dseq.data(), th.dh.data(), {th.w1g->data(), th.b1g->data(), th.w2g->data(), th.b2g->data()},
                            th.dlogits.data(), th.x.data(), th.t.data(), th.h.data(), w, B, D, K, in, hid);
    }
  } else {  // QuestionAnswering: qa_outputs (2, 2D) -> start, end
    th.logits.ensure({rows, 2}, MemCategory::Workspace);
    th.dlogits.ensure({rows, 2}, MemCategory::Workspace);
    for (Tensor* t : {&th.start, &th.end, &th.dstart, &th.dend}) t->ensure({B, L}, MemCategory::Workspace);
    linear_forward(th.logits.data(), th.seq.data(), th.w1->data(), th.b1->data(), rows, D2, 2);
    for (int64_t r = 0; r < rows; ++r) {
      th.start[r] = th.logits[2 * r];
      th.end[r] = th.logits[2 * r + 1];
    }
    output("start_logits", {B, L}, th.start.data());
    output("end_logits", {B, L}, th.end.data());
    if (loss) {
      REFORMER_CHECK(batch.start_positions && batch.end_positions, "a ", cls, " computes its loss from answer spans "
                     "(Batch::start_positions and end_positions, one each per sequence); language-model commands "
                     "(eval, train, generate) need a model with an LM head");
      stats = span_loss(grads ? th.dstart.data() : nullptr, grads ? th.dend.data() : nullptr, th.start.data(), th.end.data(),
                        batch.start_positions, batch.end_positions, B, L, opt.loss_scale);
      if (grads) {
        for (int64_t r = 0; r < rows; ++r) {
          th.dlogits[2 * r] = th.dstart[r];
          th.dlogits[2 * r + 1] = th.dend[r];
        }
        linear_backward(th.dseq.data(), th.w1g->data(), th.b1g->data(), th.dlogits.data(), th.seq.data(), th.w1->data(), rows,
                        D2, 2);
      }
    }
  }
  if (grads) {
    if (first_only) {  // rows other than the first positions get no gradient from the head
      dx1_.zero();
      dx2_.zero();
    }
    sequence_output_rows_backward(dx1_.data(), dx2_.data(), th.dseq.data(), th.cat.data(), th.mean.data(), th.rstd.data(),
                                  ln, drop, 0, n, stride);
  }
  return stats;
}

}  // namespace reformer
