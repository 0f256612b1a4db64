#include "train/byte_data.h"

#include <algorithm>

#include "reformer/error.h"
#include "reformer/rng.h"
#include "reformer/tokenizer.h"
#include "train/read_bytes.h"

namespace reformer {
namespace {

int index(Split s) { return static_cast<int>(s); }

void check_shape(int64_t batch, int64_t length) {
  REFORMER_CHECK(batch >= 1 && length >= 2, "batch ", batch, " x sequence length ", length,
                 ": need a batch of at least 1 and a --seq-len of at least 2");
}

int64_t padded_or(int64_t padded, int64_t length) {
  REFORMER_CHECK(padded == 0 || padded >= length, "padded length ", padded, " is shorter than the window of ", length);
  return padded == 0 ? length : padded;
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

void ByteDataset::tokenize(const Tokenizer& tokenizer) {
  if (tokenizer.is_bytes()) return;
  for (int i = 0; i < 3; ++i) {
    const std::span<const uint8_t> bytes = split(static_cast<Split>(i));
    tokenizer.encode_with_bytes(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), ids_[i],
                                token_bytes_[i]);
  }
  tokenized_ = true;
}

int64_t ByteDataset::tokens(Split s) const {
  return tokenized_ ? static_cast<int64_t>(ids_[index(s)].size()) : size_[index(s)];
}

void ByteDataset::check_fits(Split s, int64_t length) const {
  const int64_t n = tokens(s);
  REFORMER_CHECK(n >= length, "the ", to_string(s), " split of ", source_[index(s)], " has ", n,
                 tokenized_ ? " tokens" : " bytes", ", fewer than one window of ", length, "; pass a --seq-len of at most ", n,
                 " or a larger file");
}

double ByteDataset::fill_row(TokenBatch& out, int64_t row, Split s, int64_t start, int64_t count) const {
  const int64_t L = out.length;
  int32_t* ids = out.ids.data() + row * L;
  int32_t* labels = out.labels.data() + row * L;
  double bytes = 0;
  if (tokenized_) {
    const int32_t* src = ids_[index(s)].data() + start;
    const uint32_t* nb = token_bytes_[index(s)].data() + start;
    for (int64_t t = 0; t < count; ++t) {
      ids[t] = labels[t] = src[t];
      if (t > 0) bytes += nb[t];
    }
  } else {
    const uint8_t* src = split(s).data() + start;
    for (int64_t t = 0; t < count; ++t) ids[t] = labels[t] = static_cast<int32_t>(src[t]) + kByteIdOffset;
    bytes = static_cast<double>(std::max<int64_t>(count - 1, 0));
  }
  for (int64_t t = count; t < L; ++t) {
    ids[t] = kBytePadId;
    labels[t] = kIgnoreLabel;
  }
  if (count < L) {
    if (out.mask.empty()) out.mask.assign(out.ids.size(), 1);
    std::fill(out.mask.begin() + row * L + count, out.mask.begin() + (row + 1) * L, uint8_t{0});
  }
  return bytes;
}

void ByteDataset::train_batch(TokenBatch& out, int64_t batch, int64_t length, uint64_t seed, int64_t step,
                              int64_t padded) const {
  check_shape(batch, length);
  check_fits(Split::Train, length);
  out.resize(batch, padded_or(padded, length));
  const auto starts = static_cast<uint64_t>(tokens(Split::Train)) - static_cast<uint64_t>(length) + 1;
  for (int64_t b = 0; b < batch; ++b) {
    const uint64_t stream = rng_stream(RngPurpose::Data, {static_cast<uint64_t>(DataStream::ByteWindows),
                                                          static_cast<uint64_t>(step), static_cast<uint64_t>(b)});
    const Philox4 r = philox(seed, stream, 0);
    // 64 random bits modulo the number of starts: the bias is below starts / 2^64, i.e. none.
    const uint64_t start = ((static_cast<uint64_t>(r.v[0]) << 32) | r.v[1]) % starts;
    out.scored_bytes += fill_row(out, b, Split::Train, static_cast<int64_t>(start), length);
  }
}

int64_t ByteDataset::eval_windows(Split s, int64_t length) const {
  check_shape(1, length);
  return (tokens(s) + length - 1) / length;
}

int64_t ByteDataset::eval_batch(TokenBatch& out, Split s, int64_t first, int64_t batch, int64_t length,
                                int64_t padded) const {
  check_shape(batch, length);
  check_fits(s, length);
  const int64_t windows = eval_windows(s, length);
  REFORMER_CHECK(first >= 0 && first < windows, "evaluation window ", first, " is outside the ", windows,
                 " windows of the ", to_string(s), " split");
  out.resize(batch, padded_or(padded, length));
  const int64_t n = tokens(s);
  int64_t real = 0;
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t start = std::min((first + b) * length, n);
    const int64_t count = std::min(length, n - start);
    out.scored_bytes += fill_row(out, b, s, start, count);
    real += count > 0;
  }
  return real;
}

}  // namespace reformer
