// reformer generate: sample bytes from a trained model after a prompt, streaming them to stdout.
#include <cstdio>
#include <fstream>
#include <iterator>
#include <optional>

#include "commands.h"
#include "common.h"
#include "infer/generate.h"
#include "reformer/error.h"

namespace reformer::cli {
namespace {

struct GenerateCommand {
  std::string model_dir;
  std::optional<std::string> prompt, prompt_file;
  GenerateOptions options;
  std::optional<int64_t> num_hashes;
  std::optional<int> threads;
};

std::string read_prompt_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REFORMER_CHECK(in, "cannot read prompt file ", path, "; check the path and its permissions");
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void run_generate(const GenerateCommand& c) {
  set_threads(c.threads);
  REFORMER_CHECK(c.prompt.has_value() != c.prompt_file.has_value(), "give the prompt with exactly one of --prompt or --prompt-file");
  validate(c.options.sampling);
  REFORMER_CHECK(c.options.bytes >= 0, "--bytes ", c.options.bytes, " must be >= 0");
  const std::string prompt = c.prompt ? *c.prompt : read_prompt_file(*c.prompt_file);
  auto model = open_model(c.model_dir);
  if (c.num_hashes) {
    REFORMER_CHECK(*c.num_hashes >= 1, "--num-hashes ", *c.num_hashes, " must be at least 1");
    model->set_num_hashes(*c.num_hashes);
  }
  generate_bytes(*model, prompt, c.options, [](char b) {
    std::fputc(b, stdout);
    std::fflush(stdout);
  });
}

}  // namespace

void add_generate_command(CLI::App& app, int& exit_code) {
  auto c = std::make_shared<GenerateCommand>();
  CLI::App* cmd = app.add_subcommand("generate", "Sample bytes after a prompt; they are written to stdout as they are drawn");
  cmd->add_option("--model", c->model_dir, "model directory (the --out of `reformer train`)")->required();
  cmd->add_option("--prompt", c->prompt, "prompt text");
  cmd->add_option("--prompt-file", c->prompt_file, "file whose bytes are the prompt");
  cmd->add_option("--bytes", c->options.bytes, "bytes to generate")->capture_default_str();
  cmd->add_option("--temperature", c->options.sampling.temperature, "sampling temperature, 0 = greedy")->capture_default_str();
  cmd->add_option("--top-k", c->options.sampling.top_k, "sample among the k most likely bytes, 0 = all")->capture_default_str();
  cmd->add_option("--top-p", c->options.sampling.top_p, "nucleus sampling: the most likely bytes holding this probability, in (0, 1]")->capture_default_str();
  cmd->add_option("--seed", c->options.seed, "seed: the same seed gives the same bytes")->capture_default_str();
  cmd->add_option("--num-hashes", c->num_hashes, "LSH hash rounds");
  cmd->add_option("--threads", c->threads, "OpenMP threads");
  cmd->callback([c, &exit_code] {
    run_generate(*c);
    exit_code = 0;
  });
}

}  // namespace reformer::cli
