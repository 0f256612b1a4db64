// Data-parallel training over MPI (issue 13, docs/DISTRIBUTED.md). `mpirun -np 2 --oversubscribe`
// with one thread per rank: 2 ranks equal 1 rank with double accumulation (losses, validation and
// final weights within kDataParallelWeightTol) for local, LSH and mixed models with dropout on; a 2-rank
// run resumed on 1 and on 2 ranks gives the uninterrupted losses; SIGTERM to one rank saves once and
// stops all; a killed or hung rank ends the job (within the timeout) with only complete checkpoints.
// Also, without MPI: the gradient arena's groups and the order the backward finishes them.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "reformer/safetensors.h"
#include "reformer/model.h"
#include "support/run_cli.h"
#include "support/run_dir.h"
#include "support/tolerance.h"
#include "reformer/memory_estimate.h"

namespace {

namespace fs = std::filesystem;
using reformer::test::Outcome;
using reformer::test::sh;

const std::string kModel =
    " --hidden-size 64 --heads 2 --head-size 32 --seq-len 128 --lsh-chunk 32 --local-chunk 32 --batch 2"
    " --threads 1 --dropout 0.1 --lr 3e-3 --warmup 2 --schedule constant --optimizer adafactor --log-interval 50";

// mpirun as CI runs it (as root) with a timeout, so that a hang fails instead of blocking the suite.
std::string mpirun(int ranks, const std::string& args, int timeout_s = 120) {
  return "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout " + std::to_string(timeout_s) +
         " mpirun -np " + std::to_string(ranks) + " --oversubscribe \"$R\" " + args;
}

std::vector<double> losses(const fs::path& run, const std::string& split) { return reformer::test::logged_losses(run, split); }

// |a[i] - b[i]| / (atol + rtol |b[i]|) for each i (<= 1 passes).
std::vector<double> misfits(const std::vector<double>& a, const std::vector<double>& b, reformer::test::Tolerance tol) {
  std::vector<double> m;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) m.push_back(std::abs(a[i] - b[i]) / (tol.atol + tol.rtol * std::abs(b[i])));
  return m;
}
double worst(const std::vector<double>& a, const std::vector<double>& b, reformer::test::Tolerance tol) {
  const std::vector<double> m = misfits(a, b, tol);
  return m.empty() ? 0 : *std::max_element(m.begin(), m.end());
}

void expect_same_weights(const fs::path& got, const fs::path& want, reformer::test::Tolerance tol) {
  const auto a = reformer::SafetensorsFile::open((got / "model.safetensors").string());
  const auto b = reformer::SafetensorsFile::open((want / "model.safetensors").string());
  ASSERT_EQ(a.names(), b.names());
  for (const std::string& name : a.names()) {
    const reformer::Tensor x = a.read_f32(name, reformer::MemCategory::Workspace);
    const reformer::Tensor y = b.read_f32(name, reformer::MemCategory::Workspace);
    ASSERT_EQ(x.numel(), y.numel()) << name;
    EXPECT_CLOSE(x.data(), y.data(), x.numel(), tol, name);
  }
}

class Distributed : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(reformer::test::make_run_dir("reformer_dist_"));
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  void SetUp() override {
    if (sh("mpirun --version").rc != 0) GTEST_SKIP() << "no mpirun (scripts/bootstrap.sh installs openmpi-bin)";
  }
  static std::string path(const std::string& name) { return (*dir_ / name).string(); }
  static std::string train(const std::string& out, const std::string& layers) {
    return "train --data " + path("text.txt") + " --out " + path(out) + " --attn-layers " + layers + kModel;
  }
  static fs::path* dir_;
};

fs::path* Distributed::dir_ = nullptr;

