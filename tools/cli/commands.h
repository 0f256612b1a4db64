#pragma once
// The subcommands of `reformer`. Each adds itself to the app; its callback runs the command and
// sets exit_code (errors are thrown as reformer::Error and reported by main).
#include <CLI/CLI.hpp>

namespace reformer::cli {

void add_train_command(CLI::App& app, int& exit_code);
void add_eval_command(CLI::App& app, int& exit_code);
void add_generate_command(CLI::App& app, int& exit_code);
void add_info_command(CLI::App& app, int& exit_code);
void add_logits_command(CLI::App& app, int& exit_code);
void add_convert_command(CLI::App& app, int& exit_code);
void add_tokenizer_command(CLI::App& app, int& exit_code);

// For unsigned flags (seeds): CLI11 would wrap "-1" into a huge unsigned value.
inline const CLI::Validator kNotNegative(
    [](std::string& v) { return !v.empty() && v[0] == '-' ? "must not be negative, got " + v + "; give 0 or more" : std::string(); },
    "NOT NEGATIVE");

// Exit code of a training run stopped by Ctrl-C after saving its checkpoint (128 + SIGINT).
inline constexpr int kInterruptedExit = 130;

}  // namespace reformer::cli
