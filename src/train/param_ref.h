#pragma once
// What the training code sees of a model parameter: its name (the state-dict name), its values,
// its gradient buffer (same shape) and its shape. The model owns both buffers; the optimizer and the
// gradient clipper only read and write through these pointers.
#include <string>

#include "reformer/tensor.h"

namespace reformer {

struct ParamRef {
  std::string name;
  float* param = nullptr;
  float* grad = nullptr;
  Shape shape;
};

}  // namespace reformer
