// CurveZMQ in the transport (who may talk to a CURVE server, and what identity the server sees)
// and the key material behind it (Z85, key files, allowlists). Every "cannot talk" test also
// shows that an allowed client gets through the same server afterwards, so a server that
// receives nothing at all cannot pass it.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "dsaga/keys.hpp"
#include "dsaga/transport.hpp"

namespace dsaga {
namespace {

constexpr int kRefusedWaitMs = 1500;  // long enough for a loopback handshake to finish
constexpr int kDeliverWaitMs = 5000;

CurveKeyPair fresh_keys() {
  Result<CurveKeyPair> keys = generate_curve_keypair();
  EXPECT_TRUE(keys) << keys.error();
  return keys ? *keys : CurveKeyPair{};
}

std::vector<std::uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }

class CurveTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_keys = fresh_keys();
    agent_keys = fresh_keys();
    stranger_keys = fresh_keys();
    server_options.curve_secret_key = server_keys.secret_key;
    server_options.curve_allowlist = {{agent_keys.public_key, "agent-7"}};
    server_options.linger_ms = 0;
  }

  std::unique_ptr<ServerSocket> bind(const TransportOptions& options) {
    auto server = ServerSocket::bind(ctx, "tcp://127.0.0.1:*", options);
    EXPECT_TRUE(server) << server.error();
    return server ? std::move(server.value()) : nullptr;
  }

  TransportOptions client_options(const CurveKeyPair& mine, const std::string& server_public) {
    TransportOptions o;
    o.curve_secret_key = mine.secret_key;
    o.curve_public_key = mine.public_key;
    o.curve_server_key = server_public;
    o.linger_ms = 0;
    return o;
  }

  std::unique_ptr<ClientSocket> connect(const std::string& endpoint, const TransportOptions& o) {
    auto client = ClientSocket::connect(ctx, endpoint, o);
    EXPECT_TRUE(client) << client.error();
    return client ? std::move(client.value()) : nullptr;
  }

  // The allowed agent sends `text`; the server must receive it with the agent's id.
  void expect_allowed_agent_gets_through(ServerSocket& server, const std::string& text) {
    auto agent = connect(server.endpoint(), client_options(agent_keys, server_keys.public_key));
    ASSERT_TRUE(agent);
    ASSERT_TRUE(agent->send(bytes(text)));
    PeerId from;
    std::vector<std::uint8_t> payload;
    std::string user_id;
    Result<bool> got = server.receive(from, payload, kDeliverWaitMs, &user_id);
    ASSERT_TRUE(got) << got.error();
    ASSERT_TRUE(*got) << "the allowlisted agent's message did not arrive";
    EXPECT_EQ(payload, bytes(text));
    EXPECT_EQ(user_id, "agent-7");
  }

  // Nothing arrives at the server within kRefusedWaitMs.
  void expect_nothing_arrives(ServerSocket& server) {
    PeerId from;
    std::vector<std::uint8_t> payload;
    std::string user_id;
    Result<bool> got = server.receive(from, payload, kRefusedWaitMs, &user_id);
    ASSERT_TRUE(got) << got.error();
    EXPECT_FALSE(*got) << "a message got through, from user id '" << user_id << "'";
  }

  TransportContext ctx;
  CurveKeyPair server_keys, agent_keys, stranger_keys;
  TransportOptions server_options;
};

TEST_F(CurveTransportTest, AllowlistedClientTalksBothWaysAndServerSeesItsAgentId) {
  auto server = bind(server_options);
  ASSERT_TRUE(server);
  auto agent = connect(server->endpoint(), client_options(agent_keys, server_keys.public_key));
  ASSERT_TRUE(agent);
  ASSERT_TRUE(agent->send(bytes("join")));
  PeerId from;
  std::vector<std::uint8_t> payload;
  std::string user_id = "stale";
  Result<bool> got = server->receive(from, payload, kDeliverWaitMs, &user_id);
  ASSERT_TRUE(got && *got);
  EXPECT_EQ(payload, bytes("join"));
  EXPECT_EQ(user_id, "agent-7");
  // The reply travels back over the same authenticated connection.
  ASSERT_TRUE(server->send(from, bytes("welcome")));
  got = agent->receive(payload, kDeliverWaitMs);
  ASSERT_TRUE(got && *got);
  EXPECT_EQ(payload, bytes("welcome"));
}

