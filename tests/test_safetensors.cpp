// safetensors reader/writer: round trip, exact byte layout, dtype conversions, every malformed-file
// error, atomic writes under a failing disk, and a file written by Python's `safetensors`.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "reformer/safetensors.h"
#include "support/fixtures.h"

using namespace reformer;
namespace fs = std::filesystem;

namespace {

class Safetensors : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("reformer_st_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

std::string read_bytes(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void write_bytes(const std::string& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string u64_le(uint64_t n) {
  std::string s(8, '\0');
  std::memcpy(s.data(), &n, 8);
  return s;
}

// A file with this header text and data buffer; the length field is the header's size.
std::string make_file(const std::string& header, const std::string& data) {
  return u64_le(header.size()) + header + data;
}

template <typename T>
std::string raw(std::initializer_list<T> values) {
  std::string s(values.size() * sizeof(T), '\0');
  std::memcpy(s.data(), std::data(values), s.size());
  return s;
}

// Opening p must throw an Error that names the file and contains `what`.
void expect_open_error(const std::string& p, const std::string& what) {
  try {
    SafetensorsFile::open(p);
    ADD_FAILURE() << "opening " << p << " should fail with '" << what << "'";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(p), std::string::npos) << "message does not name the file: " << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << "expected '" << what << "' in: " << msg;
  }
}

}  // namespace

TEST_F(Safetensors, RoundTripAllWritableDtypes) {
  const std::vector<float> w = {1.5f, -2.f, 3.25f, 0.f, 1e-30f, -7.f};
  const std::vector<int64_t> ids = {0, -1, int64_t{1} << 40, 7};
  const std::vector<int32_t> small = {5, -6, 7};
  const float scalar = 42.f;
  const std::string p = path("rt.safetensors");
  write_safetensors(p,
                    {{"w", {2, 3}, w.data()},
                     {"ids", {4}, ids.data()},
                     {"small", {3}, small.data()},
                     {"scalar", {}, &scalar},
                     {"empty", {0, 5}, static_cast<const float*>(nullptr)}},
                    {{"format", "pt"}, {"note", "round trip"}});
  const SafetensorsFile f = SafetensorsFile::open(p);
  EXPECT_EQ(f.names(), (std::vector<std::string>{"empty", "ids", "scalar", "small", "w"}));
  EXPECT_EQ(f.metadata().at("note"), "round trip");
  EXPECT_EQ(f.shape("w"), (Shape{2, 3}));
  EXPECT_EQ(f.shape("scalar"), Shape{});
  EXPECT_EQ(f.info("small").dtype, SafeDType::I32);
  const Tensor t = f.read_f32("w", MemCategory::Workspace);
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
  EXPECT_EQ(std::vector<float>(t.data(), t.data() + 6), w);
  EXPECT_EQ(f.read_f32("scalar", MemCategory::Workspace)[0], 42.f);
  EXPECT_EQ(f.read_f32("empty", MemCategory::Workspace).numel(), 0);
  EXPECT_EQ(f.read_i64("ids"), ids);
  EXPECT_EQ(f.read_i64("small"), (std::vector<int64_t>{5, -6, 7}));
  EXPECT_FALSE(fs::exists(p + ".tmp"));
}

TEST_F(Safetensors, ByteExactLayout) {
  const std::vector<float> a = {1.f, 2.f, 3.f};
  const std::vector<int64_t> ids = {9, 8};
  const std::string p = path("layout.safetensors");
  write_safetensors(p, {{"a", {3}, a.data()}, {"ids", {1, 2}, ids.data()}}, {{"k", "v"}});
  const std::string bytes = read_bytes(p);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ((8 + n) % 8, 0u) << "data buffer must start 8-byte aligned";
  ASSERT_EQ(bytes.size(), 8 + n + 16 + 12);
  const std::string header = bytes.substr(8, n);
  EXPECT_EQ(header.front(), '{');
  EXPECT_EQ(header.find_last_not_of(' '), header.rfind('}')) << "only spaces may pad the header";
  const nlohmann::json j = nlohmann::json::parse(header);
  // Widest dtype first: the I64 tensor precedes the F32 one.
  EXPECT_EQ(j["ids"]["dtype"], "I64");
  EXPECT_EQ(j["ids"]["shape"], nlohmann::json({1, 2}));
  EXPECT_EQ(j["ids"]["data_offsets"], nlohmann::json({0, 16}));
  EXPECT_EQ(j["a"]["dtype"], "F32");
  EXPECT_EQ(j["a"]["data_offsets"], nlohmann::json({16, 28}));
  EXPECT_EQ(j["__metadata__"], nlohmann::json({{"k", "v"}}));
  EXPECT_EQ(bytes.substr(8 + n), raw<int64_t>({9, 8}) + raw<float>({1.f, 2.f, 3.f}));
  EXPECT_EQ(SafetensorsFile::open(p).data_start(), static_cast<int64_t>(8 + n));
}

TEST_F(Safetensors, ConvertsHalfDoubleAndSmallIntegers) {
  const std::string header = nlohmann::json({
      {"h", {{"dtype", "F16"}, {"shape", {5}}, {"data_offsets", {0, 10}}}},
      {"b", {{"dtype", "BF16"}, {"shape", {2}}, {"data_offsets", {10, 14}}}},
      {"d", {{"dtype", "F64"}, {"shape", {1}}, {"data_offsets", {16, 24}}}},
      {"i", {{"dtype", "I32"}, {"shape", {2}}, {"data_offsets", {24, 32}}}},
      {"u", {{"dtype", "U8"}, {"shape", {2}}, {"data_offsets", {32, 34}}}},
      {"m", {{"dtype", "BOOL"}, {"shape", {2}}, {"data_offsets", {34, 36}}}},
  }).dump();
  // F16: 1, -2, 0.5, smallest subnormal 2^-24, +inf. BF16: 1, -3.5.
  const std::string data = raw<uint16_t>({0x3C00, 0xC000, 0x3800, 0x0001, 0x7C00}) + raw<uint16_t>({0x3F80, 0xC060}) +
                           std::string(2, '\0') + raw<double>({0.1}) + raw<int32_t>({-3, 70000}) +
                           raw<uint8_t>({255, 0}) + raw<uint8_t>({1, 0});
  const std::string p = path("dtypes.safetensors");
  write_bytes(p, make_file(header, data));
  const SafetensorsFile f = SafetensorsFile::open(p);
  const Tensor h = f.read_f32("h", MemCategory::Workspace);
  EXPECT_EQ(h[0], 1.f);
  EXPECT_EQ(h[1], -2.f);
  EXPECT_EQ(h[2], 0.5f);
  EXPECT_EQ(h[3], std::ldexp(1.f, -24));
  EXPECT_TRUE(std::isinf(h[4]) && h[4] > 0);
  const Tensor b = f.read_f32("b", MemCategory::Workspace);
  EXPECT_EQ(b[0], 1.f);
  EXPECT_EQ(b[1], -3.5f);
  EXPECT_EQ(f.read_f32("d", MemCategory::Workspace)[0], 0.1f);
  EXPECT_EQ(f.read_i64("i"), (std::vector<int64_t>{-3, 70000}));
  EXPECT_EQ(f.read_i64("u"), (std::vector<int64_t>{255, 0}));
  EXPECT_EQ(f.read_i64("m"), (std::vector<int64_t>{1, 0}));
}

TEST_F(Safetensors, ReadErrorsNameTheProblem) {
  const std::vector<float> w = {1.f, 2.f};
  const std::vector<int64_t> ids = {1};
  const std::string p = path("ok.safetensors");
  write_safetensors(p, {{"w", {2}, w.data()}, {"ids", {1}, ids.data()}});
  const SafetensorsFile f = SafetensorsFile::open(p);
  float dst[3];
  EXPECT_THROW(f.read_f32_into("w", dst, 3), Error);
  EXPECT_THROW(f.read_f32("ids", MemCategory::Workspace), Error);
  EXPECT_THROW(f.read_i64("w"), Error);
  EXPECT_THROW(f.shape("missing"), Error);
  EXPECT_THROW(SafetensorsFile::open(path("does_not_exist.safetensors")), Error);
}

TEST_F(Safetensors, RejectsMalformedFiles) {
  const std::string good_entry = R"("t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]})";
  const std::string data8(8, '\0');
  struct Case {
    const char* name;
    std::string bytes;
    const char* expect;
  };
  const std::vector<Case> cases = {
      {"short", std::string(5, '\0'), "too short"},
      {"len_past_eof", u64_le(1000) + "{}", "exceeds the 2 bytes"},
      {"len_absurd", u64_le(uint64_t{1} << 40) + "{}", "100 MB"},
      {"bad_json", make_file("{\"t\": [", ""), "not valid JSON"},
      {"not_object", make_file("[1, 2]", ""), "must be a JSON object"},
      {"no_dtype", make_file(R"({"t": {"shape": [2], "data_offsets": [0, 8]}})", data8), "missing the field 'dtype'"},
      {"no_shape", make_file(R"({"t": {"dtype": "F32", "data_offsets": [0, 8]}})", data8), "missing the field 'shape'"},
      {"no_offsets", make_file(R"({"t": {"dtype": "F32", "shape": [2]}})", data8), "missing the field 'data_offsets'"},
      {"unknown_dtype", make_file(R"({"t": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 8]}})", data8),
       "unsupported dtype 'Q4'"},
      {"size_mismatch", make_file(R"({"t": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", data8),
       "need 12"},
      {"negative_dim", make_file(R"({"t": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", data8),
       "non-negative integer"},
      {"fractional_offset", make_file(R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0.5, 8]}})", data8),
       "non-negative integer"},
      {"begin_after_end", make_file(R"({"t": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}})", data8),
       "begin > end"},
      {"outside_data", make_file(R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})", data8),
       "lie outside the 8-byte data buffer"},
      {"overlap",
       make_file("{" + good_entry + R"(, "u": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", data8),
       "overlap"},
      {"truncated", make_file("{" + good_entry + "}", std::string(5, '\0')), "lie outside the 5-byte data buffer"},
      {"bad_metadata", make_file(R"({"__metadata__": {"k": 1}})", ""), "must be a string"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string p = path(std::string(c.name) + ".safetensors");
    write_bytes(p, c.bytes);
    expect_open_error(p, c.expect);
  }
  // Space padding after the JSON is legal.
  const std::string p = path("padded.safetensors");
  write_bytes(p, make_file("{" + good_entry + "}      ", raw<float>({3.f, 4.f})));
  EXPECT_EQ(SafetensorsFile::open(p).read_f32("t", MemCategory::Workspace)[1], 4.f);
}

