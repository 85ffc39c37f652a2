// ZeroMQ adapter behind transport.hpp. Every ZeroMQ call that can throw zmq::error_t is inside a
// try block of this file; nothing of ZeroMQ leaks out of it, neither types nor exceptions.
#include "dsaga/transport.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>
#include <zmq.hpp>

#include "dsaga/keys.hpp"

namespace dsaga {

namespace {

using Clock = std::chrono::steady_clock;

// ---- endpoints -------------------------------------------------------------------------------

struct Endpoint {
  std::string scheme;      // "tcp", "ipc" or "inproc"
  std::string host;        // tcp only: without brackets
  bool bracketed = false;  // tcp host was [IPv6]
};

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Checks the endpoint's syntax before ZeroMQ sees it: libzmq defers resolving a tcp:// address
// to its I/O thread, so "tcp://host:abc" would connect "successfully" and fail forever in the
// background. The error names the endpoint and what is wrong with it.
Result<Endpoint> parse_endpoint(const std::string& endpoint, bool for_bind) {
  const auto fail = [&](const std::string& why) {
    return Result<Endpoint>::failure("endpoint '" + endpoint + "': " + why);
  };
  const std::size_t sep = endpoint.find("://");
  if (sep == std::string::npos) {
    return fail("expected tcp://HOST:PORT, ipc://PATH or inproc://NAME");
  }
  Endpoint parsed;
  parsed.scheme = endpoint.substr(0, sep);
  std::string rest = endpoint.substr(sep + 3);
  if (parsed.scheme == "ipc" || parsed.scheme == "inproc") {
    if (rest.empty()) return fail("empty " + parsed.scheme + " name");
    return parsed;
  }
  if (parsed.scheme != "tcp") {
    return fail("unsupported transport '" + parsed.scheme + "' (use tcp, ipc or inproc)");
  }
  // A connecting tcp endpoint may name a source address first: tcp://SOURCE;HOST:PORT.
  if (!for_bind) {
    const std::size_t semicolon = rest.rfind(';');
    if (semicolon != std::string::npos) rest = rest.substr(semicolon + 1);
  }
  std::string port;
  if (!rest.empty() && rest[0] == '[') {
    const std::size_t close = rest.find(']');
    if (close == std::string::npos) return fail("missing ']' after the IPv6 address");
    parsed.host = rest.substr(1, close - 1);
    parsed.bracketed = true;
    if (close + 1 >= rest.size() || rest[close + 1] != ':') return fail("missing ':PORT'");
    port = rest.substr(close + 2);
  } else {
    const std::size_t colon = rest.rfind(':');
    if (colon == std::string::npos) return fail("missing ':PORT'");
    parsed.host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    if (parsed.host.find(':') != std::string::npos) {
      return fail("an IPv6 address must be written in brackets, e.g. tcp://[::1]:5555");
    }
  }
  if (parsed.host.empty()) return fail("empty host");
  if (port == "*") {
    if (!for_bind) return fail("port '*' (ephemeral) only makes sense when binding");
    return parsed;
  }
  if (!all_digits(port) || port.size() > 5 || std::stoi(port) > 65535) {
    return fail("port '" + port + "' is not a number in 0..65535" +
                (for_bind ? std::string(" or '*'") : std::string()));
  }
  if (!for_bind && std::stoi(port) == 0) return fail("cannot connect to port 0");
  return parsed;
}

// ---- options ---------------------------------------------------------------------------------

Status check_options(const TransportOptions& o) {
  const auto at_least = [](const char* name, int value, int min) {
    if (value >= min) return Status::ok();
    return Status::error("transport option " + std::string(name) + " = " + std::to_string(value) +
                         ": must be >= " + std::to_string(min));
  };
  for (const Status& s :
       {at_least("send_queue", o.send_queue, 0), at_least("receive_queue", o.receive_queue, 0),
        at_least("heartbeat_ms", o.heartbeat_ms, 0),
        at_least("heartbeat_timeout_ms", o.heartbeat_timeout_ms, 0),
        at_least("reconnect_ms", o.reconnect_ms, 0),
        at_least("reconnect_max_ms", o.reconnect_max_ms, 0),
        at_least("linger_ms", o.linger_ms, 0)}) {
    if (!s) return s;
  }
  // ZMQ_HEARTBEAT_TTL travels in a 16-bit count of deciseconds.
  constexpr int kMaxTtlMs = 6553599;
  if (o.heartbeat_timeout_ms > kMaxTtlMs) {
    return Status::error(
        "transport option heartbeat_timeout_ms = " + std::to_string(o.heartbeat_timeout_ms) +
        ": must be <= " + std::to_string(kMaxTtlMs));
  }
  return Status::ok();
}

// ---- security ----------------------------------------------------------------------------

// What one socket's CURVE setup resolved to. Invariant: curve == !secret_key.empty(); a client
// with curve has server_key and public_key, a server has domain.
struct Security {
  bool curve = false;
  std::string secret_key, public_key, server_key;  // Z85, checked
  std::string domain;                              // server: its ZAP domain
};

Status option_error(const char* field, const std::string& why) {
  return Status::error(std::string("transport option ") + field + ": " + why);
}

// Checks the key fields of `o` for a server or a client on `endpoint` and resolves them;
// refuses half a configuration and clear text on a non-loopback endpoint unless asked for.
Result<Security> resolve_security(const TransportOptions& o, const std::string& endpoint,
                                  bool server) {
  using R = Result<Security>;
  Security sec;
  const bool has_secret = !o.curve_secret_key.empty();
  if (server) {
    if (!o.curve_server_key.empty()) {
      return R(option_error("curve_server_key",
                            "is a client (agent) setting; a server uses curve_secret_key and "
                            "curve_allowlist"));
    }
    if (!has_secret && !o.curve_allowlist.empty()) {
      return R(option_error("curve_secret_key",
                            "missing: curve_allowlist is set, but without the server's secret "
                            "key CURVE is off and the allowlist would be ignored"));
    }
    if (has_secret && o.curve_allowlist.empty()) {
      return R(option_error("curve_allowlist", "empty: no client could connect"));
    }
    for (const auto& [key, agent] : o.curve_allowlist) {
      if (Status s = check_curve_key(key, "curve_allowlist entry of '" + agent + "'"); !s) {
        return R(option_error("curve_allowlist", s.message()));
      }
      if (agent.empty()) {
        return R(option_error("curve_allowlist", "empty agent id for key " + key));
      }
    }
    sec.curve = has_secret;
  } else {
    if (!o.curve_allowlist.empty()) {
      return R(option_error("curve_allowlist", "is a server (hub) setting"));
    }
    if (o.curve_server_key.empty() && (has_secret || !o.curve_public_key.empty())) {
      return R(option_error("curve_server_key",
                            "missing: the client's keys are set, but without the hub's public "
                            "key CURVE is off and the hub would not be authenticated"));
    }
    if (!o.curve_server_key.empty()) {
      if (!has_secret) {
        return R(option_error("curve_secret_key", "missing: curve_server_key is set"));
      }
      if (Status s = check_curve_key(o.curve_server_key, "curve_server_key"); !s) {
        return R(option_error("curve_server_key", s.message()));
      }
      sec.server_key = o.curve_server_key;
    }
    sec.curve = has_secret;
  }
  if (sec.curve) {
    const Result<std::string> derived = curve_public_key(o.curve_secret_key);
    if (!derived) return R(option_error("curve_secret_key", derived.error()));
    if (!o.curve_public_key.empty() && o.curve_public_key != *derived) {
      return R(option_error("curve_public_key", "does not belong to curve_secret_key"));
    }
    sec.secret_key = o.curve_secret_key;
    sec.public_key = *derived;
  } else if (!o.curve_public_key.empty()) {
    return R(option_error("curve_public_key", "set without curve_secret_key"));
  }
  // ZeroMQ runs no handshake over inproc://: keys there would be accepted and never checked,
  // which looks like security that is not there.
  if (sec.curve && endpoint.rfind("inproc://", 0) == 0) {
    return R::failure("endpoint '" + endpoint +
                      "': CurveZMQ does not apply to inproc:// (no handshake, nothing would be "
                      "checked); use tcp:// or ipc://, or leave the CURVE keys out");
  }
  if (!sec.curve && !o.allow_plaintext && !is_loopback_endpoint(endpoint)) {
    return R::failure("endpoint '" + endpoint + "' is not loopback: set the CurveZMQ keys (" +
                      (server ? "curve_secret_key and curve_allowlist"
                              : "curve_secret_key and curve_server_key") +
                      ") or, to send clear text over the network, allow_plaintext = true");
  }
  return sec;
}

// Sets one socket option; the error names it.
template <class Opt, class T>
Status set_option(zmq::socket_t& socket, Opt opt, T value, const char* name) {
  try {
    socket.set(opt, value);
    return Status::ok();
  } catch (const zmq::error_t& e) {
    return Status::error(std::string("setting socket option ") + name + ": " + e.what());
  }
}

Status configure(zmq::socket_t& socket, const TransportOptions& o, const Security& sec, bool server,
                 bool ipv6) {
  const std::int64_t max_size =
      o.max_message_bytes > std::uint64_t(std::numeric_limits<std::int64_t>::max())
          ? std::numeric_limits<std::int64_t>::max()
          : std::int64_t(o.max_message_bytes);
  Status s;
  if (!(s = set_option(socket, zmq::sockopt::maxmsgsize, max_size, "ZMQ_MAXMSGSIZE"))) return s;
  if (!(s = set_option(socket, zmq::sockopt::sndhwm, o.send_queue, "ZMQ_SNDHWM"))) return s;
  if (!(s = set_option(socket, zmq::sockopt::rcvhwm, o.receive_queue, "ZMQ_RCVHWM"))) return s;
  if (!(s = set_option(socket, zmq::sockopt::linger, o.linger_ms, "ZMQ_LINGER"))) return s;
  if (o.heartbeat_ms > 0) {
    if (!(s = set_option(socket, zmq::sockopt::heartbeat_ivl, o.heartbeat_ms, "ZMQ_HEARTBEAT_IVL")))
      return s;
    if (!(s = set_option(socket, zmq::sockopt::heartbeat_timeout, o.heartbeat_timeout_ms,
                         "ZMQ_HEARTBEAT_TIMEOUT")))
      return s;
    if (!(s = set_option(socket, zmq::sockopt::heartbeat_ttl, o.heartbeat_timeout_ms,
                         "ZMQ_HEARTBEAT_TTL")))
      return s;
  }
  if (ipv6 && !(s = set_option(socket, zmq::sockopt::ipv6, true, "ZMQ_IPV6"))) return s;
  // CURVE options go before bind/connect: ZeroMQ reads them when a connection starts. Keys are
  // passed as 40-character Z85 text, which libzmq decodes.
  if (sec.curve && server) {
    if (!(s = set_option(socket, zmq::sockopt::curve_server, true, "ZMQ_CURVE_SERVER")) ||
        !(s = set_option(socket, zmq::sockopt::curve_secretkey, sec.secret_key,
                         "ZMQ_CURVE_SECRETKEY")) ||
        !(s = set_option(socket, zmq::sockopt::zap_domain, sec.domain, "ZMQ_ZAP_DOMAIN"))) {
      return s;
    }
  } else if (sec.curve) {
    if (!(s = set_option(socket, zmq::sockopt::curve_serverkey, sec.server_key,
                         "ZMQ_CURVE_SERVERKEY")) ||
        !(s = set_option(socket, zmq::sockopt::curve_publickey, sec.public_key,
                         "ZMQ_CURVE_PUBLICKEY")) ||
        !(s = set_option(socket, zmq::sockopt::curve_secretkey, sec.secret_key,
                         "ZMQ_CURVE_SECRETKEY"))) {
      return s;
    }
  }
  if (server) {
    // Without it a ROUTER silently drops messages to unknown peers; with it send() can say so.
    if (!(s = set_option(socket, zmq::sockopt::router_mandatory, true, "ZMQ_ROUTER_MANDATORY")))
      return s;
  } else {
    if (!(s = set_option(socket, zmq::sockopt::reconnect_ivl, o.reconnect_ms, "ZMQ_RECONNECT_IVL")))
      return s;
    if (!(s = set_option(socket, zmq::sockopt::reconnect_ivl_max, o.reconnect_max_ms,
                         "ZMQ_RECONNECT_IVL_MAX")))
      return s;
    if (!(s = set_option(socket, zmq::sockopt::immediate, o.immediate, "ZMQ_IMMEDIATE"))) return s;
  }
  return Status::ok();
}

// ---- receiving -------------------------------------------------------------------------------

// Milliseconds left until the deadline, rounded up so that poll() never wakes just before it
// and spins; -1 (forever) when timeout_ms < 0.
long remaining_ms(int timeout_ms, Clock::time_point deadline) {
  if (timeout_ms < 0) return -1;
  const auto left = deadline - Clock::now();
  if (left <= Clock::duration::zero()) return 0;
  return long(std::chrono::ceil<std::chrono::milliseconds>(left).count());
}

// Reads the next whole (multi-frame) message: the first two frames land in `first` and
// `second`, further frames are read and discarded; `frames` is the frame count. ok(true): a
// message was read; ok(false): the deadline passed. ZeroMQ delivers multi-frame messages
// atomically, so once the first frame is there the rest can be read without waiting.
Result<bool> next_message(zmq::socket_t& socket, int timeout_ms, Clock::time_point deadline,
                          zmq::message_t& first, zmq::message_t& second, std::size_t& frames) {
  for (;;) {
    try {
      if (socket.recv(first, zmq::recv_flags::dontwait)) break;
      const long wait = remaining_ms(timeout_ms, deadline);
      if (wait == 0) return false;
      zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(wait));
      // Whether it fired or not, go round: recv() decides, and the deadline is rechecked
      // (poll can wake without a message, e.g. after processing a heartbeat).
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      return Result<bool>::failure(std::string("receive: ") + e.what());
    }
  }
  frames = 1;
  bool more = first.more();
  zmq::message_t excess;
  while (more) {
    try {
      zmq::message_t& into = frames == 1 ? second : excess;
      if (!socket.recv(into, zmq::recv_flags::dontwait)) {
        // Cannot happen with atomic delivery; treat the message as truncated (malformed).
        break;
      }
      ++frames;
      more = into.more();
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      return Result<bool>::failure(std::string("receive: ") + e.what());
    }
  }
  return true;
}

// libzmq is not built with ThreadSanitizer, so TSan cannot see that a frame's bytes, written by
// the sending thread, reach the receiving one through libzmq's lock-free pipes. A frame's heap
// block is the same on both sides (inproc hands the pointer over; small frames are copied
// inline and never shared), so a release on it before the send and an acquire after the
// receive state that hand-over. Without TSan these are nothing.
#if defined(__SANITIZE_THREAD__)
#define DSAGA_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define DSAGA_TSAN 1
#endif
#endif
#ifdef DSAGA_TSAN
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
void handed_over(const zmq::message_t& frame) {
  __tsan_acquire(const_cast<void*>(frame.data()));
}
void handing_over(zmq::message_t& frame) { __tsan_release(frame.data()); }
#else
void handed_over(const zmq::message_t&) {}
void handing_over(zmq::message_t&) {}
#endif

void copy_payload(const zmq::message_t& frame, std::vector<std::uint8_t>& payload) {
  handed_over(frame);
  const auto* data = static_cast<const std::uint8_t*>(frame.data());
  payload.assign(data, data + frame.size());  // keeps the vector's capacity when it fits
}

void count_in(TrafficCounters& c, std::size_t size) {
  c.bytes_in += zmtp_framed_bytes(size);
  ++c.messages_in;
}

void count_out(TrafficCounters& c, std::size_t size) {
  c.bytes_out += zmtp_framed_bytes(size);
  ++c.messages_out;
}

// Sends one frame without blocking, retrying on EINTR. false on EAGAIN or any other error.
bool send_frame(zmq::socket_t& socket, const void* data, std::size_t size, bool more) {
  const zmq::send_flags flags =
      more ? zmq::send_flags::dontwait | zmq::send_flags::sndmore : zmq::send_flags::dontwait;
  // What zmq_send does (one allocation and copy), with the frame in hand for the hand-over.
  zmq::message_t frame(data, size);
  handing_over(frame);
  for (;;) {
    try {
      return socket.send(frame, flags).has_value();
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      return false;  // EHOSTUNREACH (ROUTER_MANDATORY), ETERM, ...
    }
  }
}

}  // namespace

