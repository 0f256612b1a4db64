// Training data and logging: file reading (plain, gzip, dictzip), byte-level splits and windows,
// the copy task, the JSON-lines metrics log, and the errors of each.
#include <gtest/gtest.h>

#include "support/expect_error.h"
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "reformer/error.h"
#include "reformer/rng.h"
#include "train/byte_data.h"
#include "train/copy_task.h"
#include "train/metrics_log.h"
#include "train/read_bytes.h"

using namespace reformer;
namespace fs = std::filesystem;

namespace {

using test::expect_error;

// A fresh directory per test, removed afterwards.
class TempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("reformer_test_train_data_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

std::vector<uint8_t> random_bytes(size_t n, uint64_t seed) {
  std::vector<uint8_t> out(n);
  const uint64_t stream = rng_stream(RngPurpose::Data, {99});
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(philox(seed, stream, i).v[0]);
  out[0] = 'a';  // never the gzip magic
  return out;
}

void write_plain(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

void write_gzip(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile gz = gzopen(path.c_str(), "wb1");
  ASSERT_NE(gz, nullptr);
  ASSERT_EQ(gzwrite(gz, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(gz), Z_OK);
}

std::vector<int32_t> as_ids(std::span<const uint8_t> bytes) {
  std::vector<int32_t> out;
  for (uint8_t b : bytes) out.push_back(b + kByteIdOffset);
  return out;
}

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

}  // namespace

using ReadBytes = TempDir;

TEST_F(ReadBytes, PlainAndGzipRoundTrip) {
  const std::vector<uint8_t> data = random_bytes(100000, 1);
  write_plain(path("a.txt"), data);
  write_gzip(path("a.txt.gz"), data);
  EXPECT_EQ(read_file_bytes(path("a.txt")), data);
  EXPECT_EQ(read_file_bytes(path("a.txt.gz")), data);
}

TEST_F(ReadBytes, GzipLargerThanTheFirstReadBuffer) {
  std::vector<uint8_t> data(24u << 20);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>('a' + i % 23);
  write_gzip(path("big.gz"), data);
  EXPECT_TRUE(read_file_bytes(path("big.gz")) == data);
}

TEST_F(ReadBytes, ClearErrors) {
  expect_error([&] { read_file_bytes(path("missing.txt")); }, "'" + path("missing.txt") + "' does not exist");
  expect_error([&] { read_file_bytes(dir_.string()); }, "is a directory, not a file");
  write_plain(path("empty.txt"), {});
  expect_error([&] { read_file_bytes(path("empty.txt")); }, "'" + path("empty.txt") + "' is empty");
  write_plain(path("corrupt.gz"), {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 'n', 'o', 't', ' ', 'd', 'e', 'f', 'l', 'a', 't', 'e'});
  expect_error([&] { read_file_bytes(path("corrupt.gz")); }, "corrupt or truncated gzip file '" + path("corrupt.gz"));
  write_gzip(path("whole.gz"), random_bytes(5000, 2));
  std::ifstream raw(path("whole.gz"), std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(raw)), std::istreambuf_iterator<char>());
  bytes.resize(bytes.size() / 2);
  write_plain(path("truncated.gz"), bytes);
  expect_error([&] { read_file_bytes(path("truncated.gz")); }, "corrupt or truncated");
}

// Its speed belongs to benchmarks, not here: a timed assertion failed under a loaded machine.
TEST(ReadBytesGcide, DictzipFromDebianReadsWhole) {
  const std::string gcide = "/usr/share/dictd/gcide.dict.dz";
  if (!fs::exists(gcide)) GTEST_SKIP() << gcide << " not installed (Debian package dict-gcide)";
  const ByteDataset d = ByteDataset::from_file(gcide);
  const std::string head = "\n\n00-database-url\n   ftp://ftp.gnu.org/gnu/gcide\n";
  const std::span<const uint8_t> train = d.split(Split::Train);
  EXPECT_EQ(std::string(train.begin(), train.begin() + head.size()), head);
  const size_t total = train.size() + d.split(Split::Validation).size() + d.split(Split::Test).size();
  EXPECT_GT(total, size_t{39000000}) << "the GCIDE text is about 40 MB";
}

using ByteData = TempDir;

TEST_F(ByteData, OneFileSplits90_5_5InOrder) {
  const std::vector<uint8_t> data = random_bytes(1001, 3);
  write_plain(path("d.txt"), data);
  const ByteDataset d = ByteDataset::from_file(path("d.txt"));
  ASSERT_EQ(d.split(Split::Train).size(), 900u);
  ASSERT_EQ(d.split(Split::Validation).size(), 50u);
  ASSERT_EQ(d.split(Split::Test).size(), 51u);
  EXPECT_TRUE(std::equal(d.split(Split::Train).begin(), d.split(Split::Train).end(), data.begin()));
  EXPECT_TRUE(std::equal(d.split(Split::Validation).begin(), d.split(Split::Validation).end(), data.begin() + 900));
  EXPECT_TRUE(std::equal(d.split(Split::Test).begin(), d.split(Split::Test).end(), data.begin() + 950));
}

TEST_F(ByteData, SeparateFilesPerSplit) {
  write_plain(path("train"), random_bytes(300, 1));
  write_gzip(path("valid.gz"), random_bytes(40, 2));
  write_plain(path("test"), random_bytes(20, 3));
  const ByteDataset d = ByteDataset::from_files(path("train"), path("valid.gz"), path("test"));
  EXPECT_EQ(d.split(Split::Train).size(), 300u);
  EXPECT_EQ(d.split(Split::Validation).size(), 40u);
  EXPECT_EQ(d.split(Split::Test).size(), 20u);
  EXPECT_TRUE(std::ranges::equal(d.split(Split::Validation), random_bytes(40, 2)));
}

TEST_F(ByteData, TrainWindowsAreSeededSubstringsOfTheTrainSplit) {
  write_plain(path("d.txt"), random_bytes(1000, 4));
  const ByteDataset d = ByteDataset::from_file(path("d.txt"));
  const std::vector<int32_t> train = as_ids(d.split(Split::Train));
  const int64_t B = 4, L = 100;
  TokenBatch a, again, other_step, other_seed;
  d.train_batch(a, B, L, /*seed=*/7, /*step=*/3);
  d.train_batch(again, B, L, 7, 3);
  d.train_batch(other_step, B, L, 7, 4);
  d.train_batch(other_seed, B, L, 8, 3);
  EXPECT_EQ(a.ids, again.ids);
  EXPECT_NE(a.ids, other_step.ids);
  EXPECT_NE(a.ids, other_seed.ids);
  EXPECT_EQ(a.labels, a.ids);
  // Every window lies inside the train split; over many steps the starts span all of it.
  int64_t min_start = 1 << 30, max_start = -1;
  for (int64_t step = 0; step < 100; ++step) {
    d.train_batch(a, B, L, 7, step);
    for (int64_t b = 0; b < B; ++b) {
      const auto first = a.ids.begin() + b * L;
      const auto at = std::search(train.begin(), train.end(), first, first + L);
      ASSERT_NE(at, train.end()) << "window " << b << " of step " << step << " is not in the train split";
      min_start = std::min<int64_t>(min_start, at - train.begin());
      max_start = std::max<int64_t>(max_start, at - train.begin());
    }
  }
  EXPECT_LT(min_start, 20);
  EXPECT_GT(max_start, 900 - L - 20);
}

TEST_F(ByteData, EvalWindowsCoverTheSplitExactlyOnce) {
  write_plain(path("d.txt"), random_bytes(1000, 5));
  const ByteDataset d = ByteDataset::from_file(path("d.txt"));  // validation: 50 bytes
  const int64_t L = 16, B = 3;
  ASSERT_EQ(d.eval_windows(Split::Validation, L), 4);  // 16 + 16 + 16 + 2
  std::vector<int32_t> seen;
  TokenBatch batch;
  int64_t real = 0;
  for (int64_t first = 0; first < d.eval_windows(Split::Validation, L); first += B) {
    real += d.eval_batch(batch, Split::Validation, first, B, L);
    ASSERT_EQ(batch.ids.size(), static_cast<size_t>(B * L));
    for (size_t i = 0; i < batch.ids.size(); ++i) {
      if (batch.ids[i] == kBytePadId) {
        EXPECT_EQ(batch.labels[i], kIgnoreLabel);
      } else {
        EXPECT_EQ(batch.labels[i], batch.ids[i]);
        seen.push_back(batch.ids[i]);
      }
    }
  }
  EXPECT_EQ(real, 4);
  EXPECT_EQ(seen, as_ids(d.split(Split::Validation)));
  EXPECT_EQ(d.eval_windows(Split::Test, 25), 2);  // exact multiple: no padded window
}

TEST_F(ByteData, ClearErrors) {
  write_plain(path("d.txt"), random_bytes(1000, 6));
  const ByteDataset d = ByteDataset::from_file(path("d.txt"));
  TokenBatch batch;
  expect_error([&] { d.eval_batch(batch, Split::Validation, 0, 1, 64); },
               "the validation split of '" + path("d.txt") + "' has 50 bytes, fewer than one window of 64; pass a "
               "--seq-len of at most 50");
  expect_error([&] { d.train_batch(batch, 1, 2000, 1, 1); }, "train split");
  expect_error([&] { d.train_batch(batch, 0, 16, 1, 1); }, "batch 0");
  expect_error([&] { d.eval_batch(batch, Split::Test, 4, 1, 16); }, "window 4 is outside the 4 windows");
  expect_error([&] { ByteDataset::from_file(path("nope")); }, "'" + path("nope") + "' does not exist");
}

TEST(CopyTask, SequencesAre0w0wScoredOnTheSecondCopy) {
  const CopyTask task{64, 13};
  const int64_t B = 8, L = task.length, h = L / 2;
  TokenBatch batch;
  copy_task_batch(batch, task, B, /*seed=*/5, /*step=*/2);
  std::set<int32_t> symbols;
  for (int64_t b = 0; b < B; ++b) {
    const int32_t* ids = batch.ids.data() + b * L;
    const int32_t* labels = batch.labels.data() + b * L;
    EXPECT_EQ(ids[0], 0);
    EXPECT_EQ(ids[h], 0);
    for (int64_t j = 1; j < h; ++j) {
      EXPECT_EQ(ids[h + j], ids[j]);
      EXPECT_GE(ids[j], 1);
      EXPECT_LT(ids[j], task.vocab);
      symbols.insert(ids[j]);
    }
    for (int64_t t = 0; t < L; ++t) EXPECT_EQ(labels[t], t > h ? ids[t] : kIgnoreLabel) << "position " << t;
  }
  EXPECT_EQ(symbols.size(), static_cast<size_t>(task.vocab - 1)) << "every symbol 1..vocab-1 appears";
  EXPECT_NE(std::vector<int32_t>(batch.ids.begin(), batch.ids.begin() + L),
            std::vector<int32_t>(batch.ids.begin() + L, batch.ids.begin() + 2 * L));
}

TEST(CopyTask, DeterministicPerSeedAndStep) {
  const CopyTask task;  // the paper's: vocab 128, length 1024
  TokenBatch a, b, c;
  copy_task_batch(a, task, 2, 1, 10);
  copy_task_batch(b, task, 2, 1, 10);
  copy_task_batch(c, task, 2, 1, 11);
  EXPECT_EQ(a.ids, b.ids);
  EXPECT_NE(a.ids, c.ids);
  EXPECT_EQ(a.ids.size(), 2u * 1024u);
}

TEST(CopyTask, ClearErrors) {
  TokenBatch batch;
  expect_error([&] { copy_task_batch(batch, {63, 128}, 1, 1, 1); }, "length 63 must be even");
  expect_error([&] { copy_task_batch(batch, {2, 128}, 1, 1, 1); }, "at least 4");
  expect_error([&] { copy_task_batch(batch, {64, 1}, 1, 1, 1); }, "vocabulary 1");
  expect_error([&] { copy_task_batch(batch, {64, 128}, 0, 1, 1); }, "batch 0");
}

using Metrics = TempDir;

TEST_F(Metrics, OneFlushedObjectPerLineAndResumeKeepsEarlierSteps) {
  const std::string log = path("metrics.jsonl");
  {
    MetricsLog m(log, std::nullopt);
    for (int64_t step = 1; step <= 3; ++step) {
      nlohmann::json r = step_record(step, std::log(2.0) * step, 1e-3, 5000.0, 0.5 * step);
      r["split"] = "train";
      m.write(r);
      EXPECT_EQ(lines_of(log).size(), static_cast<size_t>(step)) << "flushed per line";
    }
  }
  const nlohmann::json first = nlohmann::json::parse(lines_of(log)[0]);
  EXPECT_EQ(first["step"], 1);
  EXPECT_DOUBLE_EQ(first["bits_per_byte"].get<double>(), 1.0);
  for (const char* key : {"loss", "lr", "tokens_per_s", "wall_s", "peak_bytes", "peak_rss_bytes", "split"})
    EXPECT_TRUE(first.contains(key)) << key;
  std::ofstream(log, std::ios::app) << "{\"step\": 4, \"lo";  // a crash mid-line
  {
    MetricsLog m(log, /*resume_step=*/2);
    m.write({{"step", 3}, {"loss", 0.5}});
  }
  const std::vector<std::string> lines = lines_of(log);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(nlohmann::json::parse(lines[1])["step"], 2);
  EXPECT_EQ(nlohmann::json::parse(lines[2])["loss"], 0.5);
  MetricsLog fresh(log, std::nullopt);
  EXPECT_TRUE(lines_of(log).empty());
}

TEST_F(Metrics, ClearErrors) {
  expect_error([&] { MetricsLog m(path("no/such/dir/m.jsonl"), std::nullopt); }, "directory exists");
  MetricsLog m(path("m.jsonl"), std::nullopt);
  expect_error([&] { m.write(nlohmann::json::array({1, 2})); }, "must be a JSON object");
}
