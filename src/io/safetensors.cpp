#include "reformer/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <utility>

#include "io/regular_file.h"

namespace reformer {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian; port the byte swaps");

namespace {

// No real header comes close; a larger value means the file is not safetensors (or is corrupt).
constexpr int64_t kMaxHeaderBytes = 100 * 1000 * 1000;
// Bound on byte sizes so products of dimensions cannot overflow int64.
constexpr int64_t kMaxBytes = int64_t{1} << 50;

struct DTypeName {
  SafeDType dtype;
  const char* name;
  int64_t size;
};
constexpr DTypeName kDTypes[] = {
    {SafeDType::F64, "F64", 8}, {SafeDType::F32, "F32", 4}, {SafeDType::F16, "F16", 2},
    {SafeDType::BF16, "BF16", 2}, {SafeDType::I64, "I64", 8}, {SafeDType::I32, "I32", 4},
    {SafeDType::I16, "I16", 2}, {SafeDType::I8, "I8", 1}, {SafeDType::U8, "U8", 1},
    {SafeDType::BOOL, "BOOL", 1},
};

const DTypeName& dtype_entry(SafeDType d) {
  for (const DTypeName& e : kDTypes)
    if (e.dtype == d) return e;
  fail("internal: safetensors dtype ", static_cast<int>(d), " missing from the table");
}

std::string errno_text() { return std::strerror(errno); }

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t man = h & 0x3ffu;
  if (exp == 0) {  // zero or subnormal: man * 2^-24
    const float f = std::ldexp(static_cast<float>(man), -24);
    return sign ? -f : f;
  }
  if (exp == 31) return std::bit_cast<float>(sign | 0x7f800000u | (man << 13));  // inf / nan
  return std::bit_cast<float>(sign | ((exp + 112) << 23) | (man << 13));          // rebias 15 -> 127
}

template <typename T>
T load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// A non-negative JSON integer that fits the byte-size bound, or an error naming `what`.
int64_t json_size(const nlohmann::json& v, const std::string& file, const std::string& what) {
  REFORMER_CHECK(v.is_number_unsigned() && v.get<uint64_t>() <= static_cast<uint64_t>(kMaxBytes),
                 "safetensors file '", file, "': ", what, " must be a non-negative integer below 2^50, got ",
                 v.dump());
  return static_cast<int64_t>(v.get<uint64_t>());
}

SafeTensorInfo parse_entry(const std::string& file, const std::string& name, const nlohmann::json& e) {
  const std::string where = "safetensors file '" + file + "': tensor '" + name + "'";
  REFORMER_CHECK(e.is_object(), where, " must map to an object, got ", e.dump());
  for (const char* field : {"dtype", "shape", "data_offsets"})
    REFORMER_CHECK(e.contains(field), where, " is missing the field '", field, "'");
  const nlohmann::json& dt = e["dtype"];
  REFORMER_CHECK(dt.is_string(), where, ": dtype must be a string, got ", dt.dump());
  SafeTensorInfo info{};
  bool known = false;
  for (const DTypeName& d : kDTypes) {
    if (dt.get<std::string>() == d.name) {
      info.dtype = d.dtype;
      known = true;
    }
  }
  REFORMER_CHECK(known, where, " has unsupported dtype '", dt.get<std::string>(),
                 "' (supported: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)");
  const nlohmann::json& sh = e["shape"];
  REFORMER_CHECK(sh.is_array(), where, ": shape must be an array, got ", sh.dump());
  int64_t bytes = element_size(info.dtype);
  for (const nlohmann::json& d : sh) {
    info.shape.push_back(json_size(d, file, "tensor '" + name + "' shape entry"));
    REFORMER_CHECK(info.shape.back() == 0 || bytes <= kMaxBytes / info.shape.back(), where, " shape ",
                   sh.dump(), " is too large");
    bytes *= info.shape.back();
  }
  const nlohmann::json& off = e["data_offsets"];
  REFORMER_CHECK(off.is_array() && off.size() == 2, where, ": data_offsets must be [begin, end], got ", off.dump());
  info.begin = json_size(off[0], file, "tensor '" + name + "' data_offsets begin");
  info.end = json_size(off[1], file, "tensor '" + name + "' data_offsets end");
  REFORMER_CHECK(info.begin <= info.end, where, " has data_offsets ", off.dump(), " with begin > end");
  REFORMER_CHECK(info.end - info.begin == bytes, where, ": data_offsets ", off.dump(), " span ",
                 info.end - info.begin, " bytes but dtype ", dt.get<std::string>(), " and shape ", sh.dump(),
                 " need ", bytes);
  return info;
}

}  // namespace

