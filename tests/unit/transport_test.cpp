// Tests of the ZeroMQ transport (transport.hpp) over inproc:// and tcp://127.0.0.1:* (an
// ephemeral port). Every receive has a timeout, so a broken transport fails instead of hanging.
// The framing arithmetic is checked against bytes actually written to and read from a TCP
// socket by a hand-written ZMTP 3.0 peer (RawZmtpPeer), not only against the formula.
#include "dsaga/transport.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace dsaga {
namespace {

using Bytes = std::vector<std::uint8_t>;
using Clock = std::chrono::steady_clock;

constexpr int kWaitMs = 2000;  // generous bound for something that should arrive at once

Bytes filled(std::size_t size, std::uint8_t value) { return Bytes(size, value); }
Bytes text(const std::string& s) { return Bytes(s.begin(), s.end()); }

// ZMTP 3 framing, written out independently of the library: flags byte + 1-byte size for
// bodies up to 255 bytes, flags byte + 8-byte size beyond.
std::uint64_t framed(std::size_t n) { return n + (n <= 255 ? 2 : 9); }

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

long elapsed_ms(Clock::time_point since) {
  return long(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - since).count());
}

std::string unique_inproc() {
  static std::atomic<int> counter{0};
  return "inproc://transport-test-" + std::to_string(counter++);
}

// Receives one message on the server or fails the test.
std::pair<PeerId, Bytes> must_receive(ServerSocket& server) {
  PeerId from;
  Bytes payload;
  Result<bool> got = server.receive(from, payload, kWaitMs);
  EXPECT_TRUE(got.is_ok()) << got.error();
  EXPECT_TRUE(got.is_ok() && *got) << "no message within " << kWaitMs << " ms";
  return {from, payload};
}

Bytes must_receive(ClientSocket& client) {
  Bytes payload;
  Result<bool> got = client.receive(payload, kWaitMs);
  EXPECT_TRUE(got.is_ok()) << got.error();
  EXPECT_TRUE(got.is_ok() && *got) << "no message within " << kWaitMs << " ms";
  return payload;
}

void expect_silent(ServerSocket& server, int ms = 200) {
  PeerId from;
  Bytes payload;
  Result<bool> got = server.receive(from, payload, ms);
  ASSERT_TRUE(got.is_ok()) << got.error();
  EXPECT_FALSE(*got) << "unexpected message of " << payload.size() << " bytes";
}

void expect_silent(ClientSocket& client, int ms = 100) {
  Bytes payload;
  Result<bool> got = client.receive(payload, ms);
  ASSERT_TRUE(got.is_ok()) << got.error();
  EXPECT_FALSE(*got) << "unexpected message of " << payload.size() << " bytes";
}

// ---- parameterised over the two transports the project uses ---------------------------------

class TransportTest : public ::testing::TestWithParam<std::string> {
 protected:
  bool tcp() const { return GetParam() == "tcp"; }
  std::string bind_endpoint() const { return tcp() ? "tcp://127.0.0.1:*" : unique_inproc(); }

  std::unique_ptr<ServerSocket> bind(const TransportOptions& options = {}) {
    auto server = ServerSocket::bind(ctx_, bind_endpoint(), options);
    EXPECT_TRUE(server.is_ok()) << server.error();
    return server.is_ok() ? std::move(server.value()) : nullptr;
  }
  std::unique_ptr<ClientSocket> connect(const ServerSocket& server,
                                        const TransportOptions& options = {}) {
    auto client = ClientSocket::connect(ctx_, server.endpoint(), options);
    EXPECT_TRUE(client.is_ok()) << client.error();
    return client.is_ok() ? std::move(client.value()) : nullptr;
  }

  TransportContext ctx_;
};

INSTANTIATE_TEST_SUITE_P(Endpoints, TransportTest, ::testing::Values("inproc", "tcp"),
                         [](const auto& info) { return info.param; });

TEST_P(TransportTest, EndpointIsResolved) {
  auto server = bind();
  ASSERT_TRUE(server);
  const std::string e = server->endpoint();
  if (tcp()) {
    const std::string prefix = "tcp://127.0.0.1:";
    ASSERT_EQ(e.compare(0, prefix.size(), prefix), 0) << e;
    const std::string port = e.substr(prefix.size());
    ASSERT_FALSE(port.empty()) << e;
    EXPECT_EQ(port.find_first_not_of("0123456789"), std::string::npos) << e;
    EXPECT_GT(std::stoi(port), 0) << e;
  } else {
    EXPECT_EQ(e.rfind("inproc://transport-test-", 0), 0u) << e;
  }
}

