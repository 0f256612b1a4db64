#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>

#include "reformer/error.h"
#include "reformer/memory.h"
#include "train/evaluate.h"
#include "train/grad_clip.h"
#include "train/make_optimizer.h"
#include "train/metrics_log.h"
#include "train/checkpoint_dir.h"
#include "train/trainer_state.h"

namespace reformer {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// The targets a batch's loss counts (train/token_batch.h): its class labels for sequence
// classification; else its labels, of positions 1.. for a causal LM (HF's shift) and of every
// position for a masked LM (unshifted).
int64_t scored_targets(const TokenBatch& t, ModelClass cls) {
  int64_t n = 0;
  if (!t.class_labels.empty()) {
    for (int32_t l : t.class_labels) n += l != kIgnoreLabel;
    return n;
  }
  const int64_t first = cls == ModelClass::LMHead ? 1 : 0;
  for (int64_t b = 0; b < t.batch; ++b)
    for (int64_t i = first; i < t.length; ++i) n += t.labels[b * t.length + i] != kIgnoreLabel;
  return n;
}

}  // namespace

Trainer::Trainer(ReformerModel& model, TrainerOptions options, TrainerHooks hooks)
    : model_(model), options_(std::move(options)), hooks_(std::move(hooks)), schedule_(parse_schedule(options_.schedule)) {
  REFORMER_CHECK(options_.steps >= 0, "--steps ", options_.steps, " must be >= 0");
  REFORMER_CHECK(options_.grad_accum >= 1, "--grad-accum ", options_.grad_accum, " must be at least 1");
  REFORMER_CHECK(std::isfinite(options_.clip_norm) && options_.clip_norm >= 0, "--clip-norm ", options_.clip_norm,
                 " must be >= 0 (0 = no clipping)");
  REFORMER_CHECK(options_.log_interval >= 1, "--log-interval ", options_.log_interval, " must be at least 1");
  REFORMER_CHECK(options_.eval_interval >= 0, "--eval-interval ", options_.eval_interval, " must be >= 0");
  REFORMER_CHECK(options_.save_interval >= 0, "--save-interval ", options_.save_interval, " must be >= 0");
  REFORMER_CHECK(options_.save_total_limit >= 0, "--save-total-limit ", options_.save_total_limit,
                 " must be >= 0 (0 = keep every checkpoint)");
  REFORMER_CHECK(hooks_.batch, "trainer needs a batch source");
  if (!options_.communicator) single_ = make_single_process_communicator();
  comm_ = options_.communicator ? options_.communicator : single_.get();
  for (NamedParameter& p : model_.parameters()) params_.push_back({p.name, p.param->data(), p.grad->data(), p.param->shape()});
  optimizer_ = make_optimizer(options_.optimizer, params_);
}

Trainer::~Trainer() = default;

void Trainer::resume(const std::string& checkpoint_dir) { step_ = load_checkpoint(checkpoint_dir, model_, *optimizer_).step; }

