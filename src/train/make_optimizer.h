#pragma once
// Builds an optimizer from a spec string (train/option_spec.h):
//   "adam"       trax enwik8 preset; keys b1, b2, eps, weight_decay
//                e.g. "adam:b1=0.86,b2=0.92" (Crime-and-Punishment, spec 8.5)
//   "adafactor"  trax defaults; keys beta1, decay_rate, clipping_threshold, weight_decay, epsilon1,
//                epsilon2, factored (0/1), multiply_by_parameter_scale (0/1)
//                e.g. "adafactor:weight_decay=1e-5" (the paper-era enwik8 gin, spec 8.1)
#include <memory>
#include <string>
#include <vector>

#include "train/optimizer.h"

namespace reformer {

std::unique_ptr<Optimizer> make_optimizer(const std::string& spec, const std::vector<ParamRef>& params);

}  // namespace reformer
