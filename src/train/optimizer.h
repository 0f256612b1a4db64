#pragma once
// Optimizer interface. An optimizer is built for one parameter list (names, shapes, order) and
// allocates all of its state then, once, under MemCategory::OptimizerState, so a checkpoint can be
// loaded into it before the first step. step() updates params in place from their grads; the
// gradients are only read (the caller zeroes them for the next accumulation).
//
// State for checkpoints: state() lists every state tensor as "<optimizer>.<slot>.<param name>"
// (e.g. "adam.m.reformer.embeddings.word_embeddings.weight") with its shape and a pointer into the
// optimizer's own buffer, plus steps_taken(), the number of updates applied (bias corrections and
// Adafactor's decay schedule depend on it).
#include <cstdint>
#include <string>
#include <vector>

#include "reformer/tensor.h"
#include "train/param_ref.h"

namespace reformer {

struct NamedState {
  std::string name;
  Shape shape;
  float* data = nullptr;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update with learning rate lr. params must match the list the optimizer was built for.
  virtual void step(const std::vector<ParamRef>& params, float lr) = 0;

  const std::string& name() const { return name_; }
  int64_t steps_taken() const { return steps_; }
  std::vector<NamedState> state();
  // Copies every state tensor by name from `tensors` (extra names are an error too: they mean the
  // checkpoint was written for another model or optimizer) and sets the step counter.
  void load_state(int64_t steps_taken, const std::vector<NamedState>& tensors);

 protected:
  Optimizer(std::string name, const std::vector<ParamRef>& params);
  // A zero-filled state tensor named "<name>.<slot>.<param name>".
  float* add_state(const std::string& slot, const ParamRef& p, Shape shape);
  // Throws unless params has the names and shapes given at construction.
  void check_params(const std::vector<ParamRef>& params) const;

  int64_t steps_ = 0;

 private:
  std::string name_;
  std::vector<std::string> param_names_;
  std::vector<Shape> param_shapes_;
  std::vector<std::string> state_names_;
  std::vector<Tensor> state_tensors_;
};

}  // namespace reformer
