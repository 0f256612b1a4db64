#pragma once
// Input files are opened only when they are regular files. A FIFO would block open() or read()
// forever, a device can be endless, and a directory makes the standard streams fail with messages
// like "basic_filebuf::underflow" that name no path; all are refused here with the path and the fix.
#include <string>

namespace reformer {

// Throws reformer::Error naming `what` and `path` unless path is an existing regular file (symlinks
// are followed). Uses stat, so it never opens (and never blocks on) a FIFO.
void require_regular_file(const std::string& path, const std::string& what);

// open(path, O_RDONLY) for a regular file only: checks with stat first, opens with O_NONBLOCK (so a
// file swapped for a FIFO in between cannot hang either) and checks the descriptor again with fstat.
// Returns the descriptor; throws reformer::Error naming `what` and `path`.
int open_regular_file(const std::string& path, const std::string& what);

}  // namespace reformer
