// Hostile-but-fair input against the `reformer` program (issue 10): one row per class of bad input,
// each with the message fragment it must print and the exit status it must end with (1 for a
// refused input, 105 for a flag value CLI11 rejects). No row may crash, hang or allocate its way into
// the OOM killer: every one is refused at load, before anything big is allocated.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/run_cli.h"

namespace {

namespace fs = std::filesystem;
using reformer::test::Outcome;
using reformer::test::reformer;

const std::string kTiny =
    " --hidden-size 64 --heads 2 --head-size 32 --attn-layers local,lsh --seq-len 128 --lsh-chunk 32 --local-chunk 32"
    " --batch 4 --threads 1 --dropout 0";

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const fs::path& p, const std::string& bytes) { std::ofstream(p, std::ios::binary) << bytes; }

// A safetensors file from header text and data bytes.
std::string safetensors_bytes(const std::string& header, const std::string& data = "") {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header + data;
}

class HostileInput : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("reformer_hostile_" + std::to_string(getpid())));
    fs::remove_all(*dir_);
    fs::create_directories(*dir_);
    std::string text;
    for (int i = 0; text.size() < 40000; ++i) text += "the cat sat on the mat " + std::to_string(i % 97) + ". ";
    write_file(*dir_ / "text.txt", text);
    // A finished one-step run: a valid model directory and checkpoint to break in many ways.
    const Outcome r = reformer("train --data " + path("text.txt") + " --out " + path("base") + kTiny + " --steps 1");
    ASSERT_EQ(r.rc, 0) << r.out;
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  static std::string path(const std::string& name) { return (*dir_ / name).string(); }

  // The base run's config.json with `key` set to the raw JSON text `value`.
  static std::string config_with(const std::string& name, const std::string& key, const std::string& value) {
    nlohmann::json j = nlohmann::json::parse(read_file(*dir_ / "base" / "config.json"));
    j[key] = "@@VALUE@@";
    std::string text = j.dump(2);
    text.replace(text.find("\"@@VALUE@@\""), 11, value);
    write_file(*dir_ / name, text);
    return path(name);
  }

  // A copy of the base model directory (config.json + model.safetensors) named `name`.
  static fs::path model_copy(const std::string& name) {
    const fs::path d = *dir_ / name;
    fs::create_directories(d);
    for (const char* f : {"config.json", "model.safetensors"}) fs::copy_file(*dir_ / "base" / f, d / f);
    return d;
  }

  // A copy of the base run whose checkpoint-1 trainer state carries `metadata` and no tensors.
  static std::string run_with_state(const std::string& name, const nlohmann::json& metadata) {
    const fs::path d = *dir_ / name;
    fs::copy(*dir_ / "base", d, fs::copy_options::recursive);
    write_file(d / "checkpoint-1" / "trainer_state.safetensors",
               safetensors_bytes(nlohmann::json{{"__metadata__", metadata}}.dump()));
    return d.string();
  }

  static fs::path* dir_;
};

fs::path* HostileInput::dir_ = nullptr;

struct Row {
  const char* what;
  std::function<std::string()> args;  // builds its files, returns the command's arguments
  std::string message;                // a fragment the output must contain
  int rc;
};

