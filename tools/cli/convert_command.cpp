// reformer convert: loads any model directory reformer reads (its own, or Hugging Face's
// save_pretrained output of any Reformer class, docs/HF_INTEROP.md) and saves it in reformer's
// layout: config.json with every field, model.safetensors with the class's state-dict names (the
// tied lm_head.decoder.bias written out). What it writes loads in transformers with no missing or
// unexpected keys (scripts/check_hf_roundtrip.py).
#include <cstdio>
#include <filesystem>
#include <string>

#include "commands.h"
#include "common.h"
#include "reformer/checkpoint.h"
#include "reformer/error.h"

namespace reformer::cli {

void add_convert_command(CLI::App& app, int& exit_code) {
  auto model_dir = std::make_shared<std::string>(), out = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("convert", "Load a model directory (reformer or Hugging Face, any Reformer class) and "
                                                "save it in reformer's layout");
  cmd->add_option("--model", *model_dir, "model directory (config.json + model.safetensors)")->required();
  cmd->add_option("--out", *out, "directory to write (created; an existing model there is replaced)")->required();
  cmd->callback([model_dir, out, &exit_code] {
    REFORMER_CHECK(std::filesystem::weakly_canonical(*model_dir) != std::filesystem::weakly_canonical(*out),
                   "--out ", *out, " is the --model directory; write the converted model elsewhere");
    auto model = open_model(*model_dir);
    ensure_writable_dir(*out);
    save_model(*out, *model);
    std::printf("%s (%lld parameters) written to %s\n", model_class_name(model->model_class()),
                static_cast<long long>(model->num_parameters()), out->c_str());
    exit_code = 0;
  });
}

}  // namespace reformer::cli
