// The transport: opaque byte messages between the hub (a ZeroMQ ROUTER that binds) and the
// agents (DEALERs that connect), after the ROUTER/DEALER and "Lazy Pirate" patterns of the
// ZeroMQ guide. It knows nothing of the message format or of the math: the hub and agent loops
// put the wire codec (wire.hpp) and the state machines (hub.hpp, agent.hpp) on top of it.
//
// Envelope, the one convention both ends rely on:
//   - an agent (DEALER) sends every message as ONE frame [payload]; no empty delimiter frame;
//   - the hub's ROUTER therefore receives exactly [routing id][payload]; anything else (a REQ
//     socket's [""][payload], a multi-frame message) is dropped and counted in dropped_in;
//   - the hub replies [routing id][payload]; the ROUTER consumes the routing id, so the agent
//     receives the single frame [payload].
//
// Limits: every socket refuses inbound frames larger than max_message_bytes. Over tcp:// and
// ipc:// ZeroMQ enforces it while decoding (ZMQ_MAXMSGSIZE: the offending connection is
// dropped, nothing is allocated for the frame); over inproc:// the frame is already in memory
// and receive() drops it and counts it in dropped_in. Sends never block: when a peer's queue
// is full or the peer is gone, send() returns false and the caller decides (drop, retry later,
// forget the peer).
//
// Threads: a socket is used by one thread at a time (ZeroMQ sockets are not thread-safe).
// Sockets share their context's ownership, so a TransportContext may be destroyed before its
// sockets; the ZeroMQ context is closed when the last of them is gone, after at most
// linger_ms for messages still queued. A context with a CURVE server also runs one ZAP
// handler thread (started by the first such bind, stopped when the context is closed): it
// answers libzmq's authentication requests for every CURVE server of the context, each
// against its own allowlist.
//
// Errors: no exception leaves this API. Setup failures (bad endpoint, address in use, bad
// option) come back as a Status naming the endpoint or the option and ZeroMQ's reason.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dsaga/keys.hpp"
#include "dsaga/peer.hpp"
#include "dsaga/status.hpp"

namespace dsaga {

struct TransportOptions {
  // Largest inbound frame accepted (ZMQ_MAXMSGSIZE over tcp/ipc, checked by receive() over
  // inproc). A larger frame drops the connection (tcp/ipc) or the message (inproc).
  std::size_t max_message_bytes = std::size_t(64) << 20;
  int send_queue = 100;      // ZMQ_SNDHWM, messages per peer; 0 = unbounded (not advised)
  int receive_queue = 1000;  // ZMQ_RCVHWM, messages per peer; 0 = unbounded (not advised)
  // ZMTP heartbeats detect dead TCP peers (a pulled cable never sends a FIN): a PING every
  // heartbeat_ms; a connection with no traffic for heartbeat_timeout_ms is dropped. The remote
  // side is asked to apply the same timeout (ZMQ_HEARTBEAT_TTL). 0 disables heartbeats.
  int heartbeat_ms = 1000;
  int heartbeat_timeout_ms = 10000;
  // A DEALER whose connection dropped retries after reconnect_ms, backing off up to
  // reconnect_max_ms (0 = no back-off). Not used by the ROUTER.
  int reconnect_ms = 100, reconnect_max_ms = 5000;
  int linger_ms = 1000;  // on close, how long queued messages may still be sent
  // DEALER only. false (the default): messages sent before the connection is up (or while it
  // is being re-established) wait in the queue. true (ZMQ_IMMEDIATE): send() returns false
  // until a connection is up.
  bool immediate = false;

  // ---- CurveZMQ (ZeroMQ RFC 26): encryption and authentication. Keys are 40-character Z85
  // text (keys.hpp reads them from files; dsaga-keygen makes them).
  // Server: CURVE is on when curve_secret_key is set; curve_allowlist must then list the
  //   clients (public key -> agent id). A ZAP handler (RFC 27) admits exactly those keys, and
  //   every message received from such a client carries its agent id (receive()'s user_id).
  // Client: CURVE is on when curve_server_key (the hub's public key) is set; curve_secret_key
  //   must then be set too. curve_public_key may stay empty (derived from the secret key);
  //   when given it must match. The handshake fails unless the server holds the secret key
  //   for curve_server_key, so a client never talks to an impostor hub.
  // Half a configuration (a secret key without an allowlist or server key, an allowlist on a
  // client, ...) is an error naming the field, never silently plain text.
  // CURVE applies over tcp:// and ipc://. inproc:// has no handshake (ZeroMQ passes messages
  // between threads of one process), so CURVE keys with an inproc:// endpoint are an error;
  // without CURVE, user_id is empty.
  std::string curve_secret_key;
  std::string curve_public_key;
  std::string curve_server_key;
  CurveAllowlist curve_allowlist;
  // Without CURVE keys, binding or connecting an endpoint that is not loopback
  // (!is_loopback_endpoint) is an error unless this is true: clear text on a network must be
  // asked for. Loopback endpoints may always be plain text.
  bool allow_plaintext = false;
};

// Bytes as framed by ZMTP 3 for message frames: payload + 1 flags byte + 1 size byte (frames
// of at most 255 bytes) or 8 size bytes (larger frames). The routing-id frame at the ROUTER
// is not on the wire and not counted. Not counted either: TCP/IP headers, the ZMTP greeting
// and handshake, heartbeat PING/PONG commands. Over inproc:// nothing is framed; the numbers
// are what the same messages would cost over tcp://, so traffic figures do not depend on the
// endpoint used in a test.
struct TrafficCounters {
  std::uint64_t bytes_in = 0, bytes_out = 0, messages_in = 0, messages_out = 0;
  // Inbound messages discarded: wrong envelope (frame count) or, over inproc, too large.
  // Dropped messages are not in bytes_in/messages_in.
  std::uint64_t dropped_in = 0;
};

// The ZMTP 3 cost of one message frame of `payload_bytes` (see TrafficCounters).
std::uint64_t zmtp_framed_bytes(std::size_t payload_bytes);

// True when the endpoint cannot leave the machine: tcp:// to 127.0.0.0/8 (numeric), localhost
// or [::1] (also ::ffff:127.x.y.z), and every ipc:// and inproc:// endpoint. Anything else,
// including wildcards (tcp://*:5555, tcp://0.0.0.0:5555), interface names and host names that
// merely start with "127.", is not loopback: those need CURVE keys or allow_plaintext.
bool is_loopback_endpoint(const std::string& endpoint);

// Owns the ZeroMQ context (one I/O thread). inproc:// endpoints only reach sockets of the
// same context.
class TransportContext {
 public:
  TransportContext();
  ~TransportContext();
  TransportContext(const TransportContext&) = delete;
  TransportContext& operator=(const TransportContext&) = delete;