// ---- public helpers ---------------------------------------------------------------------------

std::uint64_t zmtp_framed_bytes(std::size_t payload_bytes) {
  // ZMTP 3.x frame: flags byte, then a 1-byte size (short frame, <= 255 bytes) or an 8-byte
  // big-endian size (long frame), then the body.
  return std::uint64_t(payload_bytes) + 1 + (payload_bytes <= 255 ? 1 : 8);
}

bool is_loopback_endpoint(const std::string& endpoint) {
  // The connect form first (it strips a "SOURCE;" prefix), the bind form for "*" ports.
  Result<Endpoint> parsed = parse_endpoint(endpoint, /*for_bind=*/false);
  if (!parsed) parsed = parse_endpoint(endpoint, /*for_bind=*/true);
  if (!parsed) return false;
  const Endpoint& e = *parsed;
  if (e.scheme == "ipc" || e.scheme == "inproc") return true;
  if (e.bracketed) {
    in6_addr a6{};
    if (inet_pton(AF_INET6, e.host.c_str(), &a6) != 1) return false;
    if (IN6_IS_ADDR_LOOPBACK(&a6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
  }
  std::string lower = e.host;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return char(std::tolower(c)); });
  if (lower == "localhost") return true;
  // Numeric only: "127.example.com" is a host name that may resolve anywhere.
  in_addr a4{};
  if (inet_pton(AF_INET, e.host.c_str(), &a4) != 1) return false;
  return (ntohl(a4.s_addr) >> 24) == 127;
}

