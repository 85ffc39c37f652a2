// libFuzzer target: the message decoder, the gate every received byte passes. Whatever the
// input, decode() must return (ok or an error) without crashing, reading out of bounds or
// allocating more than a few times the input; a message it accepts must survive a round trip
// through encode() and decode() again (so the decoder never accepts what the encoder cannot
// represent). foreign_version() reads the same untrusted bytes when decode() fails: it must
// never crash either, and never claim our own version.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "dsaga/wire.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto decoded = dsaga::wire::decode(data, size);
  if (!decoded) {
    const auto version = dsaga::wire::foreign_version(data, size);
    if (version && *version == dsaga::msg::kProtocolVersion) std::abort();
    return 0;
  }
  std::vector<std::uint8_t> again;
  dsaga::wire::encode(*decoded, again);
  if (!dsaga::wire::decode(again.data(), again.size())) std::abort();
  return 0;
}
