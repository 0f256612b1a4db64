// What an operator of a long training run relies on (issue 10): a kill at any point of a checkpoint
// save loses nothing (the resumed run computes the losses of an uninterrupted one), --save-total-limit
// keeps the newest checkpoints, a failed save leaves no staged files, a failed run leaves no empty
// --out, and --resume neither duplicates the log of a finished run nor refuses flags repeated with
// the run's own values.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/run_cli.h"

namespace {

namespace fs = std::filesystem;
using reformer::test::Outcome;
using reformer::test::reformer;
using reformer::test::sh;

const std::string kTiny =
    " --hidden-size 64 --heads 2 --head-size 32 --attn-layers local,lsh --seq-len 128 --lsh-chunk 32 --local-chunk 32"
    " --batch 4 --threads 1 --dropout 0 --lr 3e-3 --warmup 2 --optimizer adafactor";

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<double> train_losses(const fs::path& run) {
  std::vector<double> losses;
  std::ifstream in(run / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j["split"] == "train") losses.push_back(j["loss"].get<double>());
  }
  return losses;
}

std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

class TrainRuns : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("reformer_runs_" + std::to_string(getpid())));
    fs::remove_all(*dir_);
    fs::create_directories(*dir_);
    std::string text;
    for (int i = 0; text.size() < 40000; ++i) text += "a dog ran to the red house " + std::to_string(i % 89) + ". ";
    std::ofstream(*dir_ / "text.txt") << text;
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  static std::string path(const std::string& name) { return (*dir_ / name).string(); }
  static std::string train(const std::string& out) { return "train --data " + path("text.txt") + " --out " + path(out) + kTiny; }

  static fs::path* dir_;
};

fs::path* TrainRuns::dir_ = nullptr;

// Every point between two steps of a save (train/trainer_state.cpp calls crash_point there). Each
// run is killed during its save at step 4, resumed, and must end with the losses and final model of
// the run that was never killed.
TEST_F(TrainRuns, KillAtEveryPointOfASaveThenResumeGivesTheUninterruptedLosses) {
  const std::string schedule = " --steps 6 --save-interval 2 --save-total-limit 1";
  ASSERT_EQ(reformer(train("whole") + schedule).rc, 0);
  const std::vector<double> whole = train_losses(*dir_ / "whole");
  ASSERT_EQ(whole.size(), 6u);
  EXPECT_EQ(entries(*dir_ / "whole"), (std::vector<std::string>{"checkpoint-6", "config.json", "metrics.jsonl", "model.safetensors"}));
  const std::string final_model = read_file(*dir_ / "whole" / "model.safetensors");
  EXPECT_EQ(read_file(*dir_ / "whole" / "checkpoint-6" / "model.safetensors"), final_model);

  for (const char* point : {"staged", "trainer-state-written", "model-written", "synced", "committed", "top-config",
                            "top-model", "pruned-one"}) {
    SCOPED_TRACE(point);
    const std::string out = std::string("killed-") + point;
    const Outcome killed = sh("REFORMER_CRASH_AT=" + std::string(point) + "@4 timeout 60 \"$R\" " + train(out) + schedule);
    ASSERT_EQ(killed.rc, 86) << killed.out;  // the injected crash's status: the save really was cut there
    // Whatever the kill left, the run directory still has a model that loads.
    const Outcome eval = reformer("eval --model " + path(out) + " --data " + path("text.txt") + " --max-windows 1 --threads 1");
    EXPECT_EQ(eval.rc, 0) << eval.out;
    const Outcome resumed = reformer("train --out " + path(out) + " --resume --threads 1");
    ASSERT_EQ(resumed.rc, 0) << resumed.out;
    const bool committed = std::string(point) != "staged" && std::string(point) != "trainer-state-written" &&
                           std::string(point) != "model-written" && std::string(point) != "synced";
    EXPECT_NE(resumed.out.find(committed ? "resuming from step 4" : "resuming from step 2"), std::string::npos) << resumed.out;
    if (!committed) EXPECT_NE(resumed.out.find("ignoring incomplete checkpoint"), std::string::npos) << resumed.out;
    EXPECT_EQ(train_losses(*dir_ / out), whole);
    EXPECT_EQ(read_file(*dir_ / out / "model.safetensors"), final_model);
    EXPECT_EQ(entries(*dir_ / out), entries(*dir_ / "whole"));  // staged leftovers and pruned checkpoints are gone
  }
}

