// Key material for CurveZMQ: Z85, key files and the allowlist (formats in keys.hpp).
#include "dsaga/keys.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <set>

#include "dsaga/files.hpp"

namespace dsaga {

namespace {

// Z85 alphabet, ZeroMQ RFC 32. It holds neither '"', '\\', '\'' nor whitespace, so a key needs
// no escaping in a TOML basic string and is one whitespace-delimited token in the allowlist.
// It does hold '#': comments are recognised by position, never by searching for '#'.
constexpr char kZ85Chars[] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

// Character -> digit value, -1 for characters outside the alphabet.
const std::array<int, 256>& z85_values() {
  static const std::array<int, 256> table = [] {
    std::array<int, 256> t{};
    t.fill(-1);
    for (int i = 0; i < 85; ++i) t[static_cast<unsigned char>(kZ85Chars[i])] = i;
    return t;
  }();
  return table;
}

// Key files and allowlists are a few hundred bytes; the bound keeps a wrong path (a device
// file, a dataset) from being read into memory whole.
constexpr std::int64_t kMaxKeyFileBytes = std::int64_t(1) << 20;
constexpr std::int64_t kMaxAllowlistBytes = std::int64_t(16) << 20;
constexpr std::size_t kMaxAgentIdBytes = 255;

bool is_blank(char c) { return c == ' ' || c == '\t'; }

// Splits `text` into lines (without '\n', a trailing '\r' removed) and calls
// f(line_number, line) for each until f returns a failed Status. A UTF-8 byte-order mark at
// the start is skipped (editors on some systems add one).
template <class F>
Status for_each_line(std::string_view text, F&& f) {
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  std::size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (Status s = f(line_no, line); !s) return s;
  }
  return Status::ok();
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_blank(s.back())) s.remove_suffix(1);
  return s;
}

// Printable form of untrusted text for an error message: at most 48 bytes, non-printable
// bytes as \xNN (a binary file must not garble the log).
std::string quoted(std::string_view s) {
  std::string out = "'";
  const std::size_t n = std::min<std::size_t>(s.size(), 48);
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += char(c);
    } else {
      static const char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  if (s.size() > n) out += "...";
  return out + "'";
}

std::string at(const std::string& name, std::size_t line) {
  return name + ":" + std::to_string(line) + ": ";
}

}  // namespace

// ---- Z85 -------------------------------------------------------------------------------------

std::string z85_encode(const std::uint8_t* data, std::size_t size) {
  if (size % 4 != 0) return std::string();
  std::string out;
  out.reserve(size / 4 * 5);
  for (std::size_t i = 0; i < size; i += 4) {
    std::uint32_t value = (std::uint32_t(data[i]) << 24) | (std::uint32_t(data[i + 1]) << 16) |
                          (std::uint32_t(data[i + 2]) << 8) | std::uint32_t(data[i + 3]);
    char group[5];
    for (int k = 4; k >= 0; --k) {
      group[k] = kZ85Chars[value % 85];
      value /= 85;
    }
    out.append(group, 5);
  }
  return out;
}

Result<std::vector<std::uint8_t>> z85_decode(std::string_view text) {
  using R = Result<std::vector<std::uint8_t>>;
  if (text.size() % 5 != 0) {
    return R::failure("Z85 text of " + std::to_string(text.size()) +
                      " characters: the length must be a multiple of 5");
  }
  const auto& values = z85_values();
  std::vector<std::uint8_t> out;
  out.reserve(text.size() / 5 * 4);
  for (std::size_t i = 0; i < text.size(); i += 5) {
    std::uint64_t value = 0;  // 85^5 - 1 > 2^32: accumulate wide, then range-check
    for (std::size_t k = 0; k < 5; ++k) {
      const int digit = values[static_cast<unsigned char>(text[i + k])];
      if (digit < 0) {
        return R::failure("Z85 text: character " + std::to_string(i + k + 1) + " (" +
                          quoted(text.substr(i + k, 1)) + ") is not in the Z85 alphabet");
      }
      value = value * 85 + std::uint64_t(digit);
    }
    if (value > 0xFFFFFFFFull) {
      return R::failure("Z85 text: characters " + std::to_string(i + 1) + ".." +
                        std::to_string(i + 5) + " encode a value above 2^32-1");
    }
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(std::uint8_t(value >> shift));
  }
  return out;
}

