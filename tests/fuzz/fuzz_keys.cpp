// libFuzzer target: the CURVE key-file and allowlist parsers and the Z85 decoder, on the same
// input. Z85 text that decodes must encode back to the same text.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "dsaga/keys.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)dsaga::parse_key_file(text, "fuzz.key", /*require_secret=*/false);
  (void)dsaga::parse_allowlist(text, "fuzz.allow");
  if (auto bytes = dsaga::z85_decode(text)) {
    if (dsaga::z85_encode(bytes->data(), bytes->size()) != text) std::abort();
  }
  return 0;
}
