#pragma once
// Pointwise activations of the feed-forward branch (spec 3.4). dx is ASSIGNED.
#include <cstdint>
#include <string_view>

namespace reformer {

enum class Activation {
  Relu,
  Gelu,     // exact: 0.5 x (1 + erf(x / sqrt 2)); HF "gelu"
  GeluNew,  // tanh approximation; HF "gelu_new" = trax FastGelu
  Silu,     // x * sigmoid(x); HF "silu" / "swish"
};

// From HF `hidden_act`; throws reformer::Error naming the value and the accepted names.
Activation parse_activation(std::string_view name);
const char* to_string(Activation act);

// y = act(x), n elements; y may alias x.
void activation_forward(float* y, const float* x, int64_t n, Activation act);
// dx = act'(x) * dy; dx may alias dy.
void activation_backward(float* dx, const float* dy, const float* x, int64_t n, Activation act);

}  // namespace reformer
