#include "dsaga/wire.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "dsaga/compress.hpp"
#include "dsaga_generated.h"
#include "range.hpp"

namespace dsaga::wire {
namespace {

using Bytes = std::vector<std::uint8_t>;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// ---- Exact comparison of messages (doubles bit for bit: -0.0, denormals, extremes) ----------

void expect_same_bits(const std::vector<double>& a, const std::vector<double>& b,
                      const char* field) {
  ASSERT_EQ(a.size(), b.size()) << field;
  if (!a.empty()) {
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(double))) << field;
  }
}
void expect_same_bits(double a, double b, const char* field) {
  EXPECT_EQ(0, std::memcmp(&a, &b, sizeof a)) << field << ": " << a << " vs " << b;
}

void expect_same(const msg::Join& a, const msg::Join& b) {
  EXPECT_EQ(a.agent_id, b.agent_id);
  EXPECT_EQ(a.samples, b.samples);
  EXPECT_EQ(a.features, b.features);
  EXPECT_EQ(a.classes, b.classes);
  EXPECT_EQ(a.loss, b.loss);
  expect_same_bits(a.lmax, b.lmax, "lmax");
  EXPECT_EQ(a.software_version, b.software_version);
  EXPECT_EQ(a.incarnation, b.incarnation);
  EXPECT_EQ(a.support, b.support);
}
void expect_same(const msg::Config& a, const msg::Config& b) {
  EXPECT_EQ(a.algorithm, b.algorithm);
  EXPECT_EQ(a.total_samples, b.total_samples);
  EXPECT_EQ(a.features, b.features);
  EXPECT_EQ(a.classes, b.classes);
  EXPECT_EQ(a.loss, b.loss);
  expect_same_bits(a.lambda, b.lambda, "lambda");
  expect_same_bits(a.eta, b.eta, "eta");
  EXPECT_EQ(a.steps, b.steps);
  EXPECT_EQ(a.seed, b.seed);
  EXPECT_EQ(a.build_table, b.build_table);
  EXPECT_EQ(a.prox, b.prox);
  EXPECT_EQ(a.round, b.round);
  expect_same_bits(a.w, b.w, "w");
  EXPECT_EQ(a.two_level, b.two_level);
  EXPECT_EQ(a.basis_rank, b.basis_rank);
  EXPECT_EQ(a.basis_id, b.basis_id);
  EXPECT_EQ(a.basis_identity, b.basis_identity);
  EXPECT_EQ(a.basis_dim, b.basis_dim);
  expect_same_bits(a.basis, b.basis, "basis");
  EXPECT_EQ(a.restricted, b.restricted);
  EXPECT_EQ(a.encoding, b.encoding);
  EXPECT_EQ(a.curvature, b.curvature);
}
void expect_same(const msg::InitUpload& a, const msg::InitUpload& b) {
  EXPECT_EQ(a.seq, b.seq);
  EXPECT_EQ(a.samples, b.samples);
  expect_same_bits(a.table_sum, b.table_sum, "table_sum");
  expect_same_bits(a.loss_sum, b.loss_sum, "loss_sum");
  expect_same_bits(a.eigenvalues, b.eigenvalues, "eigenvalues");
  expect_same_bits(a.eigen_next, b.eigen_next, "eigen_next");
  expect_same_bits(a.eigenvectors, b.eigenvectors, "eigenvectors");
  EXPECT_EQ(a.encoding, b.encoding);
}
void expect_same(const msg::RoundStart& a, const msg::RoundStart& b) {
  EXPECT_EQ(a.round, b.round);
  expect_same_bits(a.w, b.w, "w");
  expect_same_bits(a.gbar, b.gbar, "gbar");
  expect_same_bits(a.eval_w, b.eval_w, "eval_w");
  expect_same_bits(a.eta, b.eta, "eta");
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.gram, b.gram);
  EXPECT_EQ(a.hessian, b.hessian);
  EXPECT_EQ(a.diagonal, b.diagonal);
  expect_same_bits(a.direction, b.direction, "direction");
  EXPECT_EQ(a.base, b.base);
  EXPECT_EQ(a.from_zero, b.from_zero);
  for (const auto& [x, y] : {std::pair{&a.w_delta, &b.w_delta}, std::pair{&a.gbar_delta, &b.gbar_delta}}) {
    EXPECT_EQ(x->q, y->q);
    EXPECT_EQ(x->scales, y->scales);
    EXPECT_EQ(x->implied_runs, y->implied_runs);
    if (!x->implied_runs) {  // implied: the receiver's to derive
      EXPECT_EQ(x->runs, y->runs);
    }
  }
}
void expect_same(const msg::Update& a, const msg::Update& b) {
  EXPECT_EQ(a.round, b.round);
  EXPECT_EQ(a.seq, b.seq);
  EXPECT_EQ(a.samples, b.samples);
  EXPECT_EQ(a.steps, b.steps);
  expect_same_bits(a.loss_sum, b.loss_sum, "loss_sum");
  expect_same_bits(a.dw, b.dw, "dw");
  expect_same_bits(a.dS, b.dS, "dS");
  EXPECT_EQ(a.encoding, b.encoding);
  expect_same_bits(a.coarse_g, b.coarse_g, "coarse_g");
  expect_same_bits(a.coarse_h, b.coarse_h, "coarse_h");
  expect_same_bits(a.product, b.product, "product");
  EXPECT_EQ(a.gram, b.gram);
  EXPECT_EQ(a.hessian, b.hessian);
  EXPECT_EQ(a.diagonal, b.diagonal);
  EXPECT_EQ(a.validation.examples, b.validation.examples);
  expect_same_bits(a.validation.loss_sum, b.validation.loss_sum, "validation.loss_sum");
  EXPECT_EQ(a.validation.correct, b.validation.correct);
  EXPECT_EQ(a.validation.negatives, b.validation.negatives);
  EXPECT_EQ(a.validation.positives, b.validation.positives);
}
void expect_same(const msg::Ack& a, const msg::Ack& b) {
  EXPECT_EQ(a.round, b.round);
  EXPECT_EQ(a.seq, b.seq);
}
void expect_same(const msg::Leave& a, const msg::Leave& b) { EXPECT_EQ(a.reason, b.reason); }
void expect_same(const msg::Error& a, const msg::Error& b) {
  EXPECT_EQ(a.code, b.code);
  EXPECT_EQ(a.text, b.text);
}
void expect_same(const msg::Heartbeat& a, const msg::Heartbeat& b) { EXPECT_EQ(a.round, b.round); }

void expect_same(const msg::Message& a, const msg::Message& b) {
  ASSERT_EQ(a.index(), b.index()) << msg::name_of(a) << " vs " << msg::name_of(b);
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        expect_same(x, std::get<T>(b));
      },
      a);
}

// ---- Sample messages --------------------------------------------------------------------------

// Values chosen to catch swapped fields, truncated integers and lossy doubles.
std::vector<double> ramp(std::size_t n, double scale) {
  std::vector<double> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = scale * (double(i) - double(n) / 3.0) / 7.0;
  if (n > 4) {
    v[0] = -0.0;
    v[1] = std::numeric_limits<double>::denorm_min();
    v[2] = std::numeric_limits<double>::max();
    v[3] = std::numeric_limits<double>::lowest();
  }
  return v;
}

// One message of each type with non-default values; `n` is the vector length.
std::vector<msg::Message> samples(std::size_t n) {
  msg::Join join;
  join.agent_id =
      "edge-\xCF\x80\xCE\xBB-\xE6\x97\xA5\xE6\x9C\xAC-\xF0\x9F\x99\x82";  // πλ 日本 🙂
  join.samples = (std::uint64_t(1) << 40) + 3;
  join.features = 785;
  join.classes = 10;
  join.loss = Loss::multinomial;
  join.lmax = 3.25e7;
  join.software_version = "0.1.0-dev+g1234abc";
  join.incarnation = 0xDEADBEEFCAFEBABEull;
  join.support = {0, 3, 4, 784, 0xFFFFFFFFu};  // the wire keeps it; the hub checks it

  msg::Config config;
  config.algorithm = msg::Algorithm::scaffold;
  config.total_samples = 60000;
  config.features = 785;
  config.classes = 3;
  config.loss = Loss::squared;
  config.lambda = 1e-5;
  config.eta = 0.125;
  config.steps = 7500;
  config.seed = std::numeric_limits<std::uint64_t>::max();
  config.build_table = false;  // not the schema default: must be stored
  config.prox = 0.003;
  config.round = 42;
  config.w = ramp(n, 1.5);
  config.two_level = true;
  config.basis_rank = 7;
  config.basis_id = 0x0123456789ABCDEFull;
  config.basis_dim = 2;
  config.basis = ramp(2 * n, 0.75);
  config.restricted = true;
  config.encoding = msg::Encoding::q8;
  config.curvature = msg::Encoding::f32;

  msg::InitUpload init;
  init.seq = 3;
  init.samples = 7501;
  init.table_sum = ramp(n + 1, -2.0);
  init.loss_sum = -1.5e-300;
  init.eigenvalues = {2.5, 1.0, 1e-300};
  init.eigen_next = 5e-324;
  init.eigenvectors = ramp(3 * n, 0.125);

  msg::RoundStart start;
  start.round = 1u << 30;
  start.w = ramp(n, 0.5);
  start.gbar = ramp(n, 1e-9);
  start.eval_w = ramp(n, -0.25);  // present (async hub); msg::RoundStart{} below has it absent
  start.eta = 0.6180339887498949;
  start.kind = msg::RoundKind::gradient;  // (the Gram is asked only in gradient rounds)
  start.gram = true;
  start.direction = ramp(n, -7.5);

  msg::Update update;
  update.round = 17;
  update.seq = 18;
  update.samples = 19;
  update.steps = 20;
  update.loss_sum = 4096.25;
  update.dw = ramp(n, 3.0);
  update.dS = ramp(n, -1e200);
  update.coarse_g = ramp(4, 2.0);
  update.coarse_h = ramp(10, -3.0);
  update.product = ramp(n, 0.75);
  update.gram = {1.5f, -2.25f, 3.0e-38f};
  update.hessian = {0.5f, 7.0f, -1e-3f, 2.0f, 0.0f, 1e30f};
  update.diagonal = {0.25f, 0.0f, 1e30f, 1.5e-40f};
  update.validation.examples = 7;
  update.validation.loss_sum = 3.25;
  update.validation.correct = 5;
  update.validation.negatives.assign(kAucBins, 0);
  update.validation.positives.assign(kAucBins, 0);
  update.validation.negatives[3] = 2;
  update.validation.positives[kAucBins - 1] = 4;
  update.validation.positives[200] = 1;

  msg::Ack ack;
  ack.round = 0xFFFFFFFFFFull;
  ack.seq = 7;

  msg::Leave leave;
  leave.reason = std::string("shutting down\0after SIGTERM \xE2\x9C\x93", 31);  // embedded NUL

  msg::Error error;
  error.code = msg::ErrorCode::dimension_mismatch;
  error.text = "Update.dw has 784 values, the model has 785";

  msg::Heartbeat heartbeat;
  heartbeat.round = std::numeric_limits<std::uint64_t>::max();

  return {join, config, init, start, update, ack, leave, error, heartbeat};
}

// A RoundStart of the compressed broadcast: w's changes whole, gbar's restricted (with runs).
msg::RoundStart changes_start(std::size_t n) {
  msg::RoundStart start;
  start.round = 12;
  start.base = 11;
  start.eta = 0.125;
  const std::vector<double> v = ramp(n, 2.0);
  compress::quantize(v.data(), n, start.w_delta);
  std::vector<std::uint32_t> columns;
  for (std::uint32_t c = 0; c < n; c += 1 + c % 3) columns.push_back(c);
  compress::Q8 whole;
  compress::quantize(v.data(), n, whole);
  compress::gather(whole, columns, 1, start.gbar_delta);
  compress::gather(whole, columns, 1, start.w_delta);  // as wide as gbar's
  return start;
}

