#include "reformer/tensor.h"

#include <sstream>

#include "core/checked_math.h"
#include "reformer/limits.h"

namespace reformer {

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    REFORMER_CHECK(d >= 0, "negative dimension in shape ", shape_str(shape));
    n = checked_mul(n, d, "element count of shape " + shape_str(shape));
  }
  REFORMER_CHECK(n <= limits::kMaxElements, "shape ", shape_str(shape), " has ", n, " elements, more than the limit ",
                 limits::kMaxElements, "; use smaller sizes");
  return n;
}

std::string shape_str(const Shape& shape) {
  std::ostringstream s;
  s << "(";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << ")";
  return s.str();
}

Tensor::Tensor(Shape shape, MemCategory category)
    : shape_(std::move(shape)), numel_(shape_numel(shape_)), buffer_(numel_, category) {}

Tensor Tensor::zeros(Shape shape, MemCategory category) {
  Tensor t(std::move(shape), category);
  t.zero();
  return t;
}

Tensor Tensor::view(float* data, Shape shape) {
  Tensor t;
  t.numel_ = shape_numel(shape);
  t.shape_ = std::move(shape);
  t.buffer_ = Buffer<float>::view(data, t.numel_);
  return t;
}

Tensor Tensor::clone(MemCategory category) const {
  Tensor t(shape_, category);
  if (numel_) std::memcpy(t.data(), data(), static_cast<size_t>(numel_) * sizeof(float));
  return t;
}

Shape Tensor::strides() const {
  Shape s(shape_.size(), 1);
  for (int i = ndim() - 2; i >= 0; --i) s[i] = s[i + 1] * shape_[i + 1];
  return s;
}

void Tensor::reshape(Shape shape) {
  REFORMER_CHECK(shape_numel(shape) == numel(), "cannot reshape ", shape_str(shape_), " to ",
                 shape_str(shape));
  shape_ = std::move(shape);
}

void Tensor::ensure(const Shape& shape, MemCategory category) {
  const int64_t n = shape_numel(shape);
  if (empty() || n > buffer_.size()) buffer_ = Buffer<float>(n, category);
  shape_ = shape;
  numel_ = n;
}

}  // namespace reformer
