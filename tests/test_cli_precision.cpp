// `--precision fp32|bf16` of the `reformer` program (include/reformer/precision.h): refused with a
// clear message and nothing written where the CPU (or REFORMER_ISA) has no bf16; where it has,
// a bf16 run trains, and its checkpoint keeps the precision for --resume.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>

#include "reformer/precision.h"
#include "support/run_cli.h"
#include "support/run_dir.h"

namespace {

namespace fs = std::filesystem;
using reformer::test::Outcome;
using reformer::test::read_file;

const std::string kTiny =
    " --hidden-size 32 --heads 2 --head-size 16 --ff-size 64 --attn-layers local,lsh --seq-len 64 --lsh-chunk 16"
    " --local-chunk 16 --batch 2 --threads 1 --eval-windows 1 --log-interval 1";

Outcome run(const std::string& args) { return reformer::test::reformer(args); }

void expect_error(const Outcome& r, const std::string& message) {
  EXPECT_NE(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find(message), std::string::npos) << "expected \"" << message << "\" in:\n" << r.out;
}

class CliPrecision : public testing::Test {
 protected:
  void SetUp() override { dir_ = reformer::test::make_run_dir("reformer_precision_"); }
  void TearDown() override { fs::remove_all(dir_); }
  std::string train(const std::string& out) const { return "train --data " + (dir_ / "text.txt").string() + " --out " + out + kTiny; }
  fs::path dir_;
};

}  // namespace

TEST_F(CliPrecision, HelpNamesTheFlag) {
  for (const std::string cmd : {"train", "eval", "generate"}) {
    const Outcome r = run(cmd + " --help");
    EXPECT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("--precision"), std::string::npos) << cmd << ":\n" << r.out;
  }
}

// REFORMER_ISA=baseline turns the AVX-512 variants off, so bf16 is refused on any machine: the
// message names the flag, the CPU features it needs and the fix; the exit is non-zero and no
// output directory is left.
TEST_F(CliPrecision, Bf16IsRefusedWithoutAvx512Bf16OrAmx) {
  const fs::path out = dir_ / "run";
  const Outcome r = reformer::test::sh("REFORMER_ISA=baseline timeout 60 \"$R\" " + train(out.string()) + " --steps 2 --precision bf16");
  expect_error(r, "--precision bf16 needs");
  expect_error(r, "AVX512-BF16 or AMX-BF16");
  expect_error(r, "use --precision fp32");
  EXPECT_FALSE(fs::exists(out)) << "a refused run wrote " << out;
  for (const std::string cmd : {"eval --model " + out.string(), "generate --prompt x --model " + out.string()})
    expect_error(reformer::test::sh("REFORMER_ISA=baseline timeout 60 \"$R\" " + cmd + " --precision bf16"), "use --precision fp32");
  expect_error(run(train(out.string()) + " --steps 2 --precision fp16"), "--precision 'fp16' is not a precision");
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(CliPrecision, Bf16RunTrainsAndResumeKeepsThePrecision) {
  if (!reformer::precision_supported(reformer::Precision::bf16))
    GTEST_SKIP() << "this CPU has no AVX512-BF16 or AMX-BF16 (or REFORMER_ISA is below avx512): bf16 off";
  const fs::path out = dir_ / "run";
  const Outcome first = run(train(out.string()) + " --steps 2 --precision bf16");
  ASSERT_EQ(first.rc, 0) << first.out;
  const auto losses = reformer::test::logged_losses(out, "train");
  ASSERT_EQ(losses.size(), 2u);
  for (double l : losses) EXPECT_TRUE(std::isfinite(l));
  // The stored training options hold it, and a resumed run without the flag keeps it.
  EXPECT_NE(read_file(out / "checkpoint-2" / "trainer_state.safetensors").find("precision\\\":\\\"bf16"), std::string::npos);
  const Outcome resumed = run("train --out " + out.string() + " --resume --steps 3");
  ASSERT_EQ(resumed.rc, 0) << resumed.out;
  EXPECT_NE(read_file(out / "checkpoint-3" / "trainer_state.safetensors").find("precision\\\":\\\"bf16"), std::string::npos);
  // It may change on resume (a run can move to a CPU without bf16).
  const Outcome fp32 = run("train --out " + out.string() + " --resume --steps 4 --precision fp32");
  ASSERT_EQ(fp32.rc, 0) << fp32.out;
  EXPECT_NE(read_file(out / "checkpoint-4" / "trainer_state.safetensors").find("precision\\\":\\\"fp32"), std::string::npos);
  const Outcome eval = run("eval --model " + out.string() + " --data " + (dir_ / "text.txt").string() + " --max-windows 1 --seq-len 64 --precision bf16");
  EXPECT_EQ(eval.rc, 0) << eval.out;
}
