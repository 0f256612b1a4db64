#include "reformer/generate.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "reformer/error.h"
#include "reformer/bytes.h"
#include "reformer/tokenizer.h"
#include "reformer/precision.h"
#include "reformer/threads.h"

namespace reformer {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

bool ends_with_any(const std::string& text, const std::vector<std::string>& stops) {
  for (const std::string& s : stops)
    if (!s.empty() && text.size() >= s.size() && text.compare(text.size() - s.size(), s.size(), s) == 0) return true;
  return false;
}

// One prompt's decoding: every token it has seen (for context shifts), its sampler and output.
struct Sequence {
  std::vector<int32_t> tokens;
  Sampler sampler;
  std::string text;
  bool done = false;
  bool shifted = false;  // its context has been shifted at least once
  Sequence(const SamplingOptions& o, uint64_t seed) : sampler(o, seed) {}
};

}  // namespace

GenerateResult generate_bytes(ReformerModel& model, const std::vector<std::string>& prompts,
                              const GenerateOptions& options, const GenerateCallbacks& cb) {
  const ScopedThreads threads(options.threads);
  const ScopedPrecision precision(options.precision);
  const ReformerConfig& config = model.config();
  const std::unique_ptr<Tokenizer> bytes_tokenizer = options.tokenizer ? nullptr : make_byte_tokenizer();
  const Tokenizer& tokenizer = options.tokenizer ? *options.tokenizer : *bytes_tokenizer;
  check_tokenizer_vocab(tokenizer, config.vocab_size, "the model");
  REFORMER_CHECK(!prompts.empty(), "no prompts given");
  for (size_t i = 0; i < prompts.size(); ++i)
    REFORMER_CHECK(!prompts[i].empty(), prompts.size() == 1 ? std::string("the prompt is empty")
                                                            : "prompt " + std::to_string(i + 1) + " is empty",
                   "; give at least one byte (--prompt, --prompt-file or a non-empty line of --prompts-file)");
  REFORMER_CHECK(options.bytes >= 0, "number of bytes to generate ", options.bytes, " must be >= 0");
  validate(options.sampling);
  const int64_t context_limit = options.max_context > 0 ? options.max_context : config.max_length();
  REFORMER_CHECK(context_limit >= 2 && context_limit <= config.max_length(), "--max-context ", context_limit,
                 " must be in [2, ", config.max_length(), "] (the positions the model's positional embedding covers)");
  const int64_t B = static_cast<int64_t>(prompts.size());
  GenerateResult result;
  result.text.resize(prompts.size());
  result.finish.assign(prompts.size(), "length");
  if (options.bytes == 0) return result;

  // The state holds no more positions than the longest prompt and its output need, so a batch of
  // short prompts does not reserve the model's whole context for each.
  int64_t longest = 0;
  for (const std::string& p : prompts) longest = std::max<int64_t>(longest, static_cast<int64_t>(p.size()));
  const int64_t max_context =
      std::max<int64_t>(2, std::min(context_limit, longest + std::min(options.bytes, context_limit)));
  DecodeState state = model.make_decode_state(B, max_context, options.seed);
  const int64_t V = config.vocab_size;
  std::vector<Sequence> seqs;
  for (int64_t b = 0; b < B; ++b) {
    seqs.emplace_back(options.sampling, options.seed);
    seqs.back().tokens = tokenizer.encode(prompts[b]);
    REFORMER_CHECK(!seqs.back().tokens.empty(), "prompt ", b + 1, " encodes to no tokens; give a longer prompt");
  }
  std::vector<float> logits(static_cast<size_t>(B * V));
  // Prefills sequence b with its newest `keep` tokens; its next-token logits land in row b.
  auto prefill = [&](int64_t b, int64_t keep) {
    const auto t0 = Clock::now();
    const std::vector<int32_t>& t = seqs[b].tokens;
    model.prefill(state, b, t.data() + t.size() - keep, keep, logits.data() + b * V);
    result.prefill_seconds += seconds_since(t0);
    result.prompt_tokens += keep;
  };
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = static_cast<int64_t>(seqs[b].tokens.size());
    // A prompt that does not fit starts as a full context would continue: from its newest half.
    const int64_t keep = n > max_context ? max_context / 2 : n;
    if (keep < n && cb.on_note)
      cb.on_note("prompt " + std::to_string(b + 1) + " has " + std::to_string(n) + " bytes, more than the context of " +
                 std::to_string(max_context) + "; generation starts from its newest " + std::to_string(keep));
    prefill(b, keep);
  }

  std::vector<int64_t> active, shifted;
  std::vector<int32_t> next;
  std::vector<float> step_logits(static_cast<size_t>(B * V));
  const int64_t total = B * options.bytes;
  for (int64_t i = 0; i < options.bytes; ++i) {
    // Draw byte i of every live sequence from its logits row.
    active.clear();
    next.clear();
    for (int64_t b = 0; b < B; ++b) {
      Sequence& s = seqs[b];
      if (s.done) continue;
      const int64_t id = s.sampler.sample(logits.data() + b * V, V, tokenizer.first_text_id(), static_cast<uint64_t>(i));
      const std::string piece = tokenizer.token_text(static_cast<int32_t>(id));
      s.tokens.push_back(static_cast<int32_t>(id));
      s.text += piece;
      ++result.generated;
      if (cb.on_byte)
        for (char byte : piece) cb.on_byte(b, byte);
      if (ends_with_any(s.text, options.stop)) {
        s.done = true;
        result.finish[b] = "stop";
      } else if (i + 1 < options.bytes) {
        active.push_back(b);
        next.push_back(static_cast<int32_t>(id));
      }
    }
    if (active.empty()) break;
    // A full context shifts (prefill of its newest half, which includes the new byte); the others
    // take one decoding step together.
    const auto t0 = Clock::now();
    size_t kept = 0;
    shifted.clear();
    for (size_t k = 0; k < active.size(); ++k) {
      if (state.length(active[k]) == max_context) {
        shifted.push_back(active[k]);
        continue;
      }
      active[kept] = active[k];
      next[kept] = next[k];
      ++kept;
    }
    active.resize(kept);
    next.resize(kept);
    if (!active.empty()) {
      model.decode_step(state, active.data(), next.data(), static_cast<int64_t>(active.size()), step_logits.data());
      for (size_t k = 0; k < active.size(); ++k)
        std::copy_n(step_logits.data() + k * V, V, logits.data() + active[k] * V);
    }
    result.decode_seconds += seconds_since(t0);
    for (int64_t b : shifted) {
      if (cb.on_note && !seqs[b].shifted)  // once per prompt; the result counts them all
        cb.on_note("context of prompt " + std::to_string(b + 1) + " is full (" + std::to_string(max_context) +
                   " positions): continuing from its newest " + std::to_string(max_context / 2) +
                   " (and so on each time it fills)");
      seqs[b].shifted = true;
      prefill(b, max_context / 2);
      ++result.context_shifts;
    }
    if (cb.on_step) cb.on_step(result.generated, total);
  }
  for (int64_t b = 0; b < B; ++b) result.text[b] = seqs[b].text;
  return result;
}

}  // namespace reformer