TEST_P(TransportTest, ClientsAndServerExchangeBothWaysWithExactCounters) {
  auto server = bind();
  ASSERT_TRUE(server);
  constexpr int kClients = 3;
  // Two messages per client; sizes straddle the short/long frame boundary (255/256).
  const std::size_t sizes[kClients][2] = {{0, 255}, {256, 300}, {70000, 7}};
  std::vector<std::unique_ptr<ClientSocket>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(connect(*server));
    ASSERT_TRUE(clients.back());
  }
  // Message j of client i is filled with tag 10*i+j+1, so the server can tell them apart;
  // the empty message is told apart by its size.
  for (int i = 0; i < kClients; ++i) {
    for (int j = 0; j < 2; ++j) {
      ASSERT_TRUE(clients[i]->send(filled(sizes[i][j], std::uint8_t(10 * i + j + 1))));
    }
  }
  std::map<int, PeerId> sender;  // client index -> routing id seen by the server
  std::set<int> seen;
  for (int k = 0; k < 2 * kClients; ++k) {
    auto [from, payload] = must_receive(*server);
    int i = -1, j = -1;
    if (payload.empty()) {
      i = 0, j = 0;
    } else {
      i = (payload[0] - 1) / 10, j = (payload[0] - 1) % 10;
    }
    ASSERT_TRUE(i >= 0 && i < kClients && (j == 0 || j == 1)) << "tag " << int(payload[0]);
    EXPECT_EQ(payload, filled(sizes[i][j], std::uint8_t(10 * i + j + 1)));
    EXPECT_TRUE(seen.insert(10 * i + j).second) << "delivered twice";
    EXPECT_FALSE(from.empty());
    if (sender.count(i)) {
      EXPECT_EQ(sender[i], from) << "two messages of one client came from different peers";
    }
    sender[i] = from;
  }
  ASSERT_EQ(sender.size(), std::size_t(kClients));
  EXPECT_EQ(std::set<PeerId>({sender[0], sender[1], sender[2]}).size(), std::size_t(kClients))
      << "clients share a routing id";
  expect_silent(*server, 50);

  // Replies go to the right client; the reply sizes are short (5 + i) and long (400 + i).
  for (int i = 0; i < kClients; ++i) {
    ASSERT_TRUE(server->send(sender[i], filled(5 + i, std::uint8_t(100 + i))));
    ASSERT_TRUE(server->send(sender[i], filled(400 + i, std::uint8_t(200 + i))));
  }
  for (int i = 0; i < kClients; ++i) {
    EXPECT_EQ(must_receive(*clients[i]), filled(5 + i, std::uint8_t(100 + i)));
    EXPECT_EQ(must_receive(*clients[i]), filled(400 + i, std::uint8_t(200 + i)));
    expect_silent(*clients[i], 20);
  }

  // Counters, both ends, to the byte.
  TrafficCounters expected_server;
  for (int i = 0; i < kClients; ++i) {
    const std::uint64_t in = framed(sizes[i][0]) + framed(sizes[i][1]);
    const std::uint64_t out = framed(5 + i) + framed(400 + i);
    const TrafficCounters peer = server->peer_counters(sender[i]);
    EXPECT_EQ(peer.bytes_in, in) << "client " << i;
    EXPECT_EQ(peer.messages_in, 2u);
    EXPECT_EQ(peer.bytes_out, out);
    EXPECT_EQ(peer.messages_out, 2u);
    EXPECT_EQ(peer.dropped_in, 0u);
    const TrafficCounters c = clients[i]->totals();
    EXPECT_EQ(c.bytes_out, in) << "client " << i;
    EXPECT_EQ(c.messages_out, 2u);
    EXPECT_EQ(c.bytes_in, out);
    EXPECT_EQ(c.messages_in, 2u);
    EXPECT_EQ(c.dropped_in, 0u);
    expected_server.bytes_in += in;
    expected_server.bytes_out += out;
  }
  const TrafficCounters t = server->totals();
  EXPECT_EQ(t.bytes_in, expected_server.bytes_in);
  EXPECT_EQ(t.bytes_out, expected_server.bytes_out);
  EXPECT_EQ(t.messages_in, std::uint64_t(2 * kClients));
  EXPECT_EQ(t.messages_out, std::uint64_t(2 * kClients));
  EXPECT_EQ(t.dropped_in, 0u);
  const TrafficCounters unknown = server->peer_counters("no such peer");
  EXPECT_EQ(unknown.bytes_in + unknown.bytes_out + unknown.messages_in + unknown.messages_out, 0u);

  server->forget_peer(sender[0]);
  EXPECT_EQ(server->peer_counters(sender[0]).messages_in, 0u);
  EXPECT_EQ(server->totals().messages_in, std::uint64_t(2 * kClients)) << "totals must stay";
}