const char* to_string(SafeDType dtype) { return dtype_entry(dtype).name; }
int64_t element_size(SafeDType dtype) { return dtype_entry(dtype).size; }

struct SafetensorsFile::Fd {
  explicit Fd(int fd) : fd(fd) {}
  ~Fd() { ::close(fd); }
  int fd;
};

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.path_ = path;
  const int fd = open_regular_file(path, "safetensors file");
  f.fd_ = std::make_shared<Fd>(fd);
  struct stat st{};
  REFORMER_CHECK(::fstat(fd, &st) == 0, "cannot stat safetensors file '", path, "': ", errno_text());
  const int64_t file_size = st.st_size;
  const std::string where = "safetensors file '" + path + "'";
  REFORMER_CHECK(file_size >= 8, where, " is ", file_size, " bytes, too short for the 8-byte header length");

  char len_bytes[8];
  REFORMER_CHECK(::pread(fd, len_bytes, 8, 0) == 8, where, ": cannot read the header length: ", errno_text());
  const uint64_t n = load<uint64_t>(len_bytes);
  REFORMER_CHECK(n <= static_cast<uint64_t>(kMaxHeaderBytes), where, ": header length ", n,
                 " bytes exceeds the 100 MB limit (not a safetensors file, or corrupt)");
  REFORMER_CHECK(static_cast<int64_t>(n) <= file_size - 8, where, ": header length ", n,
                 " bytes exceeds the ", file_size - 8, " bytes that follow it (file truncated?)");
  std::string header(n, '\0');
  REFORMER_CHECK(::pread(fd, header.data(), n, 8) == static_cast<ssize_t>(n), where, ": cannot read the ", n,
                 "-byte header: ", errno_text());
  f.data_start_ = 8 + static_cast<int64_t>(n);
  const int64_t data_bytes = file_size - f.data_start_;

  nlohmann::json j;
  try {
    j = nlohmann::json::parse(header);
  } catch (const nlohmann::json::exception& e) {  // parse errors and number overflow (out_of_range)
    fail(where, ": header is not valid JSON (", e.what(), "); the file is corrupt or not safetensors");
  }
  // Any exception of the JSON library (a value of an unexpected type) becomes an Error naming the file.
  try {
    REFORMER_CHECK(j.is_object(), where, ": header must be a JSON object, got ", j.type_name());

    for (const auto& [name, entry] : j.items()) {
      if (name == "__metadata__") {
        REFORMER_CHECK(entry.is_object(), where, ": __metadata__ must be an object, got ", entry.dump());
        for (const auto& [k, v] : entry.items()) {
          REFORMER_CHECK(v.is_string(), where, ": __metadata__ value of '", k, "' must be a string, got ", v.dump());
          f.metadata_[k] = v.get<std::string>();
        }
        continue;
      }
      f.tensors_.emplace(name, parse_entry(path, name, entry));
    }
  } catch (const nlohmann::json::exception& e) {
    fail(where, ": malformed header (", e.what(), "); the file is corrupt or not safetensors");
  }

  // Byte ranges must lie inside the data buffer and must not overlap (gaps are tolerated).
  std::vector<std::pair<const std::string*, const SafeTensorInfo*>> by_offset;
  for (const auto& [name, info] : f.tensors_) by_offset.emplace_back(&name, &info);
  std::sort(by_offset.begin(), by_offset.end(), [](const auto& a, const auto& b) {
    return std::pair(a.second->begin, a.second->end) < std::pair(b.second->begin, b.second->end);
  });
  for (size_t i = 0; i < by_offset.size(); ++i) {
    const auto& [name, info] = by_offset[i];
    REFORMER_CHECK(info->end <= data_bytes, where, ": tensor '", *name, "' data_offsets [", info->begin, ", ",
                   info->end, "] lie outside the ", data_bytes, "-byte data buffer (file truncated?)");
    if (i > 0) {
      const auto& [prev_name, prev] = by_offset[i - 1];
      REFORMER_CHECK(info->begin >= prev->end, where, ": tensors '", *prev_name, "' [", prev->begin, ", ",
                     prev->end, "] and '", *name, "' [", info->begin, ", ", info->end, "] overlap");
    }
  }
  return f;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  for (const auto& kv : tensors_) out.push_back(kv.first);
  return out;
}

