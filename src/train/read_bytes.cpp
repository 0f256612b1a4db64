#include "train/read_bytes.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "io/regular_file.h"
#include "reformer/error.h"

namespace reformer {
namespace {

constexpr size_t kFirstChunk = size_t{1} << 24;

std::vector<uint8_t> read_gzip(const std::string& path) {
  std::unique_ptr<gzFile_s, int (*)(gzFile)> gz(gzopen(path.c_str(), "rb"), gzclose);
  REFORMER_CHECK(gz, "cannot open gzip file '", path, "': ", std::strerror(errno));
  gzbuffer(gz.get(), 1 << 20);
  std::vector<uint8_t> out(kFirstChunk);
  size_t used = 0;
  for (;;) {
    if (used == out.size()) out.resize(out.size() * 2);
    const size_t want = std::min<size_t>(out.size() - used, 1u << 30);
    const int got = gzread(gz.get(), out.data() + used, static_cast<unsigned>(want));
    if (got <= 0) break;
    used += static_cast<size_t>(got);
  }
  // A truncated stream ends reads quietly with Z_BUF_ERROR; any error at this point is corruption.
  int err = Z_OK;
  const char* msg = gzerror(gz.get(), &err);
  REFORMER_CHECK(err == Z_OK, "corrupt or truncated gzip file '", path, "': ", msg,
                 "; re-download it or pass the uncompressed file");
  out.resize(used);
  return out;
}

}  // namespace

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  // stat first: a FIFO or device would block or never end (io/regular_file.h).
  std::error_code ec;
  REFORMER_CHECK(std::filesystem::exists(path, ec), "data file '", path,
                 "' does not exist; pass the path of a text file (plain, gzip or dictzip)");
  require_regular_file(path, "data file");
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), std::fclose);
  REFORMER_CHECK(f, "cannot open data file '", path, "': ", std::strerror(errno));
  const auto size = static_cast<size_t>(std::filesystem::file_size(path));
  REFORMER_CHECK(size > 0, "data file '", path, "' is empty; pass a file with text in it");
  std::vector<uint8_t> out(size);
  const size_t magic = std::fread(out.data(), 1, std::min<size_t>(size, 2), f.get());
  if (magic == 2 && out[0] == 0x1f && out[1] == 0x8b) {
    out = read_gzip(path);
    REFORMER_CHECK(!out.empty(), "gzip file '", path, "' holds no data; pass a file with text in it");
    return out;
  }
  REFORMER_CHECK(magic + std::fread(out.data() + magic, 1, size - magic, f.get()) == size, "cannot read data file '",
                 path, "': ", std::strerror(errno));
  return out;
}

}  // namespace reformer