TEST_F(CurveTransportTest, UnknownKeyCannotGetAMessageThrough) {
  auto server = bind(server_options);
  ASSERT_TRUE(server);
  auto stranger =
      connect(server->endpoint(), client_options(stranger_keys, server_keys.public_key));
  ASSERT_TRUE(stranger);
  stranger->send(bytes("let me in"));  // queued; may never leave
  expect_nothing_arrives(*server);
  expect_allowed_agent_gets_through(*server, "hello");
}

TEST_F(CurveTransportTest, PlaintextClientCannotTalkToCurveServer) {
  auto server = bind(server_options);
  ASSERT_TRUE(server);
  TransportOptions plain;
  plain.linger_ms = 0;
  auto client = connect(server->endpoint(), plain);
  ASSERT_TRUE(client);
  client->send(bytes("plain"));
  expect_nothing_arrives(*server);
  expect_allowed_agent_gets_through(*server, "hello");
}

TEST_F(CurveTransportTest, ClientWithWrongServerKeyCannotTalk) {
  auto server = bind(server_options);
  ASSERT_TRUE(server);
  // Allowlisted keys, but it expects another hub: the handshake fails on the client's side of
  // the bargain (the server cannot prove it holds the expected key).
  auto agent = connect(server->endpoint(), client_options(agent_keys, stranger_keys.public_key));
  ASSERT_TRUE(agent);
  agent->send(bytes("to the wrong hub"));
  expect_nothing_arrives(*server);
  std::vector<std::uint8_t> payload;
  Result<bool> got = agent->receive(payload, 0);
  ASSERT_TRUE(got);
  EXPECT_FALSE(*got);
  expect_allowed_agent_gets_through(*server, "hello");
}

TEST_F(CurveTransportTest, EachServerOfAContextChecksItsOwnAllowlist) {
  auto first = bind(server_options);
  TransportOptions other = server_options;
  other.curve_allowlist = {{stranger_keys.public_key, "agent-9"}};
  auto second = bind(other);
  ASSERT_TRUE(first && second);
  // agent_keys is allowlisted on the first server only.
  auto agent = connect(second->endpoint(), client_options(agent_keys, server_keys.public_key));
  ASSERT_TRUE(agent);
  agent->send(bytes("wrong server"));
  expect_nothing_arrives(*second);
  expect_allowed_agent_gets_through(*first, "right server");
}

TEST_F(CurveTransportTest, PlaintextServerReportsAnEmptyUserId) {
  TransportOptions plain;
  plain.linger_ms = 0;
  auto server = bind(plain);
  ASSERT_TRUE(server);
  auto client = connect(server->endpoint(), plain);
  ASSERT_TRUE(client && client->send(bytes("x")));
  PeerId from;
  std::vector<std::uint8_t> payload;
  std::string user_id = "stale";
  Result<bool> got = server->receive(from, payload, kDeliverWaitMs, &user_id);
  ASSERT_TRUE(got && *got);
  EXPECT_EQ(user_id, "");
}

TEST_F(CurveTransportTest, NonLoopbackNeedsKeysOrExplicitPlaintext) {
  TransportOptions plain;
  plain.linger_ms = 0;
  auto server = ServerSocket::bind(ctx, "tcp://0.0.0.0:*", plain);
  ASSERT_FALSE(server);
  EXPECT_NE(server.error().find("allow_plaintext"), std::string::npos) << server.error();
  EXPECT_NE(server.error().find("tcp://0.0.0.0:*"), std::string::npos) << server.error();
  auto client = ClientSocket::connect(ctx, "tcp://192.0.2.1:5555", plain);  // TEST-NET-1
  ASSERT_FALSE(client);
  EXPECT_NE(client.error().find("allow_plaintext"), std::string::npos) << client.error();

  plain.allow_plaintext = true;
  EXPECT_TRUE(ServerSocket::bind(ctx, "tcp://0.0.0.0:*", plain));
  EXPECT_TRUE(ClientSocket::connect(ctx, "tcp://192.0.2.1:5555", plain));
  // With keys no permission is needed.
  EXPECT_TRUE(ServerSocket::bind(ctx, "tcp://0.0.0.0:*", server_options));
  EXPECT_TRUE(ClientSocket::connect(ctx, "tcp://192.0.2.1:5555",
                                    client_options(agent_keys, server_keys.public_key)));
}

