// decode_bench: the cost of incremental decoding (reformer generate) at one context length.
//
//   decode_bench [--model DIR | --save DIR] --context N [--tokens T] [--warmup W] [--seed S] [--header]
//
// Without --model it builds the reference model with random weights: the C&P architecture
// as a byte model (6 layers [local, lsh] x 3, hidden 256, d_ff 512, 2 heads x 64, chunks 64 with
// one before, 1 hash, vocabulary 258, causal), positions up to 1,048,576 (axial (1024, 1024)) and
// num_buckets resolved for 65,536 tokens (as if trained at 64K); --save DIR writes it (config.json +
// model.safetensors) for a side-by-side run with Hugging Face (scripts/hf_generate_bench.py).
// It prefills N random bytes twice (one chunked forward each; fewer bytes when N + W + T exceeds the
// positions; the first, cold, pass pays the first touch of the buffers), then decodes W untimed and T timed tokens one at
// a time, greedily, and prints one CSV row: the prefill time and throughput, the median / min / max
// milliseconds per token, the decode state's bytes and the process peak RSS. Threads: OMP_NUM_THREADS.
// Run one context per process (VmHWM is per process); scripts/bench_decode.sh runs the sweep.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench_models.h"
#include "reformer/checkpoint.h"
#include "reformer/memory.h"
#include "reformer/model.h"
#include "reformer/rng.h"

namespace {

using Clock = std::chrono::steady_clock;

// The C&P architecture as a byte model, positions up to 2^20, buckets as if trained at 64K.
reformer::ReformerConfig reference_config() {
  reformer::ReformerConfig c = bench::crime_and_punishment();
  c.vocab_size = 258;
  c.axial_pos_shape = {1024, 1024};
  c.max_position_embeddings = 1 << 20;
  c.num_buckets = c.auto_num_buckets(65536);
  return c;
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "decode_bench: %s\nusage: decode_bench [--model DIR | --save DIR] --context N [--tokens T] [--warmup W] "
               "[--seed S] [--header]\n",
               why);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) try {
  std::string model_dir, save_dir;
  int64_t context = 0, tokens = 64, warmup = 4;
  uint64_t seed = 0;
  bool header = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] {
      if (i + 1 >= argc) usage(("missing value after " + a).c_str());
      return std::string(argv[++i]);
    };
    if (a == "--model") model_dir = next();
    else if (a == "--save") save_dir = next();
    else if (a == "--context") context = std::stoll(next());
    else if (a == "--tokens") tokens = std::stoll(next());
    else if (a == "--warmup") warmup = std::stoll(next());
    else if (a == "--seed") seed = std::stoull(next());
    else if (a == "--header") header = true;
    else usage(("unknown argument " + a).c_str());
  }
  if (header)
    std::printf("context,threads,prefill_cold_s,prefill_s,prefill_tokens_per_s,ms_per_token_median,ms_per_token_min,"
                "ms_per_token_max,tokens,state_bytes,peak_rss_bytes\n");
  std::unique_ptr<reformer::ReformerModel> model =
      model_dir.empty() ? std::make_unique<reformer::ReformerModel>(reference_config(), 1) : reformer::load_model(model_dir);
  if (!save_dir.empty()) reformer::save_model(save_dir, *model);
  if (context == 0) return 0;
  if (context < 1 || tokens < 1 || warmup < 0) usage("--context and --tokens must be >= 1, --warmup >= 0");
  const int64_t V = model->config().vocab_size;
  // A context at the positional embedding's end (e.g. 1,048,576) prefills fewer tokens so that the
  // decoded ones still fit; the row reports the prefilled length.
  const int64_t max_len = model->config().max_length();
  if (warmup + tokens >= max_len) usage("--warmup + --tokens leave no room for a prompt");
  context = std::min(context, max_len - warmup - tokens);
  const int64_t capacity = context + warmup + tokens;
  std::vector<int32_t> ids(static_cast<size_t>(context));
  for (int64_t t = 0; t < context; ++t)  // random bytes, as ids byte + 2
    ids[t] = 2 + static_cast<int32_t>(reformer::rng_uniform(seed, 1, static_cast<uint64_t>(t)) * 256) % 256;
  reformer::DecodeState state = model->make_decode_state(1, capacity, seed);
  std::vector<float> logits(static_cast<size_t>(V));
  // Twice: the first prefill of a process also pays the first touch of every buffer (reported as
  // prefill_cold_s); the second is the steady-state cost, comparable with reformer_bench's forward
  // mode (a median after a warm-up).
  double prefill_s = 0, prefill_cold_s = 0;
  for (int pass = 0; pass < 2; ++pass) {
    const auto t0 = Clock::now();
    model->prefill(state, 0, ids.data(), context, logits.data());
    (pass == 0 ? prefill_cold_s : prefill_s) = std::chrono::duration<double>(Clock::now() - t0).count();
  }
  std::vector<double> ms;
  const int64_t seq = 0;
  for (int64_t i = 0; i < warmup + tokens; ++i) {
    const int32_t next = static_cast<int32_t>(2 + (std::max_element(logits.begin() + 2, logits.end()) - logits.begin() - 2));
    const auto s0 = Clock::now();
    model->decode_step(state, &seq, &next, 1, logits.data());
    if (i >= warmup) ms.push_back(1e3 * std::chrono::duration<double>(Clock::now() - s0).count());
  }
  std::vector<double> sorted = ms;
  std::sort(sorted.begin(), sorted.end());
  std::printf("%lld,%d,%.4f,%.4f,%.1f,%.4f,%.4f,%.4f,%lld,%lld,%lld\n", static_cast<long long>(context),
              omp_get_max_threads(), prefill_cold_s, prefill_s, context / prefill_s, sorted[sorted.size() / 2], sorted.front(),
              sorted.back(), static_cast<long long>(tokens), static_cast<long long>(state.bytes()),
              static_cast<long long>(reformer::process_peak_rss_bytes()));
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "decode_bench: %s\n", e.what());
  return 1;
}
