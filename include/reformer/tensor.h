#pragma once
// Tensor: an owning, contiguous, row-major buffer with PyTorch dimension order (outermost first).
// Memory comes from the accounted allocator under a category (memory.h). Tensors move, never copy
// implicitly; clone() copies explicitly. Buffer<T> is the same for non-float data (bucket ids,
// permutations) without a shape. A view (Buffer::view, Tensor::view) borrows memory another buffer
// owns and accounts for (the model's gradient arena); it frees nothing.
#include <cstdint>
#include <cstring>
#include <algorithm>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "reformer/error.h"
#include "reformer/memory.h"

namespace reformer {

using Shape = std::vector<int64_t>;
int64_t shape_numel(const Shape& shape);
std::string shape_str(const Shape& shape);

template <typename T>
class Buffer {
 public:
  Buffer() = default;
  Buffer(int64_t n, MemCategory category) : size_(n), category_(category) {
    REFORMER_CHECK(n >= 0, "negative buffer size ", n);
    data_ = static_cast<T*>(mem_allocate(bytes(), category));
  }
  // Borrows data[0..n): the owner keeps it alive and accounted.
  static Buffer view(T* data, int64_t n) {
    Buffer b;
    b.data_ = data;
    b.size_ = n;
    b.owned_ = false;
    return b;
  }
  ~Buffer() { release(); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept { *this = std::move(o); }
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      release();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
      category_ = o.category_;
      owned_ = std::exchange(o.owned_, true);
    }
    return *this;
  }
  // Reallocates only when n exceeds the current size (buffers are reused across calls).
  void ensure(int64_t n, MemCategory category) {
    if (data_ && n <= size_) return;
    *this = Buffer(n, category);
  }
  T* data() { return data_; }
  const T* data() const { return data_; }
  int64_t size() const { return size_; }
  T& operator[](int64_t i) { return data_[i]; }
  const T& operator[](int64_t i) const { return data_[i]; }
  void fill(T v) { std::fill(data_, data_ + size_, v); }
  size_t bytes() const { return static_cast<size_t>(size_) * sizeof(T); }
  MemCategory category() const { return category_; }

 private:
  void release() {
    if (data_ && owned_) mem_free(data_, bytes(), category_);
    data_ = nullptr;
    size_ = 0;
    owned_ = true;
  }
  T* data_ = nullptr;
  int64_t size_ = 0;
  bool owned_ = true;
  MemCategory category_ = MemCategory::Workspace;
};

class Tensor {
 public:
  Tensor() = default;
  // Uninitialised contents.
  Tensor(Shape shape, MemCategory category);
  static Tensor zeros(Shape shape, MemCategory category);
  // A tensor over numel(shape) floats at data that another tensor owns (Buffer::view).
  static Tensor view(float* data, Shape shape);
  Tensor clone(MemCategory category) const;
  Tensor clone() const { return clone(buffer_.category()); }

  float* data() { return buffer_.data(); }
  const float* data() const { return buffer_.data(); }
  float& operator[](int64_t i) { return buffer_[i]; }
  const float& operator[](int64_t i) const { return buffer_[i]; }

  const Shape& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int i) const { return shape_.at(i < 0 ? i + ndim() : i); }
  int64_t numel() const { return numel_; }
  int64_t capacity() const { return buffer_.size(); }  // allocated elements (>= numel after ensure)
  Shape strides() const;  // in elements, row-major
  bool empty() const { return buffer_.data() == nullptr; }
  MemCategory category() const { return buffer_.category(); }

  void zero() { std::memset(data(), 0, static_cast<size_t>(numel_) * sizeof(float)); }
  void fill(float v) { std::fill(data(), data() + numel_, v); }
  // Same number of elements, new shape (no data movement).
  void reshape(Shape shape);
  // Makes the tensor have this shape, reallocating only if it needs more elements than it holds.
  void ensure(const Shape& shape, MemCategory category);

 private:
  Shape shape_;
  int64_t numel_ = 0;
  Buffer<float> buffer_;
};

}  // namespace reformer