TEST_P(TransportTest, OversizedMessageIsNotDeliveredAndServerKeepsWorking) {
  TransportOptions options;
  options.max_message_bytes = 1000;
  auto server = bind(options);
  ASSERT_TRUE(server);
  auto big = connect(*server);  // the client's own limit is the default, so it sends freely
  auto fine = connect(*server);
  ASSERT_TRUE(big && fine);
  ASSERT_TRUE(big->send(filled(1001, 1)));
  ASSERT_TRUE(fine->send(filled(1000, 2)));  // exactly the limit: delivered
  auto [from, payload] = must_receive(*server);
  EXPECT_EQ(payload, filled(1000, 2));
  expect_silent(*server);  // the 1001-byte message never shows up
  ASSERT_TRUE(server->send(from, text("still here")));
  EXPECT_EQ(must_receive(*fine), text("still here"));
  // tcp: libzmq drops the connection while decoding (ZMQ_MAXMSGSIZE), the transport never
  // sees the frame. inproc: the transport drops it and counts it.
  EXPECT_EQ(server->totals().dropped_in, tcp() ? 0u : 1u);
  EXPECT_EQ(server->totals().messages_in, 1u);
}

TEST_P(TransportTest, ClientEnforcesItsOwnLimit) {
  auto server = bind();
  ASSERT_TRUE(server);
  TransportOptions small;
  small.max_message_bytes = 100;
  auto client = connect(*server, small);
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->send(text("hello")));
  const PeerId id = must_receive(*server).first;
  ASSERT_TRUE(server->send(id, filled(101, 7)));
  expect_silent(*client, 300);
  EXPECT_EQ(client->totals().messages_in, 0u);
}

TEST_P(TransportTest, SendToUnknownPeerFailsAtOnce) {
  auto server = bind();
  ASSERT_TRUE(server);
  const Bytes data = text("hi");
  const auto start = Clock::now();
  EXPECT_FALSE(server->send("no such peer", data));
  EXPECT_FALSE(server->send(PeerId(), data));
  EXPECT_LT(elapsed_ms(start), 100);
  EXPECT_EQ(server->totals().messages_out, 0u);
  EXPECT_EQ(server->totals().bytes_out, 0u);
  // And the socket is not left half-way through a multi-frame message: a real send still works.
  auto client = connect(*server);
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->send(text("ping")));
  const PeerId id = must_receive(*server).first;
  ASSERT_TRUE(server->send(id, text("pong")));
  EXPECT_EQ(must_receive(*client), text("pong"));
}

TEST_P(TransportTest, ReceiveTimesOut) {
  auto server = bind();
  ASSERT_TRUE(server);
  auto client = connect(*server);
  ASSERT_TRUE(client);
  PeerId from;
  Bytes payload;
  auto start = Clock::now();
  Result<bool> got = server->receive(from, payload, 150);
  long ms = elapsed_ms(start);
  ASSERT_TRUE(got.is_ok()) << got.error();
  EXPECT_FALSE(*got);
  EXPECT_GE(ms, 149);
  EXPECT_LT(ms, 150 + 400);

  start = Clock::now();
  got = client->receive(payload, 100);
  ms = elapsed_ms(start);
  ASSERT_TRUE(got.is_ok()) << got.error();
  EXPECT_FALSE(*got);
  EXPECT_GE(ms, 99);
  EXPECT_LT(ms, 100 + 400);

  start = Clock::now();
  got = server->receive(from, payload, 0);
  ASSERT_TRUE(got.is_ok()) << got.error();
  EXPECT_FALSE(*got);
  EXPECT_LT(elapsed_ms(start), 50);
}

