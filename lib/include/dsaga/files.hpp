// Whole files in and out: the one place the library reads a file into memory or replaces one.
// Errors name the file and the OS's reason.
#pragma once

#include <cstdint>
#include <string>

#include "dsaga/status.hpp"

namespace dsaga {

// The largest file (and decompressed content) read_file_bytes accepts unless told otherwise.
constexpr std::int64_t kDefaultMaxFileBytes = std::int64_t(1) << 31;

// Whole file into memory, gunzipped when it starts with the gzip magic (concatenated gzip members
// are joined, as gzip -d does). The error names the file, and for corrupt or truncated gzip data
// the byte offset in the compressed file. Neither the file nor its decompressed content may
// exceed `max_bytes`.
Result<std::string> read_file_bytes(const std::string& path, bool gunzip = true,
                                    std::int64_t max_bytes = kDefaultMaxFileBytes);

// Writes `contents` to `path` atomically: path.tmp, fsync, rename, fsync of the directory. A
// reader (or a crash) sees the old or the new file, never a torn one.
Status write_file_atomic(const std::string& path, const std::string& contents);

}  // namespace dsaga
