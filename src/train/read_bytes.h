#pragma once
// Reads a whole file into memory, gunzipping it when it starts with the gzip magic bytes 1f 8b
// (dictzip .dz files, such as Debian's /usr/share/dictd/gcide.dict.dz, are valid gzip).
// Throws reformer::Error naming the path for a missing, unreadable, empty or corrupt file.
#include <cstdint>
#include <string>
#include <vector>

namespace reformer {

std::vector<uint8_t> read_file_bytes(const std::string& path);

}  // namespace reformer
