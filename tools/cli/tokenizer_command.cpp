// reformer tokenizer train: a SentencePiece tokenizer (unigram or BPE) from a text file, written as
// DIR/spiece.model (+ tokenizer_config.json), the files Hugging Face's ReformerTokenizer loads.
#include <cstdio>
#include <optional>
#include <string>

#include "commands.h"
#include "common.h"
#include "reformer/error.h"
#include "reformer/tokenizer.h"
#include "reformer/train.h"

namespace reformer::cli {
namespace {

struct TokenizerTrainCommand {
  TokenizerTrainRequest request;
  std::optional<int> threads;
};

void run_tokenizer_train(TokenizerTrainCommand& c) {
  TokenizerTrainRequest r = c.request;
  r.threads = thread_flag(c.threads);
  std::printf("training a %s tokenizer of %lld tokens on %s\n", r.options.model_type.c_str(),
              static_cast<long long>(r.options.vocab_size), r.data.c_str());
  std::fflush(stdout);
  const TokenizerTrainSummary s = train_tokenizer(r);
  std::printf("wrote %s: %lld tokens; the first %lld bytes of the data encode to %lld tokens (%.2f bytes per token)%s\n",
              s.path.c_str(), static_cast<long long>(s.vocab_size), static_cast<long long>(s.sample_bytes),
              static_cast<long long>(s.sample_tokens),
              s.sample_tokens ? static_cast<double>(s.sample_bytes) / static_cast<double>(s.sample_tokens) : 0.0,
              s.round_trips ? ", decoding gives them back exactly" : "; they do NOT decode back exactly");
  if (!s.round_trips) {
    std::string shown;
    for (unsigned char ch : s.difference_context) {
      char hex[8];
      std::snprintf(hex, sizeof hex, ch < 0x20 || ch >= 0x7f ? "\\x%02x" : "%c", ch);
      shown += hex;
    }
    std::printf("  first difference at byte %lld, at \"%s\": characters the trainer did not see (it samples "
                "--max-sentences lines) or not allowed in its lines; --byte-fallback encodes them as bytes\n",
                static_cast<long long>(s.first_difference), shown.c_str());
  }
}

}  // namespace

void add_tokenizer_command(CLI::App& app, int& exit_code) {
  CLI::App* group = app.add_subcommand("tokenizer", "SentencePiece tokenizers (spiece.model) for `train`, `eval` and `generate`");
  group->require_subcommand(1);
  auto c = std::make_shared<TokenizerTrainCommand>();
  c->request.data = kDefaultData;
  CLI::App* cmd = group->add_subcommand(
      "train",
      "Train a SentencePiece tokenizer (SentencePiece's own trainer, unigram or BPE) on a text file and write "
      "DIR/spiece.model and DIR/tokenizer_config.json, the files Hugging Face's ReformerTokenizer loads "
      "(ReformerTokenizer.from_pretrained(DIR)). Every character of the training text gets a piece, text is not "
      "normalized, spaces and newlines are kept as they are and no space is added in front, so text made of those "
      "characters decodes back to exactly the same bytes. Use it with `reformer train --tokenizer DIR/spiece.model` "
      "and a model whose vocab_size is --vocab-size; the run's directory then holds the tokenizer too.");
  cmd->add_option("--data", c->request.data, "training text (plain, gzip or dictzip); one training sentence per line")->capture_default_str();
  cmd->add_option("--vocab-size", c->request.options.vocab_size,
                  "number of tokens, including <unk>, <s>, </s> and the newline piece (the vocab_size of the model)")
      ->required();
  cmd->add_option("--out", c->request.out_dir, "output directory (created if needed) for spiece.model and tokenizer_config.json")->required();
  cmd->add_option("--model-type", c->request.options.model_type, "unigram (as Hugging Face's Reformer tokenizers) or bpe")->capture_default_str();
  cmd->add_flag("--byte-fallback", c->request.options.byte_fallback,
                "encode characters the training text lacks as <0xXX> byte pieces, so any text round-trips "
                "(takes 256 of the --vocab-size tokens)");
  cmd->add_flag("--mask-piece", c->request.options.mask_piece,
                "add the piece <mask>, the [MASK] token of `reformer train --task mlm` (takes one of the --vocab-size tokens)");
  cmd->add_option("--max-sentences", c->request.options.max_sentences, "lines sampled from --data for training, 0 = every line")
      ->capture_default_str();
  cmd->add_flag("--overwrite", c->request.overwrite, "replace an existing DIR/spiece.model");
  cmd->add_option("--threads", c->threads, "threads of SentencePiece's trainer and of the encoding check");
  cmd->callback([c, &exit_code] {
    run_tokenizer_train(*c);
    exit_code = 0;
  });
}

}  // namespace reformer::cli