Status check_curve_key(std::string_view text, const std::string& what) {
  if (text.size() != kCurveKeyTextSize) {
    return Status::error(what + ": a CURVE key is " + std::to_string(kCurveKeyTextSize) +
                         " Z85 characters, got " + std::to_string(text.size()));
  }
  if (auto decoded = z85_decode(text); !decoded) {
    return Status::error(what + ": " + decoded.error());
  }
  return Status::ok();
}

// ---- key pairs -------------------------------------------------------------------------------

Result<CurveKeyPair> generate_curve_keypair() {
  char pub[kCurveKeyTextSize + 1] = {}, sec[kCurveKeyTextSize + 1] = {};
  if (zmq_curve_keypair(pub, sec) != 0) {
    return Result<CurveKeyPair>::failure(std::string("generating a CURVE key pair: ") +
                                         zmq_strerror(zmq_errno()) +
                                         " (this libzmq may be built without CURVE/libsodium)");
  }
  CurveKeyPair keys{pub, sec};
  // Secrets on the stack are wiped (best effort; the strings above hold copies the caller owns).
  std::memset(sec, 0, sizeof sec);
  return keys;
}

Result<std::string> curve_public_key(const std::string& secret_z85) {
  if (Status s = check_curve_key(secret_z85, "secret key"); !s) return Result<std::string>(s);
  char pub[kCurveKeyTextSize + 1] = {};
  if (zmq_curve_public(pub, secret_z85.c_str()) != 0) {
    return Result<std::string>::failure(std::string("deriving a CURVE public key: ") +
                                        zmq_strerror(zmq_errno()));
  }
  return std::string(pub);
}

// ---- key files -------------------------------------------------------------------------------

Result<CurveKeyPair> parse_key_file(std::string_view text, const std::string& name,
                                    bool require_secret) {
  using R = Result<CurveKeyPair>;
  CurveKeyPair keys;
  std::size_t public_line = 0, secret_line = 0;
  Status status = for_each_line(text, [&](std::size_t line_no, std::string_view line) {
    line = trim(line);
    if (line.empty() || line.front() == '#') return Status::ok();
    const auto fail = [&](const std::string& why) {
      return Status::error(at(name, line_no) + why);
    };
    const std::size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      return fail("expected 'public = \"KEY\"' or 'secret = \"KEY\"', got " + quoted(line));
    }
    const std::string_view key = trim(line.substr(0, eq));
    std::string_view rest = trim(line.substr(eq + 1));
    std::string* slot;
    std::size_t* slot_line;
    if (key == "public") {
      slot = &keys.public_key;
      slot_line = &public_line;
    } else if (key == "secret") {
      slot = &keys.secret_key;
      slot_line = &secret_line;
    } else {
      return fail("unknown key " + quoted(key) + " (expected 'public' or 'secret')");
    }
    if (*slot_line != 0) {
      return fail("'" + std::string(key) + "' given twice (first on line " +
                  std::to_string(*slot_line) + ")");
    }
    if (rest.empty() || rest.front() != '"') {
      return fail("the value of '" + std::string(key) + "' must be a \"quoted\" Z85 key");
    }
    const std::size_t close = rest.find('"', 1);
    if (close == std::string_view::npos) return fail("missing closing '\"'");
    const std::string_view value = rest.substr(1, close - 1);
    const std::string_view after = trim(rest.substr(close + 1));
    if (!after.empty() && after.front() != '#') {
      return fail("unexpected text after the value: " + quoted(after));
    }
    if (Status s = check_curve_key(value, std::string(key) + " key"); !s) return fail(s.message());
    *slot = std::string(value);
    *slot_line = line_no;
    return Status::ok();
  });
  if (!status) return R(status);
  if (public_line == 0) return R::failure(name + ": no 'public = \"KEY\"' line");
  if (require_secret && secret_line == 0) {
    return R::failure(name + ": no 'secret = \"KEY\"' line (is this the .pub file? the secret " +
                      "key is in the .key file)");
  }
  if (secret_line != 0) {
    // A secret pasted next to some other public key would make the peer configure the wrong
    // key and fail the handshake with no useful message; say it here instead.
    const Result<std::string> derived = curve_public_key(keys.secret_key);
    if (!derived) return R::failure(at(name, secret_line) + derived.error());
    if (*derived != keys.public_key) {
      return R::failure(at(name, public_line) + "the public key does not belong to the secret " +
                        "key on line " + std::to_string(secret_line));
    }
  }
  return keys;
}

Result<CurveKeyPair> load_key_file(const std::string& path, bool require_secret) {
  const Result<std::string> text = read_file_bytes(path, /*gunzip=*/false, kMaxKeyFileBytes);
  if (!text) return Result<CurveKeyPair>(text.status());
  return parse_key_file(*text, path, require_secret);
}