TEST_P(TransportTest, ReceiveReusesPayloadCapacity) {
  auto server = bind();
  ASSERT_TRUE(server);
  auto client = connect(*server);
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->send(text("abc")));
  PeerId from;
  Bytes payload;
  payload.reserve(4096);
  const std::uint8_t* storage = payload.data();
  Result<bool> got = server->receive(from, payload, kWaitMs);
  ASSERT_TRUE(got.is_ok() && *got);
  EXPECT_EQ(payload, text("abc"));
  EXPECT_EQ(payload.data(), storage);
  EXPECT_GE(payload.capacity(), 4096u);
}

TEST_P(TransportTest, ReconnectGivesNewIdentity) {
  auto server = bind();
  ASSERT_TRUE(server);
  auto client = connect(*server);
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->send(text("one")));
  auto [id1, first] = must_receive(*server);
  EXPECT_EQ(first, text("one"));
  ASSERT_TRUE(server->send(id1, text("r1")));
  EXPECT_EQ(must_receive(*client), text("r1"));

  Status s = client->reconnect();
  ASSERT_TRUE(s.is_ok()) << s.message();
  ASSERT_TRUE(client->send(text("two")));
  auto [id2, second] = must_receive(*server);
  EXPECT_EQ(second, text("two"));
  EXPECT_NE(id1, id2);
  ASSERT_TRUE(server->send(id2, text("r2")));
  EXPECT_EQ(must_receive(*client), text("r2"));

  const TrafficCounters c = client->totals();  // accumulated across the reconnect
  EXPECT_EQ(c.messages_out, 2u);
  EXPECT_EQ(c.messages_in, 2u);
  EXPECT_EQ(c.bytes_out, framed(3) * 2);
  EXPECT_EQ(c.bytes_in, framed(2) * 2);

  // The old identity is gone once the ROUTER has processed the disconnect.
  const auto start = Clock::now();
  bool refused = false;
  while (!refused && elapsed_ms(start) < kWaitMs) {
    refused = !server->send(id1, text("anyone?"));
    if (!refused) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(refused) << "send to the abandoned identity still accepted after " << kWaitMs
                       << " ms";
  expect_silent(*client, 50);  // and nothing sent to id1 reached the new connection
}

TEST_P(TransportTest, BindingAnEndpointInUseFails) {
  auto first = bind();
  ASSERT_TRUE(first);
  auto second = ServerSocket::bind(ctx_, first->endpoint(), {});
  ASSERT_FALSE(second.is_ok());
  EXPECT_TRUE(contains(second.error(), first->endpoint())) << second.error();
  EXPECT_TRUE(contains(second.error(), "in use")) << second.error();
}

// ---- errors that do not depend on the transport ---------------------------------------------

TEST(TransportErrors, BadEndpointsGiveErrorsNotExceptions) {
  TransportContext ctx;
  for (const std::string endpoint :
       {"tcp://nohost:abc", "foo://x", "tcp://127.0.0.1", "", "inproc://", "ipc://", "tcp://:5555",
        "tcp://127.0.0.1:70000", "tcp://::1:5555", "tcp://[::1:5555", "127.0.0.1:5555"}) {
    auto server = ServerSocket::bind(ctx, endpoint, {});
    ASSERT_FALSE(server.is_ok()) << "bind " << endpoint;
    EXPECT_TRUE(contains(server.error(), "'" + endpoint + "'")) << server.error();
    auto client = ClientSocket::connect(ctx, endpoint, {});
    ASSERT_FALSE(client.is_ok()) << "connect " << endpoint;
    EXPECT_TRUE(contains(client.error(), "'" + endpoint + "'")) << client.error();
  }
  auto star = ClientSocket::connect(ctx, "tcp://127.0.0.1:*", {});
  EXPECT_FALSE(star.is_ok());
  auto zero = ClientSocket::connect(ctx, "tcp://127.0.0.1:0", {});
  EXPECT_FALSE(zero.is_ok());
  auto unsupported = ServerSocket::bind(ctx, "foo://x", {});
  EXPECT_TRUE(contains(unsupported.error(), "unsupported transport 'foo'")) << unsupported.error();
}

TEST(TransportErrors, BadOptionsNameTheOption) {
  TransportContext ctx;
  TransportOptions options;
  options.send_queue = -1;
  auto server = ServerSocket::bind(ctx, unique_inproc(), options);
  ASSERT_FALSE(server.is_ok());
  EXPECT_TRUE(contains(server.error(), "send_queue")) << server.error();
  options = {};
  options.heartbeat_timeout_ms = 7000000;
  auto client = ClientSocket::connect(ctx, "inproc://anything", options);
  ASSERT_FALSE(client.is_ok());
  EXPECT_TRUE(contains(client.error(), "heartbeat_timeout_ms")) << client.error();
}