const SafeTensorInfo& SafetensorsFile::info(const std::string& name) const {
  const auto it = tensors_.find(name);
  REFORMER_CHECK(it != tensors_.end(), "safetensors file '", path_, "' has no tensor named '", name,
                 "' (it holds ", tensors_.size(), " tensors; list them with names())");
  return it->second;
}

std::vector<char> SafetensorsFile::read_raw(const std::string& name) const {
  const SafeTensorInfo& t = info(name);
  std::vector<char> buf(static_cast<size_t>(t.end - t.begin));
  size_t done = 0;
  while (done < buf.size()) {
    const ssize_t r = ::pread(fd_->fd, buf.data() + done, buf.size() - done, data_start_ + t.begin + done);
    if (r < 0 && errno == EINTR) continue;
    REFORMER_CHECK(r > 0, "safetensors file '", path_, "': reading tensor '", name, "' failed after ", done,
                   " of ", buf.size(), " bytes: ", r == 0 ? "unexpected end of file (truncated?)" : errno_text());
    done += static_cast<size_t>(r);
  }
  return buf;
}

void SafetensorsFile::read_f32_into(const std::string& name, float* dst, int64_t n) const {
  const SafeTensorInfo& t = info(name);
  const int64_t numel = shape_numel(t.shape);
  REFORMER_CHECK(n == numel, "safetensors file '", path_, "': tensor '", name, "' has shape ", shape_str(t.shape),
                 " (", numel, " elements) but the destination holds ", n);
  const std::vector<char> raw = read_raw(name);
  const char* p = raw.data();
  switch (t.dtype) {
    case SafeDType::F32:  // an empty tensor has no bytes and maybe no pointers: memcpy(null) is UB
      if (!raw.empty()) std::memcpy(dst, p, raw.size());
      break;
    case SafeDType::F64:
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(load<double>(p + 8 * i));
      break;
    case SafeDType::F16:
      for (int64_t i = 0; i < n; ++i) dst[i] = half_to_float(load<uint16_t>(p + 2 * i));
      break;
    case SafeDType::BF16:  // bfloat16 is the top half of a float32
      for (int64_t i = 0; i < n; ++i) dst[i] = std::bit_cast<float>(uint32_t{load<uint16_t>(p + 2 * i)} << 16);
      break;
    default:
      fail("safetensors file '", path_, "': tensor '", name, "' has integer dtype ", to_string(t.dtype),
           "; read it with read_i64");
  }
}

Tensor SafetensorsFile::read_f32(const std::string& name, MemCategory category) const {
  Tensor t(shape(name), category);
  read_f32_into(name, t.data(), t.numel());
  return t;
}

