#pragma once
// safetensors files (https://huggingface.co/docs/safetensors): the checkpoint format of the Hugging
// Face Hub. Layout: u64 little-endian header length N, N bytes of JSON header (may end in spaces),
// then the data buffer. The header maps each tensor name to {"dtype", "shape", "data_offsets":
// [begin, end]} (byte offsets relative to the data buffer) plus an optional "__metadata__"
// string-to-string map. Tensors are row-major and little-endian.
//
// The reader validates the whole header on open() (every error names the file and the problem) and
// reads tensors on demand with pread, so a large checkpoint is never held in memory twice. Float
// types (F32, F16, BF16, F64) are converted to float32, integer types (I64, I32, I16, I8, U8, BOOL)
// to int64. The writer writes F32/I64/I32 atomically (temp file, fsync, rename).
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "reformer/tensor.h"

namespace reformer {

enum class SafeDType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };
const char* to_string(SafeDType dtype);
int64_t element_size(SafeDType dtype);

struct SafeTensorInfo {
  SafeDType dtype;
  Shape shape;
  int64_t begin = 0;  // byte offsets into the data buffer, [begin, end)
  int64_t end = 0;
};

class SafetensorsFile {
 public:
  // Opens and validates the header; throws reformer::Error naming the file on any malformation.
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const { return path_; }
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  const SafeTensorInfo& info(const std::string& name) const;
  const Shape& shape(const std::string& name) const { return info(name).shape; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Byte offset of the data buffer in the file (8 + header length).
  int64_t data_start() const { return data_start_; }

  // Float tensors (F32/F16/BF16/F64) as float32.
  Tensor read_f32(const std::string& name, MemCategory category) const;
  // Same into caller memory; n must equal the tensor's element count.
  void read_f32_into(const std::string& name, float* dst, int64_t n) const;
  // Integer or bool tensors as int64.
  std::vector<int64_t> read_i64(const std::string& name) const;

 private:
  struct Fd;  // closes the descriptor when the last copy of the file handle goes away
  std::vector<char> read_raw(const std::string& name) const;

  std::string path_;
  std::shared_ptr<Fd> fd_;
  int64_t data_start_ = 0;
  std::map<std::string, SafeTensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// A tensor to write: name, shape and a pointer to numel(shape) contiguous elements of the dtype.
struct NamedTensorView {
  NamedTensorView(std::string name, Shape shape, const float* data)
      : name(std::move(name)), shape(std::move(shape)), dtype(SafeDType::F32), data(data) {}
  NamedTensorView(std::string name, Shape shape, const int64_t* data)
      : name(std::move(name)), shape(std::move(shape)), dtype(SafeDType::I64), data(data) {}
  NamedTensorView(std::string name, Shape shape, const int32_t* data)
      : name(std::move(name)), shape(std::move(shape)), dtype(SafeDType::I32), data(data) {}
  NamedTensorView(std::string name, const Tensor& t) : NamedTensorView(std::move(name), t.shape(), t.data()) {}

  std::string name;
  Shape shape;
  SafeDType dtype;
  const void* data;
};

// Writes path atomically: the bytes go to path + ".tmp", which is fsynced and renamed over path. On
// any failure (e.g. disk full) the temp file is removed, path is left untouched, and Error is
// thrown. Tensors are laid out widest dtype first, then by name, so every tensor is aligned to its
// element size; the header is space-padded so the data buffer starts at a multiple of 8.
void write_safetensors(const std::string& path, const std::vector<NamedTensorView>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace reformer
