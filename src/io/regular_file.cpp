#include "io/regular_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "reformer/error.h"

namespace reformer {
namespace {

void check_mode(mode_t mode, const std::string& path, const std::string& what) {
  REFORMER_CHECK(!S_ISDIR(mode), what, " '", path, "' is a directory, not a file; pass the path of the file itself");
  REFORMER_CHECK(S_ISREG(mode), what, " '", path, "' is not a regular file (",
                 S_ISFIFO(mode) ? "a FIFO" : S_ISCHR(mode) || S_ISBLK(mode) ? "a device" : S_ISSOCK(mode) ? "a socket" : "a special file",
                 "); reformer reads only regular files: copy the data into a file and pass that");
}

}  // namespace

void require_regular_file(const std::string& path, const std::string& what) {
  struct stat st{};
  REFORMER_CHECK(::stat(path.c_str(), &st) == 0, "cannot read ", what, " '", path, "': ", std::strerror(errno));
  check_mode(st.st_mode, path, what);
}

int open_regular_file(const std::string& path, const std::string& what) {
  require_regular_file(path, what);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  REFORMER_CHECK(fd >= 0, "cannot open ", what, " '", path, "': ", std::strerror(errno));
  struct stat st{};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    const int err = errno;
    ::close(fd);
    REFORMER_CHECK(false, what, " '", path, "' changed while being opened and is no longer a regular file (",
                   std::strerror(err), "); pass a regular file");
  }
  // Reads of a regular file never block anyway; clear the flag so that nothing downstream sees it.
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

}  // namespace reformer