  struct Impl;  // defined in transport.cpp

 private:
  friend class ServerSocket;
  friend class ClientSocket;
  std::shared_ptr<Impl> impl_;
};

// The hub side: a ROUTER bound to one endpoint, talking to many agents.
class ServerSocket {
 public:
  // endpoint: tcp://HOST:PORT (PORT may be * for an ephemeral port), ipc://PATH or
  // inproc://NAME. Errors: malformed endpoint, unsupported transport, address in use, a bad
  // option or key, a non-loopback endpoint without CURVE keys or allow_plaintext.
  static Result<std::unique_ptr<ServerSocket>> bind(TransportContext& ctx,
                                                    const std::string& endpoint,
                                                    const TransportOptions& options = {});
  ~ServerSocket();
  ServerSocket(const ServerSocket&) = delete;
  ServerSocket& operator=(const ServerSocket&) = delete;

  // The resolved endpoint (ZMQ_LAST_ENDPOINT), e.g. tcp://127.0.0.1:41235 for
  // tcp://127.0.0.1:*. Give this one to the agents.
  std::string endpoint() const;

  // Waits up to timeout_ms (0 = poll, -1 = forever) for one message. ok(true): `from` and
  // `payload` are filled (payload's capacity is reused); ok(false): the timeout passed;
  // error: the socket failed (the message says why). Malformed or oversized messages are
  // dropped and counted, never returned, and the wait goes on until the deadline.
  // Interrupted system calls (EINTR) are retried: a daemon that stops on a signal should use a
  // finite timeout and check its flag between calls.
  // user_id (optional): on ok(true), the authenticated identity of the sender: with CURVE, the
  // agent id the allowlist maps the sender's public key to (set by the ZAP handler, so a peer
  // cannot choose it); without CURVE, empty. The hub compares it with the agent_id a Join
  // claims.
  Result<bool> receive(PeerId& from, std::vector<std::uint8_t>& payload, int timeout_ms,
                       std::string* user_id = nullptr);

  // Never blocks. false when the peer is unknown or gone (ZMQ_ROUTER_MANDATORY:
  // EHOSTUNREACH), when its send queue is full (EAGAIN), or when the socket failed.
  bool send(const PeerId& to, const std::uint8_t* data, std::size_t size);
  bool send(const PeerId& to, const std::vector<std::uint8_t>& data) {
    return send(to, data.data(), data.size());
  }

  TrafficCounters totals() const;
  // Zero if unknown. Counters of at most max_tracked_peers peers are kept; when full, the
  // peer silent for longest is forgotten (peers that reconnect get new ids, so without a
  // bound a flapping agent would grow this map forever).
  TrafficCounters peer_counters(const PeerId& peer) const;
  // Drops a peer's counters (call when the hub has given up on the peer).
  void forget_peer(const PeerId& peer);
  static constexpr std::size_t max_tracked_peers = 4096;

  struct Impl;

 private:
  explicit ServerSocket(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The agent side: a DEALER connected to the hub.
class ClientSocket {
 public:
  // endpoint: tcp://HOST:PORT, ipc://PATH or inproc://NAME. Succeeds before the hub is up
  // (ZeroMQ connects, and reconnects, in the background); a host name that does not resolve
  // is retried in the background as well. So does a CURVE handshake the server refuses (key
  // not allowlisted, wrong server key): nothing is delivered either way, and sends queue up
  // to send_queue and then fail. Errors: as ServerSocket::bind.
  static Result<std::unique_ptr<ClientSocket>> connect(TransportContext& ctx,
                                                       const std::string& endpoint,
                                                       const TransportOptions& options = {});
  ~ClientSocket();
  ClientSocket(const ClientSocket&) = delete;
  ClientSocket& operator=(const ClientSocket&) = delete;

  // As ServerSocket::receive.
  Result<bool> receive(std::vector<std::uint8_t>& payload, int timeout_ms);

  // Never blocks; false if the queue is full (or, with options.immediate, not connected yet).
  bool send(const std::uint8_t* data, std::size_t size);
  bool send(const std::vector<std::uint8_t>& data) { return send(data.data(), data.size()); }

  // "Lazy Pirate": closes the socket, dropping anything queued either way, and opens a fresh
  // one to the same endpoint, which the hub sees as a new peer (new routing id). Counters keep
  // accumulating. On error the client has no socket: send() returns false and receive()
  // fails until a later reconnect() succeeds.
  Status reconnect();

  TrafficCounters totals() const;

  struct Impl;

 private:
  explicit ClientSocket(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dsaga
