// The config-only estimates of reformer/memory_estimate.h against the real thing: parameter names and
// shapes against the model's, and the training-step memory against the allocator's measured peak.
#include <algorithm>
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

// The per-layer plan: the estimate's activations grow by exactly what the allocator measures (what
// planned_layer_bytes says each layer keeps), its workspace by at least the measured growth, and the
// total stays within the tolerance of the measured peak, for plans storing none, some and all
// layers, and with layers that keep their input X2.
TEST(MemoryEstimate, StoredLayersMatchMeasuredPeak) {
  const ReformerConfig c = small_config({"local", "lsh", "local", "lsh"}, 256, 32);
  const int64_t B = 2, L = 256;
  int64_t est_none = 0, measured_none = 0, est_ws_none = 0, measured_ws_none = 0;
  // R: reversible, X: keeps X2, S: stored.
  for (const std::string name : {"RRRR", "SRRR", "SSSR", "SSSS", "SXXR", "XXXX", "SRSS"}) {
    SCOPED_TRACE(name);
    std::vector<LayerKeep> plan;
    for (char ch : name) plan.push_back(ch == 'S' ? LayerKeep::all : ch == 'X' ? LayerKeep::input : LayerKeep::nothing);
    const MemoryEstimate est = estimate_training_memory(c, B, L, "adam", omp_get_max_threads(), plan);
    if (name.find('X') == std::string::npos && name.find("RS") == std::string::npos) {  // the count form says the same
      const auto stored = static_cast<int64_t>(std::count(name.begin(), name.end(), 'S'));
      EXPECT_EQ(est.total(), estimate_training_memory(c, B, L, "adam", omp_get_max_threads(), stored).total());
    }
    const int64_t live_before = mem_stats().live_total;
    mem_reset_peaks();
    ReformerModel model(c, 1);
    model.set_layer_plan(plan);
    auto params = refs(model);
    auto opt = make_optimizer("adam", params);
    std::vector<int32_t> ids(static_cast<size_t>(B * L));
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(2 + i * 7 % 256);
    Batch b{ids.data(), B, L, nullptr, nullptr};
    model.forward_backward(b, StepOptions{});
    opt->step(params, 1e-3f);
    const MemStats s = mem_stats();
    const int64_t activations = s.peak_of(MemCategory::Activations), workspace = s.live_of(MemCategory::Workspace);
    if (name == "RRRR") {
      est_none = est.activations;
      measured_none = activations;
      est_ws_none = est.workspace;
      measured_ws_none = workspace;
    }
    StoredLayerBytes kept;
    int64_t largest = 0;
    for (int64_t l = 0; l < 4; ++l) {
      const StoredLayerBytes k = planned_layer_bytes(c, B, L, plan, l);
      kept.activations += k.activations;
      kept.workspace += k.workspace;
      largest = std::max(largest, k.workspace);
    }
    EXPECT_EQ(est.activations - est_none, activations - measured_none);
    EXPECT_EQ(activations - measured_none, kept.activations);
    // The kept projections stay with their layers between steps (AttentionKept): live workspace,
    // which the estimate bounds from above (the shared set gives its buffers to the stored layers and
    // re-allocates only those a later layer needs; the top stored layer's may never be).
    EXPECT_EQ(est.workspace - est_ws_none, kept.workspace);
    EXPECT_LE(workspace - measured_ws_none, kept.workspace);
    EXPECT_GE(workspace - measured_ws_none, kept.workspace - largest);
    const double ratio = static_cast<double>(est.total()) / static_cast<double>(s.peak_total - live_before);
    EXPECT_NEAR(ratio, 1.0, test::kMemoryEstimateRelTol) << mem_report();
  }
}

