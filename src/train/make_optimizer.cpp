#include "train/make_optimizer.h"

#include "train/adafactor.h"
#include "train/adam.h"
#include "train/option_spec.h"

namespace reformer {
namespace {

float get(OptionSpec& spec, const char* key, float fallback) {
  return static_cast<float>(spec.number(key, fallback));
}

}  // namespace

std::unique_ptr<Optimizer> make_optimizer(const std::string& text, const std::vector<ParamRef>& params) {
  OptionSpec spec(text, "optimizer");
  std::unique_ptr<Optimizer> out;
  if (spec.kind() == "adam") {
    AdamConfig c;
    c.b1 = get(spec, "b1", c.b1);
    c.b2 = get(spec, "b2", c.b2);
    c.eps = get(spec, "eps", c.eps);
    c.weight_decay = get(spec, "weight_decay", c.weight_decay);
    spec.finish();
    out = std::make_unique<Adam>(params, c);
  } else if (spec.kind() == "adafactor") {
    AdafactorConfig c;
    c.beta1 = get(spec, "beta1", c.beta1);
    c.decay_rate = get(spec, "decay_rate", c.decay_rate);
    c.clipping_threshold = get(spec, "clipping_threshold", c.clipping_threshold);
    c.weight_decay = get(spec, "weight_decay", c.weight_decay);
    c.epsilon1 = get(spec, "epsilon1", c.epsilon1);
    c.epsilon2 = get(spec, "epsilon2", c.epsilon2);
    c.factored = spec.flag("factored", c.factored);
    c.multiply_by_parameter_scale = spec.flag("multiply_by_parameter_scale", c.multiply_by_parameter_scale);
    spec.finish();
    out = std::make_unique<Adafactor>(params, c);
  } else {
    fail("unknown optimizer '", spec.kind(), "' in '", text, "'; use 'adam' or 'adafactor' (optionally with ",
         "options, e.g. 'adam:b2=0.999')");
  }
  return out;
}

}  // namespace reformer