double Trainer::train_step(double& grad_norm, double& lr) {
  model_.zero_grad();
  const int64_t ranks = comm_->size(), micro = options_.grad_accum * ranks;  // micro-batches of the step
  double loss = 0;
  step_loss_sum_ = step_bytes_ = step_scored_ = 0;
  for (int64_t m = 0; m < options_.grad_accum; ++m) {
    const int64_t index = step_ * micro + comm_->rank() + m * ranks;
    hooks_.batch(tokens_, index);
    const int64_t scored = scored_targets(tokens_, model_.model_class());
    REFORMER_CHECK(scored > 0, "training batch ", step_, " has no scored tokens");
    Batch in{tokens_.ids.data(), tokens_.batch, tokens_.length, tokens_.mask_or_null(), tokens_.labels.data()};
    in.class_labels = tokens_.class_labels_or_null();
    StepOptions opt;
    opt.training = true;
    opt.seed = options_.seed;
    opt.step = static_cast<uint64_t>(index);
    // Each micro-batch's mean loss weighs 1 / micro in the step's gradient.
    opt.loss_scale = static_cast<float>(1.0 / (static_cast<double>(scored) * static_cast<double>(micro)));
    // The last micro-batch's backward finishes each gradient group: its sum over the ranks starts
    // right then, behind the rest of the backward.
    if (ranks > 1 && m + 1 == options_.grad_accum) {
      started_.assign(model_.grad_groups().size(), false);
      model_.set_grad_ready_hook([this](int g) {
        const GradGroup& group = model_.grad_groups()[g];
        comm_->start_sum(group.data, group.size);
        started_[g] = true;
        comm_->progress();
        // The backward the reductions can hide behind: from the head's gradients to the embeddings'.
        if (g == 0) backward_start_ = Clock::now();
        if (g + 1 == static_cast<int>(model_.grad_groups().size())) backward_s_ = seconds_since(backward_start_);
      });
    }
    const LossStats stats = model_.forward_backward(in, opt);
    loss += stats.mean() / static_cast<double>(micro);
    step_loss_sum_ += stats.loss_sum;
    step_bytes_ += tokens_.scored_bytes;
    step_scored_ += static_cast<double>(scored);
  }
  if (ranks > 1) {
    model_.set_grad_ready_hook(nullptr);
    // A group the backward did not report (a model path without the hook) is reduced now.
    for (size_t g = 0; g < started_.size(); ++g)
      if (!started_[g]) comm_->start_sum(model_.grad_groups()[g].data, model_.grad_groups()[g].size);
    comm_->wait_all();
    double sums[4] = {loss, step_loss_sum_, step_bytes_, step_scored_};  // global loss, text bytes, tokens
    comm_->sum(sums, 4);
    loss = sums[0];
    step_loss_sum_ = sums[1];
    step_bytes_ = sums[2];
    step_scored_ = sums[3];
  }
  grad_norm = options_.clip_norm > 0 ? clip_grad_norm(params_, options_.clip_norm) : reformer::grad_norm(params_);
  REFORMER_CHECK(std::isfinite(loss) && std::isfinite(grad_norm), "training diverged at step ", step_ + 1, ": loss ", loss,
                 ", gradient norm ", grad_norm, "; lower the learning rate (--lr) or clip gradients (--clip-norm)");
  lr = learning_rate(schedule_, step_ + 1);
  optimizer_->step(params_, static_cast<float>(lr));
  ++step_;
  return loss;
}

void Trainer::evaluate(Progress& progress) {
  if (!hooks_.evaluate) return;
  Evaluation e = hooks_.evaluate();
  LossStats& s = e.stats;
  if (e.sharded) {  // each rank scored its shard (train/evaluate.h EvalShard): the sums are the result
    double sums[4] = {s.loss_sum, s.count, s.correct, s.bytes};
    comm_->sum(sums, 4);
    s.loss_sum = sums[0], s.count = sums[1], s.correct = sums[2], s.bytes = sums[3];
  }
  if (!writer()) return;
  const double accuracy = s.count > 0 ? s.correct / s.count : 0.0;
  char buf[96];
  std::string line = "eval step " + std::to_string(step_) + ":";
  std::snprintf(buf, sizeof buf, " loss %.4f", s.mean());
  line += buf;
  if (e.bits_per_byte) {
    std::snprintf(buf, sizeof buf, "  bpb %.4f", bits_per_byte(s));
    line += buf;
  }
  std::snprintf(buf, sizeof buf, "  accuracy %.4f", accuracy);
  line += buf;
  for (const auto& [key, value] : e.metrics.items())
    if (key != "accuracy" && value.is_number()) {
      std::snprintf(buf, sizeof buf, "  %s %.4f", key.c_str(), value.get<double>());
      line += buf;
    }
  std::snprintf(buf, sizeof buf, "  (%.0f %s)", s.count, e.unit.c_str());
  progress.message(line + buf);
  if (hooks_.metrics) {
    nlohmann::json record = {{"split", "validation"}, {"step", step_}, {"loss", s.mean()}, {"accuracy", accuracy}, {e.unit, s.count}};
    if (e.bits_per_byte) record["bits_per_byte"] = bits_per_byte(s);
    if (s.bytes > 0) record["bytes"] = s.bytes;
    record.update(e.metrics);
    hooks_.metrics(record);
  }
}

void Trainer::save(Progress& progress) {
  if (writer()) write_checkpoint(progress);
  // The other ranks wait for the save: one that exited first (after Ctrl-C) would make mpirun end
  // rank 0 in the middle of it.
  double done = 0;
  comm_->sum(&done, 1);
}