// ---- context ----------------------------------------------------------------------------------

namespace {

// The ZAP handler (ZeroMQ RFC 27) of one context: a REP socket bound to
// inproc://zeromq.zap.01, served by its own thread. libzmq sends it one request per CURVE
// handshake on any server socket of the context:
//   request: "1.0", request id, domain, peer address, routing id, "CURVE", client public key
//            (32 bytes)
//   reply:   "1.0", request id, status "200" | "400" | "500", status text, user id, metadata
// Each server socket has its own ZAP domain and allowlist; a key is admitted when the allowlist
// of the request's domain holds it, and the user id is the agent id it maps to. libzmq then
// attaches that user id to every message of the connection ("User-Id" property).
//
// Invariant: once started, the socket stays bound until the context is shut down. libzmq
// admits EVERY client when no handler is bound (ZMQ_ZAP_ENFORCE_DOMAIN is a draft option, off
// in Debian's build), so the thread never gives up on an error: it only ends on ETERM or stop.
class ZapHandler {
 public:
  ~ZapHandler() { stop(); }

  // Registers `domain`; starts the thread (binding synchronously, before any server socket
  // of the context can bind) on first use.
  Status add(zmq::context_t& context, const std::string& domain, CurveAllowlist allowlist) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!thread_.joinable()) {
      try {
        socket_ = std::make_unique<zmq::socket_t>(context, zmq::socket_type::rep);
        socket_->set(zmq::sockopt::linger, 0);
        socket_->bind("inproc://zeromq.zap.01");
      } catch (const zmq::error_t& e) {
        socket_.reset();
        return Status::error(std::string("starting the CURVE (ZAP) handler: ") + e.what());
      }
      // The socket moves to the thread; std::thread's start is the memory barrier ZeroMQ
      // requires when a socket changes threads.
      thread_ = std::thread([this] { run(); });
    }
    domains_[domain] = std::move(allowlist);
    return Status::ok();
  }

  void remove(const std::string& domain) {
    std::lock_guard<std::mutex> lock(mutex_);
    domains_.erase(domain);
  }

  bool running() const { return thread_.joinable(); }

  // Called when no server socket of the context is left; the context's shutdown (ETERM) wakes
  // the thread at once, the flag within one poll period otherwise.
  void stop() {
    stopping_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  void run() {
    zmq::socket_t& socket = *socket_;
    std::vector<zmq::message_t> request;
    while (!stopping_) {
      try {
        zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
        if (zmq::poll(&item, 1, std::chrono::milliseconds(200)) == 0) continue;
        request.clear();
        // A REP socket delivers the whole request at once; libzmq builds it (at most 7 frames
        // for CURVE), so the loop is bounded; 16 keeps it so whatever happens.
        do {
          request.emplace_back();
          if (!socket.recv(request.back(), zmq::recv_flags::dontwait)) {
            request.pop_back();
            break;
          }
        } while (request.back().more() && request.size() < 16);
        if (request.empty()) continue;
        const std::vector<std::string> reply = answer(request);
        for (std::size_t i = 0; i < reply.size(); ++i) {
          socket.send(zmq::buffer(reply[i]),
                      i + 1 < reply.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
        }
      } catch (const zmq::error_t& e) {
        if (e.num() == ETERM) break;
        // EINTR or a REP state error: keep serving (see the invariant above).
      }
    }
    socket_.reset();
  }

  std::vector<std::string> answer(const std::vector<zmq::message_t>& request) {
    const auto text = [&](std::size_t i) { return request[i].to_string(); };
    const std::string id = request.size() > 1 ? text(1) : std::string();
    const auto reply = [&](const char* code, const char* why, const std::string& user) {
      return std::vector<std::string>{"1.0", id, code, why, user, ""};
    };
    if (request.size() < 6 || text(0) != "1.0") return reply("500", "malformed ZAP request", "");
    const std::string domain = text(2), address = text(3), mechanism = text(5);
    if (mechanism != "CURVE" || request.size() != 7 || request[6].size() != kCurveKeyBytes) {
      return reply("400", "CURVE required", "");
    }
    const std::string key =
        z85_encode(static_cast<const std::uint8_t*>(request[6].data()), kCurveKeyBytes);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      const auto d = domains_.find(domain);
      if (d != domains_.end()) {
        const auto it = d->second.find(key);
        if (it != d->second.end()) return reply("200", "OK", it->second);
      }
    }
    // The operator's clue when an agent cannot join. At most one line a second: a peer that
    // reconnects in a loop must not flood the log.
    const auto now = Clock::now();
    if (now - last_warning_ >= std::chrono::seconds(1)) {
      last_warning_ = now;
      spdlog::warn("transport: refused CURVE client key {} from {}: not in the allowlist", key,
                   address);
    }
    return reply("400", "key not in the allowlist", "");
  }

  std::mutex mutex_;  // guards domains_ and the start of the thread
  std::map<std::string, CurveAllowlist> domains_;
  std::unique_ptr<zmq::socket_t> socket_;  // used by the thread only, once it runs
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  Clock::time_point last_warning_{};  // thread only
};