// An Update whose dw and dS an agent rounded to `encoding` (compress.hpp): it travels packed.
// Protocol 7's compact setup forms: a support as a bitmap, zero w's as lengths, a q8 table sum.
std::vector<msg::Message> compact_setup(std::size_t n) {
  msg::Join join;
  join.agent_id = "compact";
  join.software_version = "0";
  join.features = static_cast<std::uint32_t>(n);
  for (std::uint32_t j = 1; j < n; j += 2) join.support.push_back(j);
  msg::Config config;
  config.w.assign(n, 0.0);
  config.encoding = msg::Encoding::q8;
  msg::InitUpload init;
  init.seq = 1;
  init.samples = 10;
  init.encoding = msg::Encoding::q8;
  init.table_sum = ramp(n, 2.0);
  std::vector<double> residual(n, 0.0);
  compress::round_with_feedback(init.encoding, init.table_sum.data(), residual.data(), n);
  msg::RoundStart start;
  start.round = 1;
  start.w.assign(n, 0.0);
  start.gbar = ramp(n, 0.5);
  return {join, config, init, start};
}

msg::Update packed_update(msg::Encoding encoding, std::size_t n) {
  msg::Update u;
  u.round = 5;
  u.seq = 6;
  u.samples = 7;
  u.steps = 8;
  u.loss_sum = 2.5;
  u.encoding = encoding;
  u.dw = ramp(n, 3.0);
  u.dS = ramp(n, -1e-7);
  std::vector<double> residual(n, 0.0);
  compress::round_with_feedback(encoding, u.dw.data(), residual.data(), n);
  std::fill(residual.begin(), residual.end(), 0.0);
  compress::round_with_feedback(encoding, u.dS.data(), residual.data(), n);
  return u;
}

// Every type with the struct defaults (empty strings and vectors, zero scalars).
std::vector<msg::Message> defaults() {
  return {msg::Join{}, msg::Config{}, msg::InitUpload{}, msg::RoundStart{}, msg::Update{},
          msg::Ack{},  msg::Leave{},  msg::Error{},      msg::Heartbeat{}};
}

// Decodes from an exact-size heap copy, so that a read past the end is a heap overflow that
// AddressSanitizer reports, not a read of the caller's neighbouring bytes.
Result<msg::Message> decode_copy(const std::uint8_t* data, std::size_t size,
                                 const Limits& limits = {}) {
  std::unique_ptr<std::uint8_t[]> copy(new std::uint8_t[size == 0 ? 1 : size]);
  if (size != 0) std::memcpy(copy.get(), data, size);
  return decode(copy.get(), size, limits);
}
Result<msg::Message> decode_copy(const Bytes& bytes, const Limits& limits = {}) {
  return decode_copy(bytes.data(), bytes.size(), limits);
}

