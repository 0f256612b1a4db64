// The config-only estimates of reformer/memory_estimate.h against the real thing: parameter names and
// shapes against the model's, and the training-step memory against the allocator's measured peak.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <vector>

#include "reformer/memory.h"
#include "reformer/model.h"
#include "support/tolerance.h"
#include "train/make_optimizer.h"
#include "reformer/memory_estimate.h"

namespace reformer {
namespace {

ReformerConfig small_config(std::vector<std::string> layers, int64_t L, int64_t chunk) {
  ReformerConfig c;
  c.attn_layers = std::move(layers);
  c.hidden_size = 64;
  c.feed_forward_size = 128;
  c.num_attention_heads = 2;
  c.attention_head_size = 32;
  c.vocab_size = 258;
  c.is_decoder = true;
  c.lsh_attn_chunk_length = c.local_attn_chunk_length = chunk;
  c.axial_pos_shape = {chunk, L / chunk};
  c.axial_pos_embds_dim = {16, 48};
  c.max_position_embeddings = L;
  c.num_buckets = c.auto_num_buckets(L);
  return c;
}

std::vector<ParamRef> refs(ReformerModel& m) {
  std::vector<ParamRef> out;
  for (auto& p : m.parameters()) out.push_back({p.name, p.param->data(), p.grad->data(), p.param->shape()});
  return out;
}

TEST(MemoryEstimate, ParameterShapesMatchTheModel) {
  for (const auto& layers : {std::vector<std::string>{"local", "lsh"}, {"lsh", "full", "local"}})
  for (const char* cls : {"ReformerModelWithLMHead", "ReformerModel", "ReformerForSequenceClassification",
                          "ReformerForQuestionAnswering"}) {
    ReformerConfig c = small_config(layers, 256, 32);
    c.architectures = {cls};
    ReformerModel model(c);
    const auto shapes = parameter_shapes(c);
    ASSERT_EQ(shapes.size(), model.parameters().size());
    int64_t total = 0;
    for (size_t i = 0; i < shapes.size(); ++i) {
      EXPECT_EQ(shapes[i].name, model.parameters()[i].name);
      EXPECT_EQ(shapes[i].shape, model.parameters()[i].param->shape()) << shapes[i].name;
      total += shape_numel(shapes[i].shape);
    }
    EXPECT_EQ(total, model.num_parameters());
    int64_t by_part = 0;
    for (const auto& p : parameter_counts(c)) by_part += p.parameters;
    EXPECT_EQ(by_part, total);
  }
}

struct Case {
  std::vector<std::string> layers;
  int64_t batch, length, chunk, hashes;
  const char* optimizer;
};

TEST(MemoryEstimate, TrainingStepWithinToleranceOfMeasuredPeak) {
  const Case cases[] = {{{"local", "lsh"}, 2, 256, 32, 1, "adam"},
                        {{"lsh", "lsh"}, 1, 512, 64, 2, "adafactor"},
                        {{"local", "full", "local"}, 2, 128, 32, 1, "adam"}};
  for (const Case& k : cases) {
    ReformerConfig c = small_config(k.layers, k.length, k.chunk);
    c.num_hashes = k.hashes;
    const MemoryEstimate est = estimate_training_memory(c, k.batch, k.length, k.optimizer, omp_get_max_threads());
    const int64_t live_before = mem_stats().live_total;
    mem_reset_peaks();
    {
      ReformerModel model(c, 1);
      auto params = refs(model);
      auto opt = make_optimizer(k.optimizer, params);
      std::vector<int32_t> ids(static_cast<size_t>(k.batch * k.length));
      for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(2 + i * 7 % 256);
      Batch b{ids.data(), k.batch, k.length, nullptr, nullptr};
      model.forward_backward(b, StepOptions{});
      opt->step(params, 1e-3f);
      const MemStats s = mem_stats();
      EXPECT_EQ(est.parameters, s.peak_of(MemCategory::Parameters));
      EXPECT_EQ(est.gradients, s.peak_of(MemCategory::Gradients));
      EXPECT_EQ(est.optimizer_state, s.peak_of(MemCategory::OptimizerState));
      const double measured = static_cast<double>(s.peak_total - live_before);
      const double ratio = static_cast<double>(est.total()) / measured;
      EXPECT_NEAR(ratio, 1.0, test::kMemoryEstimateRelTol)
          << k.layers.size() << " layers, L " << k.length << ": estimate " << est.total() << " bytes, measured " << measured
          << "\n" << mem_report();
    }
  }
}

// A forward (evaluation's loss, and logits) against the allocator: the same categories exactly
// where they are fixed by the config, the total within the tolerance, and no optimizer state.
TEST(MemoryEstimate, ForwardWithinToleranceOfMeasuredPeak) {
  const Case cases[] = {{{"local", "lsh"}, 2, 256, 32, 1, ""},
                        {{"lsh", "lsh"}, 1, 512, 64, 2, ""},
                        {{"local", "full", "local"}, 2, 128, 32, 1, ""}};
  for (const Case& k : cases)
    for (bool logits : {false, true}) {
      SCOPED_TRACE(testing::Message() << k.layers.size() << " layers, L " << k.length << (logits ? ", logits" : ", loss"));
      ReformerConfig c = small_config(k.layers, k.length, k.chunk);
      c.num_hashes = k.hashes;
      const MemoryEstimate est = estimate_forward_memory(c, k.batch, k.length, omp_get_max_threads(), logits);
      EXPECT_EQ(est.optimizer_state, 0);
      EXPECT_EQ(est.outputs, logits ? k.batch * k.length * c.vocab_size * static_cast<int64_t>(sizeof(float)) : 0);
      const int64_t live_before = mem_stats().live_total;
      mem_reset_peaks();
      ReformerModel model(c, 1);
      std::vector<int32_t> ids(static_cast<size_t>(k.batch * k.length));
      for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(2 + i * 7 % 256);
      const Batch b{ids.data(), k.batch, k.length, nullptr, nullptr};
      Tensor out;
      if (logits) model.forward_logits(out, b, StepOptions{false});
      else model.evaluate(b, StepOptions{false});
      const MemStats s = mem_stats();
      EXPECT_EQ(est.parameters, s.peak_of(MemCategory::Parameters));
      EXPECT_EQ(est.gradients, s.peak_of(MemCategory::Gradients));
      EXPECT_EQ(est.activations + est.outputs, s.peak_of(MemCategory::Activations));
      const double ratio = static_cast<double>(est.total()) / static_cast<double>(s.peak_total - live_before);
      EXPECT_NEAR(ratio, 1.0, test::kMemoryEstimateRelTol) << "estimate " << est.total() << "\n" << mem_report();
      // A forward needs less than a training step of the same shape.
      EXPECT_LT(est.total() - est.outputs, estimate_training_memory(c, k.batch, k.length, "adam", omp_get_max_threads()).total());
    }
}

// Stored layers (the per-layer plan): the estimate's activations grow by exactly what the
// allocator measures (two (B, L, D) copies per stored layer), and the total stays within the
// tolerance of the measured peak, for plans storing none, some and all layers.
TEST(MemoryEstimate, StoredLayersMatchMeasuredPeak) {
  const ReformerConfig c = small_config({"local", "lsh", "local", "lsh"}, 256, 32);
  const int64_t B = 2, L = 256;
  int64_t est_none = 0, measured_none = 0;
  for (int64_t stored : {0, 1, 3, 4}) {
    SCOPED_TRACE(testing::Message() << stored << " stored layers");
    const MemoryEstimate est = estimate_training_memory(c, B, L, "adam", omp_get_max_threads(), stored);
    const int64_t live_before = mem_stats().live_total;
    mem_reset_peaks();
    ReformerModel model(c, 1);
    std::vector<bool> plan(4, false);
    for (int64_t l = 0; l < stored; ++l) plan[static_cast<size_t>(l)] = true;
    model.set_stored_layers(plan);
    auto params = refs(model);
    auto opt = make_optimizer("adam", params);
    std::vector<int32_t> ids(static_cast<size_t>(B * L));
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(2 + i * 7 % 256);
    Batch b{ids.data(), B, L, nullptr, nullptr};
    model.forward_backward(b, StepOptions{});
    opt->step(params, 1e-3f);
    const MemStats s = mem_stats();
    const int64_t activations = s.peak_of(MemCategory::Activations);
    if (stored == 0) {
      est_none = est.activations;
      measured_none = activations;
    }
    EXPECT_EQ(est.activations - est_none, activations - measured_none);
    EXPECT_EQ(activations - measured_none, stored * stored_layer_bytes(c, B, L, 0));
    const double ratio = static_cast<double>(est.total()) / static_cast<double>(s.peak_total - live_before);
    EXPECT_NEAR(ratio, 1.0, test::kMemoryEstimateRelTol) << mem_report();
  }
}

TEST(MemoryEstimate, PlanStoresAsManyLayersAsFitTheBudget) {
  const ReformerConfig c = small_config({"local", "lsh", "local", "lsh"}, 256, 32);
  const int64_t B = 2, L = 256;
  const int threads = omp_get_max_threads();
  const int64_t none = estimate_training_memory(c, B, L, "adam", threads, 0).total();
  // X2, Y1 and the feed-forward's ReLU activation of every position.
  const int64_t per = (2 * c.hidden_size + c.feed_forward_size) * B * L * static_cast<int64_t>(sizeof(float));
  EXPECT_EQ(stored_layer_bytes(c, B, L, 0), per);
  for (int64_t fit : {0, 1, 2, 3, 4}) {
    // A budget whose usable share holds the all-reversible step plus `fit` stored layers and a half.
    const auto budget = static_cast<int64_t>((static_cast<double>(none) + (static_cast<double>(fit) + 0.5) * static_cast<double>(per)) /
                                             kPlanBudgetShare);
    const LayerPlan plan = plan_stored_layers(c, B, L, "adam", threads, budget);
    EXPECT_EQ(plan.stored_count, fit);
    ASSERT_EQ(plan.stored.size(), 4u);
    for (int64_t l = 0; l < 4; ++l) EXPECT_EQ(plan.stored[static_cast<size_t>(l)], l < fit) << l;  // the lowest layers
    EXPECT_EQ(plan.budget, budget);
    EXPECT_EQ(plan.estimate.total(), none + fit * per);
    EXPECT_LE(static_cast<double>(plan.estimate.total()), kPlanBudgetShare * static_cast<double>(budget));
    EXPECT_EQ(plan.stored_bytes, fit * per);
    // Per token and layer 2 D (2 d_ff + Hd) FLOPs skipped, of 2 D (2 d_ff + 4 Hd) (local) or 2 D (2 d_ff + 3 Hd) (LSH).
    const double D = static_cast<double>(c.hidden_size), F = static_cast<double>(c.feed_forward_size),
                 Hd = static_cast<double>(c.num_attention_heads * c.attention_head_size), tokens = static_cast<double>(B * L);
    EXPECT_DOUBLE_EQ(plan.recompute_flops, tokens * 2 * D * (4 * 2 * F + 2 * 4 * Hd + 2 * 3 * Hd));
    EXPECT_DOUBLE_EQ(plan.recompute_flops_saved, static_cast<double>(fit) * tokens * 2 * D * (2 * F + Hd));
  }
  // A huge budget stores every layer; one below the reversible plan stores none.
  EXPECT_EQ(plan_stored_layers(c, B, L, "adam", threads, int64_t{1} << 50).stored_count, 4);
  EXPECT_EQ(plan_stored_layers(c, B, L, "adam", threads, none / 2).stored_count, 0);
  EXPECT_EQ(describe_plan(plan_stored_layers(c, B, L, "adam", threads, none / 2)), "all 4 layers reversible");
  EXPECT_EQ(describe_plan(plan_stored_layers(c, B, L, "adam", threads, int64_t{1} << 50)),
            "all 4 layers stored (" + format_bytes(4 * per) + " kept)");
}

}  // namespace
}  // namespace reformer
