// The wire: msg::Message <-> FlatBuffers bytes (schema lib/schema/dsaga.fbs, file identifier
// "DSGA", a protocol version in every message). This is the only code that knows FlatBuffers.
//
// decode() is the gate every received byte passes: it copies a misaligned buffer to aligned
// storage (ZeroMQ gives no alignment guarantee; armhf faults on unaligned loads), checks the
// size bound, the identifier and the version, runs the FlatBuffers verifier, and checks that
// every vector value is finite. Dimension checks against the model are the state machines' job.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "dsaga/messages.hpp"
#include "dsaga/status.hpp"

namespace dsaga::wire {

struct Limits {
  std::size_t max_message_bytes = std::size_t(256) << 20;
  std::size_t max_string_bytes = 4096;
};

// Encodes into `out` (cleared first; its capacity is reused across calls).
void encode(const msg::Message& message, std::vector<std::uint8_t>& out);
std::vector<std::uint8_t> encode(const msg::Message& message);

// Verifies and decodes. The error says what is wrong ("bad identifier", "protocol version 7,
// this build speaks 1", "field Update.dw holds a non-finite value at index 12", ...).
Result<msg::Message> decode(const void* data, std::size_t size, const Limits& limits = {});

}  // namespace dsaga::wire