std::vector<int64_t> SafetensorsFile::read_i64(const std::string& name) const {
  const SafeTensorInfo& t = info(name);
  const int64_t n = shape_numel(t.shape);
  const std::vector<char> raw = read_raw(name);
  const char* p = raw.data();
  std::vector<int64_t> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    switch (t.dtype) {
      case SafeDType::I64: out[i] = load<int64_t>(p + 8 * i); break;
      case SafeDType::I32: out[i] = load<int32_t>(p + 4 * i); break;
      case SafeDType::I16: out[i] = load<int16_t>(p + 2 * i); break;
      case SafeDType::I8: out[i] = load<int8_t>(p + i); break;
      case SafeDType::U8:
      case SafeDType::BOOL: out[i] = load<uint8_t>(p + i); break;
      default:
        fail("safetensors file '", path_, "': tensor '", name, "' has float dtype ", to_string(t.dtype),
             "; read it with read_f32");
    }
  }
  return out;
}

namespace {

// Owns the temp file until commit(): destroying an uncommitted one closes and removes it, so no
// failure path can leave a partial file behind.
class TempFile {
 public:
  TempFile(std::string tmp, std::string final_path) : tmp_(std::move(tmp)), final_(std::move(final_path)) {
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    REFORMER_CHECK(fd_ >= 0, "cannot create '", tmp_, "' to write '", final_, "': ", errno_text());
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  void write(const void* data, size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      const ssize_t w = ::write(fd_, p, n);
      if (w < 0 && errno == EINTR) continue;
      REFORMER_CHECK(w > 0, "writing '", final_, "' failed: ", w == 0 ? "no progress" : errno_text(),
                     " (disk full? nothing was written at that path)");
      p += w;
      n -= static_cast<size_t>(w);
    }
  }
  void commit() {
    REFORMER_CHECK(::fsync(fd_) == 0, "fsync of '", tmp_, "' failed: ", errno_text());
    const int fd = std::exchange(fd_, -1);
    REFORMER_CHECK(::close(fd) == 0, "closing '", tmp_, "' failed: ", errno_text());
    REFORMER_CHECK(::rename(tmp_.c_str(), final_.c_str()) == 0, "renaming '", tmp_, "' to '", final_,
                   "' failed: ", errno_text());
    committed_ = true;
    // Make the rename itself durable. Best effort: the file is already complete and in place.
    const size_t slash = final_.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : final_.substr(0, slash + 1);
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }

 private:
  std::string tmp_, final_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace

void write_safetensors(const std::string& path, const std::vector<NamedTensorView>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<const NamedTensorView*> order;
  for (const NamedTensorView& t : tensors) {
    REFORMER_CHECK(!t.name.empty() && t.name != "__metadata__", "write_safetensors('", path,
                   "'): invalid tensor name '", t.name, "'");
    REFORMER_CHECK(t.data != nullptr || shape_numel(t.shape) == 0, "write_safetensors('", path, "'): tensor '",
                   t.name, "' has shape ", shape_str(t.shape), " but a null data pointer");
    order.push_back(&t);
  }
  // Widest dtype first keeps every tensor aligned to its element size (sizes are powers of two).
  std::sort(order.begin(), order.end(), [](const NamedTensorView* a, const NamedTensorView* b) {
    return std::pair(-element_size(a->dtype), a->name) < std::pair(-element_size(b->dtype), b->name);
  });

  nlohmann::json header = nlohmann::json::object();
  int64_t offset = 0;
  for (const NamedTensorView* t : order) {
    REFORMER_CHECK(!header.contains(t->name), "write_safetensors('", path, "'): duplicate tensor name '", t->name, "'");
    const int64_t bytes = shape_numel(t->shape) * element_size(t->dtype);
    header[t->name] = {{"dtype", to_string(t->dtype)}, {"shape", t->shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // 8 + size is then a multiple of 8
  const uint64_t n = text.size();

  TempFile out(path + ".tmp", path);
  out.write(&n, 8);
  out.write(text.data(), text.size());
  for (const NamedTensorView* t : order)
    out.write(t->data, static_cast<size_t>(shape_numel(t->shape) * element_size(t->dtype)));
  out.commit();
}

}  // namespace reformer