// Builds an envelope around `body` with the generated builder, bypassing wire::encode.
Bytes finish(flatbuffers::FlatBufferBuilder& fbb, fb::Body type, flatbuffers::Offset<void> body,
             std::uint32_t version = msg::kProtocolVersion) {
  fb::FinishEnvelopeBuffer(fbb, fb::CreateEnvelope(fbb, version, type, body));
  return Bytes(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
}

void expect_error(const Result<msg::Message>& r, const std::string& expected) {
  ASSERT_FALSE(r.is_ok()) << "expected error: " << expected;
  EXPECT_EQ(r.error(), expected);
}
void expect_error_containing(const Result<msg::Message>& r, const std::string& part) {
  ASSERT_FALSE(r.is_ok()) << "expected error containing: " << part;
  EXPECT_NE(r.error().find(part), std::string::npos) << r.error();
}

// ---- Round trips -----------------------------------------------------------------------------

TEST(WireRoundTrip, EveryTypeWithValuesIsExact) {
  for (std::size_t n : {std::size_t(0), std::size_t(1), std::size_t(785), std::size_t(7850)}) {
    for (const msg::Message& m : samples(n)) {
      SCOPED_TRACE(std::string(msg::name_of(m)) + " n=" + std::to_string(n));
      const Bytes bytes = encode(m);
      const auto decoded = decode(bytes.data(), bytes.size());
      ASSERT_TRUE(decoded.is_ok()) << decoded.error();
      expect_same(m, *decoded);
    }
  }
}

TEST(WireRoundTrip, EveryTypeWithDefaultsIsExact) {
  for (const msg::Message& m : defaults()) {
    SCOPED_TRACE(msg::name_of(m));
    const Bytes bytes = encode(m);
    const auto decoded = decode(bytes.data(), bytes.size());
    ASSERT_TRUE(decoded.is_ok()) << decoded.error();
    expect_same(m, *decoded);
  }
}

TEST(WireRoundTrip, EveryEnumValueSurvives) {
  for (Loss loss : {Loss::logistic, Loss::squared, Loss::multinomial}) {
    msg::Join j;
    j.loss = loss;
    const auto d = decode_copy(encode(j));
    ASSERT_TRUE(d.is_ok()) << d.error();
    EXPECT_EQ(std::get<msg::Join>(*d).loss, loss);
  }
  for (int a = 0; a <= 3; ++a) {
    msg::Config c;
    c.algorithm = static_cast<msg::Algorithm>(a);
    const auto d = decode_copy(encode(c));
    ASSERT_TRUE(d.is_ok()) << d.error();
    EXPECT_EQ(std::get<msg::Config>(*d).algorithm, c.algorithm);
  }
  for (int code = 0; code <= 9; ++code) {
    msg::Error e;
    e.code = static_cast<msg::ErrorCode>(code);
    const auto d = decode_copy(encode(e));
    ASSERT_TRUE(d.is_ok()) << d.error();
    EXPECT_EQ(std::get<msg::Error>(*d).code, e.code);
  }
}

TEST(WireEncode, ReusesOutputCapacityAndReplacesContent) {
  Bytes out;
  encode(samples(785)[4], out);  // a large Update
  const std::uint8_t* storage = out.data();
  const std::size_t capacity = out.capacity();
  encode(msg::Heartbeat{5}, out);
  EXPECT_EQ(out.data(), storage);
  EXPECT_EQ(out.capacity(), capacity);
  EXPECT_EQ(out, encode(msg::Heartbeat{5}));  // cleared, not appended to
  const auto d = decode(out.data(), out.size());
  ASSERT_TRUE(d.is_ok()) << d.error();
  EXPECT_EQ(std::get<msg::Heartbeat>(*d).round, 5u);
}

TEST(WireEncode, IsDeterministicAndThreadSafe) {
  const auto messages = samples(300);
  std::vector<Bytes> serial;
  for (const auto& m : messages) serial.push_back(encode(m));
  for (std::size_t i = 0; i < messages.size(); ++i) EXPECT_EQ(encode(messages[i]), serial[i]);

  std::vector<int> mismatches(2, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      Bytes out;
      for (int rep = 0; rep < 200; ++rep) {
        const std::size_t i = (rep + t) % messages.size();
        encode(messages[i], out);
        if (out != serial[i]) ++mismatches[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches[0] + mismatches[1], 0);
}

TEST(WireEncode, UpdateOfModelSize785IsPayloadPlusSmallOverhead) {
  msg::Update u;
  u.round = 1;
  u.seq = 1;
  u.samples = 7500;
  u.steps = 7500;
  u.loss_sum = 1.0;
  u.dw = ramp(785, 1.0);
  u.dS = ramp(785, 2.0);
  const std::size_t payload = 2 * 785 * sizeof(double);
  const std::size_t size = encode(u).size();
  std::cout << "[ wire     ] Update d=785: " << size << " bytes, payload " << payload
            << " bytes, overhead " << size - payload << " bytes\n";
  EXPECT_GE(size, payload);
  EXPECT_LE(size, payload + 208);  // version 4: two empty Newton vectors, two empty histograms
}

// Rounded deltas travel packed, decode to the same doubles bit for bit, and are smaller by about
// the ratio of the encodings (8 : 4 : 1 + 4/64 bytes an entry).
TEST(WireRoundTrip, PackedUpdatesAreExactAndSmaller) {
  const std::size_t n = 7850;
  const std::size_t dense = encode(packed_update(msg::Encoding::f64, n)).size();
  for (msg::Encoding e : {msg::Encoding::f32, msg::Encoding::q8}) {
    SCOPED_TRACE(compress::to_string(e));
    for (std::size_t len : {std::size_t(0), std::size_t(1), std::size_t(64), std::size_t(65), n}) {
      const msg::Update u = packed_update(e, len);
      const Bytes bytes = encode(u);
      const auto decoded = decode_copy(bytes);
      ASSERT_TRUE(decoded.is_ok()) << decoded.error();
      expect_same(msg::Message(u), *decoded);
    }
    const std::size_t size = encode(packed_update(e, n)).size();
    std::cout << "[ wire     ] Update d=" << n << " " << compress::to_string(e) << ": " << size
              << " bytes, f64 " << dense << "\n";
    EXPECT_LT(size, dense / (e == msg::Encoding::f32 ? 1.9 : 7.0));
  }
}

// The metrics' bytes by part are the encoded message's vectors, each counted once: their sum is
// the message less its fixed fields, whatever form the vectors took (doubles, floats, packed and
// coded integers), and each vector lands in its own part.
TEST(WirePartBytes, CountEveryVectorOfTheEncodedMessageOnce) {
  const std::size_t n = 3000;
  std::vector<msg::Message> messages = samples(n);
  for (msg::Encoding e : {msg::Encoding::f32, msg::Encoding::q8}) {
    msg::Update u = packed_update(e, n);
    u.coarse_g = ramp(6, 1.0);
    u.coarse_h = {1.0, 0.5, 0.25};  // floats exactly: they travel as [float]
    messages.push_back(u);
  }
  for (std::size_t k = 0; k < messages.size(); ++k) {
    const msg::Message& m = messages[k];
    SCOPED_TRACE(msg::name_of(m));
    const Bytes bytes = encode(m);
    msg::PartBytes parts, single;
    wire::add_part_bytes(bytes, 3, parts);  // to 3 recipients
    wire::add_part_bytes(bytes, 1, single);
    EXPECT_EQ(parts.setup, 3 * single.setup);
    EXPECT_EQ(parts.broadcast, 3 * single.broadcast);
    EXPECT_EQ(parts.deltas, 3 * single.deltas);
    EXPECT_EQ(parts.coarse, 3 * single.coarse);
    EXPECT_EQ(parts.newton, 3 * single.newton);
    const std::uint64_t once = single.total();
    EXPECT_LE(once, bytes.size());
    const bool vectors = std::holds_alternative<msg::Config>(m) ||
                         std::holds_alternative<msg::InitUpload>(m) ||
                         std::holds_alternative<msg::RoundStart>(m) ||
                         std::holds_alternative<msg::Update>(m);
    // The rest is the header, the tables' fields, vector lengths and padding, and an Update's
    // validation histograms (the Join's strings and support are no part's either).
    const auto* u = std::get_if<msg::Update>(&m);
    const std::size_t histograms =
        u != nullptr ? 8 * (u->validation.negatives.size() + u->validation.positives.size()) : 0;
    if (vectors) {
      EXPECT_LT(bytes.size() - histograms - once, 400u) << bytes.size() << " bytes, parts " << once;
    } else {
      EXPECT_EQ(once, 0u);
    }
    // Each kind of message in its own parts.
    if (std::holds_alternative<msg::Config>(m) || std::holds_alternative<msg::InitUpload>(m)) {
      EXPECT_EQ(single.setup, once);
    }
    if (std::holds_alternative<msg::RoundStart>(m)) {
      EXPECT_EQ(single.broadcast + single.newton, once);
      EXPECT_GT(single.broadcast, 8 * n);  // w and gbar at least
    }
    if (u != nullptr) {
      EXPECT_EQ(single.deltas + single.coarse + single.newton, once);
    }
    if (k + 2 >= messages.size()) {  // the packed Updates
      EXPECT_EQ(parts.coarse, 3u * (6 * 8 + 3 * 4));
      EXPECT_EQ(parts.deltas, 3 * (once - 6 * 8 - 3 * 4));
    }
  }
}

// The curvature payloads (Config.basis, InitUpload.eigenvectors, Update.coarse_h) travel as
// floats when their sender rounded them to floats, decode to the same doubles, in half the bytes;
// a message holding both forms is refused.
TEST(WireRoundTrip, CurvatureRoundedToFloatsTravelsAsFloats) {
  const std::size_t n = 4000;
  std::vector<double> values = ramp(n, 0.5);
  values[2] = 1e30;  // finite floats only: ramp's extremes are not floats
  values[3] = -1e30;
  compress::round_to_float(values.data(), n);
  msg::Config config;
  config.basis = values;
  msg::InitUpload init;
  init.eigenvectors = values;
  msg::Update update;
  update.coarse_h = values;
  for (const msg::Message& m : std::vector<msg::Message>{config, init, update}) {
    SCOPED_TRACE(msg::name_of(m));
    const Bytes bytes = encode(m);
    EXPECT_LT(bytes.size(), n * sizeof(float) + 400);
    const auto decoded = decode_copy(bytes);
    ASSERT_TRUE(decoded.is_ok()) << decoded.error();
    expect_same(m, *decoded);
  }
  flatbuffers::FlatBufferBuilder fbb;
  const auto d = fbb.CreateVector(std::vector<double>{1.0});
  const auto f = fbb.CreateVector(std::vector<float>{2.0f});
  const auto none = fbb.CreateVector(std::vector<double>{});
  const auto t = fb::CreateInitUpload(fbb, 1, 1, none, 0.0, none, 0.0, d, f);
  expect_error(decode_copy(finish(fbb, fb::Body::InitUpload, t.Union())),
               "InitUpload.eigenvectors and InitUpload.eigenvectors_f32 both hold values");
}

// Values the agent did not round to its encoding cannot travel packed without loss: the encoder
// sends them as f64, so the receiver still has exactly the sender's doubles.
TEST(WireEncode, UnroundedDeltasTravelAsF64) {
  for (msg::Encoding e : {msg::Encoding::f32, msg::Encoding::q8}) {
    msg::Update u;
    u.encoding = e;
    u.dw = ramp(100, 1.0 / 3.0);
    u.dS = ramp(100, 1.0);
    const auto decoded = decode_copy(encode(u));
    ASSERT_TRUE(decoded.is_ok()) << decoded.error();
    const auto& back = std::get<msg::Update>(*decoded);
    EXPECT_EQ(back.encoding, msg::Encoding::f64);
    expect_same_bits(back.dw, u.dw, "dw");
    expect_same_bits(back.dS, u.dS, "dS");
  }
}

// A packed payload that is inconsistent in any way is refused, naming the field.
// Integers as a q8 vector (a default member initialised from a byte initializer_list trips GCC
// 12's -Wmaybe-uninitialized at -O1).
std::vector<std::int8_t> bytes_of(std::initializer_list<int> values) {
  std::vector<std::int8_t> out;
  for (const int v : values) out.push_back(static_cast<std::int8_t>(v));
  return out;
}

// A Packed table as the tests below corrupt it, field by field (a valid q8 vector of 3 entries
// by default), written with the generated builder.
struct PackedForm {
  fb::Encoding encoding = fb::Encoding::q8;
  std::uint32_t count = 3;
  std::vector<float> f32;
  std::vector<std::int8_t> q8 = bytes_of({1, -127, 0});
  std::vector<float> scales = {0.5f};
  std::vector<std::uint8_t> runs;  // empty: absent
  bool f32_present = true;
  std::vector<std::uint8_t> rice;   // empty: absent
  std::vector<std::uint8_t> range;  // empty: absent
  std::vector<std::uint16_t> scales16;  // empty: absent
  std::vector<std::uint8_t> scales16_range;  // empty: absent
  bool runs_implied = false;
  std::uint32_t implied_blocks = 0;
};
flatbuffers::Offset<fb::Packed> packed_form(flatbuffers::FlatBufferBuilder& fbb,
                                            const PackedForm& f) {
  const auto f32 =
      f.f32_present ? fbb.CreateVector(f.f32) : flatbuffers::Offset<flatbuffers::Vector<float>>();
  const auto q8 = fbb.CreateVector(f.q8);
  const auto scales = fbb.CreateVector(f.scales);
  const auto runs = f.runs.empty() ? flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>>()
                                   : fbb.CreateVector(f.runs);
  const auto rice = f.rice.empty() ? flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>>()
                                   : fbb.CreateVector(f.rice);
  const auto range = f.range.empty() ? flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>>()
                                     : fbb.CreateVector(f.range);
  const auto scales16 = f.scales16.empty()
                            ? flatbuffers::Offset<flatbuffers::Vector<std::uint16_t>>()
                            : fbb.CreateVector(f.scales16);
  const auto scales16_range =
      f.scales16_range.empty() ? flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>>()
                               : fbb.CreateVector(f.scales16_range);
  return fb::CreatePacked(fbb, f.encoding, f.count, f32, q8, scales, runs, rice, range, scales16,
                          scales16_range, f.runs_implied, f.implied_blocks);
}

// The hub's broadcast as q8 changes (RoundStart.base): whole and restricted (runs) forms come
// back bit for bit, and every inconsistency is refused naming its field.
// Newton-CG's curvature uploads: a gradient round asks for the Gram or the Hessian, never both,
// and no other round asks for either; the Hessian travels as the floats sent, and a non-finite
// entry is refused.
TEST(WireDecode, CurvatureRequestsOnlyInGradientRoundsAndHessiansTravelExactly) {
  msg::RoundStart start;
  start.round = 4;
  start.w = ramp(6, 0.5);
  start.kind = msg::RoundKind::gradient;
  start.hessian = true;
  auto decoded = decode_copy(encode(start));
  ASSERT_TRUE(decoded.is_ok()) << decoded.error();
  EXPECT_TRUE(std::get<msg::RoundStart>(*decoded).hessian);
  EXPECT_FALSE(std::get<msg::RoundStart>(*decoded).gram);
  start.gram = true;
  expect_error_containing(decode_copy(encode(start)), "more than one of the Gram, the Hessian");
  start.gram = false;
  start.diagonal = true;
  expect_error_containing(decode_copy(encode(start)), "more than one of the Gram, the Hessian");
  start.hessian = false;
  decoded = decode_copy(encode(start));
  ASSERT_TRUE(decoded.is_ok()) << decoded.error();
  EXPECT_TRUE(std::get<msg::RoundStart>(*decoded).diagonal);
  EXPECT_FALSE(std::get<msg::RoundStart>(*decoded).hessian);
  for (const msg::RoundKind kind : {msg::RoundKind::run, msg::RoundKind::product}) {
    for (int asked = 0; asked < 3; ++asked) {
      start.kind = kind;
      start.gram = asked == 0;
      start.hessian = asked == 1;
      start.diagonal = asked == 2;
      expect_error_containing(decode_copy(encode(start)), "outside a Newton-CG gradient round");
    }
  }
  msg::Update u;
  u.round = 4;
  u.samples = 3;
  u.product = ramp(6, 1.0);
  u.hessian = {1.0f, -0.25f, 3.5e-8f};
  decoded = decode_copy(encode(u));
  ASSERT_TRUE(decoded.is_ok()) << decoded.error();
  EXPECT_EQ(std::get<msg::Update>(*decoded).hessian, u.hessian);
  u.hessian[1] = std::numeric_limits<float>::quiet_NaN();
  expect_error(decode_copy(encode(u)), "Update.hessian[1] is not finite");
  u.hessian.clear();
  u.diagonal = {1.0f, 0.0f, 3.5e-8f, 2.0f, 0.5f, 7.0f};
  decoded = decode_copy(encode(u));
  ASSERT_TRUE(decoded.is_ok()) << decoded.error();
  EXPECT_EQ(std::get<msg::Update>(*decoded).diagonal, u.diagonal);
  EXPECT_TRUE(std::get<msg::Update>(*decoded).hessian.empty());
  u.diagonal[2] = std::numeric_limits<float>::infinity();
  expect_error(decode_copy(encode(u)), "Update.diagonal[2] is not finite");
  u.diagonal[2] = -1e-3f;  // a curvature is never negative
  expect_error(decode_copy(encode(u)), "Update.diagonal[2] is negative");
}

TEST(WireDecode, BroadcastChangesRoundTripAndInconsistentOnesAreRefused) {
  msg::RoundStart start;
  start.round = 9;
  start.base = 8;
  start.eta = 0.25;
  const std::vector<double> v = {0.5, -3.0, 1e-3, 0.0, 7.0, 2.5, -1.0, 4.0};  // d = 4, C = 2
  compress::quantize(v.data(), 6, start.w_delta);  // 6 entries, blocks
  compress::Q8 whole;
  compress::quantize(v.data(), v.size(), whole);
  compress::gather(whole, {0, 2, 3}, 2, start.gbar_delta);  // 6 entries, runs
  ASSERT_EQ(compress::check(start.gbar_delta), "");
  ASSERT_FALSE(start.gbar_delta.runs.empty());
  const auto decoded = decode_copy(encode(start));
  ASSERT_TRUE(decoded.is_ok()) << decoded.error();
  const auto& m = std::get<msg::RoundStart>(*decoded);
  EXPECT_EQ(m.base, 8u);
  EXPECT_TRUE(m.w.empty() && m.gbar.empty());
  EXPECT_EQ(m.w_delta.q, start.w_delta.q);
  EXPECT_EQ(m.w_delta.scales, start.w_delta.scales);
  EXPECT_TRUE(m.w_delta.runs.empty());
  EXPECT_EQ(m.gbar_delta.q, start.gbar_delta.q);
  EXPECT_EQ(m.gbar_delta.scales, start.gbar_delta.scales);
  // The restricted one's runs stay home (protocol 15): the agent derives them from its support.
  EXPECT_TRUE(start.gbar_delta.implied_runs);
  EXPECT_TRUE(m.gbar_delta.implied_runs);
  EXPECT_TRUE(m.gbar_delta.runs.empty());
  std::vector<std::uint8_t> derived;
  compress::gather_runs({0, 2, 3}, 2, derived);
  EXPECT_EQ(derived, start.gbar_delta.runs);
  EXPECT_EQ(compress::check(m.gbar_delta, derived), "");
  msg::PartBytes parts;
  wire::add_part_bytes(encode(start), 1, parts);
  EXPECT_EQ(parts.broadcast, start.w_delta.bytes() + start.gbar_delta.bytes());
  EXPECT_EQ(start.gbar_delta.bytes(), 6 + 4 * start.gbar_delta.scales.size());  // no runs

  using Form = PackedForm;
  struct Case {
    std::uint64_t round = 5, base = 4;
    std::uint8_t kind = 0;
    Form w, g;
    bool w_present = true, g_present = true;
    std::vector<double> whole_w;
    bool from_zero = false;
  };
  const auto build = [](const Case& c) {
    flatbuffers::FlatBufferBuilder fbb;
    const auto pack = [&](const Form& f) { return packed_form(fbb, f); };
    const auto wp = c.w_present ? pack(c.w) : flatbuffers::Offset<fb::Packed>();
    const auto gp = c.g_present ? pack(c.g) : flatbuffers::Offset<fb::Packed>();
    const auto w = fbb.CreateVector(c.whole_w);
    const auto none = fbb.CreateVector(std::vector<double>{});
    const auto t = fb::CreateRoundStart(fbb, c.round, w, none, 0, 0.0, c.kind, false, none,
                                        c.base, wp, gp, 0, c.from_zero);
    return finish(fbb, fb::Body::RoundStart, t.Union());
  };
  {
    Case c;
    c.g.runs = {2, 1};
    c.g.scales = {0.5f, 2.0f};
    const auto ok = decode_copy(build(c));
    ASSERT_TRUE(ok.is_ok()) << ok.error();
    std::vector<double> g(3, 0.0);
    compress::add(std::get<msg::RoundStart>(*ok).gbar_delta, g.data());
    EXPECT_EQ(g, (std::vector<double>{0.5, -63.5, 0.0}));
  }
  const auto refused = [&](const std::function<void(Case&)>& change, const std::string& part) {
    Case c;
    change(c);
    expect_error_containing(decode_copy(build(c)), part);
  };
  refused([](Case& c) { c.g_present = false; }, "RoundStart.gbar_delta is missing");
  refused([](Case& c) { c.w_present = false; }, "RoundStart.w_delta is missing");
  refused([](Case& c) { c.base = 0; }, "need a base round");
  {  // The first compressed round's changes: on zeros, no base (protocol 7).
    Case c;
    c.base = 0;
    c.from_zero = true;
    const auto ok = decode_copy(build(c));
    ASSERT_TRUE(ok.is_ok()) << ok.error();
    EXPECT_TRUE(std::get<msg::RoundStart>(*ok).from_zero);
    EXPECT_EQ(std::get<msg::RoundStart>(*ok).w_delta.size(), 3u);
  }
  refused([](Case& c) { c.from_zero = true; }, "RoundStart.from_zero with base 4");
  refused([](Case& c) {
            c.base = 0;
            c.from_zero = true;
            c.g_present = false;
          }, "RoundStart.gbar_delta is missing");
  refused([](Case& c) {
            c.base = 0;
            c.from_zero = true;
            c.whole_w = {1.0};
          }, "must be empty with a base round");
  refused([](Case& c) { c.base = 5; }, "is not before its round");
  refused([](Case& c) { c.kind = 2; }, "base is set in a Newton-CG round");
  refused([](Case& c) { c.whole_w = {1.0, 2.0, 3.0}; }, "must be empty with a base round");
  refused([](Case& c) {
            c.w.encoding = fb::Encoding::f32;
            c.w.q8.clear();
            c.w.scales.clear();
          }, "RoundStart.w_delta (f32) holds 0 floats");
  refused([](Case& c) { c.g.count = 4; }, "RoundStart.gbar_delta (q8) holds 3 integers");
  refused([](Case& c) {
            c.g.count = 2;
            c.g.q8.pop_back();
          }, "RoundStart.w_delta has 3 entries and gbar_delta 2");
  refused([](Case& c) { c.g.runs = {1, 1}; }, "runs add up to 2 entries, the count is 3");
  refused([](Case& c) {
            c.g.runs = {0, 3};
            c.g.scales = {0.5f, 0.5f};
          }, "run 0 has 0 entries");
  refused([](Case& c) {
            c.g.runs = {2, 1};
          }, "RoundStart.gbar_delta (q8) holds 3 integers, 1 scales");
  refused([](Case& c) {
            c.w.count = c.g.count = 65;
            c.w.q8.assign(65, 1);
            c.g.q8.assign(65, 1);
            c.w.scales = {1.0f};
            c.w.runs = {65};
          }, "run 0 has 65 entries");
  refused([](Case& c) { c.w.q8[0] = -128; }, "RoundStart.w_delta integer 0 is -128");
  refused([](Case& c) { c.g.scales[0] = -1.0f; }, "RoundStart.gbar_delta scale 0 is negative");
  // Runs left to the agent's support (protocol 15): 2 blocks of 3 entries come through with
  // their scales and no runs; the block count must fit the count and the scales, and neither
  // runs nor Rice codes (whose blocks are the runs) may come with them.
  const auto implied = [](Case& c) {
    c.g.runs_implied = true;
    c.g.implied_blocks = 2;
    c.g.scales = {0.5f, 2.0f};
  };
  {
    Case c;
    implied(c);
    const auto ok = decode_copy(build(c));
    ASSERT_TRUE(ok.is_ok()) << ok.error();
    const compress::Q8& g = std::get<msg::RoundStart>(*ok).gbar_delta;
    EXPECT_TRUE(g.implied_runs);
    EXPECT_TRUE(g.runs.empty());
    EXPECT_EQ(g.scales, (std::vector<float>{0.5f, 2.0f}));
  }
  refused([&](Case& c) {
            implied(c);
            c.g.runs = {2, 1};
          }, "RoundStart.gbar_delta (q8) has runs_implied and also runs or q8_rice");
  refused([&](Case& c) {
            implied(c);
            c.g.implied_blocks = 4;
          }, "RoundStart.gbar_delta (q8) has implied_blocks 4 for 3 entries");
  refused([&](Case& c) {
            implied(c);
            c.g.implied_blocks = 1;
          }, "RoundStart.gbar_delta (q8) holds 3 integers, 2 scales");
  refused([](Case& c) { c.g.implied_blocks = 1; },
          "RoundStart.gbar_delta (q8) has implied_blocks without runs_implied");
}

// A Packed's integers as Rice or range codes: their bytes (0 when they travel as bytes).
std::size_t coded_bytes(const fb::Packed& p) {
  return (p.q8_rice() ? p.q8_rice()->size() : 0u) + (p.q8_range() ? p.q8_range()->size() : 0u);
}

// q8 scales travel as bfloat16 (protocol 14) where there are enough of them to pay for the
// field, else as floats; either way the deltas come back bit for bit, and the counted bytes are
// 2 a scale in the first form.
// Where their range code (protocol 15) is shorter, they travel as that instead: a floored
// vector's scales, mostly one value.
TEST(WireRoundTrip, Q8ScalesTravelInTwoBytesWhereThatPays) {
  for (const std::size_t n : {std::size_t(64 * 10), std::size_t(64 * 3)}) {
    const msg::Update u = packed_update(msg::Encoding::q8, n);
    const Bytes bytes = encode(u);
    const fb::Update* t = fb::GetEnvelope(bytes.data())->body_as_Update();
    ASSERT_NE(t->dw_packed(), nullptr);
    const bool half = n / 64 >= compress::kHalfScalesFrom;
    const auto* s16 = t->dw_packed()->scales16();
    const auto* coded = t->dw_packed()->scales16_range();
    const std::size_t coded_bytes = coded == nullptr ? 0u : coded->size();
    EXPECT_EQ(s16 == nullptr ? 0u : s16->size(), half && coded_bytes == 0 ? n / 64 : 0u) << n;
    EXPECT_LE(coded_bytes, half ? 2 * n / 64 : 0u) << n;
    EXPECT_EQ(t->dw_packed()->scales()->size(), half ? 0u : n / 64) << n;
    const auto d = decode_copy(bytes);
    ASSERT_TRUE(d.is_ok()) << d.error();
    EXPECT_EQ(std::get<msg::Update>(*d).dw, u.dw);
    EXPECT_EQ(std::get<msg::Update>(*d).dS, u.dS);
  }
}

// A vector of many blocks under the floor (compress.hpp), most of whose scales are the floor:
// its scales travel range-coded in far fewer than 2 bytes each, and the deltas come back bit for
// bit, the counted bytes being the code's.
TEST(WireRoundTrip, FlooredScalesTravelRangeCoded) {
  const std::size_t n = 64 * 200;
  msg::Update u;
  u.encoding = msg::Encoding::q8;
  u.dw.resize(n);
  u.dS.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    const double size = (i / 64) % 10 == 0 ? 1.0 : 1e-4;
    u.dw[i] = size * std::sin(0.37 * static_cast<double>(i));
    u.dS[i] = size * std::cos(0.11 * static_cast<double>(i));
  }
  std::vector<double> r(n, 0.0);
  compress::round_with_feedback(u.encoding, u.dw.data(), r.data(), n, true);
  std::fill(r.begin(), r.end(), 0.0);
  compress::round_with_feedback(u.encoding, u.dS.data(), r.data(), n, true);
  const Bytes bytes = encode(u);
  const fb::Update* t = fb::GetEnvelope(bytes.data())->body_as_Update();
  ASSERT_NE(t->dw_packed(), nullptr);
  const auto* coded = t->dw_packed()->scales16_range();
  ASSERT_NE(coded, nullptr);
  EXPECT_LT(coded->size(), n / 64);  // under a byte a scale (2 as scales16)
  EXPECT_TRUE(t->dw_packed()->scales16() == nullptr || t->dw_packed()->scales16()->size() == 0);
  const auto d = decode_copy(bytes);
  ASSERT_TRUE(d.is_ok()) << d.error();
  EXPECT_EQ(std::get<msg::Update>(*d).dw, u.dw);
  EXPECT_EQ(std::get<msg::Update>(*d).dS, u.dS);
  msg::PartBytes parts;
  wire::add_part_bytes(bytes, 1, parts);
  EXPECT_EQ(parts.deltas, coded_bytes(*t->dw_packed()) + coded_bytes(*t->ds_packed()) +
                              (t->dw_packed()->q8() ? t->dw_packed()->q8()->size() : 0u) +
                              (t->ds_packed()->q8() ? t->ds_packed()->q8()->size() : 0u) +
                              coded->size() +
                              (t->ds_packed()->scales16_range()
                                   ? t->ds_packed()->scales16_range()->size()
                                   : 2u * (n / 64)));
}

// Two-level's curvature payloads as q8 (compression q8): the basis (restricted rows, runs) and
// the eigenvectors travel packed and decode into both forms; a payload sent both ways is refused.
TEST(WireDecode, CurvatureAsQ8TravelsPackedAndBothFormsAreRefused) {
  std::vector<double> u = ramp(200, 0.5);
  compress::Q8 whole;
  compress::round_to_q8(u.data(), u.size(), &whole);
  msg::Config config;
  config.w = {0.0, 1.0};
  compress::gather_rows(whole, 100, 2, {1, 2, 50, 99}, config.basis_q8);
  const auto c = decode_copy(encode(config));
  ASSERT_TRUE(c.is_ok()) << c.error();
  const auto& got = std::get<msg::Config>(*c);
  // Restricted rows leave their runs to the agent's support (protocol 15), and their values with
  // them: the agent derives both (agent.cpp).
  EXPECT_TRUE(got.basis.empty());
  EXPECT_TRUE(got.basis_q8.implied_runs);
  EXPECT_TRUE(got.basis_q8.runs.empty());
  EXPECT_EQ(got.basis_q8.q, config.basis_q8.q);
  std::vector<std::uint8_t> derived;
  compress::gather_rows_runs(100, 2, {1, 2, 50, 99}, derived);
  EXPECT_EQ(derived, config.basis_q8.runs);
  std::vector<double> values(got.basis_q8.size(), 0.0);
  compress::add(got.basis_q8, derived, values.data());
  EXPECT_EQ(values, (std::vector<double>{u[1], u[2], u[50], u[99], u[101], u[102], u[150], u[199]}));
  msg::PartBytes config_parts;
  // 8 integers, 4 scales (as floats: too few to pay for scales16), no runs
  wire::add_part_bytes(encode(got), 1, config_parts);
  EXPECT_EQ(config_parts.setup, 16 + 8 + 4 * 4);

  msg::InitUpload init;
  init.table_sum = {1.0};
  init.eigenvectors = u;
  init.eigenvectors_q8 = whole;
  const Bytes init_bytes = encode(init);
  const auto i = decode_copy(init_bytes);
  ASSERT_TRUE(i.is_ok()) << i.error();
  EXPECT_EQ(std::get<msg::InitUpload>(*i).eigenvectors, u);
  msg::PartBytes parts;
  wire::add_part_bytes(init_bytes, 1, parts);
  // The counted bytes are the wire's: the ramp's integers go coded (shorter than 200 bytes).
  const fb::Packed* sent = fb::GetEnvelope(init_bytes.data())->body_as_InitUpload()->eigenvectors_q8();
  EXPECT_EQ(sent->q8()->size(), 0u);
  EXPECT_GT(coded_bytes(*sent), 0u);
  EXPECT_LT(coded_bytes(*sent), u.size());
  EXPECT_EQ(parts.setup, 8 + coded_bytes(*sent) + 4 * whole.scales.size());

  // Packed and as doubles at once: refused.
  flatbuffers::FlatBufferBuilder fbb;
  const auto w = fbb.CreateVector(std::vector<double>{0.0});
  const auto basis = fbb.CreateVector(std::vector<double>{1.0});
  const auto floats = fbb.CreateVector(std::vector<float>{});
  const auto q8 = fbb.CreateVector(std::vector<std::int8_t>{1});
  const auto scales = fbb.CreateVector(std::vector<float>{1.0f});
  const auto packed = fb::CreatePacked(fbb, fb::Encoding::q8, 1, floats, q8, scales);
  fb::ConfigBuilder b(fbb);
  b.add_w(w);
  b.add_basis(basis);
  b.add_basis_f32(floats);
  b.add_basis_q8(packed);
  const auto t = b.Finish();
  expect_error(decode_copy(finish(fbb, fb::Body::Config, t.Union())),
               "Config.basis_q8 travels both packed and as floats or doubles");
}

// Protocol 7's compact setup: a support over 1/32 of d as a bitmap, an all-zero w as its length,
// an InitUpload's rounded table sum packed. Each comes back bit for bit in fewer bytes; what
// is not exactly representable (-0.0, an unrounded sum, an invalid support) goes as before.
TEST(WireRoundTrip, CompactSetupIsExactAndSmaller) {
  msg::Join join;
  join.agent_id = "a";
  join.software_version = "v";
  join.features = 1001;  // not a multiple of 8: the last byte is partial
  for (std::uint32_t j = 0; j < 1001; j += 3) join.support.push_back(j);
  join.support.push_back(1000);
  Bytes bytes = encode(join);
  EXPECT_LT(bytes.size(), 126 + 200);  // 126 bytes of bitmap, not 335 x 4 of list
  auto d = decode_copy(bytes);
  ASSERT_TRUE(d.is_ok()) << d.error();
  EXPECT_EQ(std::get<msg::Join>(*d).support, join.support);
  join.support = {5, 17, 999};  // sparse: the list is the shorter
  d = decode_copy(encode(join));
  ASSERT_TRUE(d.is_ok()) << d.error();
  EXPECT_EQ(std::get<msg::Join>(*d).support, join.support);
  join.support.assign(200, 7);  // not ascending: as it is, for the hub to refuse
  d = decode_copy(encode(join));
  ASSERT_TRUE(d.is_ok()) << d.error();
  EXPECT_EQ(std::get<msg::Join>(*d).support, join.support);

  const std::size_t n = 5000;
  msg::Config config;
  config.w.assign(n, 0.0);
  msg::RoundStart start;
  start.w.assign(n, 0.0);
  start.gbar = {1.0};
  for (const msg::Message& m : std::vector<msg::Message>{config, start}) {
    SCOPED_TRACE(msg::name_of(m));
    bytes = encode(m);
    EXPECT_LT(bytes.size(), 300u);
    d = decode_copy(bytes);
    ASSERT_TRUE(d.is_ok()) << d.error();
    expect_same(m, *d);
    msg::PartBytes parts;
    wire::add_part_bytes(bytes, 1, parts);
    EXPECT_EQ(parts.total(), std::holds_alternative<msg::Config>(m) ? 0u : 8u);
  }
  config.w[17] = -0.0;  // not +0.0 bit for bit: the doubles travel
  bytes = encode(config);
  EXPECT_GT(bytes.size(), 8 * n);
  d = decode_copy(bytes);
  ASSERT_TRUE(d.is_ok()) << d.error();
  EXPECT_TRUE(std::signbit(std::get<msg::Config>(*d).w[17]));

  msg::InitUpload init;
  init.table_sum = ramp(n, 3.0);
  std::vector<double> residual(n, 0.0);
  for (msg::Encoding e : {msg::Encoding::f32, msg::Encoding::q8}) {
    SCOPED_TRACE(compress::to_string(e));
    init.encoding = e;
    std::vector<double> rounded = init.table_sum;
    compress::round_with_feedback(e, rounded.data(), residual.data(), n);
    std::swap(init.table_sum, rounded);
    bytes = encode(init);
    EXPECT_LT(bytes.size(), compress::payload_bytes(e, n) + 200);
    d = decode_copy(bytes);
    ASSERT_TRUE(d.is_ok()) << d.error();
    expect_same(msg::Message(init), *d);
    msg::PartBytes parts;
    wire::add_part_bytes(bytes, 1, parts);
    // The wire's bytes: q8's integers coded where that is shorter (the ramp's are).
    const fb::Packed* sent = fb::GetEnvelope(bytes.data())->body_as_InitUpload()->table_sum_packed();
    ASSERT_NE(sent, nullptr);
    const std::size_t integers = e == msg::Encoding::q8 ? coded_bytes(*sent) : 0;
    const std::size_t scales = compress::q8_blocks(n);
    const std::size_t coded_scales =
        sent->scales16_range() != nullptr ? sent->scales16_range()->size() : 0;
    EXPECT_EQ(parts.setup, compress::payload_bytes(e, n) - (integers > 0 ? n - integers : 0) -
                               (coded_scales > 0 ? 2 * scales - coded_scales : 0));
    std::swap(init.table_sum, rounded);
  }
  init.encoding = msg::Encoding::q8;  // but not rounded: goes as f64, and decodes as such
  d = decode_copy(encode(init));
  ASSERT_TRUE(d.is_ok()) << d.error();
  EXPECT_EQ(std::get<msg::InitUpload>(*d).encoding, msg::Encoding::f64);
  expect_same_bits(std::get<msg::InitUpload>(*d).table_sum, init.table_sum, "table_sum");
}

TEST(WireDecode, RejectsInconsistentCompactSetup) {
  const auto join = [](std::vector<std::uint32_t> list, std::vector<std::uint8_t> bits,
                       std::uint32_t features) {
    flatbuffers::FlatBufferBuilder fbb;
    const auto id = fbb.CreateString("a");
    const auto support = fbb.CreateVector(list);
    const auto b = fbb.CreateVector(bits);
    const auto t = fb::CreateJoin(fbb, id, 1, features, 1, fb::Loss::logistic, 1.0, id, 0,
                                  support, b);
    return decode_copy(finish(fbb, fb::Body::Join, t.Union()));
  };
  const auto ok = join({}, {0x81, 0x01}, 9);
  ASSERT_TRUE(ok.is_ok()) << ok.error();
  EXPECT_EQ(std::get<msg::Join>(*ok).support, (std::vector<std::uint32_t>{0, 7, 8}));
  expect_error(join({1}, {0x81, 0x01}, 9), "Join.support and Join.support_bits are both given");
  expect_error(join({}, {0x81, 0x01, 0}, 9),
               "Join.support_bits has 3 bytes, expected 2 for 9 features");
  expect_error(join({}, {0x81, 0x03}, 9), "Join.support_bits has a column at or past its 9 features");
  {  // A bitmap decodes to no more columns than a message of the limit could list.
    flatbuffers::FlatBufferBuilder fbb;
    const auto id = fbb.CreateString("a");
    const auto none = fbb.CreateVector(std::vector<std::uint32_t>{});
    const auto b = fbb.CreateVector(std::vector<std::uint8_t>(100, 0xFF));
    const auto t = fb::CreateJoin(fbb, id, 1, 800, 1, fb::Loss::logistic, 1.0, id, 0, none, b);
    const Bytes bytes = finish(fbb, fb::Body::Join, t.Union());
    Limits limits;
    limits.max_message_bytes = 4096;  // 1024 columns as a list; the bitmap holds 800
    EXPECT_TRUE(decode_copy(bytes, limits).is_ok());
    limits.max_message_bytes = 3196;
    expect_error(decode_copy(bytes, limits),
                 "Join.support_bits has 800 columns, over the limit of 799");
  }

  const auto zeros = [](fb::Body type, std::vector<double> w, std::uint32_t count,
                        std::uint64_t base = 0) {
    flatbuffers::FlatBufferBuilder fbb;
    const auto v = fbb.CreateVector(w);
    const auto none = fbb.CreateVector(std::vector<double>{});
    const auto floats = fbb.CreateVector(std::vector<float>{});
    if (type == fb::Body::Config) {
      fb::ConfigBuilder b(fbb);
      b.add_w(v);
      b.add_basis(none);
      b.add_basis_f32(floats);
      b.add_w_zeros(count);
      const auto t = b.Finish();
      return decode_copy(finish(fbb, type, t.Union()));
    }
    const auto p = base != 0 ? packed_form(fbb, PackedForm{}) : flatbuffers::Offset<fb::Packed>();
    const auto t = fb::CreateRoundStart(fbb, 5, v, none, flatbuffers::Offset<flatbuffers::Vector<double>>(),
                                        0.0, 0, false, none, base, p, p, count);
    return decode_copy(finish(fbb, type, t.Union()));
  };
  const auto c = zeros(fb::Body::Config, {}, 3);
  ASSERT_TRUE(c.is_ok()) << c.error();
  EXPECT_EQ(std::get<msg::Config>(*c).w, std::vector<double>(3, 0.0));
  expect_error(zeros(fb::Body::Config, {1.0}, 3), "Config.w has values and w_zeros = 3");
  expect_error(zeros(fb::Body::RoundStart, {0.0}, 2), "RoundStart.w has values and w_zeros = 2");
  expect_error_containing(zeros(fb::Body::Config, {}, 0xFFFFFFFFu),
                          "Config.w is 4294967295 zeros, over the limit of");
  expect_error(zeros(fb::Body::RoundStart, {}, 3, 4),
               "RoundStart.w, gbar and eval_w must be empty with a base round");

  const auto init = [](std::vector<double> sum, const PackedForm& form) {
    flatbuffers::FlatBufferBuilder fbb;
    const auto s = fbb.CreateVector(sum);
    const auto none = fbb.CreateVector(std::vector<double>{});
    const auto floats = fbb.CreateVector(std::vector<float>{});
    const auto p = packed_form(fbb, form);
    const auto t = fb::CreateInitUpload(fbb, 1, 1, s, 0.0, none, 0.0, none, floats,
                                        flatbuffers::Offset<fb::Packed>(), p);
    return decode_copy(finish(fbb, fb::Body::InitUpload, t.Union()));
  };
  const auto i = init({}, PackedForm{});
  ASSERT_TRUE(i.is_ok()) << i.error();
  EXPECT_EQ(std::get<msg::InitUpload>(*i).table_sum, (std::vector<double>{0.5, -63.5, 0.0}));
  EXPECT_EQ(std::get<msg::InitUpload>(*i).encoding, msg::Encoding::q8);
  expect_error(init({1.0}, PackedForm{}),
               "InitUpload.table_sum must be empty when it travels packed");
  PackedForm bad;
  bad.count = 4;
  expect_error_containing(init({}, bad), "InitUpload.table_sum_packed (q8) holds 3 integers");
}

TEST(WireDecode, RejectsInconsistentPackedVectors) {
  using Form = PackedForm;
  struct Case {
    Form dw, ds;
    bool dw_present = true, ds_present = true;
    std::vector<double> dense_dw;
    fb::Encoding ds_encoding_override = fb::Encoding::q8;
  };
  const auto build = [](const Case& c) {
    flatbuffers::FlatBufferBuilder fbb;
    const auto pack = [&](const Form& f) { return packed_form(fbb, f); };
    const auto dwp = c.dw_present ? pack(c.dw) : flatbuffers::Offset<fb::Packed>();
    const auto dsp = c.ds_present ? pack(c.ds) : flatbuffers::Offset<fb::Packed>();
    const auto dw = fbb.CreateVector(c.dense_dw);
    const auto none = fbb.CreateVector(std::vector<double>{});
    const auto gram = fbb.CreateVector(std::vector<float>{});
    const auto bins = fbb.CreateVector(std::vector<std::uint64_t>{});
    const auto t = fb::CreateUpdate(fbb, 1, 1, 1, 1, 0.0, dw, none, none, none, none, gram, 0, 0.0,
                                    0, bins, bins, dwp, dsp, gram);
    return finish(fbb, fb::Body::Update, t.Union());
  };
  {
    const auto ok = decode_copy(build(Case{}));
    ASSERT_TRUE(ok.is_ok()) << ok.error();
    const auto& u = std::get<msg::Update>(*ok);
    EXPECT_EQ(u.encoding, msg::Encoding::q8);
    EXPECT_EQ(u.dw, (std::vector<double>{0.5, -63.5, 0.0}));
  }
  const auto refused = [&](const std::function<void(Case&)>& change, const std::string& part) {
    Case c;
    change(c);
    expect_error_containing(decode_copy(build(c)), part);
  };
  refused([](Case& c) { c.ds_present = false; }, "Update.ds_packed is missing");
  refused([](Case& c) { c.dw_present = false; }, "Update.dw_packed is missing");
  refused([](Case& c) { c.ds.encoding = fb::Encoding::f32; }, "different encodings");
  refused([](Case& c) { c.dense_dw = {1.0}; }, "must be empty when they travel packed");
  refused([](Case& c) { c.dw.count = 4; }, "Update.dw_packed (q8) holds 3 integers");
  refused([](Case& c) { c.ds.scales = {0.5f, 0.5f}; }, "Update.ds_packed (q8) holds 3 integers, 2 scales");
  refused([](Case& c) { c.dw.q8[1] = -128; }, "Update.dw_packed integer 1 is -128");
  refused([](Case& c) { c.dw.scales[0] = -0.5f; }, "Update.dw_packed scale 0 is negative");
  refused([](Case& c) { c.dw.scales[0] = std::nanf(""); }, "Update.dw_packed[0] is not finite");
  refused([](Case& c) { c.dw.f32_present = false; }, "Update.dw_packed lacks one of");
  // Both deltas as valid f32 vectors (a field of q8 added then makes them inconsistent).
  const auto as_f32 = [](Case& c) {
    c.dw.encoding = c.ds.encoding = fb::Encoding::f32;
    c.dw.q8.clear();
    c.ds.q8.clear();
    c.dw.scales.clear();
    c.ds.scales.clear();
    c.dw.f32 = c.ds.f32 = {1.0f, 2.0f, 3.0f};
  };
  // bfloat16 scales (protocol 14): 0x3F00 is 0.5f's high half; the same vector as floats.
  {
    Case c;
    c.dw.scales.clear();
    c.dw.scales16 = {0x3F00};
    const auto ok = decode_copy(build(c));
    ASSERT_TRUE(ok.is_ok()) << ok.error();
    EXPECT_EQ(std::get<msg::Update>(*ok).dw, (std::vector<double>{0.5, -63.5, 0.0}));
  }
  refused([](Case& c) { c.dw.scales16 = {0x3F00}; }, "Update.dw_packed (q8) has both scales and scales16");
  refused([](Case& c) {
            c.dw.scales.clear();
            c.dw.scales16 = {0x3F00, 0x3F00};
          }, "Update.dw_packed (q8) holds 3 integers, 2 scales16 and 0 floats");
  refused([](Case& c) {
            c.dw.scales.clear();
            c.dw.scales16 = {0xBF00};  // -0.5
          }, "Update.dw_packed scales16 0 is 48896, not a finite bfloat16 >= 0");
  refused([](Case& c) {
            c.dw.scales.clear();
            c.dw.scales16 = {0x7F80};  // infinity (0x7FC0 and up: NaN)
          }, "Update.dw_packed scales16 0 is 32640, not a finite bfloat16 >= 0");
  refused([](Case& c) {
            c.dw.scales.clear();
            c.dw.scales16 = {0x7FC1};
          }, "Update.dw_packed scales16 0 is 32705, not a finite bfloat16 >= 0");
  refused([&](Case& c) {
            as_f32(c);
            c.dw.scales16 = {0x3F00};
          }, "Update.dw_packed (f32) has scales16");
  // Rice-coded integers (protocol 7): {1, -127, 0} with k = 6 is 27 bits in 4 bytes.
  const std::vector<std::uint8_t> rice = {0x26, 0x5c, 0x0f, 0x00};
  {
    Case c;
    c.dw.q8.clear();
    c.dw.rice = rice;
    const auto ok = decode_copy(build(c));
    ASSERT_TRUE(ok.is_ok()) << ok.error();
    EXPECT_EQ(std::get<msg::Update>(*ok).dw, (std::vector<double>{0.5, -63.5, 0.0}));
  }
  refused([&](Case& c) { c.dw.rice = rice; },
          "Update.dw_packed (q8) holds 3 integers, 1 scales and 0 floats for 3 entries (expected 0, 1, 0, with q8_rice)");
  refused([&](Case& c) {
            c.dw.q8.clear();
            c.dw.rice = {0x26, 0x5c};
          }, "Update.dw_packed q8_rice ends inside integer 1");
  refused([&](Case& c) {
            c.dw.q8.clear();
            c.dw.rice = rice;
            c.dw.rice.push_back(0);
          }, "Update.dw_packed q8_rice has 13 bits past its integers");
  refused([&](Case& c) {
            as_f32(c);
            c.dw.rice = rice;
          }, "Update.dw_packed (f32) has q8_rice or q8_range");
  // Range-coded integers (protocol 8): the same {1, -127, 0}, as range.hpp codes them, and the
  // codes cut short, lengthened and with a first byte other than 0.
  std::vector<std::uint8_t> range;
  const std::vector<std::int8_t> ints = {1, -127, 0};
  range::encode(ints.data(), ints.size(), range);
  std::vector<std::uint8_t> cut = range, longer = range, first = range;
  cut.pop_back();
  longer.push_back(0);
  first[0] = 1;
  const auto range_coded = [](Case& c, const std::vector<std::uint8_t>& bytes) {
    c.dw.q8.clear();
    c.dw.range = bytes;
  };
  {
    Case c;
    range_coded(c, range);
    const auto ok = decode_copy(build(c));
    ASSERT_TRUE(ok.is_ok()) << ok.error();
    EXPECT_EQ(std::get<msg::Update>(*ok).dw, (std::vector<double>{0.5, -63.5, 0.0}));
  }
  refused([&](Case& c) { c.dw.range = range; }, "(expected 0, 1, 0, with q8_range)");
  refused([&](Case& c) {
            range_coded(c, range);
            c.dw.rice = rice;
          }, "Update.dw_packed (q8) has both q8_rice and q8_range");
  refused([&](Case& c) { range_coded(c, cut); }, "Update.dw_packed q8_range ends inside integer");
  refused([&](Case& c) { range_coded(c, longer); },
          "Update.dw_packed q8_range has 1 bytes past its integers");
  refused([&](Case& c) { range_coded(c, first); },
          "Update.dw_packed q8_range does not start with a zero byte");
  // Range-coded bfloat16 scales (protocol 15): 0.5f is 0x3F00, exponent byte 126 (-1 after
  // the 127 taken off) and mantissa 0; the code cut short, with a negative mantissa, and beside
  // either other form of the scales. (No code gives a negative scale, an infinity or a NaN: the
  // exponent byte is at most 127 + 127.)
  const auto scales_code = [](std::vector<std::int8_t> parts) {
    std::vector<std::uint8_t> out;
    range::encode(parts.data(), parts.size(), out);
    return out;
  };
  const auto scales_coded = [](Case& c, const std::vector<std::uint8_t>& bytes) {
    c.dw.scales.clear();
    c.dw.scales16_range = bytes;
  };
  {
    Case c;
    scales_coded(c, scales_code({-1, 0}));
    const auto ok = decode_copy(build(c));
    ASSERT_TRUE(ok.is_ok()) << ok.error();
    EXPECT_EQ(std::get<msg::Update>(*ok).dw, (std::vector<double>{0.5, -63.5, 0.0}));
  }
  {
    std::vector<std::uint8_t> cut_scales = scales_code({-1, 0});
    cut_scales.pop_back();
    refused([&](Case& c) { scales_coded(c, cut_scales); },
            "Update.dw_packed scales16_range ends inside integer");
  }
  refused([&](Case& c) { scales_coded(c, scales_code({-1, -5})); },
          "Update.dw_packed scales16_range scale 0 has mantissa -5, outside 0..127");
  refused([&](Case& c) { c.dw.scales16_range = scales_code({-1, 0}); },
          "Update.dw_packed (q8) has scales16_range and also scales or scales16");
  refused([&](Case& c) {
            scales_coded(c, scales_code({-1, 0}));
            c.dw.scales16 = {0x3F00};
          }, "Update.dw_packed (q8) has scales16_range and also scales or scales16");
  refused([&](Case& c) {
            as_f32(c);
            c.dw.scales16_range = scales_code({-1, 0});
          }, "Update.dw_packed (f32) has scales16_range");
  // Runs left to the receiver (protocol 15) only in a broadcast change or a basis.
  refused([](Case& c) { c.dw.runs_implied = true; c.dw.implied_blocks = 1; },
          "Update.dw_packed has runs_implied (only a broadcast change or basis may)");
  refused([](Case& c) {
            c.dw.encoding = c.ds.encoding = fb::Encoding::f64;
          }, "Update.dw_packed has encoding 0");
  refused([](Case& c) {
            c.dw.encoding = c.ds.encoding = static_cast<fb::Encoding>(7);
          }, "Update.dw_packed has encoding 7");
  refused([](Case& c) {
            for (Form* f : {&c.dw, &c.ds}) {
              f->encoding = fb::Encoding::f32;
              f->f32 = {1.0f, std::numeric_limits<float>::infinity(), 0.0f};
              f->q8.clear();
              f->scales.clear();
            }
          }, "Update.dw_packed[1] is not finite");
  refused([](Case& c) { c.dw.count = 0xFFFFFFFFu; }, "entries, over the limit");
}

// ---- Alignment -------------------------------------------------------------------------------

TEST(WireDecode, MisalignedBuffersDecodeToTheSameValues) {
  for (const msg::Message& m : samples(97)) {
    const Bytes bytes = encode(m);
    // 8-aligned storage with room for the largest shift.
    std::vector<std::uint64_t> storage(bytes.size() / 8 + 2);
    for (std::size_t shift = 1; shift <= 7; ++shift) {
      SCOPED_TRACE(std::string(msg::name_of(m)) + " shift=" + std::to_string(shift));
      auto* p = reinterpret_cast<std::uint8_t*>(storage.data()) + shift;
      ASSERT_NE(reinterpret_cast<std::uintptr_t>(p) % 8, 0u);
      std::memcpy(p, bytes.data(), bytes.size());
      const auto decoded = decode(p, bytes.size());
      ASSERT_TRUE(decoded.is_ok()) << decoded.error();
      expect_same(m, *decoded);
    }
  }
}

// ---- Rejections: framing ---------------------------------------------------------------------

TEST(WireDecode, RejectsEmptyAndShortBuffers) {
  expect_error(decode(nullptr, 0), "empty message");
  const std::uint8_t byte = 0;
  expect_error(decode(&byte, 0), "empty message");
  expect_error(decode(nullptr, 16), "null message buffer");
  const Bytes valid = encode(msg::Heartbeat{1});
  for (std::size_t n = 1; n < 8; ++n) {
    expect_error(decode_copy(valid.data(), n),
                 "message of " + std::to_string(n) + " bytes is shorter than the 8-byte header");
  }
}

TEST(WireDecode, RejectsEveryTruncation) {
  std::vector<msg::Message> messages = samples(9);
  for (const auto& m : defaults()) messages.push_back(m);
  for (const msg::Message& m : messages) {
    const Bytes bytes = encode(m);
    for (std::size_t len = 0; len < bytes.size(); ++len) {
      const auto r = decode_copy(bytes.data(), len);
      EXPECT_FALSE(r.is_ok()) << msg::name_of(m) << " cut to " << len << " of " << bytes.size()
                              << " bytes decoded";
    }
  }
}

TEST(WireDecode, RejectsTrailingPartialWords) {
  // Strings end in up to 3 padding bytes the verifier never reads; the size check is what
  // rejects a frame cut or extended by a partial word.
  for (const msg::Message& m : samples(3)) {
    Bytes bytes = encode(m);
    ASSERT_EQ(bytes.size() % 4, 0u);
    for (int extra = 1; extra <= 3; ++extra) {
      bytes.push_back(0);
      expect_error_containing(decode_copy(bytes), "not a whole number of 4-byte words");
    }
  }
}

TEST(WireDecode, RejectsWrongIdentifier) {
  Bytes bytes = encode(samples(5)[4]);
  std::memcpy(bytes.data() + 4, "DSGB", 4);
  expect_error(decode_copy(bytes), "bad file identifier \"DSGB\", expected \"DSGA\"");
  const std::uint8_t binary[4] = {0x00, 0xFF, '"', 'A'};
  std::memcpy(bytes.data() + 4, binary, 4);
  expect_error(decode_copy(bytes), "bad file identifier \"\\x00\\xff\\x22A\", expected \"DSGA\"");
}

TEST(WireDecode, RejectsOtherProtocolVersions) {
  // 1: a peer from before two-level dSAGA, 2: from before restricted vectors, 3: from before
  // Newton-CG rounds and the validation counts, 4: from before packed deltas, 5: from before the
  // compressed broadcast, 6: from before the compact setup, 7: from before range-coded integers,
  // 8: from before the Hessian upload, 9: before its diagonal, 10: before the Hessian upload's
  // class-pair blocks, 11: before the coarse Hessians', 12: from before the two-level local run
  // anchored at the counted table, 13: before bfloat16 scales, 14: before their range code;
  // each is refused with a clear reason.
  for (std::uint32_t version :
       {0u, 1u, 2u, 3u, 4u, 5u, 6u, 7u, 8u, 9u, 10u, 11u, 12u, 13u, 14u, 16u, 0xFFFFFFFFu}) {
    flatbuffers::FlatBufferBuilder fbb;
    const Bytes bytes =
        finish(fbb, fb::Body::Heartbeat, fb::CreateHeartbeat(fbb, 3).Union(), version);
    expect_error(decode_copy(bytes), "protocol version " + std::to_string(version) +
                                         ", this build speaks " +
                                         std::to_string(msg::kProtocolVersion));
  }
  flatbuffers::FlatBufferBuilder fbb;  // and the current one through the same path is accepted
  const Bytes ok = finish(fbb, fb::Body::Heartbeat, fb::CreateHeartbeat(fbb, 3).Union());
  const auto d = decode_copy(ok);
  ASSERT_TRUE(d.is_ok()) << d.error();
  EXPECT_EQ(std::get<msg::Heartbeat>(*d).round, 3u);
}

TEST(WireDecode, RejectsUnknownMessageTypeAndMissingBody) {
  {
    flatbuffers::FlatBufferBuilder fbb;
    const Bytes bytes = finish(fbb, static_cast<fb::Body>(42), fb::CreateHeartbeat(fbb, 3).Union());
    expect_error(decode_copy(bytes), "unknown message type 42");
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    const Bytes bytes = finish(fbb, static_cast<fb::Body>(10), fb::CreateHeartbeat(fbb, 3).Union());
    expect_error(decode_copy(bytes), "unknown message type 10");
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    expect_error(decode_copy(finish(fbb, fb::Body::NONE, 0)), "message has no body");
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    expect_error(decode_copy(finish(fbb, fb::Body::Update, 0)), "message has no body");
  }
}

TEST(WireDecode, RejectsMessagesOverTheSizeLimit) {
  const Bytes bytes = encode(samples(100)[4]);
  Limits limits;
  limits.max_message_bytes = bytes.size() - 1;
  expect_error(decode_copy(bytes, limits), "message of " + std::to_string(bytes.size()) +
                                               " bytes is over the limit of " +
                                               std::to_string(bytes.size() - 1) + " bytes");
  limits.max_message_bytes = bytes.size();
  EXPECT_TRUE(decode_copy(bytes, limits).is_ok());
  // A limit beyond what FlatBuffers can address is clamped, not passed to the verifier.
  limits.max_message_bytes = std::numeric_limits<std::size_t>::max();
  EXPECT_TRUE(decode_copy(bytes, limits).is_ok());
}

// ---- Rejections: content ---------------------------------------------------------------------

TEST(WireDecode, RejectsMissingRequiredFields) {
  {
    flatbuffers::FlatBufferBuilder fbb;
    const auto version = fbb.CreateString("1");
    const auto join =
        fb::CreateJoin(fbb, /*agent_id=*/0, 1, 2, 1, fb::Loss::logistic, 0.5, version);
    expect_error(decode_copy(finish(fbb, fb::Body::Join, join.Union())),
                 "Join.agent_id is missing");
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    const auto id = fbb.CreateString("a");
    const auto join = fb::CreateJoin(fbb, id);
    expect_error(decode_copy(finish(fbb, fb::Body::Join, join.Union())),
                 "Join.software_version is missing");
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    const auto dw = fbb.CreateVector(std::vector<double>{1.0, 2.0});
    const auto update = fb::CreateUpdate(fbb, 1, 1, 1, 1, 0.0, dw, /*ds=*/0);
    expect_error(decode_copy(finish(fbb, fb::Body::Update, update.Union())),
                 "Update.dS is missing");
  }
  const std::pair<fb::Body, const char*> absent_fields[] = {
      {fb::Body::Config, "Config.w is missing"},
      {fb::Body::InitUpload, "InitUpload.table_sum is missing"},
      {fb::Body::RoundStart, "RoundStart.w is missing"},
      {fb::Body::Update, "Update.dw is missing"},
      {fb::Body::Leave, "Leave.reason is missing"},
      {fb::Body::Error, "Error.text is missing"},
  };
  for (const auto& [type, expected] : absent_fields) {
    flatbuffers::FlatBufferBuilder fbb;
    flatbuffers::Offset<void> body;
    switch (type) {
      case fb::Body::Config:
        body = fb::CreateConfig(fbb).Union();
        break;
      case fb::Body::InitUpload:
        body = fb::CreateInitUpload(fbb).Union();
        break;
      case fb::Body::RoundStart:
        body = fb::CreateRoundStart(fbb).Union();
        break;
      case fb::Body::Update:
        body = fb::CreateUpdate(fbb).Union();
        break;
      case fb::Body::Leave:
        body = fb::CreateLeave(fbb).Union();
        break;
      case fb::Body::Error:
        body = fb::CreateError(fbb).Union();
        break;
      default:
        FAIL();
    }
    expect_error(decode_copy(finish(fbb, type, body)), expected);
  }
}

TEST(WireDecode, RejectsEnumValuesOutOfRange) {
  {
    msg::Join j;
    j.agent_id = "a";
    j.loss = static_cast<Loss>(3);
    expect_error(decode_copy(encode(j)), "Join.loss has unknown value 3");
  }
  {
    msg::Config c;
    c.loss = static_cast<Loss>(200);
    expect_error(decode_copy(encode(c)), "Config.loss has unknown value 200");
    c.loss = Loss::logistic;
    c.algorithm = static_cast<msg::Algorithm>(4);
    expect_error(decode_copy(encode(c)), "Config.algorithm has unknown value 4");
    c.algorithm = msg::Algorithm::dsaga;
    c.encoding = static_cast<msg::Encoding>(3);
    expect_error(decode_copy(encode(c)), "Config.encoding has unknown value 3");
  }
  {
    msg::Error e;
    e.code = static_cast<msg::ErrorCode>(11);
    expect_error(decode_copy(encode(e)), "Error.code has unknown value 11");
    e.code = static_cast<msg::ErrorCode>(65535);
    expect_error(decode_copy(encode(e)), "Error.code has unknown value 65535");
  }
}

TEST(WireDecode, RejectsStringsOverTheLimit) {
  Limits limits;
  limits.max_string_bytes = 10;
  msg::Join j;
  j.agent_id = std::string(10, 'x');
  EXPECT_TRUE(decode_copy(encode(j), limits).is_ok());  // at the limit is fine
  j.agent_id = std::string(11, 'x');
  expect_error(decode_copy(encode(j), limits), "Join.agent_id is 11 bytes, over the limit of 10");
  j.agent_id = "a";
  j.software_version = std::string(4000, 'v');
  expect_error(decode_copy(encode(j), limits),
               "Join.software_version is 4000 bytes, over the limit of 10");
  expect_error(decode_copy(encode(msg::Leave{std::string(12, 'r')}), limits),
               "Leave.reason is 12 bytes, over the limit of 10");
  expect_error(decode_copy(encode(msg::Error{msg::ErrorCode::internal, std::string(4097, 't')})),
               "Error.text is 4097 bytes, over the limit of 4096");  // default limit
}

// Builds a message whose vector field `name` holds `v` (the other vectors finite).
struct VectorField {
  const char* name;
  msg::Message (*make)(std::vector<double> v);
};

const VectorField kVectorFields[] = {
    {"Config.w",
     [](std::vector<double> v) -> msg::Message {
       msg::Config m;
       m.w = std::move(v);
       return m;
     }},
    {"InitUpload.table_sum",
     [](std::vector<double> v) -> msg::Message {
       msg::InitUpload m;
       m.table_sum = std::move(v);
       return m;
     }},
    {"RoundStart.w",
     [](std::vector<double> v) -> msg::Message {
       msg::RoundStart m;
       m.w = std::move(v);
       m.gbar = ramp(20, 1.0);
       return m;
     }},
    {"RoundStart.gbar",
     [](std::vector<double> v) -> msg::Message {
       msg::RoundStart m;
       m.w = ramp(20, 1.0);
       m.gbar = std::move(v);
       return m;
     }},
    {"RoundStart.eval_w",
     [](std::vector<double> v) -> msg::Message {
       msg::RoundStart m;
       m.w = ramp(20, 1.0);
       m.gbar = ramp(20, 1.0);
       m.eval_w = std::move(v);
       return m;
     }},
    {"Update.dw",
     [](std::vector<double> v) -> msg::Message {
       msg::Update m;
       m.dw = std::move(v);
       m.dS = ramp(20, 1.0);
       return m;
     }},
    {"Update.dS",
     [](std::vector<double> v) -> msg::Message {
       msg::Update m;
       m.dw = ramp(20, 1.0);
       m.dS = std::move(v);
       return m;
     }},
};

TEST(WireDecode, RejectsNonFiniteValuesInEveryVectorField) {
  for (const VectorField& field : kVectorFields) {
    EXPECT_TRUE(decode_copy(encode(field.make(ramp(20, 1.0)))).is_ok()) << field.name;
    for (double bad : {kNaN, -kNaN, kInf, -kInf}) {
      for (std::size_t index : {std::size_t(0), std::size_t(12), std::size_t(19)}) {
        std::vector<double> v = ramp(20, 1.0);
        v[index] = bad;
        expect_error(decode_copy(encode(field.make(v))),
                     std::string(field.name) + "[" + std::to_string(index) + "] is not finite");
      }
    }
  }
}

TEST(WireDecode, RejectsNonFiniteScalars) {
  for (double bad : {kNaN, kInf, -kInf}) {
    msg::Join j;
    j.lmax = bad;
    expect_error(decode_copy(encode(j)), "Join.lmax is not finite");
    msg::Config c;
    c.lambda = bad;
    expect_error(decode_copy(encode(c)), "Config.lambda is not finite");
    c.lambda = 0.0;
    c.eta = bad;
    expect_error(decode_copy(encode(c)), "Config.eta is not finite");
    msg::InitUpload i;
    i.loss_sum = bad;
    expect_error(decode_copy(encode(i)), "InitUpload.loss_sum is not finite");
    msg::Update u;
    u.loss_sum = bad;
    expect_error(decode_copy(encode(u)), "Update.loss_sum is not finite");
  }
}

// Version 4's validation counts: inconsistent counts are refused by name, consistent ones pass.
TEST(WireDecode, RejectsInconsistentValidationCounts) {
  const auto with = [](auto change) {
    msg::Update u;
    u.validation.examples = 4;
    u.validation.loss_sum = 1.5;
    u.validation.correct = 3;
    u.validation.negatives.assign(kAucBins, 0);
    u.validation.positives.assign(kAucBins, 0);
    u.validation.negatives[0] = 1;
    u.validation.positives[kAucBins - 1] = 3;
    change(u.validation);
    return encode(u);
  };
  EXPECT_TRUE(decode_copy(with([](ValidationCounts&) {})).is_ok());
  // No histograms (multinomial, squared) and no counts at all are fine too.
  EXPECT_TRUE(decode_copy(with([](ValidationCounts& v) {
                v.negatives.clear();
                v.positives.clear();
              })).is_ok());
  EXPECT_TRUE(decode_copy(encode(msg::Update{})).is_ok());
  expect_error(decode_copy(with([](ValidationCounts& v) { v.correct = 5; })),
               "Update.validation: correct 5 > examples 4");
  for (double bad : {kNaN, kInf, -kInf})
    expect_error(decode_copy(with([&](ValidationCounts& v) { v.loss_sum = bad; })),
                 "Update.validation: loss_sum is not finite");
  expect_error_containing(decode_copy(with([](ValidationCounts& v) { v.loss_sum = -0.5; })),
               "Update.validation: loss_sum -0.5");
  expect_error_containing(decode_copy(with([](ValidationCounts& v) { v.positives[7] = 1; })),
               "the score histograms hold more rows than examples 4");
  expect_error_containing(decode_copy(with([](ValidationCounts& v) { v.positives[kAucBins - 1] = 2; })),
               "the score histograms hold 3 rows, examples 4");
  expect_error_containing(decode_copy(with([](ValidationCounts& v) { v.positives[7] = ~std::uint64_t(0); })),
               "the score histograms hold more rows than examples 4");
  expect_error_containing(decode_copy(with([](ValidationCounts& v) { v.negatives.pop_back(); })),
               "score histograms of 255 and 256 bins");
  expect_error_containing(decode_copy(with([](ValidationCounts& v) { v.positives.clear(); })),
               "score histograms of 256 and 0 bins");
  expect_error_containing(decode_copy(with([](ValidationCounts& v) {
                 v.examples = 0;
                 v.correct = 0;
                 v.negatives.clear();
                 v.positives.clear();
               })),
               "examples 0 with a loss_sum");
  // A hostile length is refused by its size (a vector of 2^20 bins is not read element-wise).
  expect_error_containing(decode_copy(with([](ValidationCounts& v) { v.negatives.assign(1 << 20, 0); })),
               "bins, expected 256 each or none");
}

TEST(WireDecode, RejectsDoubleVectorsMisalignedWithinTheBuffer) {
  // Found by fuzzing: an Update whose dw offset puts the doubles at 4 mod 8 from the (aligned)
  // buffer start. The FlatBuffers verifier accepts it (it checks only the length prefix's
  // alignment); reading it would be a misaligned double load, a SIGBUS on armhf. (Byte 28 is the
  // envelope's protocol version, set to the current one below.)
  Bytes bytes = {0x14, 0x00, 0x00, 0x00, 0x44, 0x53, 0x47, 0x41, 0x00, 0x00, 0x0a, 0x00,
                       0x12, 0x00, 0x08, 0x00, 0x07, 0x00, 0x0c, 0x00, 0x0a, 0x00, 0x00, 0x00,
                       0x00, 0x00, 0x00, 0x05, 0x06, 0x00, 0x00, 0x00, 0x18, 0x00, 0x00, 0x00,
                       0x00, 0x00, 0x12, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                       0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x08, 0x00, 0x12, 0x00, 0x00, 0x00,
                       0x0c, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                       0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  static_assert(msg::kProtocolVersion < 256);
  bytes[28] = static_cast<std::uint8_t>(msg::kProtocolVersion);
  expect_error(decode_copy(bytes), "Update.dw is not 8-byte aligned (corrupt offset)");
  // The same bytes at every misalignment of the caller's buffer: same verdict.
  std::vector<std::uint64_t> storage(bytes.size() / 8 + 2);
  for (std::size_t shift = 1; shift <= 7; ++shift) {
    auto* p = reinterpret_cast<std::uint8_t*>(storage.data()) + shift;
    std::memcpy(p, bytes.data(), bytes.size());
    expect_error(decode(p, bytes.size()), "Update.dw is not 8-byte aligned (corrupt offset)");
  }
}

// ---- Hostile bytes ---------------------------------------------------------------------------

// Every input either fails cleanly or is a message that itself round-trips exactly.
void expect_clean(const Result<msg::Message>& r, std::size_t* accepted) {
  if (!r.is_ok()) {
    EXPECT_FALSE(r.error().empty());
    return;
  }
  ++*accepted;
  const Bytes again = encode(*r);
  const auto second = decode_copy(again);
  ASSERT_TRUE(second.is_ok()) << second.error();
  expect_same(*r, *second);
}

TEST(WireDecode, RandomByteFlipsNeverCrash) {
  std::mt19937_64 rng(20240611);
  std::size_t accepted = 0, total = 0;
  const auto messages = samples(6);
  for (const msg::Message& m : messages) {
    const Bytes valid = encode(m);
    for (int trial = 0; trial < 600; ++trial) {
      Bytes bytes = valid;
      const int flips = 1 + int(rng() % 4);
      for (int f = 0; f < flips; ++f) {
        const std::size_t at = rng() % bytes.size();
        bytes[at] ^= std::uint8_t(1 + rng() % 255);  // never a no-op
      }
      expect_clean(decode_copy(bytes), &accepted);
      ++total;
    }
  }
  // Flips in payload bytes (doubles, integers) keep the message valid; flips in offsets and the
  // identifier do not. Both outcomes must occur, or the mutations are not exercising decode.
  EXPECT_GT(accepted, 0u);
  EXPECT_LT(accepted, total);
}

TEST(WireDecode, RandomBytesBehindAValidHeaderNeverCrash) {
  std::mt19937_64 rng(7);
  std::size_t accepted = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    Bytes bytes(8 + 4 * (rng() % 64));
    for (auto& b : bytes) b = std::uint8_t(rng());
    // A small root offset, so that the verifier gets past the header.
    const std::uint32_t root = 8 + 4 * std::uint32_t(rng() % 8);
    std::memcpy(bytes.data(), &root, 4);  // little-endian hosts (every dsaga target)
    std::memcpy(bytes.data() + 4, "DSGA", 4);
    expect_clean(decode_copy(bytes), &accepted);
  }
}

// ---- Fuzz seed corpus ------------------------------------------------------------------------

// Writes one valid message of each type (small and default variants) to the directory named by
// DSAGA_WIRE_CORPUS_DIR, as seeds for a fuzzer of decode(). Skipped when the variable is unset.
//   DSAGA_WIRE_CORPUS_DIR=tests/fuzz/corpus/wire build/tests/dsaga_wire_test
//     --gtest_filter=WireCorpus.*   (one command line)
// The committed fuzz seeds (tests/fuzz/corpus/wire) are what the encoder writes today: a schema
// change that forgets to regenerate them fails here. DSAGA_WIRE_CORPUS_DIR=dir rewrites them.
TEST(WireCorpus, CommittedSeedsMatchTheEncoder) {
  const char* rewrite = std::getenv("DSAGA_WIRE_CORPUS_DIR");
  const std::string dir =
      rewrite ? std::string(rewrite) : std::string(DSAGA_TEST_DATA_DIR) + "/../fuzz/corpus/wire";
  auto check = [&](const std::vector<msg::Message>& messages, const char* variant) {
    for (const auto& m : messages) {
      const std::string path = dir + "/" + msg::name_of(m) + "-" + variant + ".bin";
      const Bytes bytes = encode(m);
      if (rewrite) {
        std::ofstream out(path, std::ios::binary);
        out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
        ASSERT_TRUE(out.good()) << path;
        continue;
      }
      std::ifstream in(path, std::ios::binary);
      ASSERT_TRUE(in.good()) << path << " is missing";
      const Bytes committed((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      EXPECT_EQ(committed, bytes) << path << " is stale: regenerate with DSAGA_WIRE_CORPUS_DIR";
      EXPECT_TRUE(decode(committed.data(), committed.size()).is_ok()) << path;
    }
  };
  check(samples(8), "small");
  check(defaults(), "default");
  check({packed_update(msg::Encoding::f32, 8)}, "f32");
  check({packed_update(msg::Encoding::q8, 70)}, "q8");
  check({changes_start(150)}, "changes");
  msg::RoundStart first = changes_start(90);
  first.base = 0;
  first.from_zero = true;
  check({first}, "from-zero");
  check(compact_setup(70), "compact");
}

// ---- Decoding into reused storage (decode_into, Decoder) -------------------------------------

// decode_into over every pair (previous kind, decoded kind): the result equals decode()'s, so
// no field of the previous message survives (the previous ones carry longer vectors and strings
// than the decoded ones, and different scalars).
TEST(WireDecodeInto, EqualsDecodeWhateverTheMessageHeldBefore) {
  const std::vector<msg::Message> big = samples(40), small = samples(7), empty = defaults();
  for (const auto* decoded : {&small, &empty}) {
    for (const msg::Message& m : *decoded) {
      const Bytes bytes = encode(m);
      for (const msg::Message& before : big) {
        SCOPED_TRACE(std::string(msg::name_of(before)) + " -> " + msg::name_of(m));
        msg::Message target = before;
        const Status status = decode_into(bytes.data(), bytes.size(), target);
        ASSERT_TRUE(status) << status.message();
        expect_same(target, m);
      }
    }
  }
}

// Same kind and a size that fits: the vectors are assigned in place (same storage).
TEST(WireDecodeInto, ReusesTheVectorsOfTheSameKindOfMessage) {
  const Bytes first = encode(samples(64)[3]);  // RoundStart, 64 entries
  const Bytes second = encode(samples(50)[3]);
  msg::Message target;
  ASSERT_TRUE(decode_into(first.data(), first.size(), target));
  const double* w = std::get<msg::RoundStart>(target).w.data();
  const double* gbar = std::get<msg::RoundStart>(target).gbar.data();
  ASSERT_TRUE(decode_into(second.data(), second.size(), target));
  const auto& start = std::get<msg::RoundStart>(target);
  EXPECT_EQ(start.w.data(), w);
  EXPECT_EQ(start.gbar.data(), gbar);
  expect_same(target, samples(50)[3]);
}

// A rejected message leaves the target as it was, and the error is decode()'s.
TEST(WireDecodeInto, LeavesTheTargetUnchangedOnError) {
  const msg::Message kept = samples(9)[4];  // Update
  msg::Update bad = std::get<msg::Update>(samples(9)[4]);
  bad.dS[5] = std::numeric_limits<double>::quiet_NaN();
  const Bytes bytes = encode(msg::Message(bad));
  Bytes truncated = encode(samples(9)[3]);
  truncated.resize(truncated.size() - 8);
  const Bytes* inputs[] = {&bytes, &truncated};
  for (const Bytes* b : inputs) {
    msg::Message target = kept;
    const Status status = decode_into(b->data(), b->size(), target);
    ASSERT_FALSE(status);
    EXPECT_EQ(status.message(), decode(b->data(), b->size()).error());
    expect_same(target, kept);
  }
}

// The Decoder keeps one message per kind: a RoundStart's vectors survive the Acks and
// Heartbeats decoded between rounds; message() is the last accepted message, also after an
// error.
TEST(WireDecoder, KeepsOneMessagePerKindAcrossInterleavedTypes) {
  Decoder decoder;
  EXPECT_TRUE(std::holds_alternative<msg::Join>(decoder.message()));
  const Bytes start1 = encode(samples(64)[3]);
  const Bytes start2 = encode(samples(64)[3]);
  const Bytes ack = encode(msg::Message(msg::Ack{4, 5}));
  const Bytes beat = encode(msg::Message(msg::Heartbeat{4}));
  ASSERT_TRUE(decoder.decode(start1.data(), start1.size()));
  const double* w = std::get<msg::RoundStart>(decoder.message()).w.data();
  ASSERT_TRUE(decoder.decode(ack.data(), ack.size()));
  expect_same(decoder.message(), msg::Message(msg::Ack{4, 5}));
  const Bytes garbage(16, 0xAB);
  EXPECT_FALSE(decoder.decode(garbage.data(), garbage.size()));
  expect_same(decoder.message(), msg::Message(msg::Ack{4, 5}));  // unchanged by the error
  ASSERT_TRUE(decoder.decode(beat.data(), beat.size()));
  ASSERT_TRUE(decoder.decode(start2.data(), start2.size()));
  EXPECT_EQ(std::get<msg::RoundStart>(decoder.message()).w.data(), w);
  expect_same(decoder.message(), samples(64)[3]);
  for (const msg::Message& m : samples(11)) {
    const Bytes bytes = encode(m);
    ASSERT_TRUE(decoder.decode(bytes.data(), bytes.size())) << msg::name_of(m);
    expect_same(decoder.message(), m);
  }
}

}  // namespace
}  // namespace dsaga::wire