TEST_F(CurveTransportTest, CurveOverInprocIsAnError) {
  // inproc:// has no handshake: the keys would be accepted and never checked.
  auto server = ServerSocket::bind(ctx, "inproc://curve", server_options);
  ASSERT_FALSE(server);
  EXPECT_NE(server.error().find("inproc"), std::string::npos) << server.error();
  auto client = ClientSocket::connect(ctx, "inproc://curve",
                                      client_options(agent_keys, server_keys.public_key));
  ASSERT_FALSE(client);
  EXPECT_NE(client.error().find("inproc"), std::string::npos) << client.error();
}

TEST_F(CurveTransportTest, HalfConfiguredKeysAreErrorsNamingTheOption) {
  const auto server_error = [&](const TransportOptions& o) {
    auto s = ServerSocket::bind(ctx, "tcp://127.0.0.1:*", o);
    return s ? std::string("no error") : s.error();
  };
  const auto client_error = [&](const TransportOptions& o) {
    auto c = ClientSocket::connect(ctx, "tcp://127.0.0.1:5555", o);
    return c ? std::string("no error") : c.error();
  };
  TransportOptions o = server_options;
  o.curve_allowlist.clear();
  EXPECT_NE(server_error(o).find("curve_allowlist"), std::string::npos) << server_error(o);
  o = server_options;
  o.curve_secret_key.clear();
  EXPECT_NE(server_error(o).find("curve_secret_key"), std::string::npos) << server_error(o);
  o = server_options;
  o.curve_allowlist = {{"not a key", "agent-1"}};
  EXPECT_NE(server_error(o).find("curve_allowlist"), std::string::npos) << server_error(o);

  o = client_options(agent_keys, server_keys.public_key);
  o.curve_secret_key.clear();
  o.curve_public_key.clear();
  EXPECT_NE(client_error(o).find("curve_secret_key"), std::string::npos) << client_error(o);
  o = client_options(agent_keys, "");
  EXPECT_NE(client_error(o).find("curve_server_key"), std::string::npos) << client_error(o);
  o = client_options(agent_keys, server_keys.public_key.substr(1));
  EXPECT_NE(client_error(o).find("curve_server_key"), std::string::npos) << client_error(o);
  o = client_options(agent_keys, server_keys.public_key);
  o.curve_public_key = stranger_keys.public_key;
  EXPECT_NE(client_error(o).find("curve_public_key"), std::string::npos) << client_error(o);
  // The public key may be left out: it is derived from the secret.
  o.curve_public_key.clear();
  EXPECT_EQ(client_error(o), "no error");
}

// ---- keys ------------------------------------------------------------------------------------

TEST(Z85, MatchesTheRfcVectorAndRoundTrips) {
  const std::vector<std::uint8_t> hello = {0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B};
  EXPECT_EQ(z85_encode(hello.data(), hello.size()), "HelloWorld");  // ZeroMQ RFC 32
  auto decoded = z85_decode("HelloWorld");
  ASSERT_TRUE(decoded);
  EXPECT_EQ(*decoded, hello);

  std::vector<std::uint8_t> all(256);
  for (int i = 0; i < 256; ++i) all[i] = std::uint8_t(255 - i);
  const std::string text = z85_encode(all.data(), all.size());
  EXPECT_EQ(text.size(), 320u);
  decoded = z85_decode(text);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(*decoded, all);
  EXPECT_EQ(z85_encode(all.data(), 3), "");  // not a multiple of 4
}

TEST(Z85, RejectsBadLengthCharactersAndOverflow) {
  EXPECT_FALSE(z85_decode("Hell"));
  EXPECT_FALSE(z85_decode("Hello Worl"));     // ' ' is not in the alphabet
  const auto overflow = z85_decode("#####");  // 85^5 - 1 > 2^32 - 1
  ASSERT_FALSE(overflow);
  EXPECT_NE(overflow.error().find("2^32"), std::string::npos) << overflow.error();
  auto quote = z85_decode("Hell\"World");
  ASSERT_FALSE(quote);
  EXPECT_NE(quote.error().find("character 5"), std::string::npos) << quote.error();
}

TEST(CurveKeys, GeneratedPairsAreFreshAndConsistent) {
  const CurveKeyPair a = fresh_keys(), b = fresh_keys();
  EXPECT_EQ(a.public_key.size(), kCurveKeyTextSize);
  EXPECT_EQ(a.secret_key.size(), kCurveKeyTextSize);
  EXPECT_NE(a.public_key, b.public_key);
  EXPECT_NE(a.secret_key, b.secret_key);
  auto derived = curve_public_key(a.secret_key);
  ASSERT_TRUE(derived) << derived.error();
  EXPECT_EQ(*derived, a.public_key);
  EXPECT_TRUE(check_curve_key(a.public_key, "k"));
  EXPECT_FALSE(check_curve_key(a.public_key + "0", "k"));
}