std::atomic<std::uint64_t> next_zap_domain{0};

}  // namespace

struct TransportContext::Impl {
  Impl() {
    try {
      context = std::make_unique<zmq::context_t>();
    } catch (const zmq::error_t& e) {
      error = std::string("creating the ZeroMQ context: ") + e.what();
    }
  }
  ~Impl() {
    // Every socket of the context is closed by now (each holds a reference to this Impl), so
    // the ZAP handler can go: shutdown() wakes it with ETERM, then the context is closed.
    if (zap.running() && context) {
      try {
        context->shutdown();
      } catch (const zmq::error_t&) {
        // The flag stops the thread within one poll period anyway.
      }
    }
    zap.stop();
  }
  std::unique_ptr<zmq::context_t> context;  // null if creation failed (then `error` says why)
  std::string error;
  ZapHandler zap;  // started by the first CURVE server socket
};

TransportContext::TransportContext() : impl_(std::make_shared<Impl>()) {}
TransportContext::~TransportContext() = default;

namespace {

// Opens a socket of `type` on the context, configured with `options`.
Result<std::unique_ptr<zmq::socket_t>> open_socket(const TransportContext::Impl& ctx,
                                                   zmq::socket_type type,
                                                   const TransportOptions& options,
                                                   const Security& sec, bool server, bool ipv6) {
  using R = Result<std::unique_ptr<zmq::socket_t>>;
  if (!ctx.context) return R::failure(ctx.error);
  std::unique_ptr<zmq::socket_t> socket;
  try {
    socket = std::make_unique<zmq::socket_t>(*ctx.context, type);
  } catch (const zmq::error_t& e) {
    return R::failure(std::string("creating a ZeroMQ socket: ") + e.what());
  }
  if (Status s = configure(*socket, options, sec, server, ipv6); !s) return R(s);
  return R(std::move(socket));
}

// Closes without waiting for queued messages (they are being abandoned on purpose).
void close_now(std::unique_ptr<zmq::socket_t>& socket) {
  if (!socket) return;
  try {
    socket->set(zmq::sockopt::linger, 0);
  } catch (const zmq::error_t&) {
    // Closing anyway; the context's shutdown then waits for at most the old linger.
  }
  socket.reset();  // zmq_close never fails on a valid socket
}

}  // namespace