TEST_F(TrainRuns, SaveTotalLimitKeepsTheNewestCheckpoints) {
  ASSERT_EQ(reformer(train("limit2") + " --steps 6 --save-interval 2 --save-total-limit 2").rc, 0);
  EXPECT_EQ(entries(*dir_ / "limit2"),
            (std::vector<std::string>{"checkpoint-4", "checkpoint-6", "config.json", "metrics.jsonl", "model.safetensors"}));
  ASSERT_EQ(reformer(train("all") + " --steps 6 --save-interval 2").rc, 0);
  EXPECT_EQ(entries(*dir_ / "all"), (std::vector<std::string>{"checkpoint-2", "checkpoint-4", "checkpoint-6", "config.json",
                                                               "metrics.jsonl", "model.safetensors"}));
}

// The trainer state is the largest file of a save; a file-size limit makes writing it fail (EFBIG)
// the way a full disk would.
TEST_F(TrainRuns, FailedSaveRemovesItsStagedFilesAndKeepsThePreviousCheckpoint) {
  ASSERT_EQ(reformer(train("fsize") + " --steps 2").rc, 0);
  const std::string before = read_file(*dir_ / "fsize" / "checkpoint-2" / "trainer_state.safetensors");
  const Outcome r = sh("trap '' XFSZ; ulimit -f 600; timeout 60 \"$R\" train --out " + path("fsize") + " --resume --steps 4 --threads 1");
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("File too large"), std::string::npos) << r.out;
  EXPECT_EQ(entries(*dir_ / "fsize"), (std::vector<std::string>{"checkpoint-2", "config.json", "metrics.jsonl", "model.safetensors"}));
  EXPECT_EQ(read_file(*dir_ / "fsize" / "checkpoint-2" / "trainer_state.safetensors"), before);
}

TEST_F(TrainRuns, AFailedRunLeavesNoOutputDirectoryBehind) {
  EXPECT_NE(reformer("train --data " + path("missing.txt") + " --out " + path("never") + kTiny).rc, 0);
  EXPECT_FALSE(fs::exists(path("never")));
  EXPECT_NE(reformer(train("never") + " --seq-len 1").rc, 0);  // a window needs 2 tokens
  EXPECT_FALSE(fs::exists(path("never")));
}

TEST_F(TrainRuns, ResumingAFinishedRunChangesNothing) {
  ASSERT_EQ(reformer(train("finished") + " --steps 2").rc, 0);
  const std::string metrics = read_file(*dir_ / "finished" / "metrics.jsonl");
  const Outcome r = reformer("train --out " + path("finished") + " --resume");
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("already finished"), std::string::npos) << r.out;
  EXPECT_EQ(read_file(*dir_ / "finished" / "metrics.jsonl"), metrics);
}

TEST_F(TrainRuns, ResumeAcceptsFlagsRepeatedWithTheRunsValues) {
  ASSERT_EQ(reformer(train("repeat") + " --layers 4 --steps 2").rc, 0);
  // The whole original command line again, with only --steps raised.
  const Outcome r = reformer(train("repeat") + " --layers 4 --steps 3 --resume");
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("resuming from step 2"), std::string::npos) << r.out;
  // A value that differs is still refused, naming the field it changes.
  const Outcome changed = reformer("train --out " + path("repeat") + " --resume --steps 4 --hidden-size 32");
  EXPECT_NE(changed.rc, 0);
  EXPECT_NE(changed.out.find("hidden_size"), std::string::npos) << changed.out;
}

}  // namespace
