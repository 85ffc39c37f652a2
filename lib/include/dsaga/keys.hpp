// CurveZMQ key material: key pairs, their Z85 text form, key files and the hub's allowlist.
//
// A CURVE key is 32 bytes; ZeroMQ writes it as 40 characters of Z85 (ZeroMQ RFC 32: 4 bytes ->
// 5 printable characters). Every key in this API and in the files is that text.
//
// Key file (written by dsaga-keygen; TOML-compatible, so a configuration can inline the same
// lines):
//     # dsaga CURVE key pair for agent-17
//     public = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
//     secret = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"
// NAME.key holds both lines (mode 0600); NAME.pub only the public one. Blank lines and '#'
// comments (whole line or after the value) are allowed; anything else is an error.
//
// Allowlist (the hub's list of agents allowed to connect), one agent a line:
//     # agent_id  public_key
//     agent-17    rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7
// The agent id is what the transport reports as the authenticated user id of every message
// that agent sends; the hub compares it with the agent_id the agent claims in its Join.
//
// Every parse error names "<file>:<line>: <what>". Nothing here throws.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "dsaga/status.hpp"

namespace dsaga {

inline constexpr std::size_t kCurveKeyBytes = 32;
inline constexpr std::size_t kCurveKeyTextSize = 40;  // Z85 of 32 bytes

// Client public key (Z85) -> agent id. Keys are unique (a map); agent ids are unique too
// (parse_allowlist checks it: two keys claiming one identity would defeat the identity check).
using CurveAllowlist = std::map<std::string, std::string>;

struct CurveKeyPair {
  std::string public_key;  // Z85, 40 characters
  std::string secret_key;  // Z85, 40 characters; empty when read from a .pub file
};

// Z85 (ZeroMQ RFC 32). encode: `size` must be a multiple of 4 (returns "" otherwise).
std::string z85_encode(const std::uint8_t* data, std::size_t size);
// decode: length a multiple of 5, characters from the Z85 alphabet, each 5-character group
// <= 2^32-1. The error says which character or group is wrong.
Result<std::vector<std::uint8_t>> z85_decode(std::string_view text);

// OK when `text` is a 40-character Z85 CURVE key; the error starts with `what`.
Status check_curve_key(std::string_view text, const std::string& what);

// A fresh key pair from libsodium's random generator (via zmq_curve_keypair). Fails only when
// this libzmq was built without CURVE.
Result<CurveKeyPair> generate_curve_keypair();
// The public key belonging to a secret key (zmq_curve_public).
Result<std::string> curve_public_key(const std::string& secret_z85);

// Key files. A file with a secret must have the matching public key (checked), so a pasted
// line from another key cannot go unnoticed. `require_secret`: a .pub file is an error where a
// .key file is expected.
Result<CurveKeyPair> parse_key_file(std::string_view text, const std::string& name,
                                    bool require_secret = false);
Result<CurveKeyPair> load_key_file(const std::string& path, bool require_secret = false);
// The file text for a key pair (with the secret line only when include_secret).
std::string format_key_file(const CurveKeyPair& keys, const std::string& comment,
                            bool include_secret);
// Writes `text` to `path`, created with `mode` (e.g. 0600: never world-readable, not even for
// a moment). Fails if the file exists, unless `overwrite`.
Status write_text_file(const std::string& path, const std::string& text, unsigned mode,
                       bool overwrite);

// The allowlist file. Agent ids: 1..255 bytes, printable ASCII without spaces.
Result<CurveAllowlist> parse_allowlist(std::string_view text, const std::string& name);
Result<CurveAllowlist> load_allowlist(const std::string& path);

}  // namespace dsaga