TEST(MemoryEstimate, PlanSkipsTheMostRecomputationThatFitsTheBudget) {
  // One head of 32: the C&P model's proportions (H*d = D / 2, d_ff = 2 D), where X2 buys more per
  // byte than a stored layer.
  ReformerConfig c = small_config({"local", "lsh", "local", "lsh"}, 256, 32);
  c.num_attention_heads = 1;
  const int64_t B = 2, L = 256, n = 4;
  const int threads = omp_get_max_threads();
  const int64_t none = estimate_training_memory(c, B, L, "adam", threads, 0).total();
  const int64_t rows = B * L, D = c.hidden_size, F = c.feed_forward_size, H = c.num_attention_heads,
                Hd = H * c.attention_head_size, f = static_cast<int64_t>(sizeof(float));
  // X2, Y1 and the feed-forward's ReLU activation of every position; local layers keep q, k, v, o
  // and the logsumexp, LSH layers qk and v. A layer that keeps its input keeps X2 alone.
  const int64_t x2 = rows * D * f;
  std::vector<int64_t> full;
  for (int64_t l = 0; l < n; ++l) {
    const StoredLayerBytes b = stored_layer_bytes(c, B, L, l);
    EXPECT_EQ(b.activations, (2 * D + F) * rows * f) << l;
    EXPECT_EQ(b.workspace, (l % 2 == 0 ? 4 * rows * Hd + H * rows : 2 * rows * Hd) * f) << l;
    EXPECT_EQ(kept_layer_bytes(c, B, L, l, LayerKeep::all).total(), b.total()) << l;
    EXPECT_EQ(kept_layer_bytes(c, B, L, l, LayerKeep::input).total(), x2) << l;
    full.push_back(b.total());
  }
  // The candidates worked out here from the rules: k lowest layers stored (the top one without its
  // Y1), then m keeping X2. FLOPs per token: a stored layer skips its FF's two products and its
  // projections, one keeping X2 the FF's output product, and a layer under a stored one keeps its
  // Y1, which spares the layer above the output projection that reconstructs it.
  const double tokens = static_cast<double>(rows), ff = tokens * 2.0 * D * F, proj = tokens * 2.0 * D * Hd;
  auto projections = [](int64_t l) { return l % 2 == 0 ? 3.0 : 2.0; };
  auto bytes_of = [&](int64_t k, int64_t m) {
    int64_t b = m * x2;
    for (int64_t l = 0; l < k; ++l) b += full[static_cast<size_t>(l)];
    return k > 0 ? b - x2 : b;
  };
  auto saved_of = [&](int64_t k, int64_t m) {
    double s = static_cast<double>(m) * ff + static_cast<double>(std::max<int64_t>(k - 1, 0)) * proj;
    for (int64_t l = 0; l < k; ++l) s += 2 * ff + projections(l) * proj;
    return s;
  };
  double reversible = 0;
  for (int64_t l = 0; l < n; ++l) reversible += 2 * ff + projections(l) * proj + (l > 0 ? proj : 0.0);
  int checked_stored = 0, checked_inputs = 0;
  for (int64_t budget = static_cast<int64_t>(static_cast<double>(none) / kPlanBudgetShare) - x2;
       budget < static_cast<int64_t>(static_cast<double>(none + bytes_of(n, 0)) / kPlanBudgetShare) + x2;
       budget += x2 / 3) {
    SCOPED_TRACE(testing::Message() << "budget " << budget);
    const double room = kPlanBudgetShare * static_cast<double>(budget) - static_cast<double>(none);
    int64_t want_k = 0, want_m = 0;  // below the reversible plan's memory: nothing kept
    double want_saved = 0;
    for (int64_t k = 0; k <= n && static_cast<double>(bytes_of(k, 0)) <= room; ++k) {
      int64_t m = 0;
      while (k + m < n && static_cast<double>(bytes_of(k, m + 1)) <= room) ++m;
      if (saved_of(k, m) >= want_saved - 1e-6 * reversible) {  // ties: more layers stored
        want_k = k;
        want_m = m;
        want_saved = saved_of(k, m);
      }
    }
    const LayerPlan plan = plan_stored_layers(c, B, L, "adam", threads, budget);
    EXPECT_EQ(plan.stored_count, want_k);
    EXPECT_EQ(plan.input_count, want_m);
    ASSERT_EQ(plan.keep.size(), static_cast<size_t>(n));
    for (int64_t l = 0; l < n; ++l)
      EXPECT_EQ(plan.keep[static_cast<size_t>(l)],
                l < want_k ? LayerKeep::all : l < want_k + want_m ? LayerKeep::input : LayerKeep::nothing) << l;
    EXPECT_EQ(plan.budget, budget);
    EXPECT_EQ(plan.kept_bytes, bytes_of(want_k, want_m));
    EXPECT_EQ(plan.estimate.total(), none + plan.kept_bytes);
    if (room >= 0) EXPECT_LE(static_cast<double>(plan.estimate.total()), kPlanBudgetShare * static_cast<double>(budget));
    EXPECT_NEAR(plan.recompute_flops, reversible, 1e-9 * reversible);
    EXPECT_NEAR(plan.recompute_flops_saved, want_saved, 1e-9 * reversible);
    checked_stored = std::max(checked_stored, static_cast<int>(want_k));
    checked_inputs = std::max(checked_inputs, static_cast<int>(want_m));
    if (want_k == 1 && want_m == 0)
      EXPECT_EQ(describe_plan(plan), "layer 0 of 4 stored (" + format_bytes(plan.kept_bytes) + " kept), 3 reversible");
    if (want_k == 1 && want_m == 2)
      EXPECT_EQ(describe_plan(plan), "layer 0 of 4 stored, layers 1-2 keep X2 (" + format_bytes(plan.kept_bytes) +
                                         " kept), 1 reversible");
    if (want_k == 0 && want_m == 4)
      EXPECT_EQ(describe_plan(plan), "layers 0-3 of 4 keep X2 (" + format_bytes(plan.kept_bytes) + " kept)");
  }
  EXPECT_EQ(checked_stored, 4);  // the budgets went from nothing kept to every layer stored
  EXPECT_EQ(checked_inputs, 4);
  // One stored layer and three keeping X2 skip more than two stored, in less memory: the planner
  // takes them although two stored would fit.
  const int64_t two = static_cast<int64_t>(static_cast<double>(none + bytes_of(2, 0) + x2 / 2) / kPlanBudgetShare);
  ASSERT_GT(saved_of(1, 3), saved_of(2, 0));
  ASSERT_LT(bytes_of(1, 3), bytes_of(2, 0));
  ASSERT_GT(bytes_of(2, 1), bytes_of(2, 0) + x2 / 2);  // two stored leave no room for an X2
  EXPECT_EQ(plan_stored_layers(c, B, L, "adam", threads, two).stored_count, 1);
  EXPECT_EQ(plan_stored_layers(c, B, L, "adam", threads, two).input_count, 3);
  // A huge budget stores every layer; one below the reversible plan keeps nothing.
  EXPECT_EQ(plan_stored_layers(c, B, L, "adam", threads, int64_t{1} << 50).stored_count, 4);
  EXPECT_EQ(plan_stored_layers(c, B, L, "adam", threads, none / 2).stored_count, 0);
  EXPECT_EQ(plan_stored_layers(c, B, L, "adam", threads, none / 2).input_count, 0);
  EXPECT_EQ(describe_plan(plan_stored_layers(c, B, L, "adam", threads, none / 2)), "all 4 layers reversible");
  EXPECT_EQ(describe_plan(plan_stored_layers(c, B, L, "adam", threads, int64_t{1} << 50)),
            "all 4 layers stored (" + format_bytes(bytes_of(4, 0)) + " kept)");
}

}  // namespace
}  // namespace reformer
