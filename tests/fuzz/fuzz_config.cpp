// libFuzzer target: the TOML configuration parsers of both daemons, on the same input (they
// share the TOML reader and differ in their sections), followed by the cross-field checks a
// daemon runs next.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "dsaga/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto hub = dsaga::parse_hub_config(text, "fuzz-hub.toml")) (void)dsaga::validate(*hub);
  if (auto agent = dsaga::parse_agent_config(text, "fuzz-agent.toml")) {
    (void)dsaga::validate(*agent);
  }
  return 0;
}