TEST(TransportErrors, InprocNameInUse) {
  TransportContext ctx;
  const std::string name = unique_inproc();
  auto first = ServerSocket::bind(ctx, name, {});
  ASSERT_TRUE(first.is_ok()) << first.error();
  auto second = ServerSocket::bind(ctx, name, {});
  ASSERT_FALSE(second.is_ok());
  EXPECT_TRUE(contains(second.error(), name)) << second.error();
}

// ---- queues: sends never block --------------------------------------------------------------

TEST(TransportQueues, FullQueuesMakeSendReturnFalseWithoutBlocking) {
  TransportContext ctx;
  TransportOptions options;
  options.send_queue = 5;
  options.receive_queue = 5;
  auto server = ServerSocket::bind(ctx, unique_inproc(), options);
  ASSERT_TRUE(server.is_ok()) << server.error();
  auto client = ClientSocket::connect(ctx, (*server)->endpoint(), options);
  ASSERT_TRUE(client.is_ok()) << client.error();

  // Client -> server while the server does not read: the inproc pipe holds SNDHWM + RCVHWM.
  const Bytes small = filled(100, 1);
  const auto start = Clock::now();
  int accepted = 0;
  for (int k = 0; k < 10000; ++k) accepted += (*client)->send(small) ? 1 : 0;
  EXPECT_LT(elapsed_ms(start), 1000);
  EXPECT_GT(accepted, 0);
  ASSERT_LE(accepted, 20);
  EXPECT_EQ((*client)->totals().messages_out, std::uint64_t(accepted));

  // Server -> client while the client does not read.
  auto [id, payload] = must_receive(**server);
  int delivered = 0;
  for (int k = 0; k < 10000; ++k) delivered += (*server)->send(id, small) ? 1 : 0;
  EXPECT_GT(delivered, 0);
  ASSERT_LE(delivered, 20);
  EXPECT_EQ((*server)->peer_counters(id).messages_out, std::uint64_t(delivered));
  // The queue drains and the peer becomes reachable again (once the ROUTER has processed the
  // reader's "pipe writable" notice: a caller retries later, it never blocks).
  for (int k = 0; k < delivered; ++k) EXPECT_EQ(must_receive(**client), small);
  const auto drained = Clock::now();
  bool sent = false;
  while (!sent && elapsed_ms(drained) < kWaitMs) {
    sent = (*server)->send(id, small);
    if (!sent) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_TRUE(sent);
  EXPECT_EQ(must_receive(**client), small);
}

TEST(TransportContextLifetime, SocketsOutliveTheirContextObject) {
  std::unique_ptr<ServerSocket> server;
  std::unique_ptr<ClientSocket> client;
  {
    TransportContext ctx;
    auto s = ServerSocket::bind(ctx, unique_inproc(), {});
    ASSERT_TRUE(s.is_ok()) << s.error();
    server = std::move(s.value());
    auto c = ClientSocket::connect(ctx, server->endpoint(), {});
    ASSERT_TRUE(c.is_ok()) << c.error();
    client = std::move(c.value());
  }  // must neither hang (zmq_ctx_term waits for open sockets) nor break the sockets
  ASSERT_TRUE(client->send(text("after")));
  auto [id, payload] = must_receive(*server);
  EXPECT_EQ(payload, text("after"));
  ASSERT_TRUE(client->reconnect().is_ok());
}

// ---- framing against the real wire ----------------------------------------------------------

// A minimal ZMTP 3.0 DEALER over a plain TCP socket (NULL mechanism), so the test sees exactly
// the bytes on the wire. All reads and writes time out after 2 s.
class RawZmtpPeer {
 public:
  explicit RawZmtpPeer(const std::string& tcp_endpoint) {
    const int port = std::stoi(tcp_endpoint.substr(tcp_endpoint.rfind(':') + 1));
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{2, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(std::uint16_t(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawZmtpPeer() {
    if (fd_ >= 0) ::close(fd_);
  }

  bool write(const Bytes& b) {
    std::size_t done = 0;
    while (done < b.size()) {
      const ssize_t n = ::send(fd_, b.data() + done, b.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return false;
      done += std::size_t(n);
    }
    return true;
  }
  // Reads exactly n bytes; false on timeout, error or end of stream.
  bool read(std::size_t n, Bytes& out) {
    out.assign(n, 0);
    std::size_t done = 0;
    while (done < n) {
      const ssize_t got = ::recv(fd_, out.data() + done, n - done, 0);
      if (got <= 0) return false;
      done += std::size_t(got);
    }
    return true;
  }
  // True when the other side closed the connection (EOF or reset) within the read timeout.
  bool closed_by_peer() {
    std::uint8_t b;
    for (;;) {
      const ssize_t got = ::recv(fd_, &b, 1, 0);
      if (got == 0) return true;
      if (got < 0) return errno == ECONNRESET;
    }
  }

  // Greeting, then READY with Socket-Type DEALER; reads the server's greeting and READY.
  bool handshake() {
    if (!connected_) return false;
    Bytes greeting(64, 0);
    greeting[0] = 0xFF;
    greeting[9] = 0x7F;
    greeting[10] = 3;  // version 3.0
    greeting[11] = 0;
    const char mechanism[] = "NULL";
    std::copy(mechanism, mechanism + 4, greeting.begin() + 12);
    Bytes ready = {5, 'R', 'E', 'A', 'D', 'Y', 11};
    for (char c : std::string("Socket-Type")) ready.push_back(std::uint8_t(c));
    for (std::uint8_t c : {0, 0, 0, 6}) ready.push_back(c);
    for (char c : std::string("DEALER")) ready.push_back(std::uint8_t(c));
    Bytes command = {0x04, std::uint8_t(ready.size())};
    command.insert(command.end(), ready.begin(), ready.end());
    if (!write(greeting) || !write(command)) return false;
    Bytes theirs, header, body;
    if (!read(64, theirs) || theirs[0] != 0xFF || theirs[10] != 3) return false;
    if (!read(2, header) || header[0] != 0x04) return false;
    return read(header[1], body) && body.size() >= 6 && body[0] == 5;
  }

  // Reads one message frame; returns its size on the wire (flags + size field + body).
  std::uint64_t read_frame(Bytes& body, bool& more) {
    Bytes flags, size;
    if (!read(1, flags)) return 0;
    const bool is_long = flags[0] & 0x02;
    more = flags[0] & 0x01;
    EXPECT_EQ(flags[0] & 0x04, 0) << "a command frame, not a message frame";
    if (!read(is_long ? 8 : 1, size)) return 0;
    std::uint64_t n = 0;
    for (std::uint8_t b : size) n = (n << 8) | b;
    if (!read(std::size_t(n), body)) return 0;
    return 1 + size.size() + n;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

// Encodes one ZMTP message frame as a DEALER would put it on the wire.
Bytes zmtp_frame(const Bytes& body, bool more, std::uint64_t declared_size) {
  const bool is_long = declared_size > 255;
  Bytes out = {std::uint8_t((more ? 0x01 : 0) | (is_long ? 0x02 : 0))};
  if (is_long) {
    for (int shift = 56; shift >= 0; shift -= 8)
      out.push_back(std::uint8_t(declared_size >> shift));
  } else {
    out.push_back(std::uint8_t(declared_size));
  }
  out.insert(out.end(), body.begin(), body.end());
  return out;
}
Bytes zmtp_frame(const Bytes& body, bool more = false) {
  return zmtp_frame(body, more, body.size());
}

class WireTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TransportOptions options;
    options.heartbeat_ms = 0;  // no PING commands between the frames we read
    options.max_message_bytes = 100000;
    auto server = ServerSocket::bind(ctx_, "tcp://127.0.0.1:*", options);
    ASSERT_TRUE(server.is_ok()) << server.error();
    server_ = std::move(server.value());
  }
  TransportContext ctx_;
  std::unique_ptr<ServerSocket> server_;
};

TEST_F(WireTest, CountersEqualTheBytesOnTheWire) {
  RawZmtpPeer peer(server_->endpoint());
  ASSERT_TRUE(peer.handshake());
  std::uint64_t written = 0;
  PeerId id;
  for (std::size_t size : {0, 1, 255, 256, 5000}) {
    const Bytes frame = zmtp_frame(filled(size, 9));
    ASSERT_TRUE(peer.write(frame));
    written += frame.size();
    auto [from, payload] = must_receive(*server_);
    EXPECT_EQ(payload, filled(size, 9));
    id = from;
  }
  EXPECT_EQ(server_->totals().bytes_in, written);
  EXPECT_EQ(server_->peer_counters(id).bytes_in, written);

  std::uint64_t read = 0;
  for (std::size_t size : {0, 200, 255, 256, 3000}) {
    ASSERT_TRUE(server_->send(id, filled(size, 4)));
    Bytes body;
    bool more = true;
    const std::uint64_t on_wire = peer.read_frame(body, more);
    ASSERT_GT(on_wire, 0u) << "no frame for size " << size;
    EXPECT_FALSE(more) << "the routing id must not be on the wire";
    EXPECT_EQ(body, filled(size, 4));
    read += on_wire;
  }
  EXPECT_EQ(server_->totals().bytes_out, read);
  // The library's own formula agrees with the wire at the boundary.
  EXPECT_EQ(zmtp_framed_bytes(255), 257u);
  EXPECT_EQ(zmtp_framed_bytes(256), 265u);
}

TEST_F(WireTest, MultiFrameEnvelopeIsDroppedAndCounted) {
  RawZmtpPeer peer(server_->endpoint());
  ASSERT_TRUE(peer.handshake());
  // A REQ-style [""][payload] envelope: not this protocol's, dropped.
  Bytes req = zmtp_frame(Bytes(), /*more=*/true);
  const Bytes body = zmtp_frame(text("abc"));
  req.insert(req.end(), body.begin(), body.end());
  ASSERT_TRUE(peer.write(req));
  ASSERT_TRUE(peer.write(zmtp_frame(text("valid"))));
  auto [id, payload] = must_receive(*server_);
  EXPECT_EQ(payload, text("valid"));
  EXPECT_EQ(server_->totals().dropped_in, 1u);
  EXPECT_EQ(server_->peer_counters(id).dropped_in, 1u);
  EXPECT_EQ(server_->totals().messages_in, 1u);
  EXPECT_EQ(server_->totals().bytes_in, framed(5));
}

TEST_F(WireTest, FrameAboveTheLimitDropsTheConnectionAtItsHeader) {
  // One byte over the limit (100000), and a 1 TiB announcement that must not be allocated.
  // Only the header and 16 bytes are sent: the server has to hang up on the size field alone
  // (ZMQ_MAXMSGSIZE); without the limit it would wait for the body and keep the connection.
  for (std::uint64_t declared : {std::uint64_t(100001), std::uint64_t(1) << 40}) {
    RawZmtpPeer peer(server_->endpoint());
    ASSERT_TRUE(peer.handshake());
    ASSERT_TRUE(peer.write(zmtp_frame(filled(16, 1), false, declared)));
    EXPECT_TRUE(peer.closed_by_peer()) << "declared " << declared;
  }
  expect_silent(*server_, 50);
  // Other agents are unaffected.
  auto client = ClientSocket::connect(ctx_, server_->endpoint(), {});
  ASSERT_TRUE(client.is_ok()) << client.error();
  ASSERT_TRUE((*client)->send(text("ok")));
  EXPECT_EQ(must_receive(*server_).second, text("ok"));
}

// ---- loopback classification (decides where CurveZMQ will be required) ----------------------

TEST(LoopbackEndpoint, Classification) {
  for (const char* e :
       {"tcp://127.0.0.1:5555", "tcp://127.1.2.3:1", "tcp://localhost:5555", "tcp://LocalHost:5555",
        "tcp://[::1]:5555", "tcp://127.0.0.1:*", "tcp://[::ffff:127.0.0.1]:5555",
        "tcp://10.0.0.1;127.0.0.1:5555", "ipc:///tmp/dsaga.sock", "inproc://hub"}) {
    EXPECT_TRUE(is_loopback_endpoint(e)) << e;
  }
  for (const char* e :
       {"tcp://10.0.0.1:5555", "tcp://*:5555", "tcp://0.0.0.0:5555", "tcp://127.example.com:5555",
        "tcp://localhost.example.com:5555", "tcp://[::2]:5555", "tcp://[::]:5555", "tcp://lo:5555",
        "tcp://192.168.1.10:5555", "tcp://128.0.0.1:5555", "tcp://127.0.0.1;10.0.0.1:5555",
        "foo://x", "", "tcp://127.0.0.1"}) {
    EXPECT_FALSE(is_loopback_endpoint(e)) << e;
  }
}

}  // namespace
}  // namespace dsaga
