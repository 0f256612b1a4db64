// reformer: train, evaluate, sample from and inspect Reformer language models.
#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "interrupts.h"
#include "reformer/error.h"

int main(int argc, char** argv) {
  reformer::cli::start_interrupt_watcher();  // first: every later thread inherits the signal block
  CLI::App app{"Reformer language models on long byte sequences: train, eval, generate, info, tokenizer.\n"
               "Run `reformer COMMAND --help` for a command's options."};
  app.require_subcommand(1);
  // A flag given twice takes its last value, so a script can append overrides to a base command.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  int exit_code = 0;
  reformer::cli::add_train_command(app, exit_code);
  reformer::cli::add_eval_command(app, exit_code);
  reformer::cli::add_generate_command(app, exit_code);
  reformer::cli::add_info_command(app, exit_code);
  reformer::cli::add_logits_command(app, exit_code);
  reformer::cli::add_convert_command(app, exit_code);
  reformer::cli::add_tokenizer_command(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return exit_code;
}
