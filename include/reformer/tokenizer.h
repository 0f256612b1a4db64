#pragma once
// Tokenizers: text <-> token ids for the language model.
//
//   bytes:          id = byte + 2 (tensor2tensor's byte encoder, train/byte_data.h); vocabulary 258,
//                   id 0 = padding, id 1 = EOS (never produced).
//   SentencePiece:  a `spiece.model` file as Hugging Face's ReformerTokenizer saves and loads it
//                   (google/reformer-crime-and-punishment uses a 320-piece one), through Debian's
//                   libsentencepiece. Encoding is SentencePiece's own (what ReformerTokenizer's
//                   `encode(text, add_special_tokens=False)` gives: ReformerTokenizer adds no special
//                   tokens); decoding is SentencePiece's DecodeIds.
//
// Bits per byte (docs/NUMERICS.md): encode_with_bytes() also gives, per token, the bytes of the
// original text it stands for (SentencePiece's surface of each piece), so a loss summed over tokens
// can be divided by the bytes of text those tokens cover, whatever the vocabulary.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace reformer {

// The file name Hugging Face's ReformerTokenizer reads and writes (vocab_files_names).
inline constexpr const char* kSentencePieceFile = "spiece.model";

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // "bytes" or "sentencepiece", for messages.
  virtual std::string kind() const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  // ids: (n) token ids; one outside [0, vocab_size()) throws.
  virtual std::string decode(std::span<const int32_t> ids) const = 0;
  // The bytes one token adds to text that already has tokens before it (what generation streams).
  virtual std::string token_text(int32_t id) const = 0;
  // Sampling never draws ids below this one (padding / control ids).
  virtual int32_t first_text_id() const = 0;
  // The [MASK] id of masked-language-model training (docs/HF_INTEROP.md, "Tasks"), or -1 when the
  // tokenizer has none. Bytes: id 1 (t2t's EOS, which byte data never produces), so byte models keep
  // their 258 ids. SentencePiece: the piece "<mask>" or "[MASK]" when the model has one (HF's
  // ReformerTokenizer has no mask token by default; `reformer tokenizer train --mask-piece` adds one).
  virtual int32_t mask_id() const = 0;
  // ids = encode(text); bytes[i] = the bytes of `text` that token i stands for (their sum is
  // text.size() whenever the text round-trips).
  virtual void encode_with_bytes(std::string_view text, std::vector<int32_t>& ids, std::vector<uint32_t>& bytes) const = 0;
  // The serialized model (empty for the byte tokenizer): what save() writes.
  virtual std::string serialized() const = 0;
  bool is_bytes() const { return kind() == "bytes"; }
};

std::unique_ptr<Tokenizer> make_byte_tokenizer();
// Loads a SentencePiece model file; throws reformer::Error naming the path.
std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& path);
// From a serialized model (the bytes of a spiece.model); `source` names it in errors.
std::unique_ptr<Tokenizer> sentencepiece_from_serialized(const std::string& model, const std::string& source);

// The tokenizer of a model: `explicit_file` (--tokenizer) when given, else dir/spiece.model when the
// directory holds one, else the byte tokenizer. `dir` may be empty (a new model).
std::unique_ptr<Tokenizer> tokenizer_for(const std::string& dir, const std::string& explicit_file);

// Throws unless the tokenizer's vocabulary is the model's (names both and where each came from).
void check_tokenizer_vocab(const Tokenizer& tokenizer, int64_t model_vocab, const std::string& model_source);

// Writes dir/spiece.model (atomically: a temporary file renamed into place) and dir/tokenizer_config.json
// (tokenizer_class ReformerTokenizer, so that transformers' AutoTokenizer finds it). No-op for bytes.
void save_tokenizer(const Tokenizer& tokenizer, const std::string& dir);

struct SentencePieceTrainOptions {
  int64_t vocab_size = 320;
  std::string model_type = "unigram";  // unigram or bpe
  bool byte_fallback = false;          // unknown characters as <0xXX> byte pieces (needs 256 ids more)
  int64_t max_sentences = 1000000;     // lines sampled for training (0 = all)
  int threads = 1;              // the trainer's threads
  bool mask_piece = false;      // add the user-defined piece "<mask>" (the [MASK] of `train --task mlm`)
};

// Trains a SentencePiece model on `text` (one training sentence per line) and returns the
// serialized model. Chosen so that text round-trips exactly: no normalization, whitespace kept as
// it is, no dummy prefix, "\n", "\t" and "\r" pieces of their own; every character of the training text is covered.
// Throws reformer::Error with SentencePiece's reason and the fix (e.g. a vocabulary too large for the data).
std::string train_sentencepiece(std::string_view text, const SentencePieceTrainOptions& options);

// `reformer tokenizer train`: reads `data` (plain, gzip or dictzip), trains, writes
// out_dir/spiece.model and out_dir/tokenizer_config.json (nothing is written when training fails;
// an existing spiece.model is replaced only with `overwrite`), and checks the first MiB of the data
// round-trips.
struct TokenizerTrainRequest {
  std::string data;
  std::string out_dir;
  SentencePieceTrainOptions options;
  bool overwrite = false;
  int threads = 0;  // 0 = OMP_NUM_THREADS or all cores
};

struct TokenizerTrainSummary {
  std::string path;            // out_dir/spiece.model
  int64_t vocab_size = 0;
  int64_t data_bytes = 0;
  int64_t sample_bytes = 0, sample_tokens = 0;  // the round-trip check's text and its tokens
  bool round_trips = false;    // decode(encode(sample)) == sample
  int64_t first_difference = -1;    // where decode(encode(sample)) first differs, if it does
  std::string difference_context;   // the sample's bytes from there (at most 16)
};

TokenizerTrainSummary train_tokenizer(const TokenizerTrainRequest& request);

}  // namespace reformer
