// Tokenizers (reformer/tokenizer.h): bytes and SentencePiece models trained here on text made here.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include "reformer/tokenizer.h"
#include "support/expect_error.h"
#include "support/text_corpus.h"
#include "train/byte_data.h"

namespace reformer {
namespace {

namespace fs = std::filesystem;
using test::expect_error;

std::string corpus(size_t bytes, uint64_t seed) { return test::text_corpus(bytes, seed); }

std::unique_ptr<Tokenizer> trained(const std::string& text, int64_t vocab, const std::string& type = "unigram",
                                   bool byte_fallback = false) {
  SentencePieceTrainOptions o;
  o.vocab_size = vocab;
  o.model_type = type;
  o.byte_fallback = byte_fallback;
  return sentencepiece_from_serialized(train_sentencepiece(text, o), "test model");
}

TEST(Tokenizer, BytesAreIdsPlusTwo) {
  const auto t = make_byte_tokenizer();
  EXPECT_TRUE(t->is_bytes());
  EXPECT_EQ(t->vocab_size(), 258);
  const std::string text = std::string("LIGHT\n\xff\x00", 8);
  const std::vector<int32_t> ids = t->encode(text);
  ASSERT_EQ(ids.size(), text.size());
  EXPECT_EQ(ids[0], 'L' + 2);
  EXPECT_EQ(ids[6], 0xff + 2);
  EXPECT_EQ(t->decode(ids), text);
  EXPECT_EQ(t->first_text_id(), 2);
  expect_error([&] { t->decode(std::vector<int32_t>{258}); }, "token id 258 is outside");
}

// Unigram and BPE: the text (and other text of the same characters) decodes back to the same bytes,
// the per-token byte counts add up to the text, and streaming token_text gives the decoded text.
TEST(Tokenizer, TrainedSentencePieceRoundTripsTextExactly) {
  const std::string train_text = corpus(200000, 1), other = corpus(20000, 2);
  for (const char* type : {"unigram", "bpe"}) {
    const auto t = trained(train_text, 320, type);
    EXPECT_EQ(t->kind(), "sentencepiece");
    EXPECT_EQ(t->vocab_size(), 320) << type;
    for (const std::string& text : {train_text, other, std::string("  leading spaces\n\n\ttab"), std::string("\n")}) {
      std::vector<int32_t> ids;
      std::vector<uint32_t> bytes;
      t->encode_with_bytes(text, ids, bytes);
      EXPECT_EQ(t->decode(ids), text) << type;
      EXPECT_EQ(std::accumulate(bytes.begin(), bytes.end(), uint64_t{0}), text.size()) << type;
      EXPECT_EQ(ids, t->encode(text));
      std::string streamed;
      for (int32_t id : ids) streamed += t->token_text(id);
      EXPECT_EQ(streamed, text) << type;
    }
    // It compresses: fewer tokens than bytes.
    EXPECT_LT(t->encode(other).size(), other.size() * 3 / 4) << type;
  }
}

TEST(Tokenizer, ByteFallbackRoundTripsUnseenCharacters) {
  const std::string text = corpus(100000, 3), unseen = "Ωmega \x01 日本";
  const auto plain = trained(text, 320);
  EXPECT_NE(plain->decode(plain->encode(unseen)), unseen) << "unseen characters are <unk> without byte fallback";
  const auto fallback = trained(text, 400, "unigram", /*byte_fallback=*/true);
  EXPECT_EQ(fallback->decode(fallback->encode(unseen)), unseen);
}

TEST(Tokenizer, ClearErrors) {
  const std::string text = corpus(5000, 4);
  expect_error([&] { trained(text, 100000); }, "--vocab-size 100000 does not fit the training text");
  expect_error([&] { trained(text, 300, "wordpiece"); }, "--model-type 'wordpiece'");
  expect_error([&] { trained(text, 200, "unigram", true); }, "--byte-fallback");
  expect_error([&] { trained("\n\n\n", 50); }, "no characters besides newlines");
  expect_error([&] { check_tokenizer_vocab(*make_byte_tokenizer(), 320, "the model in runs/x"); },
               "the bytes tokenizer has 258 tokens but the model in runs/x has vocab_size 320");
  expect_error([&] { sentencepiece_from_serialized("not a model", "tokenizer junk"); }, "tokenizer junk is not a SentencePiece model");
  expect_error([&] { load_sentencepiece("/nonexistent/spiece.model"); }, "/nonexistent/spiece.model");
}

// Saved as Hugging Face's ReformerTokenizer saves it, found in a model directory, and used by the data.
TEST(Tokenizer, SavedBesideTheModelAndUsedByTheData) {
  const fs::path dir = fs::temp_directory_path() / ("reformer_tokenizer_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string text = corpus(300000, 5);
  const auto t = trained(text, 320);
  save_tokenizer(*t, dir.string());
  EXPECT_TRUE(fs::exists(dir / "spiece.model"));
  EXPECT_TRUE(fs::exists(dir / "tokenizer_config.json"));
  const auto again = tokenizer_for(dir.string(), "");
  EXPECT_EQ(again->kind(), "sentencepiece");
  EXPECT_EQ(again->encode(text), t->encode(text));
  EXPECT_TRUE(tokenizer_for((dir / "nothing").string(), "")->is_bytes());

  std::ofstream(dir / "data.txt", std::ios::binary) << text;
  ByteDataset d = ByteDataset::from_file((dir / "data.txt").string());
  const std::string_view validation(reinterpret_cast<const char*>(d.split(Split::Validation).data()),
                                    d.split(Split::Validation).size());
  d.tokenize(*t);
  EXPECT_EQ(d.tokens(Split::Validation), static_cast<int64_t>(t->encode(validation).size()));
  // The windows are the split's tokens, and their scored bytes the text those tokens cover.
  std::vector<int32_t> seen;
  double bytes = 0;
  TokenBatch batch;
  const int64_t L = 100;
  for (int64_t w = 0; w < d.eval_windows(Split::Validation, L); ++w) {
    d.eval_batch(batch, Split::Validation, w, 1, L, 112);
    for (int64_t i = 0; i < batch.length; ++i)
      if (!batch.mask.empty() ? batch.mask[i] : true) seen.push_back(batch.ids[i]);
    bytes += batch.scored_bytes;
  }
  // (The 90/5/5 byte split may cut a UTF-8 character; the split's tokens are what encode gives.)
  EXPECT_EQ(seen, t->encode(validation));
  // Every token's bytes are counted once, except each window's first (context only, never scored).
  std::vector<int32_t> ids;
  std::vector<uint32_t> token_bytes;
  t->encode_with_bytes(validation, ids, token_bytes);
  double unscored = 0;
  for (size_t i = 0; i < ids.size(); i += L) unscored += token_bytes[i];
  const double total = static_cast<double>(std::accumulate(token_bytes.begin(), token_bytes.end(), uint64_t{0}));
  EXPECT_GT(total, 0.99 * static_cast<double>(validation.size()));
  EXPECT_EQ(bytes, total - unscored);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace reformer
