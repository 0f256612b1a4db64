// train_tokenizer(): `reformer tokenizer train` (include/reformer/tokenizer.h).
#include <algorithm>
#include <filesystem>
#include <string_view>

#include <unistd.h>

#include "reformer/error.h"
#include "reformer/threads.h"
#include "reformer/tokenizer.h"
#include "train/read_bytes.h"

namespace reformer {

namespace fs = std::filesystem;

TokenizerTrainSummary train_tokenizer(const TokenizerTrainRequest& r) {
  REFORMER_CHECK(!r.out_dir.empty(), "no output directory given; give --out");
  REFORMER_CHECK(!r.data.empty(), "no training text given; give --data");
  const ScopedThreads threads(r.threads);
  TokenizerTrainSummary summary;
  summary.path = (fs::path(r.out_dir) / kSentencePieceFile).string();
  std::error_code ec;
  REFORMER_CHECK(r.overwrite || !fs::exists(summary.path, ec), summary.path,
                 " already exists; choose another --out or pass --overwrite to replace it");
  const std::vector<uint8_t> bytes = read_file_bytes(r.data);
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  summary.data_bytes = static_cast<int64_t>(bytes.size());
  SentencePieceTrainOptions options = r.options;
  options.threads = max_threads();
  const std::string model = train_sentencepiece(text, options);
  const auto tokenizer = sentencepiece_from_serialized(model, "the trained tokenizer");
  // Only now, with a model in hand, is anything written.
  fs::create_directories(r.out_dir, ec);
  REFORMER_CHECK(!ec, "cannot create output directory ", r.out_dir, ": ", ec.message(), "; choose another --out");
  REFORMER_CHECK(access(r.out_dir.c_str(), W_OK | X_OK) == 0, "output directory ", r.out_dir,
                 " is not writable; choose another --out or fix its permissions");
  save_tokenizer(*tokenizer, r.out_dir);
  const std::string_view sample = text.substr(0, std::min<size_t>(text.size(), size_t{1} << 20));
  const std::vector<int32_t> ids = tokenizer->encode(sample);
  summary.vocab_size = tokenizer->vocab_size();
  summary.sample_bytes = static_cast<int64_t>(sample.size());
  summary.sample_tokens = static_cast<int64_t>(ids.size());
  summary.round_trips = tokenizer->decode(ids) == sample;
  return summary;
}

}  // namespace reformer
