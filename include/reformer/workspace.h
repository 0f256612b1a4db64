#pragma once
// Scratch buffers shared by every layer of a model. Layers run one at a time, so one set of
// named scratch buffers serves them all and workspace memory does not grow with depth. A layer
// asks for its buffers by name at the start of each call; a buffer grows when needed and is
// otherwise reused (no allocation in the steady state). Not for anything that must survive until
// the layer's backward (e.g. LSH buckets): that belongs to the layer.
#include <map>
#include <memory>
#include <string>

#include "reformer/tensor.h"

namespace reformer {

class Workspace {
 public:
  Tensor& tensor(const std::string& key, const Shape& shape) {
    auto& slot = tensors_[key];
    if (!slot) slot = std::make_unique<Tensor>();
    slot->ensure(shape, MemCategory::Workspace);
    return *slot;
  }
  int64_t bytes() const {
    int64_t total = 0;
    for (const auto& [key, t] : tensors_) total += t->capacity() * static_cast<int64_t>(sizeof(float));
    return total;
  }

 private:
  std::map<std::string, std::unique_ptr<Tensor>> tensors_;
};

}  // namespace reformer