void Trainer::write_checkpoint(Progress& progress) {
  auto metadata = options_.checkpoint_metadata;
  metadata["seed"] = std::to_string(options_.seed);
  // The next micro-batch's index, and the ranks it was computed on (a resume may change the ranks
  // when it keeps grad_accum x ranks).
  metadata["data_position"] = std::to_string(step_ * options_.grad_accum * comm_->size());
  metadata["ranks"] = std::to_string(comm_->size());
  save_checkpoint(options_.out_dir, model_, *optimizer_, step_, metadata, options_.save_total_limit, options_.tokenizer);
  progress.message("checkpoint at step " + std::to_string(step_) + " saved to " +
                   (std::filesystem::path(options_.out_dir) / checkpoint_name(step_)).string());
}

TrainResult Trainer::run(Progress& progress) {
  const int64_t first_step = step_;
  const Clock::time_point start = Clock::now();
  Clock::time_point interval_start = start;
  double interval_loss = 0, interval_tokens = 0, interval_scored = 0, interval_bytes = 0;
  int64_t interval_steps = 0;
  CommStats before = comm_->stats();  // the gradient reductions' totals before this step
  while (step_ < options_.steps) {
    double stop = hooks_.stop_requested && hooks_.stop_requested() ? 1 : 0;
    comm_->sum(&stop, 1);  // one rank's Ctrl-C stops all of them at the same step
    if (stop > 0) {
      if (writer()) progress.message("interrupted at step " + std::to_string(step_));
      save(progress);
      return TrainResult::Interrupted;
    }
    double grad_norm = 0, lr = 0;
    const Clock::time_point step_start = Clock::now();
    const double loss = train_step(grad_norm, lr);
    const auto tokens = static_cast<double>(tokens_.batch * tokens_.length * options_.grad_accum * comm_->size());
    interval_loss += loss;
    interval_tokens += tokens;
    interval_scored += step_scored_;
    interval_bytes += step_bytes_;
    ++interval_steps;
    if (writer() && hooks_.metrics) {
      nlohmann::json record = step_record(step_, loss, lr, tokens / std::max(seconds_since(step_start), 1e-9),
                                          seconds_since(start));
      record["split"] = "train";
      // A tokenizer other than bytes: bits per byte of text, not per token (docs/NUMERICS.md).
      if (step_bytes_ > 0) record["bits_per_byte"] = step_loss_sum_ / step_bytes_ / std::log(2.0);
      record["grad_norm"] = grad_norm;
      if (comm_->size() > 1) {
        // Rank 0's view of this step's gradient reductions (docs/DISTRIBUTED.md).
        const CommStats& c = comm_->stats();
        record["ranks"] = comm_->size();
        record["allreduce_bytes"] = c.bytes - before.bytes;
        record["allreduce_overlap_s"] = c.overlap_s - before.overlap_s;
        record["allreduce_wait_s"] = c.wait_s - before.wait_s;
        record["backward_layers_s"] = backward_s_;  // the last micro-batch's layers + embeddings backward
      }
      before = comm_->stats();
      hooks_.metrics(record);
    }
    if (writer() && (step_ % options_.log_interval == 0 || step_ == options_.steps)) {
      StepReport r;
      r.step = step_;
      r.total_steps = options_.steps;
      r.loss = interval_loss / static_cast<double>(interval_steps);
      if (interval_bytes > 0 && interval_scored > 0) r.bytes_per_token = interval_bytes / interval_scored;
      if (!options_.bits_per_byte) r.bytes_per_token = 0;
      r.lr = lr;
      r.grad_norm = grad_norm;
      r.tokens_per_s = interval_tokens / std::max(seconds_since(interval_start), 1e-9);
      r.peak_bytes = mem_stats().peak_total;
      r.eta_s = seconds_since(start) / static_cast<double>(step_ - first_step) * static_cast<double>(options_.steps - step_);
      progress.report(r);
      interval_start = Clock::now();
      interval_loss = interval_tokens = interval_scored = interval_bytes = 0;
      interval_steps = 0;
    }
    if (options_.eval_interval > 0 && step_ % options_.eval_interval == 0 && step_ < options_.steps) evaluate(progress);
    if (options_.save_interval > 0 && step_ % options_.save_interval == 0 && step_ < options_.steps) save(progress);
  }
  evaluate(progress);
  save(progress);
  return TrainResult::Finished;
}

}  // namespace reformer