TEST_F(Distributed, TwoRanksEqualOneRankWithDoubleAccumulation) {
  for (const char* layers : {"local,local", "lsh,lsh", "local,lsh"}) {
    SCOPED_TRACE(layers);
    const std::string one = std::string("one-") + layers, two = std::string("two-") + layers;
    // lr 1e-3 keeps 100 steps away from the regime where training amplifies any perturbation:
    // with Adam at this lr the losses agree to 1e-8 for 50 steps and then separate (measured 2e-4
    // to 6e-3 by step 100), with lr 3e-3 already from step 30.
    const std::string steps = " --steps 100 --eval-interval 50 --eval-windows 8 --lr 1e-3";
    const Outcome a = sh("timeout 120 \"$R\" " + train(one, layers) + steps + " --grad-accum 4");
    ASSERT_EQ(a.rc, 0) << a.out;
    const Outcome b = sh(mpirun(2, train(two, layers) + steps + " --grad-accum 2"));
    ASSERT_EQ(b.rc, 0) << b.out;
    const auto want = losses(*dir_ / one, "train"), got = losses(*dir_ / two, "train");
    ASSERT_EQ(want.size(), 100u);
    ASSERT_EQ(got.size(), want.size());
    std::printf("%s: worst loss difference %.3g of the tolerance\n", layers, worst(got, want, reformer::test::kDataParallelTol));
    // LSH's bucket of a position is an argmax, so once the rounding difference of the sums has fed
    // back into the weights (Adafactor moves a ~0-gradient element by a step either way), it can
    // flip a bucket on some step: seen in the LSH-only model, steps 71 and 87 of 100 off by 1.5e-4
    // and 9e-5 with the steps around them at 5e-7. So: the first 50 steps within the tolerance for
    // every model (a wrong reduction shows from step 2); after that, with LSH layers, at most 5
    // steps outside it, each within kLshBucketFlipTol, and then the weights within
    // kDataParallelFlipWeightTol, since those steps' updates differed.
    const std::vector<double> m = misfits(got, want, reformer::test::kDataParallelTol);
    const bool lsh = std::string(layers).find("lsh") != std::string::npos;
    size_t outliers = 0;
    for (size_t i = 0; i < m.size(); ++i) {
      if (m[i] <= 1.0) continue;
      ++outliers;
      EXPECT_TRUE(lsh && i >= 50) << "step " << i + 1 << ": " << got[i] << " vs " << want[i];
      EXPECT_LE(std::abs(got[i] - want[i]), reformer::test::kLshBucketFlipTol * std::abs(want[i])) << "step " << i + 1;
    }
    EXPECT_LE(outliers, 5u);
    EXPECT_NE(got.front(), got.back());  // it trained
    const auto want_eval = losses(*dir_ / one, "validation"), got_eval = losses(*dir_ / two, "validation");
    ASSERT_EQ(want_eval.size(), 2u);
    ASSERT_EQ(got_eval.size(), 2u);
    EXPECT_LE(worst(got_eval, want_eval, reformer::test::kDataParallelTol), 1.0);  // sharded evaluation
    expect_same_weights(*dir_ / two, *dir_ / one,
                        outliers == 0 ? reformer::test::kDataParallelWeightTol : reformer::test::kDataParallelFlipWeightTol);
    // Only rank 0 wrote: one progress stream, one metrics record per step.
    EXPECT_EQ(b.out.find("model: "), b.out.rfind("model: ")) << b.out;
  }
}

// A 2-rank run of 4 steps, resumed to 8 on 2 ranks (bit for bit the uninterrupted run) and on 1 rank
// with the global batch kept (its gradient sums run in another order: within kDataParallelTol).
TEST_F(Distributed, ResumeOnOneAndOnTwoRanksGivesTheUninterruptedLosses) {
  ASSERT_EQ(sh(mpirun(2, train("whole", "local,lsh") + " --steps 8")).rc, 0);
  ASSERT_EQ(sh(mpirun(2, train("half", "local,lsh") + " --steps 4")).rc, 0);
  fs::copy(*dir_ / "half", *dir_ / "half1", fs::copy_options::recursive);
  const Outcome two = sh(mpirun(2, "train --out " + path("half") + " --resume --steps 8"));
  ASSERT_EQ(two.rc, 0) << two.out;
  EXPECT_NE(two.out.find("resuming from step 4"), std::string::npos) << two.out;
  EXPECT_EQ(losses(*dir_ / "half", "train"), losses(*dir_ / "whole", "train"));
  const Outcome one = sh("timeout 60 \"$R\" train --out " + path("half1") + " --resume --steps 8 --threads 1");
  ASSERT_EQ(one.rc, 0) << one.out;
  ASSERT_EQ(losses(*dir_ / "half1", "train").size(), 8u);
  EXPECT_LE(worst(losses(*dir_ / "half1", "train"), losses(*dir_ / "whole", "train"), reformer::test::kDataParallelTol), 1.0);
  // 3 ranks cannot share 2 micro-batches per step: refused, naming both.
  const Outcome three = sh(mpirun(3, "train --out " + path("half") + " --resume --steps 12"));
  EXPECT_NE(three.rc, 0);
  EXPECT_NE(three.out.find("takes 2 micro-batches per step (--grad-accum 1 x 2 ranks), which 3 ranks cannot share"),
            std::string::npos) << three.out;
}