TEST(KeyFile, FormatParsesBackWithOrWithoutTheSecret) {
  const CurveKeyPair keys = fresh_keys();
  auto both = parse_key_file(format_key_file(keys, "dsaga key for agent-1", true), "a.key", true);
  ASSERT_TRUE(both) << both.error();
  EXPECT_EQ(both->public_key, keys.public_key);
  EXPECT_EQ(both->secret_key, keys.secret_key);
  auto pub = parse_key_file(format_key_file(keys, "", false), "a.pub");
  ASSERT_TRUE(pub) << pub.error();
  EXPECT_EQ(pub->public_key, keys.public_key);
  EXPECT_EQ(pub->secret_key, "");
  // Comments, blank lines, spacing and CRLF as TOML allows them.
  auto loose = parse_key_file("\r\n# c\r\n  public=\"" + keys.public_key + "\"   # x\r\n", "b.pub");
  ASSERT_TRUE(loose) << loose.error();
  EXPECT_EQ(loose->public_key, keys.public_key);
}

TEST(KeyFile, ErrorsNameFileAndLine) {
  const CurveKeyPair keys = fresh_keys(), other = fresh_keys();
  const std::string pub = "public = \"" + keys.public_key + "\"\n";
  const std::string sec = "secret = \"" + keys.secret_key + "\"\n";
  const auto error_of = [](const std::string& text, bool require_secret = false) {
    auto r = parse_key_file(text, "k.key", require_secret);
    return r ? std::string("no error") : r.error();
  };
  EXPECT_EQ(error_of("# c\n\npublic = \"abc\"\n").rfind("k.key:3: ", 0), 0u)
      << error_of("# c\n\npublic = \"abc\"\n");
  EXPECT_EQ(error_of(pub + "colour = \"red\"\n").rfind("k.key:2: unknown key", 0), 0u);
  EXPECT_EQ(error_of(pub + pub).rfind("k.key:2: 'public' given twice", 0), 0u);
  EXPECT_EQ(error_of(pub + "secret = \"" + keys.secret_key + "\n").rfind("k.key:2: missing", 0),
            0u);
  EXPECT_EQ(error_of(pub + "secret = " + keys.secret_key + "\n").rfind("k.key:2: ", 0), 0u);
  EXPECT_EQ(error_of(pub + sec + "junk\n").rfind("k.key:3: expected", 0), 0u);
  EXPECT_EQ(error_of("public = \"" + keys.public_key + "\" extra\n").rfind("k.key:1: ", 0), 0u);
  // A public key that is not the secret's: named at the public key's line.
  const std::string mismatch = "public = \"" + other.public_key + "\"\n" + sec;
  EXPECT_EQ(error_of(mismatch).rfind("k.key:1: the public key does not belong", 0), 0u)
      << error_of(mismatch);
  EXPECT_NE(error_of(sec).find("no 'public"), std::string::npos);
  EXPECT_NE(error_of(pub, /*require_secret=*/true).find("no 'secret"), std::string::npos);
}

TEST(Allowlist, ParsesIdsKeysCommentsAndKeysContainingHash) {
  const CurveKeyPair a = fresh_keys(), b = fresh_keys();
  const std::string hashed = "0000#0000#0000#0000#0000#0000#0000#0000#";  // valid Z85
  const std::string text = "# agent_id public_key\n\nagent-a " + a.public_key + "\r\n  agent-b\t" +
                           b.public_key + "   # the laptop\n" + "agent-c " + hashed + "\n";
  auto list = parse_allowlist(text, "allow.txt");
  ASSERT_TRUE(list) << list.error();
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ(list->at(a.public_key), "agent-a");
  EXPECT_EQ(list->at(b.public_key), "agent-b");
  EXPECT_EQ(list->at(hashed), "agent-c");
  auto empty = parse_allowlist("# nobody yet\n", "allow.txt");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
}

