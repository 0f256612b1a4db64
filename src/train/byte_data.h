#pragma once
// Byte-level language-model data as in enwik8 (tensor2tensor's byte encoder): token id = byte + 2,
// id 0 = padding (id 1, t2t's EOS, is never produced), vocabulary 258.
//
// Splits: one file is cut in order into train / validation / test = 90% / 5% / 5% (enwik8's
// 90M / 5M / 5M), or each split comes from its own file. The bytes are held in host memory (a plain
// std::vector: they are input data, not an engine float buffer).
//
// Training windows: window b of step s starts at a uniform offset in [0, n - L] of the train split,
// drawn from the counter-based RNG keyed by (seed, step, b). A batch is a pure function of
// (seed, step), so a run resumed at step s sees exactly the batches it would have seen.
//
// Evaluation windows: a split is cut into ceil(n / L) consecutive, non-overlapping windows that cover
// every byte exactly once; the last one is padded with id 0 and its padding labelled kIgnoreLabel.
// Batches past the last window are all padding, so every eval batch has the same shape. (The first
// token of each window is context only, the usual cost of non-overlapping evaluation.)
//
// Labels follow train/token_batch.h: labels = ids, padding -> kIgnoreLabel.
//
// Other tokenizers (text/tokenizer.h): tokenize() encodes each split once (after the byte split), and
// windows are then windows of tokens, with the same rules; every token keeps the count of text bytes
// it stands for, so a batch reports the bytes its scored tokens cover (TokenBatch::scored_bytes).
//
// Any length: a window of `length` tokens may be padded to `padded` >= length positions (the
// model's chunk multiple, model/eval_length.h); the padding has id 0, label kIgnoreLabel and
// attention mask 0 (TokenBatch::mask).
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "reformer/bytes.h"
#include "train/token_batch.h"

namespace reformer {

class Tokenizer;

enum class Split { Train = 0, Validation = 1, Test = 2 };
const char* to_string(Split s);

class ByteDataset {
 public:
  // One file (plain, gzip or dictzip), split 90/5/5.
  static ByteDataset from_file(const std::string& path);
  // One file per split.
  static ByteDataset from_files(const std::string& train, const std::string& validation, const std::string& test);

  std::span<const uint8_t> split(Split s) const;

  // Encodes every split with `tokenizer`; the byte tokenizer changes nothing (ids are byte + 2).
  void tokenize(const Tokenizer& tokenizer);
  // Tokens of split s (its bytes unless tokenized).
  int64_t tokens(Split s) const;

  // Throws unless the split holds at least one window of `length` tokens (names the split, its size and
  // the largest --seq-len that fits).
  void check_fits(Split s, int64_t length) const;

  // padded: positions per row (>= length); 0 = length.
  void train_batch(TokenBatch& out, int64_t batch, int64_t length, uint64_t seed, int64_t step, int64_t padded = 0) const;

  int64_t eval_windows(Split s, int64_t length) const;
  // Windows first .. first + batch - 1 of split s; returns how many of them hold data.
  int64_t eval_batch(TokenBatch& out, Split s, int64_t first, int64_t batch, int64_t length, int64_t padded = 0) const;

 private:
  // Row `row` of `out` (of out.length positions) = tokens [start, start + count) of split s, then padding;
  // returns the text bytes of the scored tokens (positions 1 .. count - 1).
  double fill_row(TokenBatch& out, int64_t row, Split s, int64_t start, int64_t count) const;

  std::vector<uint8_t> bytes_;
  int64_t begin_[3] = {};
  int64_t size_[3] = {};
  std::string source_[3];  // where each split came from, for error messages
  bool tokenized_ = false;
  std::vector<int32_t> ids_[3];          // tokenized only: each split's tokens
  std::vector<uint32_t> token_bytes_[3];  // and the text bytes each stands for
};

}  // namespace reformer
