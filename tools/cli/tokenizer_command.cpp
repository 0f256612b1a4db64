// reformer tokenizer train: a SentencePiece tokenizer (unigram or BPE) from a text file, written as
// DIR/spiece.model (+ tokenizer_config.json), the files Hugging Face's ReformerTokenizer loads.
#include <omp.h>

#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>

#include "commands.h"
#include "common.h"
#include "reformer/error.h"
#include "text/tokenizer.h"
#include "train/read_bytes.h"

namespace reformer::cli {
namespace {

namespace fs = std::filesystem;

struct TokenizerTrainCommand {
  std::string data = kDefaultData, out;
  SentencePieceTrainOptions options;
  bool overwrite = false;
  std::optional<int> threads;
};

void run_tokenizer_train(const TokenizerTrainCommand& c) {
  set_threads(c.threads);
  const fs::path target = fs::path(c.out) / kSentencePieceFile;
  std::error_code ec;
  REFORMER_CHECK(c.overwrite || !fs::exists(target, ec), target.string(),
                 " already exists; choose another --out or pass --overwrite to replace it");
  const std::vector<uint8_t> bytes = read_file_bytes(c.data);
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  SentencePieceTrainOptions options = c.options;
  options.threads = omp_get_max_threads();
  std::printf("training a %s tokenizer of %lld tokens on %s (%zu bytes)\n", options.model_type.c_str(),
              static_cast<long long>(options.vocab_size), c.data.c_str(), bytes.size());
  std::fflush(stdout);
  const std::string model = train_sentencepiece(text, options);
  const auto tokenizer = sentencepiece_from_serialized(model, "the trained tokenizer");
  // Only now, with a model in hand, is anything written.
  ensure_writable_dir(c.out);
  save_tokenizer(*tokenizer, c.out);
  // How well it compresses the training text, and that the text comes back exactly.
  const std::string_view sample = text.substr(0, std::min<size_t>(text.size(), size_t{1} << 20));
  const std::vector<int32_t> ids = tokenizer->encode(sample);
  const bool exact = tokenizer->decode(ids) == sample;
  std::printf("wrote %s: %lld tokens; the first %zu bytes of the data encode to %zu tokens (%.2f bytes per token)%s\n",
              target.string().c_str(), static_cast<long long>(tokenizer->vocab_size()), sample.size(), ids.size(),
              ids.empty() ? 0.0 : static_cast<double>(sample.size()) / static_cast<double>(ids.size()),
              exact ? ", decoding gives them back exactly"
                    : "; they do NOT decode back exactly (characters outside the training lines; try --byte-fallback)");
}

}  // namespace

void add_tokenizer_command(CLI::App& app, int& exit_code) {
  CLI::App* group = app.add_subcommand("tokenizer", "SentencePiece tokenizers (spiece.model) for `train`, `eval` and `generate`");
  group->require_subcommand(1);
  auto c = std::make_shared<TokenizerTrainCommand>();
  CLI::App* cmd = group->add_subcommand(
      "train",
      "Train a SentencePiece tokenizer (SentencePiece's own trainer, unigram or BPE) on a text file and write "
      "DIR/spiece.model and DIR/tokenizer_config.json, the files Hugging Face's ReformerTokenizer loads "
      "(ReformerTokenizer.from_pretrained(DIR)). Every character of the training text gets a piece, text is not "
      "normalized, spaces and newlines are kept as they are and no space is added in front, so text made of those "
      "characters decodes back to exactly the same bytes. Use it with `reformer train --tokenizer DIR/spiece.model` "
      "and a model whose vocab_size is --vocab-size; the run's directory then holds the tokenizer too.");
  cmd->add_option("--data", c->data, "training text (plain, gzip or dictzip); one training sentence per line")->capture_default_str();
  cmd->add_option("--vocab-size", c->options.vocab_size,
                  "number of tokens, including <unk>, <s>, </s> and the newline piece (the vocab_size of the model)")
      ->required();
  cmd->add_option("--out", c->out, "output directory (created if needed) for spiece.model and tokenizer_config.json")->required();
  cmd->add_option("--model-type", c->options.model_type, "unigram (as Hugging Face's Reformer tokenizers) or bpe")->capture_default_str();
  cmd->add_flag("--byte-fallback", c->options.byte_fallback,
                "encode characters the training text lacks as <0xXX> byte pieces, so any text round-trips "
                "(takes 256 of the --vocab-size tokens)");
  cmd->add_option("--max-sentences", c->options.max_sentences, "lines sampled from --data for training, 0 = every line")
      ->capture_default_str();
  cmd->add_flag("--overwrite", c->overwrite, "replace an existing DIR/spiece.model");
  cmd->add_option("--threads", c->threads, "threads of SentencePiece's trainer and of the encoding check");
  cmd->callback([c, &exit_code] {
    run_tokenizer_train(*c);
    exit_code = 0;
  });
}

}  // namespace reformer::cli
