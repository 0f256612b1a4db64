#include "infer/generate.h"

#include <algorithm>
#include <numeric>
#include <vector>

#include "reformer/error.h"
#include "train/byte_data.h"

namespace reformer {

namespace {

// Eval-mode lengths: anything up to the shortest chunk, longer ones a multiple of every chunk length.
struct ChunkRule {
  int64_t multiple = 1, shortest_chunk = INT64_MAX;
  explicit ChunkRule(const ReformerConfig& config) {
    for (const auto& type : config.attn_layers) {
      if (type == "full") continue;
      const int64_t c = type == "lsh" ? config.lsh_attn_chunk_length : config.local_attn_chunk_length;
      multiple = std::lcm(multiple, c);
      shortest_chunk = std::min(shortest_chunk, c);
    }
  }
};

// The longest context the model runs.
int64_t longest_context_length(const ReformerConfig& config) {
  const ChunkRule rule(config);
  const int64_t max = config.max_length();
  return max <= rule.shortest_chunk ? max : std::max(max / rule.multiple * rule.multiple, rule.shortest_chunk);
}

}  // namespace

int64_t padded_context_length(const ReformerConfig& config, int64_t n) {
  const ChunkRule rule(config);
  const int64_t L = n <= rule.shortest_chunk ? n : (n + rule.multiple - 1) / rule.multiple * rule.multiple;
  config.validate_length(L, /*training=*/false);
  return L;
}

void generate_bytes(ReformerModel& model, const std::string& prompt, const GenerateOptions& options,
                    const std::function<void(char)>& on_byte) {
  const ReformerConfig& config = model.config();
  REFORMER_CHECK(config.vocab_size == kByteVocab, "generate needs a byte-level model (vocab_size ", kByteVocab,
                 "), but this one has vocab_size ", config.vocab_size);
  REFORMER_CHECK(!prompt.empty(), "the prompt is empty; give at least one byte with --prompt or --prompt-file");
  REFORMER_CHECK(options.bytes >= 0, "number of bytes to generate ", options.bytes, " must be >= 0");
  const int64_t max_context = longest_context_length(config);

  std::vector<int32_t> context;
  for (unsigned char b : prompt) context.push_back(static_cast<int32_t>(b) + kByteIdOffset);
  Sampler sampler(options.sampling, options.seed);
  Tensor logits;
  std::vector<int32_t> ids;
  for (int64_t i = 0; i < options.bytes; ++i) {
    const int64_t n = std::min<int64_t>(static_cast<int64_t>(context.size()), max_context);
    const int64_t L = padded_context_length(config, n);
    ids.assign(static_cast<size_t>(L), static_cast<int32_t>(config.pad_token_id));
    std::copy(context.end() - n, context.end(), ids.begin());
    Batch batch;
    batch.ids = ids.data();
    batch.length = L;
    StepOptions step;
    step.training = false;
    step.seed = options.seed;
    step.step = static_cast<uint64_t>(i);
    model.forward_logits(logits, batch, step);
    const int64_t id = sampler.sample(logits.data() + (n - 1) * config.vocab_size, config.vocab_size, kByteIdOffset,
                                      static_cast<uint64_t>(i));
    context.push_back(static_cast<int32_t>(id));
    on_byte(static_cast<char>(id - kByteIdOffset));
  }
}

}  // namespace reformer
