#pragma once
// Inverted dropout with counter-based masks (reformer/rng.h): element i is kept iff
// rng_keep(seed, stream, index_base + i, p) (16 bits of Philox per element), and kept values are
// scaled by 1 / (1 - p), as in Hugging Face.
// The mask is a pure function of its key, so a recomputation (reversible backward, chunked layers)
// draws the same mask by passing the same (seed, stream, absolute index). p = 0 is a no-op that
// draws nothing.
//
// Stream key for hidden-state dropout (HF hidden_dropout_prob), built by the caller as
//   hidden_dropout_stream(step, layer, site) = rng_stream(RngPurpose::HiddenDropout, {step, layer, site})
// with the sites below; index = row * width + column over the flattened (B * L) rows, so that the
// mask does not depend on how the rows are chunked. Dropout after the final LayerNorm uses
// layer = number of layers.
// Gradients: dx is ASSIGNED.
//
// The ops that take a `*16` output also write f32_to_bf16 (kernels/cpu/bf16.h) of their fp32 output
// there, in the same parallel pass, while each range is in cache (nullptr: not written): the bf16
// copy a GEMM operand slot asks for (gemm_operand_bf16_slot, kernels/cpu/gemm.h).
#include <cstdint>

namespace reformer {

enum class DropoutSite : uint64_t {
  AttentionOutput = 0,    // after Wo (reversible block)
  FeedForwardHidden = 1,  // after the first FF dense, before the activation
  FeedForwardOutput = 2,  // after the second FF dense
  FinalNorm = 3,          // after the final LayerNorm (before the LM head)
  ClassifierInput = 4,    // ReformerClassificationHead: on the first position's sequence output (row = sequence)
  ClassifierHidden = 5,   // ReformerClassificationHead: after tanh (row = sequence)
};

uint64_t hidden_dropout_stream(uint64_t step, int layer, DropoutSite site);

// y = dropout(x), n elements; y may equal x (in place). p in [0, 1) else reformer::Error.
void dropout_forward(float* y, const float* x, int64_t n, float p, uint64_t seed, uint64_t stream,
                     uint64_t index_base, uint16_t* y16 = nullptr);
// dx = the forward's mask applied to dy (same key, same index_base); dx may equal dy.
void dropout_backward(float* dx, const float* dy, int64_t n, float p, uint64_t seed, uint64_t stream,
                      uint64_t index_base, uint16_t* dx16 = nullptr);

// Fused passes (one read of each operand instead of two or three). Each is bit-identical to the
// composition of the unfused ops it names, which tests/test_ops.cpp checks against:
// y += dropout(x) (y -= dropout(x) if subtract); x is not modified. = dropout_forward into a
// temporary, then an add. With y_in, y = y_in + dropout(x) instead (y_in is not modified): the same
// bits, written elsewhere.
void dropout_add(float* y, const float* x, int64_t n, bool subtract, float p, uint64_t seed, uint64_t stream,
                 uint64_t index_base, const float* y_in = nullptr);
// h = dropout(h) in place, then a = relu(h). = dropout_forward(h, h, ...), activation_forward(a, h, Relu).
// a may be h (then h ends as relu(dropout(h)): a ReLU layer that keeps only a).
void dropout_relu_forward(float* h, float* a, int64_t n, float p, uint64_t seed, uint64_t stream,
                          uint64_t index_base, uint16_t* a16 = nullptr);
// dh = dropout^T(relu'(h) * dh) in place, h the dropped-out pre-activation the forward kept, without
// drawing the mask again: h > 0 only where the mask kept the element, so dh = h > 0 ? dh / (1 - p) : 0.
// = activation_backward(dh, dh, h, Relu), then dropout_backward(dh, dh, ...), except for the sign
// of zeros (+0 here where that gives -0 for a negative dh).
void relu_dropout_backward_from_output(float* dh, const float* h, int64_t n, float p, uint16_t* dh16 = nullptr);

// Two passes under one mask, drawn once: y += dropout(x) (y -= ... if subtract) and dz = dropout(dw)
// (the reversible backward's X2 = Y2 - dropout(G) and dropout's backward of the gradient of the
// same rows). = dropout_add, then dropout_backward, with the same key; dz may equal dw.
void dropout_add_and_backward(float* y, const float* x, float* dz, const float* dw, int64_t n, bool subtract,
                              float p, uint64_t seed, uint64_t stream, uint64_t index_base, uint16_t* dz16 = nullptr);

}  // namespace reformer