// ---- server -----------------------------------------------------------------------------------

struct ServerSocket::Impl {
  struct Peer {
    TrafficCounters counters;
    std::uint64_t last_active = 0;  // value of `clock` at the last message to or from it
  };

  // Declared before `socket`: members are destroyed in reverse order, so the socket is closed
  // before this (possibly last) reference to the context goes.
  std::shared_ptr<TransportContext::Impl> ctx;
  // Unregisters the ZAP domain after the socket is closed (declared between the two). Not
  // copyable: a copy's destructor would unregister the domain of a live socket.
  struct ZapDomain {
    ZapDomain() = default;
    ZapDomain(const ZapDomain&) = delete;
    ZapDomain& operator=(const ZapDomain&) = delete;
    std::shared_ptr<TransportContext::Impl> ctx;
    std::string name;
    ~ZapDomain() {
      if (ctx && !name.empty()) ctx->zap.remove(name);
    }
  } zap_domain;
  std::unique_ptr<zmq::socket_t> socket;
  TransportOptions options;
  std::string endpoint;
  TrafficCounters totals;
  std::unordered_map<PeerId, Peer> peers;  // size() <= max_tracked_peers
  std::uint64_t clock = 0;
  zmq::message_t id_frame, payload_frame;  // reused by receive()

  // The peer's entry, created if needed; evicts the peer silent for longest when full.
  Peer& peer(const PeerId& id) {
    auto it = peers.find(id);
    if (it == peers.end()) {
      if (peers.size() >= max_tracked_peers) {
        auto oldest =
            std::min_element(peers.begin(), peers.end(), [](const auto& a, const auto& b) {
              return a.second.last_active < b.second.last_active;
            });
        peers.erase(oldest);
      }
      it = peers.emplace(id, Peer{}).first;
    }
    it->second.last_active = ++clock;
    return it->second;
  }
};

