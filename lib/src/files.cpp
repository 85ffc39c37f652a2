// Whole files in and out (files.hpp).
#include "dsaga/files.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <string_view>
#include <system_error>

namespace dsaga {

namespace {

std::string at_byte(const std::string& name, std::uint64_t offset, const std::string& what) {
  return name + ": byte " + std::to_string(offset) + ": " + what;
}

// --- gzip ----------------------------------------------------------------------------------

bool has_gzip_magic(std::string_view bytes, std::size_t at = 0) {
  return bytes.size() >= at + 2 && static_cast<unsigned char>(bytes[at]) == 0x1f &&
         static_cast<unsigned char>(bytes[at + 1]) == 0x8b;
}

std::string limit_message(const std::string& name, std::uint64_t limit, const char* what) {
  return name + ": " + what + " exceeds the limit of " + std::to_string(limit) +
         " bytes (ReadOptions::max_file_bytes); raise it if the file is genuine";
}

Result<std::string> gunzip_bytes(std::string_view in, const std::string& name,
                                 std::uint64_t limit) {
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {  // 16: gzip wrapper only
    return Result<std::string>::failure(name + ": cannot initialise zlib");
  }
  const std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&zs, inflateEnd);

  // First buffer: the ISIZE trailer (size mod 2^32 of the last member) is only a hint, bounded
  // by what deflate can reach from the bytes present (at most ~1032:1) and by the limit.
  std::uint64_t hint = 64 * 1024;
  if (in.size() >= 18) {
    const auto* t = reinterpret_cast<const unsigned char*>(in.data() + in.size() - 4);
    const std::uint64_t isize = std::uint64_t(t[0]) | (std::uint64_t(t[1]) << 8) |
                                (std::uint64_t(t[2]) << 16) | (std::uint64_t(t[3]) << 24);
    hint = std::max<std::uint64_t>(hint, std::min<std::uint64_t>(isize, in.size() * 1032ULL));
  }
  hint = std::min<std::uint64_t>(hint, limit);
  std::string out;
  out.resize(static_cast<std::size_t>(hint));

  constexpr std::uint64_t kChunk = 1u << 30;  // zlib counts in 32-bit uInt
  std::uint64_t consumed = 0, produced = 0;
  for (;;) {
    if (produced == out.size()) {
      if (out.size() >= limit) {
        return Result<std::string>::failure(limit_message(name, limit, "the decompressed data"));
      }
      out.resize(static_cast<std::size_t>(
          std::min<std::uint64_t>(limit, std::max<std::uint64_t>(2 * out.size(), 64 * 1024))));
    }
    const auto in_avail = static_cast<uInt>(std::min<std::uint64_t>(in.size() - consumed, kChunk));
    const auto out_avail =
        static_cast<uInt>(std::min<std::uint64_t>(out.size() - produced, kChunk));
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data() + consumed));
    zs.avail_in = in_avail;
    zs.next_out = reinterpret_cast<Bytef*>(&out[static_cast<std::size_t>(produced)]);
    zs.avail_out = out_avail;
    const int ret = inflate(&zs, Z_NO_FLUSH);
    consumed += in_avail - zs.avail_in;
    produced += out_avail - zs.avail_out;
    if (ret == Z_STREAM_END) {
      if (consumed == in.size()) break;
      if (!has_gzip_magic(in, static_cast<std::size_t>(consumed))) {
        return Result<std::string>::failure(
            at_byte(name, consumed,
                    std::to_string(in.size() - consumed) +
                        " bytes of trailing data after the gzip stream"));
      }
      inflateReset(&zs);  // another gzip member follows
      continue;
    }
    if (ret == Z_OK) continue;
    if (ret == Z_BUF_ERROR) {
      // No progress possible: with output room left, the input has run out mid-stream.
      if (zs.avail_out == 0) continue;
      return Result<std::string>::failure(at_byte(
          name, consumed, "the gzip stream is truncated (the file ends before its end marker)"));
    }
    if (ret == Z_MEM_ERROR) return Result<std::string>::failure(name + ": out of memory in zlib");
    return Result<std::string>::failure(
        at_byte(name, consumed,
                std::string("corrupt gzip data (") + (zs.msg ? zs.msg : "zlib error") + ")"));
  }
  out.resize(static_cast<std::size_t>(produced));
  if (out.capacity() > out.size() + out.size() / 4 + 4096) out.shrink_to_fit();
  return out;
}

}  // namespace

Result<std::string> read_file_bytes(const std::string& path, bool gunzip, std::int64_t max_bytes) {
  const std::uint64_t limit =
      std::min<std::uint64_t>(static_cast<std::uint64_t>(std::max<std::int64_t>(max_bytes, 0)),
                              std::numeric_limits<std::size_t>::max() / 2);
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return Result<std::string>::failure(path + ": is a directory, not a file");
  }
  errno = 0;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!file) {
    return Result<std::string>::failure(
        path + ": cannot open: " + (errno ? std::strerror(errno) : "unknown error"));
  }
  std::string raw;
  const std::uintmax_t size = std::filesystem::file_size(path, ec);
  if (!ec) {
    if (size > limit) {
      return Result<std::string>::failure(limit_message(path, limit, "the file"));
    }
    raw.resize(static_cast<std::size_t>(size));
    raw.resize(std::fread(raw.data(), 1, raw.size(), file.get()));
  }
  // Then read until end of file: the size is only a hint (pipes have none, files may grow).
  char buffer[1 << 14];
  for (;;) {
    const std::size_t got = std::fread(buffer, 1, sizeof buffer, file.get());
    if (got > 0) {
      if (raw.size() + got > limit) {
        return Result<std::string>::failure(limit_message(path, limit, "the file"));
      }
      raw.append(buffer, got);
    }
    if (got < sizeof buffer) {
      if (std::ferror(file.get())) {
        return Result<std::string>::failure(path + ": read error: " + std::strerror(errno));
      }
      break;
    }
  }
  if (gunzip && has_gzip_magic(raw)) return gunzip_bytes(raw, path, limit);
  return raw;
}

Status write_file_atomic(const std::string& path, const std::string& contents) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::error(tmp + ": cannot create: " + std::strerror(errno));
  std::size_t done = 0;
  while (done < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return Status::error(tmp + ": write failed: " + why);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    return Status::error(tmp + ": fsync failed: " + why);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    return Status::error(path + ": rename failed: " + why);
  }
  // The rename itself is durable once the directory is synced.
  const auto slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return Status::ok();
}

}  // namespace dsaga