TEST_F(Safetensors, FailedWriteLeavesExistingFileAndNoTemp) {
  const std::vector<float> old_data = {1.f, 2.f};
  const std::string p = path("atomic.safetensors");
  write_safetensors(p, {{"old", {2}, old_data.data()}});
  const std::string before = read_bytes(p);

  // Simulate a full disk: cap the file size this process may write (write() then fails with EFBIG).
  const std::vector<float> big(64 * 1024, 0.5f);
  struct rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit capped = saved;
  capped.rlim_cur = 4096;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &capped), 0);
  bool threw = false;
  try {
    write_safetensors(p, {{"big", {static_cast<int64_t>(big.size())}, big.data()}});
  } catch (const Error& e) {
    threw = true;
    EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, old_handler);

  EXPECT_TRUE(threw);
  EXPECT_EQ(read_bytes(p), before) << "the existing file must survive a failed write";
  EXPECT_FALSE(fs::exists(p + ".tmp"));

  EXPECT_THROW(write_safetensors(path("no_such_dir/x.safetensors"), {{"old", {2}, old_data.data()}}), Error);
  EXPECT_THROW(write_safetensors(p, {{"a", {2}, old_data.data()}, {"a", {1}, old_data.data()}}), Error);
  EXPECT_EQ(read_bytes(p), before);

  // A successful write replaces the file.
  write_safetensors(p, {{"new", {1}, old_data.data()}});
  EXPECT_EQ(SafetensorsFile::open(p).names(), std::vector<std::string>{"new"});
}

// tests/fixtures/tiny_python.safetensors was written once by Python's safetensors.numpy.save_file
// (see tests/fixtures/hf/README.md for the exact command).
TEST(SafetensorsPython, ReadsFileWrittenByPythonLibrary) {
  const SafetensorsFile f = SafetensorsFile::open(test::fixture_path("tiny_python.safetensors"));
  EXPECT_EQ(f.names(), (std::vector<std::string>{"f16", "f64", "i32", "ids", "weight"}));
  EXPECT_EQ(f.metadata().at("format"), "np");
  EXPECT_EQ(f.shape("weight"), (Shape{2, 3}));
  const Tensor w = f.read_f32("weight", MemCategory::Workspace);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(w[i], 0.5f * i - 1.f);
  EXPECT_EQ(f.read_i64("ids"), (std::vector<int64_t>{3, 1, 4, 1, 5}));
  EXPECT_EQ(f.read_i64("i32"), (std::vector<int64_t>{-7, 8}));
  const Tensor h = f.read_f32("f16", MemCategory::Workspace);
  EXPECT_EQ(h[0], 1.5f);
  EXPECT_EQ(h[1], -0.25f);
  EXPECT_EQ(f.read_f32("f64", MemCategory::Workspace)[0], 0.125f);
}