TEST(Allowlist, ErrorsNameFileAndLine) {
  const CurveKeyPair a = fresh_keys(), b = fresh_keys();
  const std::string line_a = "agent-a " + a.public_key + "\n";
  const auto error_of = [](const std::string& text) {
    auto r = parse_allowlist(text, "allow.txt");
    return r ? std::string("no error") : r.error();
  };
  EXPECT_EQ(error_of("# x\nagent-a\n").rfind("allow.txt:2: expected 'AGENT_ID PUBLIC_KEY'", 0), 0u);
  EXPECT_EQ(error_of(line_a + "agent-b " + b.public_key.substr(2) + "\n").rfind("allow.txt:2: ", 0),
            0u);
  EXPECT_EQ(error_of(line_a + "agent-a " + b.public_key + "\n")
                .rfind("allow.txt:2: agent id 'agent-a' listed twice (first on line 1)", 0),
            0u);
  EXPECT_EQ(error_of(line_a + "agent-b " + a.public_key + "\n").rfind("allow.txt:2: public key", 0),
            0u);
  EXPECT_EQ(error_of("agent-a " + a.public_key + " extra\n").rfind("allow.txt:1: unexpected", 0),
            0u);
  EXPECT_EQ(error_of("agent\x01 " + a.public_key + "\n").rfind("allow.txt:1: agent id", 0), 0u);
}

// ---- files -----------------------------------------------------------------------------------

class KeyFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dsaga-curve-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir = tmpl;
  }
  void TearDown() override {
    for (const char* f : {"/a.key", "/a.pub", "/allow.txt"}) std::remove((dir + f).c_str());
    rmdir(dir.c_str());
  }
  std::string dir;
};

TEST_F(KeyFilesTest, SecretFileIsPrivateAndNeverOverwrittenUnlessAsked) {
  const CurveKeyPair keys = fresh_keys();
  const std::string path = dir + "/a.key";
  ASSERT_TRUE(write_text_file(path, format_key_file(keys, "", true), 0600, false));
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const Status again = write_text_file(path, "x", 0600, false);
  ASSERT_FALSE(again);
  EXPECT_NE(again.message().find("exists"), std::string::npos) << again.message();
  auto loaded = load_key_file(path, true);
  ASSERT_TRUE(loaded) << loaded.error();
  EXPECT_EQ(loaded->secret_key, keys.secret_key);  // the refused write changed nothing
  const CurveKeyPair newer = fresh_keys();
  ASSERT_TRUE(write_text_file(path, format_key_file(newer, "", true), 0600, true));
  loaded = load_key_file(path, true);
  ASSERT_TRUE(loaded) << loaded.error();
  EXPECT_EQ(loaded->secret_key, newer.secret_key);
  EXPECT_FALSE(load_key_file(dir + "/missing.key"));
}

TEST_F(KeyFilesTest, KeysLoadedFromFilesAuthenticateOverTheTransport) {
  const CurveKeyPair hub = fresh_keys(), agent = fresh_keys();
  ASSERT_TRUE(write_text_file(dir + "/a.key", format_key_file(agent, "", true), 0600, false));
  ASSERT_TRUE(write_text_file(dir + "/a.pub", format_key_file(hub, "", false), 0644, false));
  ASSERT_TRUE(
      write_text_file(dir + "/allow.txt", "field-3 " + agent.public_key + "\n", 0644, false));
  auto allow = load_allowlist(dir + "/allow.txt");
  auto agent_file = load_key_file(dir + "/a.key", true);
  auto hub_pub = load_key_file(dir + "/a.pub");
  ASSERT_TRUE(allow && agent_file && hub_pub);

  TransportContext ctx;
  TransportOptions so;
  so.curve_secret_key = hub.secret_key;
  so.curve_allowlist = *allow;
  so.linger_ms = 0;
  auto server = ServerSocket::bind(ctx, "tcp://127.0.0.1:*", so);
  ASSERT_TRUE(server) << server.error();
  TransportOptions co;
  co.curve_secret_key = agent_file->secret_key;
  co.curve_server_key = hub_pub->public_key;
  co.linger_ms = 0;
  auto client = ClientSocket::connect(ctx, (*server)->endpoint(), co);
  ASSERT_TRUE(client) << client.error();
  ASSERT_TRUE((*client)->send(bytes("hi")));
  PeerId from;
  std::vector<std::uint8_t> payload;
  std::string user_id;
  Result<bool> got = (*server)->receive(from, payload, kDeliverWaitMs, &user_id);
  ASSERT_TRUE(got && *got);
  EXPECT_EQ(user_id, "field-3");
}

}  // namespace
}  // namespace dsaga
