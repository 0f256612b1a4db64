// End to end: `reformer tokenizer train`, a model trained, evaluated and sampled with the tokenizer,
// and windows of odd lengths, on text written here.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "reformer/tokenizer.h"
#include "support/run_cli.h"
#include "support/text_corpus.h"

namespace {

namespace fs = std::filesystem;
using reformer::test::Outcome;
using reformer::test::sh;

Outcome reformer(const std::string& args) { return sh("\"$R\" " + args); }

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

class CliTokenizer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("reformer_cli_tokenizer_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    text_ = reformer::test::text_corpus(400000, 7);
    std::ofstream(dir_ / "corpus.txt", std::ios::binary) << text_;
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static std::string p(const std::string& name) { return "'" + (dir_ / name).string() + "'"; }
  static fs::path dir_;
  static std::string text_;
};
fs::path CliTokenizer::dir_;
std::string CliTokenizer::text_;

TEST_F(CliTokenizer, TrainedTokenizerRoundTripsAndAModelTrainsEvaluatesAndGeneratesWithIt) {
  const Outcome help = reformer("tokenizer train --help");
  EXPECT_EQ(help.rc, 0);
  EXPECT_NE(help.out.find("ReformerTokenizer"), std::string::npos) << help.out;

  const Outcome tok = reformer("tokenizer train --data " + p("corpus.txt") + " --vocab-size 320 --out " + p("tok"));
  ASSERT_EQ(tok.rc, 0) << tok.out;
  EXPECT_NE(tok.out.find("decoding gives them back exactly"), std::string::npos) << tok.out;
  // The file the command wrote round-trips the whole corpus, byte for byte, and is HF's layout.
  const auto t = reformer::load_sentencepiece((dir_ / "tok" / "spiece.model").string());
  EXPECT_EQ(t->vocab_size(), 320);
  EXPECT_EQ(t->decode(t->encode(text_)), text_);
  EXPECT_LT(t->encode(text_).size(), text_.size() * 9 / 10) << "fewer tokens than bytes";
  EXPECT_NE(read_file(dir_ / "tok" / "tokenizer_config.json").find("ReformerTokenizer"), std::string::npos);

  // Refusals leave what is on disk alone.
  const std::string before = read_file(dir_ / "tok" / "spiece.model");
  const Outcome again = reformer("tokenizer train --data " + p("corpus.txt") + " --vocab-size 300 --out " + p("tok"));
  EXPECT_EQ(again.rc, 1);
  EXPECT_NE(again.out.find("already exists; choose another --out or pass --overwrite"), std::string::npos) << again.out;
  EXPECT_EQ(read_file(dir_ / "tok" / "spiece.model"), before);
  const Outcome big = reformer("tokenizer train --data " + p("corpus.txt") + " --vocab-size 1000000 --out " + p("big"));
  EXPECT_EQ(big.rc, 1);
  EXPECT_NE(big.out.find("--vocab-size 1000000 does not fit the training text"), std::string::npos) << big.out;
  EXPECT_FALSE(fs::exists(dir_ / "big"));

  // A model on the tokens: the loss falls, and the run's directory holds the tokenizer.
  const std::string model = " --hidden-size 64 --heads 2 --head-size 32 --attn-layers local,lsh --lsh-chunk 32 "
                            "--local-chunk 32 --dropout 0 --threads 2";
  const Outcome train = reformer("train --data " + p("corpus.txt") + " --tokenizer " + p("tok/spiece.model") + " --out " +
                                 p("run") + model + " --seq-len 200 --batch 4 --steps 40 --lr 3e-3 --log-interval 10 --eval-windows 8");
  ASSERT_EQ(train.rc, 0) << train.out;
  EXPECT_NE(train.out.find("seq len 200 (padded to 224), sentencepiece tokens"), std::string::npos) << train.out;
  const std::vector<double> losses = train_losses(dir_ / "run");
  ASSERT_EQ(losses.size(), 40u);
  EXPECT_NEAR(losses.front(), std::log(320.0), 0.5) << "starts near uniform over 320 tokens";
  double last = 0;
  for (size_t i = losses.size() - 5; i < losses.size(); ++i) last += losses[i] / 5;
  EXPECT_LT(last, losses.front() - 1.0) << "the loss falls";
  EXPECT_EQ(read_file(dir_ / "run" / "spiece.model"), before);
  EXPECT_EQ(read_file(dir_ / "run" / "checkpoint-40" / "spiece.model"), before);

  // eval finds the tokenizer in the model directory and reports bits per byte of text.
  const Outcome eval = reformer("eval --model " + p("run") + " --data " + p("corpus.txt") + " --max-windows 8 --threads 2");
  ASSERT_EQ(eval.rc, 0) << eval.out;
  EXPECT_NE(eval.out.find("tokens) scored in windows of 224"), std::string::npos) << eval.out;

  // generate prints text (the corpus' characters, no digits), not token ids.
  const Outcome gen = reformer("generate --model " + p("run") + " --prompt 'the ' --bytes 40 --seed 3 --threads 2");
  ASSERT_EQ(gen.rc, 0) << gen.out;
  EXPECT_GE(gen.out.size(), 40u) << "40 tokens of at least one byte each: " << gen.out;
  const std::set<char> alphabet(text_.begin(), text_.end());
  for (char ch : gen.out) EXPECT_TRUE(alphabet.count(ch)) << "not a corpus character: " << static_cast<int>(ch) << " in " << gen.out;
  EXPECT_EQ(gen.out.find_first_of("0123456789"), std::string::npos) << gen.out;

  // A tokenizer whose vocabulary is not the model's is refused, naming both.
  const Outcome bytes_run = reformer("train --data " + p("corpus.txt") + " --out " + p("bytes") + model +
                                     " --seq-len 64 --batch 1 --steps 1");
  ASSERT_EQ(bytes_run.rc, 0) << bytes_run.out;
  const Outcome mismatch = reformer("eval --model " + p("bytes") + " --data " + p("corpus.txt") + " --tokenizer " +
                                    p("tok/spiece.model"));
  EXPECT_EQ(mismatch.rc, 1);
  EXPECT_NE(mismatch.out.find("tokenizer has 320 tokens but the model in"), std::string::npos) << mismatch.out;
  EXPECT_NE(mismatch.out.find("has vocab_size 258"), std::string::npos) << mismatch.out;
}

// 1000-token windows with chunks of 64: padded to 1024, trained, resumed, evaluated at other odd lengths.
TEST_F(CliTokenizer, OddLengthsTrainAndEvaluate) {
  const std::string args = "train --data " + p("corpus.txt") + " --out " + p("odd") +
                           " --seq-len 1000 --lsh-chunk 64 --local-chunk 64 --hidden-size 32 --heads 2 --head-size 16 "
                           "--attn-layers local,lsh --batch 1 --log-interval 1 --eval-windows 2 --threads 2";
  const Outcome train = reformer(args + " --steps 3");
  ASSERT_EQ(train.rc, 0) << train.out;
  EXPECT_NE(train.out.find("seq len 1000 (padded to 1024)"), std::string::npos) << train.out;
  const std::vector<double> losses = train_losses(dir_ / "odd");
  ASSERT_EQ(losses.size(), 3u);
  for (double l : losses) EXPECT_TRUE(std::isfinite(l) && l > 0 && l < 10) << l;
  // The window is part of the run: a resume without --seq-len keeps it.
  const Outcome resumed = reformer("train --out " + p("odd") + " --data " + p("corpus.txt") + " --resume --steps 4 --threads 2");
  ASSERT_EQ(resumed.rc, 0) << resumed.out;
  EXPECT_NE(resumed.out.find("seq len 1000 (padded to 1024)"), std::string::npos) << resumed.out;
  for (const char* len : {"1000", "999", "130"}) {
    const Outcome eval = reformer("eval --model " + p("odd") + " --data " + p("corpus.txt") + " --max-windows 2 --threads 2 --seq-len " + len);
    ASSERT_EQ(eval.rc, 0) << eval.out;
    EXPECT_NE(eval.out.find(std::string("scored in windows of ") + len + ":"), std::string::npos) << eval.out;
  }
  const Outcome too_long = reformer("eval --model " + p("odd") + " --data " + p("corpus.txt") + " --seq-len 1025");
  EXPECT_EQ(too_long.rc, 1);
  EXPECT_NE(too_long.out.find("use a --seq-len of at most 1024"), std::string::npos) << too_long.out;
}

}  // namespace
