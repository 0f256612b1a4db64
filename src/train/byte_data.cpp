#include "train/byte_data.h"

#include <algorithm>

#include "reformer/error.h"
#include "reformer/rng.h"
#include "train/read_bytes.h"

namespace reformer {
namespace {

int index(Split s) { return static_cast<int>(s); }

void check_shape(int64_t batch, int64_t length) {
  REFORMER_CHECK(batch >= 1 && length >= 2, "batch ", batch, " x sequence length ", length,
                 ": need a batch of at least 1 and a --seq-len of at least 2");
}

void encode(int32_t* ids, int32_t* labels, const uint8_t* bytes, int64_t n, int64_t length) {
  for (int64_t t = 0; t < n; ++t) ids[t] = labels[t] = static_cast<int32_t>(bytes[t]) + kByteIdOffset;
  for (int64_t t = n; t < length; ++t) {
    ids[t] = kBytePadId;
    labels[t] = kIgnoreLabel;
  }
}

}  // namespace

const char* to_string(Split s) {
  switch (s) {
    case Split::Train: return "train";
    case Split::Validation: return "validation";
    case Split::Test: return "test";
  }
  return "?";
}

ByteDataset ByteDataset::from_file(const std::string& path) {
  ByteDataset d;
  d.bytes_ = read_file_bytes(path);
  const auto n = static_cast<int64_t>(d.bytes_.size());
  d.size_[0] = n * 90 / 100;
  d.size_[1] = n * 5 / 100;
  d.size_[2] = n - d.size_[0] - d.size_[1];
  d.begin_[1] = d.size_[0];
  d.begin_[2] = d.size_[0] + d.size_[1];
  for (std::string& s : d.source_) s = "'" + path + "'";
  return d;
}

ByteDataset ByteDataset::from_files(const std::string& train, const std::string& validation, const std::string& test) {
  ByteDataset d;
  const std::string paths[3] = {train, validation, test};
  for (int i = 0; i < 3; ++i) {
    const std::vector<uint8_t> part = read_file_bytes(paths[i]);
    d.begin_[i] = static_cast<int64_t>(d.bytes_.size());
    d.size_[i] = static_cast<int64_t>(part.size());
    d.bytes_.insert(d.bytes_.end(), part.begin(), part.end());
    d.source_[i] = "'" + paths[i] + "'";
  }
  return d;
}

std::span<const uint8_t> ByteDataset::split(Split s) const {
  return {bytes_.data() + begin_[index(s)], static_cast<size_t>(size_[index(s)])};
}

void ByteDataset::check_fits(Split s, int64_t length) const {
  const int64_t n = size_[index(s)];
  REFORMER_CHECK(n >= length, "the ", to_string(s), " split of ", source_[index(s)], " has ", n,
                 " bytes, fewer than one window of ", length, "; pass a --seq-len of at most ", n,
                 " or a larger file");
}

void ByteDataset::train_batch(TokenBatch& out, int64_t batch, int64_t length, uint64_t seed, int64_t step) const {
  check_shape(batch, length);
  check_fits(Split::Train, length);
  out.resize(batch, length);
  const std::span<const uint8_t> train = split(Split::Train);
  const auto starts = static_cast<uint64_t>(train.size()) - static_cast<uint64_t>(length) + 1;
  for (int64_t b = 0; b < batch; ++b) {
    const uint64_t stream = rng_stream(RngPurpose::Data, {static_cast<uint64_t>(DataStream::ByteWindows),
                                                          static_cast<uint64_t>(step), static_cast<uint64_t>(b)});
    const Philox4 r = philox(seed, stream, 0);
    // 64 random bits modulo the number of starts: the bias is below starts / 2^64, i.e. none.
    const uint64_t start = ((static_cast<uint64_t>(r.v[0]) << 32) | r.v[1]) % starts;
    encode(out.ids.data() + b * length, out.labels.data() + b * length, train.data() + start, length, length);
  }
}

int64_t ByteDataset::eval_windows(Split s, int64_t length) const {
  check_shape(1, length);
  return (size_[index(s)] + length - 1) / length;
}

int64_t ByteDataset::eval_batch(TokenBatch& out, Split s, int64_t first, int64_t batch, int64_t length) const {
  check_shape(batch, length);
  check_fits(s, length);
  const int64_t windows = eval_windows(s, length);
  REFORMER_CHECK(first >= 0 && first < windows, "evaluation window ", first, " is outside the ", windows,
                 " windows of the ", to_string(s), " split");
  out.resize(batch, length);
  const std::span<const uint8_t> data = split(s);
  const auto n = static_cast<int64_t>(data.size());
  int64_t real = 0;
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t start = std::min((first + b) * length, n);
    const int64_t count = std::min(length, n - start);
    encode(out.ids.data() + b * length, out.labels.data() + b * length, data.data() + start, count, length);
    real += count > 0;
  }
  return real;
}

}  // namespace reformer
