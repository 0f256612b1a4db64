#include "reformer/tokenizer.h"

#include "reformer/bytes.h"

#include <fcntl.h>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "core/parallel_errors.h"
#include "io/regular_file.h"
#include "reformer/error.h"

// Declared in SentencePiece's logging header, which Debian does not install: quiets its INFO lines.
namespace sentencepiece::logging {
void SetMinLogLevel(int v);
}  // namespace sentencepiece::logging

namespace reformer {
namespace {

namespace fs = std::filesystem;

constexpr int32_t kBytePad = 0, kByteOffset = 2, kBytesVocab = 258;
constexpr int64_t kMaxModelFileBytes = int64_t{1} << 30;
// Text is encoded in segments of about this many bytes, cut after a newline, in parallel.
constexpr size_t kSegmentBytes = size_t{1} << 18;
// SentencePiece's word-boundary mark U+2581.
constexpr std::string_view kSpaceMark = "\xE2\x96\x81";

void check_id(int32_t id, int64_t vocab, const char* kind) {
  REFORMER_CHECK(id >= 0 && id < vocab, "token id ", id, " is outside the ", kind, " tokenizer's vocabulary [0, ", vocab,
                 "); the ids come from a model with another vocabulary");
}

class ByteTokenizer final : public Tokenizer {
 public:
  std::string kind() const override { return "bytes"; }
  int64_t vocab_size() const override { return kBytesVocab; }
  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int32_t> ids(text.size());
    std::transform(text.begin(), text.end(), ids.begin(),
                   [](char c) { return static_cast<int32_t>(static_cast<unsigned char>(c)) + kByteOffset; });
    return ids;
  }
  std::string decode(std::span<const int32_t> ids) const override {
    std::string out;
    for (int32_t id : ids) out += token_text(id);
    return out;
  }
  std::string token_text(int32_t id) const override {
    check_id(id, kBytesVocab, "byte");
    return id < kByteOffset ? std::string() : std::string(1, static_cast<char>(id - kByteOffset));
  }
  int32_t first_text_id() const override { return kByteOffset; }
  int32_t mask_id() const override { return kByteMaskId; }
  void encode_with_bytes(std::string_view text, std::vector<int32_t>& ids, std::vector<uint32_t>& bytes) const override {
    ids = encode(text);
    bytes.assign(ids.size(), 1);
  }
  std::string serialized() const override { return {}; }
};

class SentencePieceTokenizer final : public Tokenizer {
 public:
  SentencePieceTokenizer(const std::string& model, const std::string& source) : model_(model) {
    const auto status = sp_.LoadFromSerializedProto(model);
    REFORMER_CHECK(status.ok(), source, " is not a SentencePiece model (", status.ToString(),
                   "); give the spiece.model of a Hugging Face ReformerTokenizer or one from `reformer tokenizer train`");
    REFORMER_CHECK(sp_.GetPieceSize() > 0, source, " is a SentencePiece model without pieces");
    first_text_id_ = 0;
    while (first_text_id_ < sp_.GetPieceSize() && (sp_.IsControl(first_text_id_) || sp_.IsUnknown(first_text_id_)))
      ++first_text_id_;
    REFORMER_CHECK(first_text_id_ < sp_.GetPieceSize(), source, " has only control pieces; it cannot encode text");
  }
  std::string kind() const override { return "sentencepiece"; }
  int64_t vocab_size() const override { return sp_.GetPieceSize(); }
  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int32_t> ids;
    std::vector<uint32_t> bytes;
    encode_with_bytes(text, ids, bytes);
    return ids;
  }
  std::string decode(std::span<const int32_t> ids) const override {
    std::vector<int> v(ids.begin(), ids.end());
    for (int id : v) check_id(id, vocab_size(), "SentencePiece");
    return sp_.DecodeIds(v);
  }
  std::string token_text(int32_t id) const override {
    check_id(id, vocab_size(), "SentencePiece");
    if (sp_.IsControl(id)) return {};
    if (sp_.IsUnknown(id)) return sp_.DecodeIds({id});
    const std::string piece = sp_.IdToPiece(id);
    if (sp_.IsByte(id)) return std::string(1, static_cast<char>(std::stoi(piece.substr(3, 2), nullptr, 16)));  // <0xAB>
    std::string out;
    for (size_t i = 0; i < piece.size();) {
      if (piece.compare(i, kSpaceMark.size(), kSpaceMark) == 0) {
        out += ' ';
        i += kSpaceMark.size();
      } else {
        out += piece[i++];
      }
    }
    return out;
  }
  int32_t first_text_id() const override { return first_text_id_; }
  int32_t mask_id() const override {
    for (const char* piece : {"<mask>", "[MASK]"}) {
      const int id = sp_.PieceToId(piece);
      if (!sp_.IsUnknown(id) && sp_.IdToPiece(id) == piece) return id;
    }
    return -1;
  }
  void encode_with_bytes(std::string_view text, std::vector<int32_t>& ids, std::vector<uint32_t>& bytes) const override {
    // Segments end after a newline, so a piece never spans two (training lines never hold "\n").
    std::vector<size_t> cuts{0};
    while (cuts.back() < text.size()) {
      size_t end = std::min(text.size(), cuts.back() + kSegmentBytes);
      if (end < text.size()) {
        const size_t nl = text.find('\n', end);
        end = nl == std::string_view::npos ? text.size() : nl + 1;
      }
      cuts.push_back(end);
    }
    const auto segments = static_cast<int64_t>(cuts.size()) - 1;
    std::vector<std::vector<int32_t>> seg_ids(static_cast<size_t>(segments));
    std::vector<std::vector<uint32_t>> seg_bytes(static_cast<size_t>(segments));
    ParallelErrors errors;
#pragma omp parallel for schedule(dynamic)
    for (int64_t s = 0; s < segments; ++s)
      errors.run([&] {
        const auto spt = sp_.EncodeAsImmutableProto(text.substr(cuts[s], cuts[s + 1] - cuts[s]));
        for (size_t i = 0; i < spt.pieces_size(); ++i) {
          const auto piece = spt.pieces(static_cast<int>(i));
          seg_ids[s].push_back(static_cast<int32_t>(piece.id()));
          seg_bytes[s].push_back(static_cast<uint32_t>(piece.surface().size()));
        }
      });
    errors.rethrow();
    ids.clear();
    bytes.clear();
    for (int64_t s = 0; s < segments; ++s) {
      ids.insert(ids.end(), seg_ids[s].begin(), seg_ids[s].end());
      bytes.insert(bytes.end(), seg_bytes[s].begin(), seg_bytes[s].end());
    }
  }
  std::string serialized() const override { return model_; }

