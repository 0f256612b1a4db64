// reformer generate: sample bytes from a trained model after a prompt (or a batch of prompts, one
// per line of a file), with incremental decoding: the prompt is read once, then each byte costs
// one token's pass through the layers, whatever the length of the context.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <optional>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "common.h"
#include "reformer/generate.h"
#include "reformer/error.h"
#include "reformer/tokenizer.h"

namespace reformer::cli {
namespace {

struct GenerateCommand {
  std::string model_dir;
  std::optional<std::string> prompt, prompt_file, prompts_file;
  std::string tokenizer;
  GenerateOptions options;
  std::optional<int64_t> num_hashes;
  std::optional<int> threads;
  std::string precision = "fp32";
};

std::string read_file(const std::string& path, const char* flag) {
  std::ifstream in(path, std::ios::binary);
  REFORMER_CHECK(in, "cannot read ", flag, " ", path, "; check the path and its permissions");
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// One prompt per line ("\n" or "\r\n" endings); a final line without a newline counts too.
std::vector<std::string> read_prompt_lines(const std::string& path) {
  const std::string text = read_file(path, "--prompts-file");
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
    start = end + 1;
  }
  REFORMER_CHECK(!lines.empty(), "--prompts-file ", path, " has no lines; put one prompt per line");
  return lines;
}

// "\r<generated>/<total> bytes, <rate> bytes/s" on stderr, at most ten times a second.
class ProgressLine {
 public:
  void update(int64_t done, int64_t total) {
    const auto now = std::chrono::steady_clock::now();
    if (done < total && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    const double s = std::chrono::duration<double>(now - start_).count();
    std::fprintf(stderr, "\r[generate] %lld/%lld bytes, %.1f bytes/s ", static_cast<long long>(done),
                 static_cast<long long>(total), s > 0 ? done / s : 0.0);
    if (done == total) std::fputc('\n', stderr);
  }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_{};
};

void run_generate(const GenerateCommand& c) {
  GenerateOptions options = c.options;
  options.threads = thread_flag(c.threads);
  options.precision = parse_precision(c.precision);
  check_precision(options.precision);  // before loading anything
  const int sources = c.prompt.has_value() + c.prompt_file.has_value() + c.prompts_file.has_value();
  REFORMER_CHECK(sources == 1, "give the prompt with exactly one of --prompt, --prompt-file or --prompts-file");
  validate(c.options.sampling);
  REFORMER_CHECK(c.options.bytes >= 0, "--bytes ", c.options.bytes, " must be >= 0");
  REFORMER_CHECK(c.options.max_context >= 0, "--max-context ", c.options.max_context,
                 " must be >= 2 (or 0 for the model's max_position_embeddings)");
  for (const std::string& s : c.options.stop) REFORMER_CHECK(!s.empty(), "--stop needs a non-empty text");
  std::vector<std::string> prompts;
  if (c.prompt) prompts = {*c.prompt};
  if (c.prompt_file) prompts = {read_file(*c.prompt_file, "--prompt-file")};
  if (c.prompts_file) prompts = read_prompt_lines(*c.prompts_file);
  auto model = open_model(c.model_dir);
  // The model directory's spiece.model (or --tokenizer) turns prompts into tokens and tokens into text.
  const std::unique_ptr<Tokenizer> tokenizer = tokenizer_for(c.model_dir, c.tokenizer);
  options.tokenizer = tokenizer.get();
  if (c.num_hashes) {
    REFORMER_CHECK(*c.num_hashes >= 1, "--num-hashes ", *c.num_hashes, " must be at least 1");
    model->set_num_hashes(*c.num_hashes);
  }
  const bool batch = c.prompts_file.has_value();
  const bool tty = isatty(STDERR_FILENO);
  ProgressLine progress;
  GenerateCallbacks cb;
  if (!batch)
    cb.on_byte = [](int64_t, char b) {
      std::fputc(b, stdout);
      std::fflush(stdout);
    };
  // The progress line goes to a terminal stderr, unless the bytes themselves stream to that terminal.
  if (tty && (batch || !isatty(STDOUT_FILENO)))
    cb.on_step = [&](int64_t done, int64_t total) { progress.update(done, total); };
  cb.on_note = [](const std::string& note) { std::fprintf(stderr, "[generate] %s\n", note.c_str()); };
  const GenerateResult r = generate_bytes(*model, prompts, options, cb);
  if (batch)
    for (size_t i = 0; i < prompts.size(); ++i) {
      const nlohmann::json line = {{"prompt", i + 1}, {"text", r.text[i]}, {"finish", r.finish[i]}};
      std::printf("%s\n", line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    }
  if (tty)
    std::fprintf(stderr, "\n[generate] prompt %lld tokens in %.2f s; %lld bytes in %.2f s (%.3f ms/byte)%s\n",
                 static_cast<long long>(r.prompt_tokens), r.prefill_seconds, static_cast<long long>(r.generated),
                 r.decode_seconds, r.generated > 0 ? 1e3 * r.decode_seconds / r.generated : 0.0,
                 r.context_shifts ? (", " + std::to_string(r.context_shifts) + " context shifts").c_str() : "");
}

}  // namespace

void add_generate_command(CLI::App& app, int& exit_code) {
  auto c = std::make_shared<GenerateCommand>();
  CLI::App* cmd = app.add_subcommand(
      "generate",
      "Sample bytes after a prompt with incremental decoding: the prompt is read once, then each byte costs one "
      "token's pass through the layers. One prompt streams its bytes to stdout; --prompts-file decodes one prompt per "
      "line together and prints one JSON line per prompt");
  cmd->add_option("--model", c->model_dir, "model directory (the --out of `reformer train`)")->required();
  cmd->add_option("--prompt", c->prompt, "prompt text");
  cmd->add_option("--prompt-file", c->prompt_file, "file whose bytes are the prompt");
  cmd->add_option("--prompts-file", c->prompts_file,
                  "file with one prompt per line, decoded together; prints {\"prompt\", \"text\", \"finish\"} per line");
  cmd->add_option("--tokenizer", c->tokenizer,
                  "SentencePiece model (spiece.model) of the text (default: the --model directory's spiece.model, else bytes)");
  cmd->add_option("--bytes", c->options.bytes, "tokens to generate per prompt (bytes for a byte-level model)")->capture_default_str();
  cmd->add_option("--temperature", c->options.sampling.temperature, "sampling temperature, 0 = greedy")->capture_default_str();
  cmd->add_option("--top-k", c->options.sampling.top_k, "sample among the k most likely bytes, 0 = all")->capture_default_str();
  cmd->add_option("--top-p", c->options.sampling.top_p, "nucleus sampling: the most likely bytes holding this probability, in (0, 1]")->capture_default_str();
  cmd->add_option("--seed", c->options.seed, "seed of sampling and of the LSH rotations: the same seed gives the same bytes")
      ->capture_default_str()
      ->check(kNotNegative);
  cmd->add_option("--max-context", c->options.max_context,
                  "positions kept per prompt (0 = the model's max_position_embeddings); a longer prompt starts from its "
                  "newest half, and so does a full context (the positions restart)")
      ->capture_default_str();
  cmd->add_option("--stop", c->options.stop, "stop a prompt's output once it ends with this text (repeatable)");
  cmd->add_option("--num-hashes", c->num_hashes, "LSH hash rounds");
  cmd->add_option("--threads", c->threads, "OpenMP threads");
  cmd->add_option("--precision", c->precision, "matrix products: fp32 or bf16 (bf16 inputs, fp32 accumulation; needs "
                  "AVX512-BF16 or AMX-BF16)")->capture_default_str();
  cmd->callback([c, &exit_code] {
    run_generate(*c);
    exit_code = 0;
  });
}

}  // namespace reformer::cli
