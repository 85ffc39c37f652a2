// The wire: msg::Message <-> FlatBuffers bytes (schema lib/schema/dsaga.fbs, file identifier
// "DSGA", a protocol version in every message). This is the only code that knows FlatBuffers.
//
// decode() is the gate every received byte passes: it checks the size bound, copies a misaligned
// buffer to aligned storage (ZeroMQ gives no alignment guarantee; armhf faults on unaligned
// loads), checks the identifier, runs the FlatBuffers verifier, checks the version, and checks
// that every field is present and in range and every double finite. Dimension checks against the model are the state machines' job.
//
// Both functions are thread-safe (the encoder keeps one FlatBufferBuilder per thread).
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

// Encodes into `out` (cleared first; its capacity is reused across calls). Every string and
// vector is written, even when empty. Precondition: enum values are ones the schema declares
// and the message is under 2 GiB (the FlatBuffers limit; a model of d*C doubles needs about
// 16*d*C bytes in an Update).
void encode(const msg::Message& message, std::vector<std::uint8_t>& out);
std::vector<std::uint8_t> encode(const msg::Message& message);

// Verifies and decodes; never throws, crashes or reads outside [data, data + size) on any input,
// and allocates at most a few times `size`. Checks, in order: size (empty, under the 8-byte
// FlatBuffers header, over limits.max_message_bytes), alignment (copies a misaligned buffer),
// file identifier, FlatBuffers verifier, protocol version, message type, required fields, enum
// values, string lengths, finite doubles. The error says what is wrong, naming the field:
// "bad file identifier \"ABCD\", expected \"DSGA\"", "protocol version 7, this build speaks 1",
// "Join.agent_id is missing", "Update.dw[12] is not finite", ...
Result<msg::Message> decode(const void* data, std::size_t size, const Limits& limits = {});

}  // namespace dsaga::wire