std::string format_key_file(const CurveKeyPair& keys, const std::string& comment,
                            bool include_secret) {
  std::string out;
  if (!comment.empty()) out += "# " + comment + "\n";
  out += "public = \"" + keys.public_key + "\"\n";
  if (include_secret) out += "secret = \"" + keys.secret_key + "\"\n";
  return out;
}

Status write_text_file(const std::string& path, const std::string& text, unsigned mode,
                       bool overwrite) {
  // O_EXCL: refusing to overwrite is decided by the kernel, not by a racy stat() first. With
  // overwrite, the old file is removed first so that the new one is created with `mode`
  // (open() does not change the mode of an existing file).
  if (overwrite && ::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return Status::error(path + ": cannot replace: " + std::strerror(errno));
  }
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    if (errno == EEXIST) return Status::error(path + ": exists (use --force to overwrite)");
    return Status::error(path + ": cannot create: " + std::strerror(errno));
  }
  // The umask may have removed bits but never adds any; fchmod makes the mode exact.
  ::fchmod(fd, mode);
  std::size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string why = std::strerror(errno);
      ::close(fd);
      return Status::error(path + ": write failed: " + why);
    }
    written += std::size_t(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    return Status::error(path + ": write failed: " + std::strerror(errno));
  }
  return Status::ok();
}

// ---- allowlist -------------------------------------------------------------------------------

Result<CurveAllowlist> parse_allowlist(std::string_view text, const std::string& name) {
  using R = Result<CurveAllowlist>;
  CurveAllowlist list;
  std::map<std::string, std::size_t> id_lines;   // agent id -> line, to report duplicates
  std::map<std::string, std::size_t> key_lines;  // key -> line
  Status status = for_each_line(text, [&](std::size_t line_no, std::string_view line) {
    const auto fail = [&](const std::string& why) {
      return Status::error(at(name, line_no) + why);
    };
    // Whitespace-separated tokens. A token starting with '#' starts a comment; a key may
    // contain '#' (it is in the Z85 alphabet), but never at a token's start where it matters:
    // the key is the second token and only a third token is checked.
    std::string_view tokens[3];
    std::size_t count = 0;
    std::string_view rest = line;
    while (count < 3) {
      rest = trim(rest);
      if (rest.empty()) break;
      if (rest.front() == '#' && count != 1) break;  // comment (the key token may start with #)
      std::size_t end = 0;
      while (end < rest.size() && !is_blank(rest[end])) ++end;
      tokens[count++] = rest.substr(0, end);
      rest.remove_prefix(end);
    }
    if (count == 0) return Status::ok();
    if (count == 3) return fail("unexpected text after the key: " + quoted(tokens[2]));
    if (count == 1) {
      return fail("expected 'AGENT_ID PUBLIC_KEY', got only " + quoted(tokens[0]));
    }
    const std::string_view id = tokens[0], key = tokens[1];
    if (id.size() > kMaxAgentIdBytes) {
      return fail("agent id longer than " + std::to_string(kMaxAgentIdBytes) + " bytes");
    }
    for (char c : id) {
      if (static_cast<unsigned char>(c) < 0x21 || static_cast<unsigned char>(c) > 0x7e) {
        return fail("agent id " + quoted(id) + ": only printable ASCII without spaces");
      }
    }
    if (Status s = check_curve_key(key, "public key of '" + std::string(id) + "'"); !s) {
      return fail(s.message());
    }
    const std::string id_s(id), key_s(key);
    if (auto it = id_lines.find(id_s); it != id_lines.end()) {
      return fail("agent id '" + id_s + "' listed twice (first on line " +
                  std::to_string(it->second) + ")");
    }
    if (auto it = key_lines.find(key_s); it != key_lines.end()) {
      return fail("public key of '" + id_s + "' already listed on line " +
                  std::to_string(it->second) + " (one key, one agent)");
    }
    id_lines.emplace(id_s, line_no);
    key_lines.emplace(key_s, line_no);
    list.emplace(key_s, id_s);
    return Status::ok();
  });
  if (!status) return R(status);
  return list;
}

Result<CurveAllowlist> load_allowlist(const std::string& path) {
  const Result<std::string> text = read_file_bytes(path, /*gunzip=*/false, kMaxAllowlistBytes);
  if (!text) return Result<CurveAllowlist>(text.status());
  return parse_allowlist(*text, path);
}

}  // namespace dsaga