void run_rows(const std::vector<Row>& rows) {
  for (const Row& row : rows) {
    SCOPED_TRACE(row.what);
    const std::string args = row.args();
    const Outcome r = reformer(args);
    EXPECT_EQ(r.rc, row.rc) << "reformer " << args << "\n" << r.out;
    EXPECT_NE(r.out.find(row.message), std::string::npos) << "expected \"" << row.message << "\" from reformer " << args
                                                         << "\n" << r.out;
    EXPECT_EQ(r.out.find("terminate called"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("std::bad_alloc"), std::string::npos) << r.out;
  }
}

TEST_F(HostileInput, ConfigFieldsOutOfRangeOrOfTheWrongType) {
  auto info = [](const std::string& file) { return "info --config " + file; };
  run_rows({
      {"heads 2^53 (overflowed shape_numel)", [&] { return info(config_with("c1.json", "num_attention_heads", "9007199254740992")); },
       "num_attention_heads = 9007199254740992 must be between 1 and 4096", 1},
      {"local window 2^62 (overflowed the window size)", [&] { return info(config_with("c2.json", "local_num_chunks_before", "4611686018427387904")); },
       "local_num_chunks_before = 4611686018427387904 must be between 0 and 1024", 1},
      {"lsh chunks before 2^63-1 (threw inside OpenMP)", [&] { return info(config_with("c3.json", "lsh_num_chunks_before", "9223372036854775807")); },
       "lsh_num_chunks_before = 9223372036854775807 must be between 0 and 1024", 1},
      {"integer above int64", [&] { return info(config_with("c4.json", "vocab_size", "9223372036854775808")); },
       "\"vocab_size\" = 9223372036854775808 is larger than any size", 1},
      {"non-integer size", [&] { return info(config_with("c5.json", "hidden_size", "32.5")); },
       "\"hidden_size\" = 32.5 must be an integer", 1},
      {"size as a string", [&] { return info(config_with("c6.json", "hidden_size", "\"64\"")); },
       "\"hidden_size\" = \"64\" must be an integer", 1},
      {"string hash_seed", [&] { return info(config_with("c7.json", "hash_seed", "\"abc\"")); },
       "\"hash_seed\" = \"abc\" must be an integer", 1},
      {"bool as a string", [&] { return info(config_with("c8.json", "is_decoder", "\"yes\"")); },
       "\"is_decoder\" = \"yes\" must be true or false", 1},
      {"pad_token_id outside the vocabulary", [&] { return info(config_with("c9.json", "pad_token_id", "258")); },
       "pad_token_id = 258 is not a token of the vocabulary [0, 258)", 1},
      {"negative pad_token_id", [&] { return info(config_with("c10.json", "pad_token_id", "-1")); },
       "pad_token_id = -1 is not a token", 1},
      {"huge bucket factors", [&] { return info(config_with("c11.json", "num_buckets", "[2147483648, 2147483648]")); },
       "num_buckets[0] = 2147483648 must be between 2 and 16777216", 1},
      {"huge axial shape", [&] { return info(config_with("c12.json", "axial_pos_shape", "[1099511627776, 1099511627776]")); },
       "axial_pos_shape[0] = 1099511627776 must be between 1 and 1073741824", 1},
      {"zero hashes", [&] { return info(config_with("c13.json", "num_hashes", "0")); }, "num_hashes = 0 must be between 1 and 1024", 1},
      {"number overflowing a double", [&] { return info(config_with("c14.json", "layer_norm_eps", "1e999")); },
       "is not valid JSON", 1},
  });
}

TEST_F(HostileInput, FlagsOutOfRange) {
  const std::string train = "train --data " + path("text.txt") + " --out " + path("flags_out") + kTiny;
  run_rows({
      {"--threads 100000 (segfaulted in libgomp)", [] { return std::string("info --threads 100000"); },
       "--threads 100000 must be between 1 and 1024", 1},
      {"--layers 1e8 (grew until OOM-killed)", [] { return std::string("info --layers 100000000"); },
       "--layers = 100000000 must be between 1 and 4096", 1},
      {"--batch 1e9 (std::bad_alloc)", [&] { return train + " --batch 1000000000"; }, "--batch = 1000000000 must be between 1 and 1048576", 1},
      {"--seq-len 2^40", [] { return std::string("info --seq-len 1099511627776"); }, "--seq-len = 1099511627776 must be between", 1},
      {"--seed -1", [&] { return train + " --seed -1"; }, "--seed: must not be negative, got -1", 105},
      {"--warmup -3", [&] { return train + " --warmup -3"; }, "--warmup: must not be negative, got -3", 105},
      {"--buckets ''", [&] { return train + " --buckets ''"; }, "--buckets is empty", 1},
      {"a plan larger than the machine", [] { return std::string("info --hidden-size 4096 --heads 64 --head-size 64 --layers 64 --seq-len 1048576 --batch 64"); },
       "the training step needs about", 1},
      {"info above --max-memory", [] { return std::string("info --max-memory 1M"); }, "but --max-memory allows 1048576 bytes", 1},
      {"train above --max-memory", [&] { return train + " --max-memory 1M"; }, "but --max-memory allows 1048576 bytes", 1},
      {"--max-memory nonsense", [] { return std::string("info --max-memory lots"); }, "--max-memory 'lots' is not a memory size", 1},
  });
  EXPECT_FALSE(fs::exists(path("flags_out")));  // refused before the output directory was made
}

TEST_F(HostileInput, FilesThatAreNotRegularFilesOrAreCorrupt) {
  run_rows({
      {"model.safetensors is a FIFO (eval hung)", [&] {
         const fs::path d = *dir_ / "fifo_model";
         fs::create_directories(d);
         fs::copy_file(*dir_ / "base" / "config.json", d / "config.json", fs::copy_options::overwrite_existing);
         fs::remove(d / "model.safetensors");
         EXPECT_EQ(mkfifo((d / "model.safetensors").c_str(), 0644), 0);
         return "eval --model " + d.string() + " --data " + path("text.txt");
       }, "model.safetensors' is not a regular file (a FIFO)", 1},
      {"--data is a FIFO", [&] {
         fs::remove(path("data.fifo"));
         EXPECT_EQ(mkfifo(path("data.fifo").c_str(), 0644), 0);
         return "train --data " + path("data.fifo") + " --out " + path("fifo_out") + kTiny;
       }, "data file '" + path("data.fifo") + "' is not a regular file (a FIFO)", 1},
      {"--config is a FIFO", [&] {
         fs::remove(path("config.fifo"));
         EXPECT_EQ(mkfifo(path("config.fifo").c_str(), 0644), 0);
         return "info --config " + path("config.fifo");
       }, "config file '" + path("config.fifo") + "' is not a regular file (a FIFO)", 1},
      {"--data is a device", [&] { return "train --data /dev/zero --out " + path("dev_out") + kTiny; },
       "data file '/dev/zero' is not a regular file (a device)", 1},
      {"config.json is a directory", [&] {
         const fs::path d = model_copy("dir_config");
         fs::remove(d / "config.json");
         fs::create_directories(d / "config.json");
         return "eval --model " + d.string() + " --data " + path("text.txt");
       }, "config.json' is a directory, not a file", 1},
      {"number overflow in a safetensors header", [&] {
         const fs::path d = model_copy("overflow_header");
         write_file(d / "model.safetensors",
                    safetensors_bytes(R"({"x":{"dtype":"F32","shape":[1e999],"data_offsets":[0,4]}})", "abcd"));
         return "eval --model " + d.string() + " --data " + path("text.txt");
       }, "model.safetensors': header is not valid JSON", 1},
      {"NaN in a weight (eval printed loss nan)", [&] {
         const fs::path d = model_copy("nan_weights");
         std::string bytes = read_file(d / "model.safetensors");
         uint64_t n;
         std::memcpy(&n, bytes.data(), 8);
         const auto header = nlohmann::json::parse(bytes.substr(8, n));
         const int64_t at = 8 + static_cast<int64_t>(n) +
                            header["reformer.embeddings.word_embeddings.weight"]["data_offsets"][0].get<int64_t>() + 4 * 5;
         const float nan = std::numeric_limits<float>::quiet_NaN();
         std::memcpy(bytes.data() + at, &nan, 4);
         write_file(d / "model.safetensors", bytes);
         return "eval --model " + d.string() + " --data " + path("text.txt");
       }, "weight \"reformer.embeddings.word_embeddings.weight\" holds a non-finite value (nan at element 5)", 1},
      {"malformed train_args in the trainer state", [&] {
         return "train --resume --steps 2 --out " +
                run_with_state("bad_args", {{"step", "1"}, {"optimizer_updates", "1"}, {"train_args", R"({"batch": "four"})"}});
       }, "the training options stored in the checkpoint in", 1},
      {"train_args that are not JSON", [&] {
         return "train --resume --steps 2 --out " +
                run_with_state("bad_json_args", {{"step", "1"}, {"optimizer_updates", "1"}, {"train_args", "{oops"}});
       }, "metadata train_args is not valid JSON", 1},
      {"a step that is not a number", [&] {
         return "train --resume --steps 2 --out " + run_with_state("bad_step", {{"step", "1e99"}, {"train_args", "{}"}});
       }, "no complete checkpoint in", 1},
  });
}

}  // namespace