// Starts a long 2-rank run in the background; returns the shell line's prefix that waits until the
// run has written `records` metrics lines and sets $P to rank `rank`'s process id.
std::string start_then_find_rank(const std::string& out, const std::string& run, int records) {
  return "(" + run + " > " + out + ".log 2>&1; echo $? > " + out + ".rc) & " +
         "for i in $(seq 600); do [ $(cat " + out + "/metrics.jsonl 2>/dev/null | wc -l) -ge " + std::to_string(records) +
         " ] && break; sleep 0.1; done; P=$(pgrep -f -- \"^[^ ]*/reformer train --data [^ ]* --out " + out + " \" | tail -1); ";
}

std::string wait_for_exit(const std::string& out) {
  return "for i in $(seq 600); do [ -s " + out + ".rc ] && break; sleep 0.1; done; cat " + out + ".rc " + out + ".log";
}

TEST_F(Distributed, SigtermOnOneRankSavesOnceAndStopsEveryRank) {
  const std::string out = path("term");
  const Outcome r = sh(start_then_find_rank(out, mpirun(2, train("term", "local,lsh") + " --steps 100000"), 5) +
                       "kill -TERM $P; " + wait_for_exit(out));
  EXPECT_EQ(r.out.substr(0, 4), "130\n") << r.out;  // the interrupted exit status
  EXPECT_NE(r.out.find("interrupted at step"), std::string::npos) << r.out;
  int checkpoints = 0;
  for (const auto& e : fs::directory_iterator(out)) checkpoints += e.path().filename().string().rfind("checkpoint-", 0) == 0;
  EXPECT_EQ(checkpoints, 1);
  const Outcome resumed = sh(mpirun(2, "train --out " + out + " --resume --steps " +
                                           std::to_string(losses(out, "train").size() + 2)));
  EXPECT_EQ(resumed.rc, 0) << resumed.out;
}

// kill -9 of rank 1 mid-run (saving every 3 steps, so the kill may land in a save too): mpirun ends
// the job, and whatever was on disk resumes from a complete checkpoint.
TEST_F(Distributed, AKilledRankEndsTheJobAndLeavesOnlyCompleteCheckpoints) {
  const std::string out = path("killed");
  const auto t0 = std::chrono::steady_clock::now();
  const Outcome r = sh(start_then_find_rank(out, mpirun(2, train("killed", "local,lsh") + " --steps 100000 --save-interval 3"), 10) +
                       "kill -KILL $P; " + wait_for_exit(out));
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 60.0);
  EXPECT_NE(r.out.substr(0, 2), "0\n") << r.out;
  EXPECT_NE(r.out.find("exited on signal 9"), std::string::npos) << r.out;
  const Outcome resumed = sh(mpirun(2, "train --out " + out + " --resume --steps " +
                                           std::to_string(losses(out, "train").size() + 3)));
  EXPECT_EQ(resumed.rc, 0) << resumed.out;
  EXPECT_NE(resumed.out.find("resuming from step"), std::string::npos) << resumed.out;
}

// A rank that hangs (SIGSTOP) instead of dying: the other gives up after REFORMER_DIST_TIMEOUT.
TEST_F(Distributed, AHungRankEndsTheJobAfterTheTimeout) {
  const std::string out = path("hung");
  const Outcome r = sh(start_then_find_rank(out, "REFORMER_DIST_TIMEOUT=3 " + mpirun(2, train("hung", "local,lsh") + " --steps 100000"), 5) +
                       "kill -STOP $P; " + wait_for_exit(out));
  EXPECT_NE(r.out.substr(0, 2), "0\n") << r.out;
  EXPECT_NE(r.out.find("did not complete within 3 s; another rank has died or hangs"), std::string::npos) << r.out;
}

