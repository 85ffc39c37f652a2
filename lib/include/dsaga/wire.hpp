// The wire: msg::Message <-> FlatBuffers bytes (schema lib/schema/dsaga.fbs, file identifier
// "DSGA", a protocol version in every message). This is the only code that knows FlatBuffers.
//
// decode() is the gate every received byte passes: it checks the size bound, copies a misaligned
// buffer to aligned storage (ZeroMQ gives no alignment guarantee; armhf faults on unaligned
// loads), checks the identifier, runs the FlatBuffers verifier, checks the version, and checks
// that every field is present and in range and every double finite. Dimension checks against the
// model are the state machines' job.
//
// The free functions are thread-safe (the encoder keeps one FlatBufferBuilder per thread).
//
// Steady state without heap allocation (an agent's rounds, tests/unit/agent_alloc_test.cpp):
// encode(message, out) into an `out` reused from call to call, and decode_into() into a message
// reused from call to call (or a Decoder), allocate nothing once they have seen a message of the
// same kind and size (the first call on a thread creates its builder; a larger message grows the
// buffers once). Exceptions: a message of more than 16 MiB (the builder is released after it, so
// that one large message does not pin its memory), and decoding from a buffer that is not 8-byte
// aligned (it is copied first; a std::vector's data is aligned).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
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

// Adds the vector bytes of an encoded `message` (the lengths of its vectors as they lie in the
// buffer: doubles, floats, packed integers, scales and runs), times `copies` (its recipients), to
// `parts` (msg::PartBytes: the metrics' split of the traffic by part). Precondition: `message`
// is what encode() wrote or what decode() accepted (a verified buffer; a std::vector's storage
// is aligned for it).
void add_part_bytes(const std::vector<std::uint8_t>& message, std::uint64_t copies,
                    msg::PartBytes& parts);

// Verifies and decodes; never throws, crashes or reads outside [data, data + size) on any input,
// and allocates at most a few times `size`. Checks, in order: size (empty, under the 8-byte
// FlatBuffers header, over limits.max_message_bytes), alignment (copies a misaligned buffer),
// file identifier, FlatBuffers verifier, protocol version, message type, required fields, enum
// values, string lengths, finite doubles. The error says what is wrong, naming the field:
// "bad file identifier \"ABCD\", expected \"DSGA\"", "protocol version 7, this build speaks 1",
// "Join.agent_id is missing", "Update.dw[12] is not finite", ...
Result<msg::Message> decode(const void* data, std::size_t size, const Limits& limits = {});

// The protocol version of bytes that are a well-formed dsaga envelope (identifier, FlatBuffers
// verifier) of a version other than msg::kProtocolVersion; nullopt otherwise. Lets a peer tell a
// version mismatch (refuse it clearly) from corruption (ask again).
std::optional<std::uint32_t> foreign_version(const void* data, std::size_t size);

// An Error(unsupported_version, text) in an envelope of `version`, for a peer that speaks that
// version: the Envelope and Error tables have not changed since version 1, so every version so
// far decodes it (and its agent stops with the text).
void encode_version_refusal(const std::string& text, std::uint32_t version,
                            std::vector<std::uint8_t>& out);

// decode() into an existing message: the same checks and error messages, but when `out` already
// holds the kind of message decoded, its strings and vectors are assigned in place and keep their
// capacity (every field is assigned: nothing of the previous message survives). On an error
// `out` is left as it was, except after running out of memory, when it holds a valid message of
// unspecified content.
Status decode_into(const void* data, std::size_t size, msg::Message& out,
                   const Limits& limits = {});

// decode() for a stream of messages, keeping one message of each kind: a RoundStart's vectors
// keep their capacity across the Acks and Heartbeats between rounds, so an agent's steady state
// decodes without allocating. Not thread-safe (one Decoder per receiving thread).
class Decoder {
 public:
  explicit Decoder(const Limits& limits = {});

  // As decode(); on success message() is the decoded message, on error it is unchanged.
  Status decode(const void* data, std::size_t size);
  // The last message decode() accepted (a default Join before the first), valid until the next
  // decode().
  const msg::Message& message() const { return messages_[last_]; }

 private:
  Limits limits_;
  // messages_[k] always holds alternative k of msg::Message.
  std::array<msg::Message, std::variant_size_v<msg::Message>> messages_;
  std::size_t last_ = 0;
};

}  // namespace dsaga::wire