 private:
  sentencepiece::SentencePieceProcessor sp_;
  std::string model_;
  int32_t first_text_id_ = 0;
};

std::string read_model_file(const std::string& path) {
  const int fd = open_regular_file(path, "tokenizer");
  std::string out;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      close(fd);
      fail("cannot read tokenizer ", path, ": ", std::strerror(err));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (static_cast<int64_t>(out.size()) > kMaxModelFileBytes) {
      close(fd);
      fail("tokenizer ", path, " is larger than ", kMaxModelFileBytes, " bytes; it is not a SentencePiece model");
    }
  }
  close(fd);
  REFORMER_CHECK(!out.empty(), "tokenizer ", path, " is empty; give a SentencePiece model (spiece.model)");
  return out;
}

// Writes `data` to dir/name through a temporary file renamed into place.
void write_file_atomically(const fs::path& dir, const std::string& name, const std::string& data) {
  const fs::path tmp = dir / ("." + name + ".tmp"), dst = dir / name;
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  REFORMER_CHECK(fd >= 0, "cannot create ", tmp.string(), ": ", std::strerror(errno), "; check the permissions of ", dir.string());
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  const bool ok = done == data.size() && ::fsync(fd) == 0;
  ::close(fd);
  std::error_code ec;
  if (!ok) fs::remove(tmp, ec);
  REFORMER_CHECK(ok, "cannot write ", tmp.string(), "; check the free space of ", dir.string());
  fs::rename(tmp, dst, ec);
  REFORMER_CHECK(!ec, "cannot rename ", tmp.string(), " to ", dst.string(), ": ", ec.message());
}

// The lines of `text`, one training sentence each, for SentencePiece's trainer.
class LineIterator final : public sentencepiece::SentenceIterator {
 public:
  explicit LineIterator(std::string_view text) : text_(text) { Next(); }
  bool done() const override { return done_; }
  void Next() override {
    if (pos_ >= text_.size()) {
      done_ = true;
      return;
    }
    size_t end = text_.find('\n', pos_);
    if (end == std::string_view::npos) end = text_.size();
    line_.assign(text_.substr(pos_, end - pos_));
    pos_ = end + 1;
  }
  const std::string& value() const override { return line_; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  std::string_view text_;
  size_t pos_ = 0;
  std::string line_;
  bool done_ = false;
};

// The distinct UTF-8 characters of `text` (malformed bytes and the characters SentencePiece handles
// itself, space and the user-defined "\n", "\t", "\r", left out), in their first order.
std::string distinct_characters(std::string_view text) {
  std::string out;
  std::unordered_map<std::string_view, bool> seen;
  for (size_t i = 0; i < text.size();) {
    const auto lead = static_cast<unsigned char>(text[i]);
    const size_t n = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xE ? 3 : (lead >> 3) == 0x1E ? 4 : 0;
    bool ok = n > 0 && i + n <= text.size();
    for (size_t k = 1; ok && k < n; ++k) ok = (static_cast<unsigned char>(text[i + k]) >> 6) == 0x2;
    if (!ok) {
      ++i;
      continue;
    }
    const std::string_view ch = text.substr(i, n);
    if (ch != " " && ch != "\n" && ch != "\t" && ch != "\r" && lead != 0 && !seen[ch]) {
      seen[ch] = true;
      out += ch;
    }
    i += n;
  }
  return out;
}

}  // namespace