// The arena: every gradient in exactly one group, groups contiguous and in backward order; the hook
// reports each group when (and only when) its gradients are final.
TEST(GradArena, GroupsCoverEveryGradientInBackwardOrderAndAreFinalWhenReported) {
  reformer::ReformerConfig c;
  c.hidden_size = 32;
  c.num_attention_heads = 2;
  c.attention_head_size = 16;
  c.feed_forward_size = 64;
  c.attn_layers = {"local", "lsh", "local"};
  c.axial_pos_shape = {4, 8};
  c.axial_pos_embds_dim = {12, 20};
  c.is_decoder = true;
  c.max_position_embeddings = 32;
  c.local_attn_chunk_length = 8;
  c.lsh_attn_chunk_length = 8;
  c.num_buckets = {4};
  c.vocab_size = 20;
  c.hidden_dropout_prob = 0.1;
  reformer::ReformerModel model(c, 1);
  const auto& groups = model.grad_groups();
  ASSERT_EQ(groups.size(), 5u);
  std::vector<std::string> names;
  for (const auto& g : groups) names.push_back(g.name);
  EXPECT_EQ(names, (std::vector<std::string>{"head", "layer.2", "layer.1", "layer.0", "embeddings"}));
  for (size_t g = 1; g < groups.size(); ++g) EXPECT_EQ(groups[g].data, groups[g - 1].data + groups[g - 1].size);
  int64_t arena = 0, largest = 0;
  for (const auto& g : groups) {
    arena += g.size * 4;
    largest = std::max(largest, g.size * 4);
  }
  // What `reformer info` reports from the config alone.
  EXPECT_EQ(reformer::allreduce_plan(c).bytes, arena);
  EXPECT_EQ(reformer::allreduce_plan(c).largest_group_bytes, largest);
  EXPECT_EQ(reformer::allreduce_plan(c).groups, 5);
  for (auto& p : model.parameters()) {
    int owners = 0;
    for (const auto& g : groups) owners += p.grad->data() >= g.data && p.grad->data() + p.grad->numel() <= g.data + g.size;
    EXPECT_EQ(owners, 1) << p.name;
    const bool in_layer = p.name.rfind("reformer.encoder.layers.", 0) == 0;
    const std::string want = p.name.rfind("reformer.embeddings.", 0) == 0 ? "embeddings"
                             : in_layer ? "layer." + p.name.substr(24, p.name.find('.', 24) - 24) : "head";
    for (const auto& g : groups)
      if (p.grad->data() >= g.data && p.grad->data() < g.data + g.size) EXPECT_EQ(g.name, want) << p.name;
  }
  std::vector<int> ids(2 * 32), order;
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = 2 + static_cast<int>(i * 7 % 18);
  std::vector<std::vector<float>> at_hook(groups.size());
  std::vector<double> next_norm(groups.size(), -1);
  model.set_grad_ready_hook([&](int g) {
    order.push_back(g);
    at_hook[g].assign(groups[g].data, groups[g].data + groups[g].size);
    if (g + 1 < static_cast<int>(groups.size())) {  // reported as soon as final: the next group is untouched yet
      next_norm[g] = 0;
      for (int64_t i = 0; i < groups[g + 1].size; ++i) next_norm[g] += groups[g + 1].data[i] * groups[g + 1].data[i];
    }
  });
  model.zero_grad();
  reformer::StepOptions opt;
  opt.seed = 3;
  model.forward_backward({ids.data(), 2, 32, nullptr, nullptr}, opt);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
  for (size_t g = 0; g < groups.size(); ++g) {
    EXPECT_EQ(at_hook[g], std::vector<float>(groups[g].data, groups[g].data + groups[g].size)) << groups[g].name;
    double norm = 0;
    for (float v : at_hook[g]) norm += v * v;
    EXPECT_GT(norm, 0) << groups[g].name;
    if (g + 1 < groups.size()) EXPECT_EQ(next_norm[g], 0) << groups[g].name;
  }
}

}  // namespace
