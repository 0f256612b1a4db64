#include "train/checkpoint_dir.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "reformer/error.h"

namespace reformer {
namespace fs = std::filesystem;

namespace {

constexpr const char* kPrefix = "checkpoint-";

// The step of "<prefix><digits><suffix>", or -1.
int64_t step_between(const std::string& name, const std::string& prefix, const std::string& suffix) {
  if (name.size() <= prefix.size() + suffix.size() || !name.starts_with(prefix) || !name.ends_with(suffix)) return -1;
  const std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  if (digits.size() > 15 || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) return -1;
  return std::stoll(digits);
}

}  // namespace

std::string checkpoint_name(int64_t step) { return kPrefix + std::to_string(step); }
std::string checkpoint_staging_name(int64_t step) { return "." + checkpoint_name(step) + ".tmp"; }
int64_t checkpoint_step(const std::string& name) { return step_between(name, kPrefix, ""); }

CheckpointScan scan_checkpoints(const fs::path& dir, std::string (*complete_check)(const fs::path&, int64_t)) {
  CheckpointScan scan;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return scan;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (step_between(name, std::string(".") + kPrefix, ".tmp") >= 0) {
      scan.incomplete.push_back(entry.path().string() + " (a save or removal that was interrupted before it finished)");
      continue;
    }
    const int64_t step = checkpoint_step(name);
    if (step < 0) continue;
    const std::string why = entry.is_directory(ec) ? complete_check(entry.path(), step) : "not a directory";
    if (why.empty()) scan.complete.emplace_back(step, entry.path());
    else scan.incomplete.push_back(entry.path().string() + " (" + why + ")");
  }
  std::sort(scan.complete.begin(), scan.complete.end());
  std::sort(scan.incomplete.begin(), scan.incomplete.end());
  return scan;
}

void fsync_directory(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  REFORMER_CHECK(fd >= 0, "cannot open directory ", dir.string(), " to sync it: ", std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  // Some file systems (e.g. certain network or FUSE mounts) cannot fsync directories; the data
  // files themselves were synced, so only EIO is a real failure.
  REFORMER_CHECK(rc == 0 || err != EIO, "fsync of directory ", dir.string(), " failed: ", std::strerror(err),
                 " (disk error?)");
}

void commit_directory(const fs::path& staged, const fs::path& target) {
  std::error_code ec;
  if (!fs::exists(target, ec)) {
    REFORMER_CHECK(::rename(staged.c_str(), target.c_str()) == 0, "cannot rename ", staged.string(), " to ",
                   target.string(), ": ", std::strerror(errno));
  } else {
    // Swap both names in one step, so target always names a complete directory; then drop the old.
    REFORMER_CHECK(::renameat2(AT_FDCWD, staged.c_str(), AT_FDCWD, target.c_str(), RENAME_EXCHANGE) == 0,
                   "cannot replace ", target.string(), " with ", staged.string(), ": ", std::strerror(errno),
                   " (the file system must support renameat2 RENAME_EXCHANGE); remove ", target.string(),
                   " by hand to save this step again");
    fs::remove_all(staged, ec);
  }
  fsync_directory(target.parent_path().empty() ? fs::path(".") : target.parent_path());
}

void replace_file_with(const fs::path& source, const fs::path& target) {
  const fs::path tmp = target.string() + ".tmp";
  std::error_code ec;
  fs::remove(tmp, ec);
  if (::link(source.c_str(), tmp.c_str()) != 0) {
    // No hard links here (another file system, or a file system without them): copy instead. The
    // copy is synced before it is renamed into place.
    fs::copy_file(source, tmp, fs::copy_options::overwrite_existing, ec);
    REFORMER_CHECK(!ec, "cannot copy ", source.string(), " to ", tmp.string(), ": ", ec.message());
    const int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
    const bool synced = fd >= 0 && ::fsync(fd) == 0;
    if (fd >= 0) ::close(fd);
    if (!synced) {
      fs::remove(tmp, ec);
      fail("cannot sync ", tmp.string(), ": ", std::strerror(errno), " (disk full?)");
    }
  }
  if (::rename(tmp.c_str(), target.c_str()) != 0) {
    const int err = errno;
    fs::remove(tmp, ec);
    fail("cannot rename ", tmp.string(), " to ", target.string(), ": ", std::strerror(err));
  }
}

}  // namespace reformer