ServerSocket::ServerSocket(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ServerSocket::~ServerSocket() = default;

Result<std::unique_ptr<ServerSocket>> ServerSocket::bind(TransportContext& ctx,
                                                         const std::string& endpoint,
                                                         const TransportOptions& options) {
  using R = Result<std::unique_ptr<ServerSocket>>;
  const Result<Endpoint> parsed = parse_endpoint(endpoint, /*for_bind=*/true);
  if (!parsed) return R(parsed.status());
  if (Status s = check_options(options); !s) return R(s);
  Result<Security> sec = resolve_security(options, endpoint, /*server=*/true);
  if (!sec) return R(sec.status());
  auto impl = std::make_unique<Impl>();
  impl->ctx = ctx.impl_;
  impl->options = options;
  if (sec->curve) {
    if (!impl->ctx->context) return R::failure(impl->ctx->error);
    sec->domain = "dsaga-" + std::to_string(next_zap_domain++);
    if (Status s = impl->ctx->zap.add(*impl->ctx->context, sec->domain, options.curve_allowlist);
        !s) {
      return R(s);
    }
    // Fields, not `= {...}`: the temporary's destructor would unregister the domain.
    impl->zap_domain.ctx = impl->ctx;
    impl->zap_domain.name = sec->domain;
  }
  auto socket = open_socket(*impl->ctx, zmq::socket_type::router, options, *sec,
                            /*server=*/true, parsed->bracketed);
  if (!socket) return R(socket.status());
  impl->socket = std::move(socket.value());
  try {
    impl->socket->bind(endpoint);
    impl->endpoint = impl->socket->get(zmq::sockopt::last_endpoint);
  } catch (const zmq::error_t& e) {
    close_now(impl->socket);
    return R::failure("bind " + endpoint + ": " + e.what());
  }
  return R(std::unique_ptr<ServerSocket>(new ServerSocket(std::move(impl))));
}

std::string ServerSocket::endpoint() const { return impl_->endpoint; }

Result<bool> ServerSocket::receive(PeerId& from, std::vector<std::uint8_t>& payload, int timeout_ms,
                                   std::string* user_id) {
  Impl& m = *impl_;
  const Clock::time_point deadline =
      Clock::now() + std::chrono::milliseconds(std::max(0, timeout_ms));
  for (;;) {
    std::size_t frames = 0;
    Result<bool> got =
        next_message(*m.socket, timeout_ms, deadline, m.id_frame, m.payload_frame, frames);
    if (!got || !*got) return got;
    // A ROUTER always prepends the routing id, so frames >= 1 and id_frame is the sender.
    const PeerId id(static_cast<const char*>(m.id_frame.data()), m.id_frame.size());
    if (frames != 2 || m.payload_frame.size() > m.options.max_message_bytes) {
      ++m.totals.dropped_in;
      ++m.peer(id).counters.dropped_in;
      continue;
    }
    from = id;
    if (user_id) {
      // Set by libzmq from the ZAP reply on the payload frame (the routing-id frame is made by
      // the ROUTER and carries no metadata). Absent without CURVE.
      const char* uid = zmq_msg_gets(m.payload_frame.handle(), "User-Id");
      user_id->assign(uid ? uid : "");
    }
    copy_payload(m.payload_frame, payload);
    count_in(m.totals, payload.size());
    count_in(m.peer(id).counters, payload.size());
    return true;
  }
}

bool ServerSocket::send(const PeerId& to, const std::uint8_t* data, std::size_t size) {
  Impl& m = *impl_;
  // An empty routing id is never a peer's (ZeroMQ ids are never empty).
  if (to.empty()) return false;
  // With ZMQ_ROUTER_MANDATORY the routing-id frame is where an unknown peer (EHOSTUNREACH) or
  // a full queue (EAGAIN) is reported; nothing has been queued then. Once it is accepted the
  // ROUTER takes the payload frame unconditionally (libzmq router_t::xsend), so the message
  // is never left half-sent.
  if (!send_frame(*m.socket, to.data(), to.size(), /*more=*/true)) return false;
  if (!send_frame(*m.socket, data, size, /*more=*/false)) return false;
  count_out(m.totals, size);
  count_out(m.peer(to).counters, size);
  return true;
}

TrafficCounters ServerSocket::totals() const { return impl_->totals; }

TrafficCounters ServerSocket::peer_counters(const PeerId& peer) const {
  const auto it = impl_->peers.find(peer);
  return it == impl_->peers.end() ? TrafficCounters{} : it->second.counters;
}

void ServerSocket::forget_peer(const PeerId& peer) { impl_->peers.erase(peer); }

// ---- client -----------------------------------------------------------------------------------

struct ClientSocket::Impl {
  std::shared_ptr<TransportContext::Impl> ctx;  // before `socket`: see ServerSocket::Impl
  std::unique_ptr<zmq::socket_t> socket;        // null after a failed reconnect()
  std::string last_error;                       // why `socket` is null
  TransportOptions options;
  Security security;
  std::string endpoint;
  bool ipv6 = false;
  TrafficCounters totals;
  zmq::message_t frame, excess;  // reused by receive()

  Status open() {
    auto opened =
        open_socket(*ctx, zmq::socket_type::dealer, options, security, /*server=*/false, ipv6);
    if (!opened) return opened.status();
    try {
      opened.value()->connect(endpoint);
    } catch (const zmq::error_t& e) {
      close_now(opened.value());
      return Status::error("connect " + endpoint + ": " + e.what());
    }
    socket = std::move(opened.value());
    return Status::ok();
  }
};

ClientSocket::ClientSocket(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ClientSocket::~ClientSocket() = default;

Result<std::unique_ptr<ClientSocket>> ClientSocket::connect(TransportContext& ctx,
                                                            const std::string& endpoint,
                                                            const TransportOptions& options) {
  using R = Result<std::unique_ptr<ClientSocket>>;
  const Result<Endpoint> parsed = parse_endpoint(endpoint, /*for_bind=*/false);
  if (!parsed) return R(parsed.status());
  if (Status s = check_options(options); !s) return R(s);
  Result<Security> sec = resolve_security(options, endpoint, /*server=*/false);
  if (!sec) return R(sec.status());
  auto impl = std::make_unique<Impl>();
  impl->ctx = ctx.impl_;
  impl->options = options;
  impl->security = std::move(sec.value());
  impl->endpoint = endpoint;
  impl->ipv6 = parsed->bracketed;
  if (Status s = impl->open(); !s) return R(s);
  return R(std::unique_ptr<ClientSocket>(new ClientSocket(std::move(impl))));
}

Result<bool> ClientSocket::receive(std::vector<std::uint8_t>& payload, int timeout_ms) {
  Impl& m = *impl_;
  if (!m.socket) return Result<bool>::failure("receive: not connected (" + m.last_error + ")");
  const Clock::time_point deadline =
      Clock::now() + std::chrono::milliseconds(std::max(0, timeout_ms));
  for (;;) {
    std::size_t frames = 0;
    Result<bool> got = next_message(*m.socket, timeout_ms, deadline, m.frame, m.excess, frames);
    if (!got || !*got) return got;
    // The hub's ROUTER strips the routing id: one frame is the only valid envelope.
    if (frames != 1 || m.frame.size() > m.options.max_message_bytes) {
      ++m.totals.dropped_in;
      continue;
    }
    copy_payload(m.frame, payload);
    count_in(m.totals, payload.size());
    return true;
  }
}

bool ClientSocket::send(const std::uint8_t* data, std::size_t size) {
  Impl& m = *impl_;
  if (!m.socket || !send_frame(*m.socket, data, size, /*more=*/false)) return false;
  count_out(m.totals, size);
  return true;
}

Status ClientSocket::reconnect() {
  Impl& m = *impl_;
  // Lazy Pirate: whatever the old socket still holds belongs to a conversation we gave up on.
  close_now(m.socket);
  Status s = m.open();
  m.last_error = s ? std::string() : "last reconnect failed: " + s.message();
  return s;
}

TrafficCounters ClientSocket::totals() const { return impl_->totals; }

}  // namespace dsaga
