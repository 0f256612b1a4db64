// reformer info: parameters per part and the memory a training step will need, from the config alone.
#include <cstdio>
#include <filesystem>
#include <optional>

#include "commands.h"
#include "common.h"
#include "model_flags.h"
#include "reformer/bytes.h"
#include "reformer/error.h"
#include "reformer/memory_estimate.h"
#include "reformer/threads.h"

namespace reformer::cli {
namespace {

struct InfoCommand {
  ModelFlags model;
  std::optional<std::string> model_dir;
  int64_t batch = 1, copy_vocab = 0, ranks = 1;
  std::string optimizer = "adam";
  std::optional<int> threads;
  std::string max_memory = "0";
};

void run_info(const CLI::App& cmd, const InfoCommand& c) {
  const ScopedThreads threads(thread_flag(c.threads));
  const int64_t max_memory = parse_memory_flag(c.max_memory);
  REFORMER_CHECK(!(c.model_dir && c.model.any_given(cmd)), "give either --model or model flags, not both");
  const ReformerConfig config = c.model_dir ? ReformerConfig::load((std::filesystem::path(*c.model_dir) / "config.json").string())
                                            : c.model.build(c.copy_vocab > 0 ? c.copy_vocab : kByteVocab);
  const int64_t L = config.max_length();
  std::printf("%-36s %14s\n", "part", "parameters");
  for (const PartCount& p : parameter_counts(config))
    std::printf("%-36s %14lld\n", p.part.c_str(), static_cast<long long>(p.parameters));
  std::printf("%-36s %14lld\n\n", "total", static_cast<long long>(count_parameters(config)));
  const MemoryEstimate m = estimate_training_memory(config, c.batch, L, c.optimizer, max_threads());
  std::printf("training step memory (batch %lld x seq len %lld, %s, %d threads):\n", static_cast<long long>(c.batch),
              static_cast<long long>(L), c.optimizer.c_str(), max_threads());
  for (auto [name, bytes] : {std::pair{"parameters", m.parameters}, {"gradients", m.gradients},
                             {"optimizer state", m.optimizer_state}, {"activations", m.activations},
                             {"workspace", m.workspace}, {"total", m.total()}})
    std::printf("  %-18s %12s  (%lld bytes)\n", name, format_bytes(bytes).c_str(), static_cast<long long>(bytes));
  const MemoryEstimate f = estimate_forward_memory(config, c.batch, L, max_threads(), /*logits=*/true);
  std::printf("\nforward memory (same shape, no gradients flow):\n");
  for (auto [name, bytes] : {std::pair{"reformer eval", f.total() - f.outputs}, {"reformer logits", f.total()}})
    std::printf("  %-18s %12s  (%lld bytes)\n", name, format_bytes(bytes).c_str(), static_cast<long long>(bytes));
  // Data parallelism (docs/DISTRIBUTED.md): every rank holds all of the above for its micro-batch.
  const AllReducePlan ar = allreduce_plan(config);
  std::printf("\ndata parallel over %lld rank(s): per rank %s (the table above; every rank holds a full replica)\n",
              static_cast<long long>(c.ranks), format_bytes(m.total()).c_str());
  std::printf("  all-reduce per step: %s (%lld bytes) of gradients in %lld groups (head, each layer, embeddings; largest "
              "%s)\n", format_bytes(ar.bytes).c_str(), static_cast<long long>(ar.bytes), static_cast<long long>(ar.groups),
              format_bytes(ar.largest_group_bytes).c_str());
  if (c.ranks > 1) {
    const double wire = 2.0 * static_cast<double>(c.ranks - 1) / static_cast<double>(c.ranks) * static_cast<double>(ar.bytes);
    std::printf("  a ring all-reduce sends and receives 2(N-1)/N of that per rank: %s each way\n",
                format_bytes(static_cast<int64_t>(wire)).c_str());
  }
  // The per-layer plan a training run would use with this budget (reformer/memory_estimate.h).
  const LayerPlan plan = plan_stored_layers(config, c.batch, L, c.optimizer, max_threads(), max_memory);
  std::printf("\nlayer plan (budget %s, %s): %s\n", format_bytes(plan.budget).c_str(),
              max_memory > 0 ? "--max-memory" : "memory available now", describe_plan(plan).c_str());
  for (size_t l = 0; l < plan.keep.size(); ++l)
    std::printf("  layer %-3zu %-6s %s\n", l, config.attn_layers[l].c_str(),
                plan.keep[l] == LayerKeep::all     ? "stored"
                : plan.keep[l] == LayerKeep::input ? "reversible, keeps X2"
                                                   : "reversible");
  std::printf("  predicted peak     %12s  (%lld bytes)\n", format_bytes(plan.estimate.total()).c_str(),
              static_cast<long long>(plan.estimate.total()));
  std::printf("  recomputation skipped: %.3g of %.3g GFLOP per step (the forward's matrix products the backward redoes)\n",
              plan.recompute_flops_saved / 1e9, plan.recompute_flops / 1e9);
  // The table is printed first, so the refusal below can be read against it.
  check_memory_plan(m, max_memory);
}

}  // namespace

void add_info_command(CLI::App& app, int& exit_code) {
  auto c = std::make_shared<InfoCommand>();
  CLI::App* cmd = app.add_subcommand("info", "Parameters per part and the memory a training step needs, before allocating anything");
  c->model.add_to(*cmd);
  cmd->add_option("--model", c->model_dir, "model directory instead of model flags");
  cmd->add_option("--batch", c->batch, "sequences per step")->capture_default_str();
  cmd->add_option("--optimizer", c->optimizer, "adam or adafactor (its state size)")->capture_default_str();
  cmd->add_option("--copy-vocab", c->copy_vocab, "vocabulary for a copy-task model (default: bytes, 258)");
  cmd->add_option("--threads", c->threads, "OpenMP threads (per-thread attention scratch)");
  cmd->add_option("--ranks", c->ranks, "data-parallel ranks (mpirun -np N): per-rank memory and all-reduce bytes")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--max-memory", c->max_memory, "fail (exit 1) when the plan exceeds this many bytes (or 24G; 0 = physical memory); also the layer plan's budget (0: the memory available now)")
      ->capture_default_str();
  cmd->callback([cmd, c, &exit_code] {
    run_info(*cmd, *c);
    exit_code = 0;
  });
}

}  // namespace reformer::cli
