#pragma once
// Global gradient-norm clipping over all parameters together (torch's clip_grad_norm_).
#include <vector>

#include "train/param_ref.h"

namespace reformer {

// L2 norm of all gradients, accumulated in double.
double grad_norm(const std::vector<ParamRef>& params);

// Scales every gradient by max_norm / norm when the global norm exceeds max_norm and returns the norm
// before clipping. A non-finite norm is returned without touching the gradients, so the caller can
// report it and skip the step instead of spreading NaN into the weights.
double clip_grad_norm(const std::vector<ParamRef>& params, double max_norm);

}  // namespace reformer