std::unique_ptr<Tokenizer> make_byte_tokenizer() { return std::make_unique<ByteTokenizer>(); }

std::unique_ptr<Tokenizer> sentencepiece_from_serialized(const std::string& model, const std::string& source) {
  sentencepiece::logging::SetMinLogLevel(2);
  return std::make_unique<SentencePieceTokenizer>(model, source);
}

std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& path) {
  return sentencepiece_from_serialized(read_model_file(path), "tokenizer " + path);
}

std::unique_ptr<Tokenizer> tokenizer_for(const std::string& dir, const std::string& explicit_file) {
  if (!explicit_file.empty()) return load_sentencepiece(explicit_file);
  if (!dir.empty()) {
    const fs::path file = fs::path(dir) / kSentencePieceFile;
    std::error_code ec;
    if (fs::exists(file, ec)) return load_sentencepiece(file.string());
  }
  return make_byte_tokenizer();
}

void check_tokenizer_vocab(const Tokenizer& tokenizer, int64_t model_vocab, const std::string& model_source) {
  REFORMER_CHECK(tokenizer.vocab_size() == model_vocab, "the ", tokenizer.kind(), " tokenizer has ", tokenizer.vocab_size(),
                 " tokens but ", model_source, " has vocab_size ", model_vocab,
                 tokenizer.is_bytes() ? "; give the model's tokenizer with --tokenizer FILE (its spiece.model), or use --task copy "
                                        "for a copy-task model"
                                      : "; use the tokenizer the model was trained with, or a model of that vocab_size");
}

void save_tokenizer(const Tokenizer& tokenizer, const std::string& dir) {
  if (tokenizer.is_bytes()) return;
  write_file_atomically(dir, kSentencePieceFile, tokenizer.serialized());
  // What ReformerTokenizer.save_pretrained writes beside spiece.model (the special tokens it uses).
  nlohmann::json config = {{"tokenizer_class", "ReformerTokenizer"},
                           {"eos_token", "</s>"},
                           {"unk_token", "<unk>"},
                           {"additional_special_tokens", nlohmann::json::array()}};
  if (tokenizer.mask_id() >= 0) config["mask_token"] = tokenizer.token_text(tokenizer.mask_id());
  write_file_atomically(dir, "tokenizer_config.json", config.dump(2) + "\n");
}

std::string train_sentencepiece(std::string_view text, const SentencePieceTrainOptions& o) {
  REFORMER_CHECK(o.model_type == "unigram" || o.model_type == "bpe", "--model-type '", o.model_type,
                 "' is not a SentencePiece model type; use unigram or bpe");
  REFORMER_CHECK(o.vocab_size >= 4 && o.vocab_size <= (int64_t{1} << 24), "--vocab-size ", o.vocab_size,
                 " must be between 4 and ", int64_t{1} << 24);
  REFORMER_CHECK(!o.byte_fallback || o.vocab_size > 259, "--vocab-size ", o.vocab_size,
                 " leaves no room for text pieces with --byte-fallback (256 byte pieces + <unk>, <s>, </s>); give more than 259");
  REFORMER_CHECK(text.find_first_not_of('\n') != std::string_view::npos, "the training text has no characters besides newlines; "
                 "give a text file");
  REFORMER_CHECK(o.max_sentences >= 0, "--max-sentences ", o.max_sentences, " must be >= 0 (0 = every line)");
  sentencepiece::logging::SetMinLogLevel(2);
  sentencepiece::SetRandomGeneratorSeed(1);  // the sampled lines, so a tokenizer is reproducible
  std::unordered_map<std::string, std::string> args = {
      {"model_type", o.model_type},
      {"vocab_size", std::to_string(o.vocab_size)},
      {"character_coverage", "1.0"},
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"add_dummy_prefix", "false"},
      {"split_digits", "false"},
      // SentencePiece never gives tabs a piece of their own otherwise; "<mask>" is MLM's [MASK].
      {"user_defined_symbols", o.mask_piece ? "\n,\t,\r,<mask>" : "\n,\t,\r"},
      {"byte_fallback", o.byte_fallback ? "true" : "false"},
      {"input_sentence_size", std::to_string(o.max_sentences)},
      {"shuffle_input_sentence", "true"},
      {"max_sentence_length", "65536"},
      {"num_threads", std::to_string(std::max(1, o.threads))},
  };
  // Every character of the text, so that one the sampled lines lack still gets a piece.
  args["required_chars"] = distinct_characters(text);
  LineIterator lines(text);
  std::string model;
  const auto status = sentencepiece::SentencePieceTrainer::Train(args, &lines, &model);
  if (!status.ok()) {
    const std::string why = status.ToString();
    REFORMER_CHECK(why.find("Vocabulary size") == std::string::npos && why.find("vocab_size") == std::string::npos,
                   "--vocab-size ", o.vocab_size, " does not fit the training text: ", why,
                   "; lower --vocab-size or give more text");
    fail("SentencePiece could not train a tokenizer: ", why);
  }
  return model;
}

}  // namespace reformer
