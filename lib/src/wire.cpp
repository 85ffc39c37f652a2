// msg::Message <-> FlatBuffers bytes. The schema (lib/schema/dsaga.fbs) is the single source of
// truth of the wire; this file is the only code that includes its generated header.
//
// decode() is written for hostile input: every check runs before the value it guards is read,
// nothing it allocates exceeds a fixed multiple of the input (an aligned copy of the input, plus
// the decoded vectors and strings, which the verifier has proven to lie inside the input: aliased
// fields may each copy the same bytes, so the bound is one copy per vector field of the message
// type, an Update's dozen the most, of an input under Limits' message size), and the FlatBuffers
// verifier bounds the work by the input size and the depth/table limits below.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include "dsaga/wire.hpp"
#include "dsaga_generated.h"
#include "range.hpp"
#include "rice.hpp"

namespace dsaga::wire {

namespace {

// The shortest wire form of a q8 vector's integers: the bytes themselves, Rice codes (rice.hpp)
// or the range code (range.hpp). `coded` points at a buffer kept per thread, valid until the
// next call on the thread.
struct IntegerForm {
  enum Kind { plain, rice_coded, range_coded };
  Kind kind = plain;
  std::size_t size = 0;
  const std::vector<std::uint8_t>* coded = nullptr;

  // `rice`: whether Rice codes may be used (their blocks are the runs, which must travel).
  static IntegerForm shortest(const std::int8_t* q, std::size_t n,
                              const std::vector<std::uint8_t>& runs, bool rice = true) {
    thread_local std::vector<std::uint8_t> by_rice, by_range;
    if (n == 0) return IntegerForm{plain, 0, nullptr};
    const rice::Blocks blocks{n, runs.data(), runs.size()};
    const std::size_t rice_bytes = rice ? rice::bytes(q, blocks) : SIZE_MAX;
    range::encode(q, n, by_range);
    if (by_range.size() < std::min(n, rice_bytes))
      return IntegerForm{range_coded, by_range.size(), &by_range};
    if (rice_bytes < n) {
      rice::encode(q, blocks, by_rice);
      return IntegerForm{rice_coded, by_rice.size(), &by_rice};
    }
    return IntegerForm{plain, n, nullptr};
  }
};

// ---- Enum correspondence -------------------------------------------------------------------
// The C++ enums and the schema enums must agree value by value: conversion is a cast.

static_assert(static_cast<int>(Loss::logistic) == static_cast<int>(fb::Loss::logistic));
static_assert(static_cast<int>(Loss::squared) == static_cast<int>(fb::Loss::squared));
static_assert(static_cast<int>(Loss::multinomial) == static_cast<int>(fb::Loss::multinomial));
static_assert(fb::Loss::MAX == fb::Loss::multinomial, "schema Loss has a value C++ lacks");

static_assert(static_cast<int>(msg::Algorithm::dsaga) == static_cast<int>(fb::Algorithm::dsaga));
static_assert(static_cast<int>(msg::Algorithm::fedavg) == static_cast<int>(fb::Algorithm::fedavg));
static_assert(static_cast<int>(msg::Algorithm::scaffold) ==
              static_cast<int>(fb::Algorithm::scaffold));
static_assert(static_cast<int>(msg::Algorithm::gd) == static_cast<int>(fb::Algorithm::gd));
static_assert(fb::Algorithm::MAX == fb::Algorithm::gd, "schema Algorithm has a value C++ lacks");

template <class A, class B>
constexpr bool same_value(A a, B b) {
  return static_cast<int>(a) == static_cast<int>(b);
}
static_assert(same_value(msg::ErrorCode::none, fb::ErrorCode::none));
static_assert(same_value(msg::ErrorCode::malformed, fb::ErrorCode::malformed));
static_assert(same_value(msg::ErrorCode::unsupported_version, fb::ErrorCode::unsupported_version));
static_assert(same_value(msg::ErrorCode::dimension_mismatch, fb::ErrorCode::dimension_mismatch));
static_assert(same_value(msg::ErrorCode::not_admitted, fb::ErrorCode::not_admitted));
static_assert(same_value(msg::ErrorCode::wrong_round, fb::ErrorCode::wrong_round));
static_assert(same_value(msg::ErrorCode::replay, fb::ErrorCode::replay));
static_assert(same_value(msg::ErrorCode::invalid_value, fb::ErrorCode::invalid_value));
static_assert(same_value(msg::ErrorCode::refused, fb::ErrorCode::refused));
static_assert(same_value(msg::ErrorCode::internal, fb::ErrorCode::internal));
static_assert(same_value(msg::ErrorCode::stale_broadcast, fb::ErrorCode::stale_broadcast));
static_assert(fb::ErrorCode::MAX == fb::ErrorCode::stale_broadcast,
              "schema ErrorCode has a value C++ lacks");

fb::Loss to_fb(Loss v) { return static_cast<fb::Loss>(static_cast<std::uint8_t>(v)); }
fb::Algorithm to_fb(msg::Algorithm v) { return static_cast<fb::Algorithm>(v); }
fb::ErrorCode to_fb(msg::ErrorCode v) { return static_cast<fb::ErrorCode>(v); }
fb::Encoding to_fb(msg::Encoding v) { return static_cast<fb::Encoding>(v); }
// Only called after check_enum() accepted the value.
Loss from_fb(fb::Loss v) { return static_cast<Loss>(static_cast<int>(v)); }
msg::Algorithm from_fb(fb::Algorithm v) { return static_cast<msg::Algorithm>(v); }
msg::ErrorCode from_fb(fb::ErrorCode v) { return static_cast<msg::ErrorCode>(v); }
msg::Encoding from_fb(fb::Encoding v) { return static_cast<msg::Encoding>(v); }

// ---- Encoding ------------------------------------------------------------------------------

// Every entry +0.0 (bit for bit), and a length a uint32 holds: what may travel as its length.
bool all_zero_bits(const std::vector<double>& v) {
  if (v.empty() || v.size() > std::numeric_limits<std::uint32_t>::max()) return false;
  for (const double x : v) {
    std::uint64_t bits;
    std::memcpy(&bits, &x, sizeof bits);
    if (bits != 0) return false;
  }
  return true;
}

// A support (strictly ascending columns below d) as a bitmap of d bits, when that is fewer
// bytes than the list (over 1/32 of d). false, with `bits` untouched, otherwise.
bool support_bitmap(const std::vector<std::uint32_t>& support, std::uint32_t d,
                    std::vector<std::uint8_t>& bits) {
  const std::size_t bytes = (static_cast<std::size_t>(d) + 7) / 8;
  if (support.empty() || bytes >= 4 * support.size()) return false;
  for (std::size_t i = 0; i < support.size(); ++i)
    if (support[i] >= d || (i > 0 && support[i] <= support[i - 1])) return false;
  bits.assign(bytes, 0);
  for (const std::uint32_t j : support) bits[j / 8] |= static_cast<std::uint8_t>(1u << (j % 8));
  return true;
}

// A builder that grew past this is released after use instead of being kept for the thread's
// lifetime (an edge device should not pin the memory of one unusually large message).
constexpr std::size_t kKeepBuilderBytes = std::size_t(16) << 20;

flatbuffers::FlatBufferBuilder& thread_builder() {
  thread_local flatbuffers::FlatBufferBuilder builder(4096);
  return builder;
}

// Vectors and strings are always written, even when empty: version 1 makes them required.
struct BodyEncoder {
  flatbuffers::FlatBufferBuilder& fbb;

  flatbuffers::Offset<flatbuffers::Vector<double>> doubles(const std::vector<double>& v) {
    return fbb.CreateVector(v.data(), v.size());
  }

  // A state vector that is all +0.0 (a model before its first step) travels as its length
  // (`w_zeros`): the doubles are then empty. Lossless: -0.0 and anything else go as doubles.
  struct MaybeZeros {
    flatbuffers::Offset<flatbuffers::Vector<double>> values;
    std::uint32_t zeros = 0;
  };
  MaybeZeros doubles_or_zeros(const std::vector<double>& v) {
    static const std::vector<double> none;
    if (all_zero_bits(v)) return {doubles(none), static_cast<std::uint32_t>(v.size())};
    return {doubles(v), 0};
  }

  // A curvature vector (basis, eigenvectors, coarse_h) as {[double], [float]}: the floats when
  // every value is exactly a float (its sender rounded it, Config::encoding), else the doubles;
  // the other one empty. Lossless either way.
  using Either = std::pair<flatbuffers::Offset<flatbuffers::Vector<double>>,
                           flatbuffers::Offset<flatbuffers::Vector<float>>>;
  Either doubles_or_floats(const std::vector<double>& v) {
    static const std::vector<double> none_d;
    if (v.empty() || !compress::fits_f32(v.data(), v.size()))
      return {doubles(v), fbb.CreateVector(static_cast<const float*>(nullptr), 0)};
    thread_local std::vector<float> floats;
    floats.assign(v.begin(), v.end());
    const auto f = fbb.CreateVector(floats.data(), floats.size());
    return {doubles(none_d), f};
  }

  std::pair<fb::Body, flatbuffers::Offset<void>> operator()(const msg::Join& m) {
    const auto agent_id = fbb.CreateString(m.agent_id);
    const auto software_version = fbb.CreateString(m.software_version);
    // The support as a bitmap of d bits when that is the shorter (it is valid: strictly
    // ascending and below d; anything else travels as it is, for the hub to refuse).
    thread_local std::vector<std::uint8_t> bits;
    const bool as_bits = support_bitmap(m.support, m.features, bits);
    const auto support = fbb.CreateVector(m.support.data(), as_bits ? 0 : m.support.size());
    const auto support_bits = as_bits ? fbb.CreateVector(bits.data(), bits.size())
                                      : flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>>();
    const auto t = fb::CreateJoin(fbb, agent_id, m.samples, m.features, m.classes, to_fb(m.loss),
                                  m.lmax, software_version, m.incarnation, support, support_bits,
                                  m.zero_padded, m.bias);
    return {fb::Body::Join, t.Union()};
  }
  std::pair<fb::Body, flatbuffers::Offset<void>> operator()(const msg::Config& m) {
    const auto w = doubles_or_zeros(m.w);
    static const std::vector<double> none;
    const bool q8_basis = !m.basis_q8.empty();  // then it is what travels
    const auto [basis, basis_f32] = doubles_or_floats(q8_basis ? none : m.basis);
    const auto basis_q8 = q8_basis ? q8(m.basis_q8) : flatbuffers::Offset<fb::Packed>();
    const auto t = fb::CreateConfig(fbb, to_fb(m.algorithm), m.total_samples, m.features, m.classes,
                                    to_fb(m.loss), m.lambda, m.eta, m.steps, m.seed, m.build_table,
                                    m.round, w.values, m.prox, m.refresh, m.two_level,
                                    m.basis_rank, m.basis_id, m.basis_identity, m.basis_dim, basis,
                                    m.restricted, to_fb(m.encoding), basis_f32, basis_q8, w.zeros,
                                    to_fb(m.curvature));
    return {fb::Body::Config, t.Union()};
  }
  std::pair<fb::Body, flatbuffers::Offset<void>> operator()(const msg::InitUpload& m) {
    // Like an Update's dS: packed when the agent rounded it to its encoding, else doubles.
    const bool pack = fill(m.encoding, m.table_sum, scratch(0));
    static const std::vector<double> no_sum;
    const auto table_sum = doubles(pack ? no_sum : m.table_sum);
    const auto table_sum_packed = pack ? packed(m.encoding, m.table_sum.size(), scratch(0))
                                       : flatbuffers::Offset<fb::Packed>();
    const auto values = doubles(m.eigenvalues);
    static const std::vector<double> none;
    const bool q8_vectors = !m.eigenvectors_q8.empty();
    const auto [vectors, vectors_f32] = doubles_or_floats(q8_vectors ? none : m.eigenvectors);
    const auto vectors_q8 =
        q8_vectors ? q8(m.eigenvectors_q8) : flatbuffers::Offset<fb::Packed>();
    const auto t = fb::CreateInitUpload(fbb, m.seq, m.samples, table_sum, m.loss_sum, values,
                                        m.eigen_next, vectors, vectors_f32, vectors_q8,
                                        table_sum_packed);
    return {fb::Body::InitUpload, t.Union()};
  }
  std::pair<fb::Body, flatbuffers::Offset<void>> operator()(const msg::RoundStart& m) {
    const auto w = doubles_or_zeros(m.w);
    const auto gbar = doubles(m.gbar);
    // Absent unless the hub asks for the loss elsewhere than at w (asynchronous aggregation).
    const auto eval_w =
        m.eval_w.empty() ? flatbuffers::Offset<flatbuffers::Vector<double>>() : doubles(m.eval_w);
    const auto direction = doubles(m.direction);
    // Changes on the broadcast of round `base` (hub.hpp): q8 as the hub quantized them.
    const bool changes = m.base != 0 || m.from_zero;
    const auto w_delta = changes ? q8(m.w_delta) : flatbuffers::Offset<fb::Packed>();
    const auto gbar_delta = changes ? q8(m.gbar_delta) : flatbuffers::Offset<fb::Packed>();
    const auto t = fb::CreateRoundStart(fbb, m.round, w.values, gbar, eval_w, m.eta,
                                        static_cast<std::uint8_t>(m.kind), m.gram, direction,
                                        m.base, w_delta, gbar_delta, w.zeros, m.from_zero,
                                        m.hessian, m.diagonal);
    return {fb::Body::RoundStart, t.Union()};
  }
  // A q8 vector's integers in their shortest form (IntegerForm): one of the three is not empty.
  using Bytes8 = flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>>;
  struct Integers {
    flatbuffers::Offset<flatbuffers::Vector<std::int8_t>> q;
    Bytes8 rice, range;
  };
  Integers integers(const std::int8_t* q, std::size_t n, const std::vector<std::uint8_t>& runs,
                    bool rice = true) {
    const IntegerForm form = IntegerForm::shortest(q, n, runs, rice);
    const auto coded = [&](IntegerForm::Kind kind) {
      return form.kind == kind ? fbb.CreateVector(form.coded->data(), form.coded->size())
                               : Bytes8();
    };
    Integers out;
    out.q = fbb.CreateVector(q, form.kind == IntegerForm::plain ? n : 0);
    out.rice = coded(IntegerForm::rice_coded);
    out.range = coded(IntegerForm::range_coded);
    return out;
  }

  // A q8 vector's scales: as bfloat16 in scales16 where every one is (as compress rounds
  // them) and there are enough of them to pay for the field (its offset, length and padding,
  // about 12 bytes), else as floats in scales. The other is written empty / left out.
  // The bfloat16 scales go range-coded in scales16_range where that is shorter (the schema).
  struct Scales {
    flatbuffers::Offset<flatbuffers::Vector<float>> f32;
    flatbuffers::Offset<flatbuffers::Vector<std::uint16_t>> bf16;
    Bytes8 bf16_range;
  };
  Scales scales(const float* s, std::size_t n) {
    thread_local std::vector<std::uint16_t> high_;  // capacity kept, like Scratch
    thread_local std::vector<std::int8_t> parts_;
    thread_local std::vector<std::uint8_t> coded_;
    Scales out;
    bool all = true;
    for (std::size_t i = 0; i < n && all; ++i) all = compress::is_bf16(s[i]);
    if (all && n >= compress::kHalfScalesFrom) {
      high_.resize(n);
      for (std::size_t i = 0; i < n; ++i) {
        std::uint32_t bits = 0;
        std::memcpy(&bits, &s[i], sizeof bits);
        high_[i] = static_cast<std::uint16_t>(bits >> 16);
      }
      out.f32 = fbb.CreateVector(static_cast<const float*>(nullptr), 0);
      // Every scale is >= 0 and finite: exponent bytes 0..254, so less 127 they fit -127..127.
      parts_.resize(2 * n);
      for (std::size_t i = 0; i < n; ++i) {
        parts_[i] = static_cast<std::int8_t>(static_cast<int>(high_[i] >> 7) - 127);
        parts_[n + i] = static_cast<std::int8_t>(high_[i] & 0x7Fu);
      }
      range::encode(parts_.data(), 2 * n, coded_);
      if (coded_.size() < 2 * n) {
        out.bf16 = fbb.CreateVector(static_cast<const std::uint16_t*>(nullptr), 0);
        out.bf16_range = fbb.CreateVector(coded_.data(), coded_.size());
      } else {
        out.bf16 = fbb.CreateVector(high_.data(), n);
      }
    } else {
      out.f32 = fbb.CreateVector(s, n);
    }
    return out;
  }

  flatbuffers::Offset<fb::Packed> q8(const compress::Q8& x) {
    const auto values = fbb.CreateVector(static_cast<const float*>(nullptr), 0);
    // Implied runs (compress.hpp: the receiver derives them from its support) stay home.
    const Integers q = integers(x.q.data(), x.q.size(), x.runs, !x.implied_runs);
    const Scales scales = this->scales(x.scales.data(), x.scales.size());
    const auto runs = x.runs.empty() || x.implied_runs
                          ? Bytes8()
                          : fbb.CreateVector(x.runs.data(), x.runs.size());
    return fb::CreatePacked(fbb, fb::Encoding::q8, static_cast<std::uint32_t>(x.q.size()), values,
                            q.q, scales.f32, runs, q.rice, q.range, scales.bf16,
                            scales.bf16_range, x.implied_runs,
                            x.implied_runs ? static_cast<std::uint32_t>(x.scales.size()) : 0u);
  }
  // A packed vector's wire form, kept per thread (dw and dS each their own): the capacity is
  // kept, so the steady state of an agent's Updates allocates nothing.
  struct Scratch {
    std::vector<float> f32;
    std::vector<float> scales;
    std::vector<std::int8_t> q8;
  };
  static Scratch& scratch(int which) {
    thread_local Scratch s[2];
    return s[which];
  }

  // Fills the scratch with `v` in `encoding`; false when v is not exactly representable in it.
  static bool fill(msg::Encoding encoding, const std::vector<double>& v, Scratch& s) {
    const std::size_t n = v.size();
    switch (encoding) {
      case msg::Encoding::f64: return false;
      case msg::Encoding::f32:
        if (!compress::fits_f32(v.data(), n)) return false;
        s.f32.resize(n);
        for (std::size_t i = 0; i < n; ++i) s.f32[i] = static_cast<float>(v[i]);
        return true;
      case msg::Encoding::q8:
        s.scales.resize(compress::q8_blocks(n));
        s.q8.resize(n);
        return compress::to_q8(v.data(), n, s.scales.data(), s.q8.data());
    }
    return false;
  }

  // The filled scratch `s` of n entries as a Packed table.
  flatbuffers::Offset<fb::Packed> packed(msg::Encoding encoding, std::size_t n, const Scratch& s) {
    static const std::vector<std::uint8_t> no_runs;
    const bool f32 = encoding == msg::Encoding::f32;
    const auto values = fbb.CreateVector(s.f32.data(), f32 ? n : 0);
    const Integers q = integers(s.q8.data(), f32 ? 0 : n, no_runs);
    const Scales scales = this->scales(s.scales.data(), f32 ? 0 : compress::q8_blocks(n));
    return fb::CreatePacked(fbb, to_fb(encoding), static_cast<std::uint32_t>(n), values, q.q,
                            scales.f32, Bytes8(), q.rice, q.range, scales.bf16,
                            scales.bf16_range);
  }

  std::pair<fb::Body, flatbuffers::Offset<void>> operator()(const msg::Update& m) {
    // dw and dS are exactly representable in the Update's encoding (the agent rounded them so,
    // compress.hpp); if one is not, both travel as f64, so the receiver still decodes exactly
    // them. Each is converted once.
    const bool pack = fill(m.encoding, m.dw, scratch(0)) && fill(m.encoding, m.dS, scratch(1));
    static const std::vector<double> none;
    const auto dw = doubles(pack ? none : m.dw);
    const auto ds = doubles(pack ? none : m.dS);
    const auto dw_packed =
        pack ? packed(m.encoding, m.dw.size(), scratch(0)) : flatbuffers::Offset<fb::Packed>();
    const auto ds_packed =
        pack ? packed(m.encoding, m.dS.size(), scratch(1)) : flatbuffers::Offset<fb::Packed>();
    const auto coarse_g = doubles(m.coarse_g);
    const auto [coarse_h, coarse_h_f32] = doubles_or_floats(m.coarse_h);
    const auto product = doubles(m.product);
    const auto gram = fbb.CreateVector(m.gram.data(), m.gram.size());
    // Absent unless the round asked for it: an Update costs no byte more for the field.
    const auto hessian = m.hessian.empty()
                             ? flatbuffers::Offset<flatbuffers::Vector<float>>()
                             : fbb.CreateVector(m.hessian.data(), m.hessian.size());
    const auto diagonal = m.diagonal.empty()
                              ? flatbuffers::Offset<flatbuffers::Vector<float>>()
                              : fbb.CreateVector(m.diagonal.data(), m.diagonal.size());
    const ValidationCounts& v = m.validation;
    const auto negatives = fbb.CreateVector(v.negatives.data(), v.negatives.size());
    const auto positives = fbb.CreateVector(v.positives.data(), v.positives.size());
    const auto t = fb::CreateUpdate(fbb, m.round, m.seq, m.samples, m.steps, m.loss_sum, dw, ds,
                                    coarse_g, coarse_h, product, gram, v.examples, v.loss_sum,
                                    v.correct, negatives, positives, dw_packed, ds_packed,
                                    coarse_h_f32, hessian, diagonal);
    return {fb::Body::Update, t.Union()};
  }
  std::pair<fb::Body, flatbuffers::Offset<void>> operator()(const msg::Ack& m) {
    return {fb::Body::Ack, fb::CreateAck(fbb, m.round, m.seq).Union()};
  }
  std::pair<fb::Body, flatbuffers::Offset<void>> operator()(const msg::Leave& m) {
    const auto reason = fbb.CreateString(m.reason);
    return {fb::Body::Leave, fb::CreateLeave(fbb, reason).Union()};
  }
  std::pair<fb::Body, flatbuffers::Offset<void>> operator()(const msg::Error& m) {
    const auto text = fbb.CreateString(m.text);
    return {fb::Body::Error, fb::CreateError(fbb, to_fb(m.code), text).Union()};
  }
  std::pair<fb::Body, flatbuffers::Offset<void>> operator()(const msg::Heartbeat& m) {
    return {fb::Body::Heartbeat, fb::CreateHeartbeat(fbb, m.round).Union()};
  }
};

// ---- Decoding checks -----------------------------------------------------------------------
// Each check is null-safe and returns ok for an absent field: presence is checked first, by
// required(). Field names in messages are those of the C++ structs ("Update.dS").

// The FlatBuffers header: a 4-byte root offset and the 4-byte file identifier.
constexpr std::size_t kHeaderBytes =
    sizeof(flatbuffers::uoffset_t) + flatbuffers::kFileIdentifierLength;

// Depth of version 1 is 2 tables (Envelope, body) and 3 tables in all would already be a newer
// schema; the slack lets fields appended later (nested tables) still verify.
constexpr flatbuffers::uoffset_t kMaxDepth = 16;
constexpr flatbuffers::uoffset_t kMaxTables = 64;

// Doubles and 64-bit integers are the widest scalars in the schema; the builder aligns them to
// 8 bytes relative to the buffer start, so an 8-aligned start makes every load aligned.
constexpr std::size_t kAlignment = 8;

// Runs the checks of one message in the order they are called and keeps the first failure.
// Once a check has failed the later ones do nothing, so a check may rely on the earlier ones
// (finite() reads only vectors that required() and aligned() accepted). Field names in the
// messages are those of the C++ structs ("Update.dS").
class Checks {
 public:
  explicit Checks(const Limits& limits) : limits_(limits) {}

  const Status& status() const { return status_; }

  Checks& required(const void* field, const char* name) {
    if (ok() && field == nullptr) fail(std::string(name) + " is missing");
    return *this;
  }

  // The FlatBuffers 2.0.8 verifier checks a vector's 4-byte length prefix for alignment but not
  // its elements: a corrupt offset can place a [double] at 4 mod 8, and reading it is undefined
  // behaviour (a SIGBUS on armhf). The buffer start is 8-aligned here, so the address tells.
  // An empty vector has no element to load, and the builder does not align it.
  template <class T>  // double, float or std::uint64_t
  Checks& aligned(const flatbuffers::Vector<T>* v, const char* name) {
    if (ok() && v != nullptr && v->size() != 0 &&
        reinterpret_cast<std::uintptr_t>(v->data()) % alignof(T) != 0) {
      fail(std::string(name) + " is not " + std::to_string(alignof(T)) +
           "-byte aligned (corrupt offset)");
    }
    return *this;
  }

  // The generated EnumName*() returns "" for a value the schema does not declare.
  template <class E>
  Checks& known(E value, const char* (*name_of)(E), const char* name) {
    if (ok() && *name_of(value) == '\0') {
      fail(std::string(name) + " has unknown value " +
           std::to_string(static_cast<long long>(value)));
    }
    return *this;
  }

  Checks& length(const flatbuffers::String* s, const char* name) {
    if (ok() && s != nullptr && s->size() > limits_.max_string_bytes) {
      fail(std::string(name) + " is " + std::to_string(s->size()) + " bytes, over the limit of " +
           std::to_string(limits_.max_string_bytes));
    }
    return *this;
  }

  // A curvature vector sent as [double] or as [float] (doubles_or_floats): not both.
  Checks& one_of(const flatbuffers::Vector<double>* d, const flatbuffers::Vector<float>* f,
                 const char* name) {
    if (ok() && d != nullptr && f != nullptr && d->size() != 0 && f->size() != 0)
      fail(std::string(name) + " and " + name + "_f32 both hold values");
    return *this;
  }

  Checks& finite(double x, const char* name) {
    if (ok() && !std::isfinite(x)) fail(std::string(name) + " is not finite");
    return *this;
  }

  template <class T>
  Checks& finite(const flatbuffers::Vector<T>* v, const char* name) {
    if (!ok() || v == nullptr) return *this;
    const flatbuffers::uoffset_t n = v->size();
    for (flatbuffers::uoffset_t i = 0; i < n; ++i) {
      if (!std::isfinite(v->Get(i))) {
        fail(std::string(name) + "[" + std::to_string(i) + "] is not finite");
        break;
      }
    }
    return *this;
  }
  // Finite and >= 0 (a curvature), checked after finite().
  Checks& nonnegative(const flatbuffers::Vector<float>* v, const char* name) {
    if (!ok() || v == nullptr) return *this;
    const flatbuffers::uoffset_t n = v->size();
    for (flatbuffers::uoffset_t i = 0; i < n; ++i) {
      if (!(v->Get(i) >= 0.0f)) {
        fail(std::string(name) + "[" + std::to_string(i) + "] is negative");
        break;
      }
    }
    return *this;
  }

 private:
  bool ok() const { return status_.is_ok(); }
  void fail(std::string message) { status_ = Status::error(std::move(message)); }

  const Limits& limits_;
  Status status_;
};

// ---- Conversion into a reused message ------------------------------------------------------
// decode_into() writes into the caller's message: when it already holds the alternative being
// decoded, its strings and vectors are assigned in place and keep their capacity, so decoding a
// steady stream of same-sized messages (RoundStart every round) allocates nothing. Every field of
// the target is assigned, so nothing of the previous message survives.

// The message's `T` alternative: the one it holds (storage kept), or a fresh one.
template <class T>
T& slot(msg::Message& out) {
  if (T* held = std::get_if<T>(&out)) return *held;
  return out.emplace<T>();
}

// Only called on verified, present fields.
void assign(const flatbuffers::String& s, std::string& out) { out.assign(s.data(), s.size()); }

template <class T>
void assign(const flatbuffers::Vector<T>& v, std::vector<T>& out) {
  if (v.size() == 0) {  // data() of an empty vector may be misaligned: do not use it
    out.clear();
    return;
  }
#if FLATBUFFERS_LITTLEENDIAN
  // The storage is aligned (see kAlignment) and in host order: one memmove.
  out.assign(v.data(), v.data() + v.size());
#else
  out.assign(v.begin(), v.end());
#endif
}

// A vector that travels as [double] or as [float] (one_of() checked that one is empty).
void assign_either(const flatbuffers::Vector<double>& d, const flatbuffers::Vector<float>& f,
                   std::vector<double>& out) {
  if (f.size() == 0) return assign(d, out);
  out.resize(f.size());
  for (flatbuffers::uoffset_t i = 0; i < f.size(); ++i) out[i] = static_cast<double>(f.Get(i));
}

// ---- Per-message conversion ----------------------------------------------------------------
// Checks in the order of wire.hpp: required fields (and vector alignment), enums, string
// lengths, finiteness. Nothing reads a field before the checks that guard it, and `out` is not
// touched before every check has passed (a rejected message leaves it as it was).

// A support sent as a bitmap (Join.support_bits): ceil(d / 8) bytes, no bit at or past d, and
// then no list; and no more columns than a message of max_message_bytes could list (a bitmap
// is 32 times denser: a hostile one would otherwise decode to 32 times the message).
Status check_support_bits(const fb::Join& t, const Limits& limits) {
  const auto* bits = t.support_bits();
  if (bits == nullptr || bits->size() == 0) return Status::ok();
  if (t.support()->size() != 0)
    return Status::error("Join.support and Join.support_bits are both given");
  const std::size_t d = t.features();
  const std::size_t bytes = (d + 7) / 8;
  if (bits->size() != bytes)
    return Status::error("Join.support_bits has " + std::to_string(bits->size()) +
                         " bytes, expected " + std::to_string(bytes) + " for " +
                         std::to_string(d) + " features");
  if (d % 8 != 0 && (bits->Get(static_cast<flatbuffers::uoffset_t>(bytes - 1)) >> (d % 8)) != 0)
    return Status::error("Join.support_bits has a column at or past its " + std::to_string(d) +
                         " features");
  std::size_t columns = 0;
  for (flatbuffers::uoffset_t i = 0; i < bits->size(); ++i)
    columns += static_cast<std::size_t>(__builtin_popcount(bits->Get(i)));
  const std::size_t most = limits.max_message_bytes / sizeof(std::uint32_t);
  if (columns > most)
    return Status::error("Join.support_bits has " + std::to_string(columns) +
                         " columns, over the limit of " + std::to_string(most));
  return Status::ok();
}

// Only after check_support_bits() passed: the bitmap's columns, ascending.
void assign_support(const fb::Join& t, std::vector<std::uint32_t>& out) {
  const auto* bits = t.support_bits();
  if (bits == nullptr || bits->size() == 0) {
    out.assign(t.support()->begin(), t.support()->end());
    return;
  }
  out.clear();
  for (flatbuffers::uoffset_t i = 0; i < bits->size(); ++i)
    for (unsigned b = 0, byte = bits->Get(i); byte != 0; ++b, byte >>= 1)
      if (byte & 1u) out.push_back(static_cast<std::uint32_t>(8 * i + b));
}

// A state vector that may travel as its length (w_zeros > 0): the doubles are then empty, and
// the length is no more than a message of max_message_bytes could hold as doubles.
Status check_zeros(const flatbuffers::Vector<double>& v, std::uint32_t zeros,
                   const Limits& limits, const char* name) {
  if (zeros == 0) return Status::ok();
  if (v.size() != 0)
    return Status::error(std::string(name) + " has values and w_zeros = " +
                         std::to_string(zeros));
  if (zeros > limits.max_message_bytes / sizeof(double))
    return Status::error(std::string(name) + " is " + std::to_string(zeros) +
                         " zeros, over the limit of " +
                         std::to_string(limits.max_message_bytes / sizeof(double)));
  return Status::ok();
}

void assign_or_zeros(const flatbuffers::Vector<double>& v, std::uint32_t zeros,
                     std::vector<double>& out) {
  if (zeros == 0) return assign(v, out);
  out.assign(zeros, 0.0);
}

Status convert(const fb::Join& t, const Limits& limits, msg::Message& out) {
  Checks checks(limits);
  checks.required(t.agent_id(), "Join.agent_id")
      .required(t.software_version(), "Join.software_version")
      .required(t.support(), "Join.support")
      .known(t.loss(), fb::EnumNameLoss, "Join.loss")
      .length(t.agent_id(), "Join.agent_id")
      .length(t.software_version(), "Join.software_version")
      .finite(t.lmax(), "Join.lmax");
  if (!checks.status()) return checks.status();
  if (const Status s = check_support_bits(t, limits); !s) return s;
  msg::Join& m = slot<msg::Join>(out);
  assign(*t.agent_id(), m.agent_id);
  m.samples = t.samples();
  m.features = t.features();
  m.classes = t.classes();
  m.loss = from_fb(t.loss());
  m.lmax = t.lmax();
  assign(*t.software_version(), m.software_version);
  m.incarnation = t.incarnation();
  assign_support(t, m.support);
  m.zero_padded = t.zero_padded();
  m.bias = t.bias();
  return Status::ok();
}

// A coded q8 vector's integers and scales, decoded once: by check_packed(), which must decode
// them to check them, for unpack() of the same vector. Each message has at most two coded
// vectors, and each of its checks and unpacks names its own one of these two (per thread,
// reused: no allocation once grown).
struct Decoded {
  std::vector<std::int8_t> q;           // from q8_rice or q8_range
  std::vector<std::uint16_t> scales16;  // from scales16_range
};
using Integers = Decoded;
Integers& decoded(int which) {
  thread_local Integers integers[2];
  return integers[which];
}

// implied_ok: the vector may leave its runs to the receiver (Packed.runs_implied).
Status check_packed(const fb::Packed& p, const Limits& limits, const char* name, Integers& ints,
                    bool implied_ok = false);
void unpack(const fb::Packed& p, const Integers& ints, compress::Q8& out);
void unpack(const fb::Packed& p, const Integers& ints, std::vector<double>& out);

// A curvature payload that may travel as q8 (`packed`) instead of [double] or [float]: then both
// of those are empty and it is q8.
Status check_q8_payload(const fb::Packed* packed, const flatbuffers::Vector<double>& d,
                        const flatbuffers::Vector<float>& f, const Limits& limits,
                        const char* name, Integers& ints, bool implied_ok = false) {
  if (packed == nullptr) return Status::ok();
  if (d.size() != 0 || f.size() != 0)
    return Status::error(std::string(name) + " travels both packed and as floats or doubles");
  if (const Status s = check_packed(*packed, limits, name, ints, implied_ok); !s) return s;
  if (packed->encoding() != fb::Encoding::q8) return Status::error(std::string(name) + " must be q8");
  return Status::ok();
}

// ... decoded into both forms (only after check_q8_payload passed).
void assign_q8_payload(const fb::Packed* packed, const flatbuffers::Vector<double>& d,
                       const flatbuffers::Vector<float>& f, const Integers& ints,
                       std::vector<double>& values, compress::Q8& q8) {
  if (packed == nullptr) {
    q8.q.clear();
    q8.scales.clear();
    q8.runs.clear();
    q8.implied_runs = false;
    return assign_either(d, f, values);
  }
  unpack(*packed, ints, q8);
  if (q8.implied_runs) {  // the receiver derives the runs, then the values (agent.cpp)
    values.clear();
    return;
  }
  values.assign(q8.size(), 0.0);
  compress::add(q8, values.data());
}

Status convert(const fb::Config& t, const Limits& limits, msg::Message& out) {
  Checks checks(limits);
  checks.required(t.w(), "Config.w")
      .required(t.basis(), "Config.basis")
      .aligned(t.w(), "Config.w")
      .aligned(t.basis(), "Config.basis")
      .known(t.algorithm(), fb::EnumNameAlgorithm, "Config.algorithm")
      .known(t.loss(), fb::EnumNameLoss, "Config.loss")
      .known(t.encoding(), fb::EnumNameEncoding, "Config.encoding")
      .known(t.curvature(), fb::EnumNameEncoding, "Config.curvature")
      .finite(t.lambda(), "Config.lambda")
      .finite(t.eta(), "Config.eta")
      .finite(t.prox(), "Config.prox")
      .finite(t.refresh(), "Config.refresh")
      .finite(t.w(), "Config.w")
      .finite(t.basis(), "Config.basis")
      .required(t.basis_f32(), "Config.basis_f32")
      .aligned(t.basis_f32(), "Config.basis_f32")
      .finite(t.basis_f32(), "Config.basis_f32")
      .one_of(t.basis(), t.basis_f32(), "Config.basis");
  if (!checks.status()) return checks.status();
  if (const Status s = check_q8_payload(t.basis_q8(), *t.basis(), *t.basis_f32(), limits,
                                        "Config.basis_q8", decoded(0), /*implied_ok=*/true);
      !s)
    return s;
  if (const Status s = check_zeros(*t.w(), t.w_zeros(), limits, "Config.w"); !s) return s;
  msg::Config& m = slot<msg::Config>(out);
  m.algorithm = from_fb(t.algorithm());
  m.total_samples = t.total_samples();
  m.features = t.features();
  m.classes = t.classes();
  m.loss = from_fb(t.loss());
  m.lambda = t.lambda();
  m.eta = t.eta();
  m.steps = t.steps();
  m.seed = t.seed();
  m.build_table = t.build_table();
  m.round = t.round();
  assign_or_zeros(*t.w(), t.w_zeros(), m.w);
  m.prox = t.prox();
  m.refresh = t.refresh();
  m.two_level = t.two_level();
  m.basis_rank = t.basis_rank();
  m.basis_id = t.basis_id();
  m.basis_identity = t.basis_identity();
  m.basis_dim = t.basis_dim();
  assign_q8_payload(t.basis_q8(), *t.basis(), *t.basis_f32(), decoded(0), m.basis, m.basis_q8);
  m.restricted = t.restricted();
  m.encoding = from_fb(t.encoding());
  m.curvature = from_fb(t.curvature());
  return Status::ok();
}

Status convert(const fb::InitUpload& t, const Limits& limits, msg::Message& out) {
  Checks checks(limits);
  checks.required(t.table_sum(), "InitUpload.table_sum")
      .required(t.eigenvalues(), "InitUpload.eigenvalues")
      .required(t.eigenvectors(), "InitUpload.eigenvectors")
      .aligned(t.table_sum(), "InitUpload.table_sum")
      .aligned(t.eigenvalues(), "InitUpload.eigenvalues")
      .aligned(t.eigenvectors(), "InitUpload.eigenvectors")
      .finite(t.table_sum(), "InitUpload.table_sum")
      .finite(t.loss_sum(), "InitUpload.loss_sum")
      .finite(t.eigenvalues(), "InitUpload.eigenvalues")
      .finite(t.eigen_next(), "InitUpload.eigen_next")
      .finite(t.eigenvectors(), "InitUpload.eigenvectors")
      .required(t.eigenvectors_f32(), "InitUpload.eigenvectors_f32")
      .aligned(t.eigenvectors_f32(), "InitUpload.eigenvectors_f32")
      .finite(t.eigenvectors_f32(), "InitUpload.eigenvectors_f32")
      .one_of(t.eigenvectors(), t.eigenvectors_f32(), "InitUpload.eigenvectors");
  if (!checks.status()) return checks.status();
  if (const Status s = check_q8_payload(t.eigenvectors_q8(), *t.eigenvectors(),
                                        *t.eigenvectors_f32(), limits, "InitUpload.eigenvectors_q8",
                                        decoded(0));
      !s)
    return s;
  if (const fb::Packed* p = t.table_sum_packed()) {
    if (t.table_sum()->size() != 0)
      return Status::error("InitUpload.table_sum must be empty when it travels packed");
    if (const Status s = check_packed(*p, limits, "InitUpload.table_sum_packed", decoded(1)); !s)
      return s;
  }
  msg::InitUpload& m = slot<msg::InitUpload>(out);
  m.seq = t.seq();
  m.samples = t.samples();
  if (const fb::Packed* p = t.table_sum_packed()) {
    m.encoding = from_fb(p->encoding());
    unpack(*p, decoded(1), m.table_sum);
  } else {
    m.encoding = msg::Encoding::f64;
    assign(*t.table_sum(), m.table_sum);
  }
  m.loss_sum = t.loss_sum();
  assign(*t.eigenvalues(), m.eigenvalues);
  m.eigen_next = t.eigen_next();
  assign_q8_payload(t.eigenvectors_q8(), *t.eigenvectors(), *t.eigenvectors_f32(), decoded(0),
                    m.eigenvectors, m.eigenvectors_q8);
  return Status::ok();
}

// A RoundStart's broadcast as changes (base > 0): both q8, as wide as each other, instead of w
// and gbar, in a run round that names no evaluation point.
Status check_delta(const fb::RoundStart& t, const Limits& limits) {
  const fb::Packed* dw = t.w_delta();
  const fb::Packed* dg = t.gbar_delta();
  if (t.from_zero() && t.base() != 0)
    return Status::error("RoundStart.from_zero with base " + std::to_string(t.base()));
  if (t.base() == 0 && !t.from_zero()) {
    if (dw != nullptr || dg != nullptr)
      return Status::error("RoundStart.w_delta and gbar_delta need a base round (base is 0)");
    return Status::ok();
  }
  if (dw == nullptr || dg == nullptr)
    return Status::error(std::string("RoundStart.") + (dw ? "gbar_delta" : "w_delta") +
                         " is missing (base " + std::to_string(t.base()) + ")");
  if (t.w()->size() != 0 || t.w_zeros() != 0 || t.gbar()->size() != 0 || t.eval_w() != nullptr)
    return Status::error("RoundStart.w, gbar and eval_w must be empty with a base round");
  if (t.kind() != static_cast<std::uint8_t>(msg::RoundKind::run))
    return Status::error("RoundStart.base is set in a Newton-CG round");
  if (t.base() != 0 && t.base() >= t.round())
    return Status::error("RoundStart.base " + std::to_string(t.base()) +
                         " is not before its round " + std::to_string(t.round()));
  if (const Status s = check_packed(*dw, limits, "RoundStart.w_delta", decoded(0), true); !s)
    return s;
  if (const Status s = check_packed(*dg, limits, "RoundStart.gbar_delta", decoded(1), true); !s)
    return s;
  if (dw->encoding() != fb::Encoding::q8 || dg->encoding() != fb::Encoding::q8)
    return Status::error("RoundStart.w_delta and gbar_delta must be q8");
  if (dw->count() != dg->count())
    return Status::error("RoundStart.w_delta has " + std::to_string(dw->count()) +
                         " entries and gbar_delta " + std::to_string(dg->count()));
  return Status::ok();
}

Status convert(const fb::RoundStart& t, const Limits& limits, msg::Message& out) {
  Checks checks(limits);
  checks.required(t.w(), "RoundStart.w")
      .required(t.gbar(), "RoundStart.gbar")
      .aligned(t.w(), "RoundStart.w")
      .aligned(t.gbar(), "RoundStart.gbar")
      .aligned(t.eval_w(), "RoundStart.eval_w")
      .finite(t.w(), "RoundStart.w")
      .finite(t.gbar(), "RoundStart.gbar")
      .finite(t.eval_w(), "RoundStart.eval_w")
      .finite(t.eta(), "RoundStart.eta")
      .required(t.direction(), "RoundStart.direction")
      .aligned(t.direction(), "RoundStart.direction")
      .finite(t.direction(), "RoundStart.direction");
  if (checks.status() && t.kind() > static_cast<std::uint8_t>(msg::RoundKind::product))
    return Status::error("RoundStart.kind has unknown value " + std::to_string(int(t.kind())));
  if (!checks.status()) return checks.status();
  if ((t.gram() || t.hessian() || t.diagonal()) &&
      t.kind() != static_cast<std::uint8_t>(msg::RoundKind::gradient))
    return Status::error("RoundStart.gram, hessian or diagonal outside a Newton-CG gradient round");
  if (int(t.gram()) + int(t.hessian()) + int(t.diagonal()) > 1)
    return Status::error("RoundStart asks for more than one of the Gram, the Hessian and its diagonal");
  if (const Status s = check_delta(t, limits); !s) return s;
  if (const Status s = check_zeros(*t.w(), t.w_zeros(), limits, "RoundStart.w"); !s) return s;
  msg::RoundStart& m = slot<msg::RoundStart>(out);
  m.round = t.round();
  assign_or_zeros(*t.w(), t.w_zeros(), m.w);
  assign(*t.gbar(), m.gbar);
  if (t.eval_w() != nullptr) assign(*t.eval_w(), m.eval_w);
  else m.eval_w.clear();  // keeps its capacity: no allocation either way
  m.eta = t.eta();
  m.kind = static_cast<msg::RoundKind>(t.kind());
  m.gram = t.gram();
  m.hessian = t.hessian();
  m.diagonal = t.diagonal();
  assign(*t.direction(), m.direction);
  m.base = t.base();
  m.from_zero = t.from_zero();
  if (m.base != 0 || m.from_zero) {
    unpack(*t.w_delta(), decoded(0), m.w_delta);
    unpack(*t.gbar_delta(), decoded(1), m.gbar_delta);
  } else {
    m.w_delta.q.clear();
    m.gbar_delta.q.clear();
  }
  return Status::ok();
}

// One packed vector (Packed in the schema): its form consistent with its encoding and count,
// every value finite, every integer in -127..127. Nothing is read before the checks guarding it.
bool is_set(const flatbuffers::Vector<std::uint8_t>* v) { return v != nullptr && v->size() != 0; }

// The integers of a q8 Packed coded in q8_rice or q8_range, into `out` (count entries): empty on
// success, else the field and why not.
std::string decode_integers(const fb::Packed& p, std::vector<std::int8_t>& out) {
  out.resize(p.count());
  if (is_set(p.q8_rice())) {
    const auto* runs = p.runs();
    const rice::Blocks blocks = is_set(runs) ? rice::Blocks{p.count(), runs->data(), runs->size()}
                                             : rice::Blocks{p.count(), nullptr, 0};
    const std::string why = rice::decode(p.q8_rice()->data(), p.q8_rice()->size(), blocks, out.data());
    return why.empty() ? why : "q8_rice " + why;
  }
  const std::string why = range::decode(p.q8_range()->data(), p.q8_range()->size(), p.count(), out.data());
  return why.empty() ? why : "q8_range " + why;
}

Status check_packed(const fb::Packed& p, const Limits& limits, const char* name, Integers& ints,
                    bool implied_ok) {
  const auto bad = [name](const std::string& why) {
    return Status::error(std::string(name) + " " + why);
  };
  Checks checks(limits);
  checks.required(p.f32(), name).required(p.q8(), name).required(p.scales(), name);
  if (!checks.status()) return bad("lacks one of f32, q8, scales");
  checks.aligned(p.f32(), name).aligned(p.scales(), name).finite(p.f32(), name).finite(p.scales(), name);
  if (!checks.status()) return checks.status();
  // The decoded doubles are no more than a message of max_message_bytes could hold as [double].
  const std::size_t n = p.count();
  if (n > limits.max_message_bytes / sizeof(double))
    return bad("has " + std::to_string(n) + " entries, over the limit of " +
               std::to_string(limits.max_message_bytes / sizeof(double)));
  switch (p.encoding()) {
    case fb::Encoding::f32:
      if (p.runs() != nullptr && p.runs()->size() != 0) return bad("(f32) has runs");
      if (p.scales16() != nullptr && p.scales16()->size() != 0) return bad("(f32) has scales16");
      if (is_set(p.scales16_range())) return bad("(f32) has scales16_range");
      if (is_set(p.q8_rice()) || is_set(p.q8_range())) return bad("(f32) has q8_rice or q8_range");
      if (p.f32()->size() != n || p.q8()->size() != 0 || p.scales()->size() != 0)
        return bad("(f32) holds " + std::to_string(p.f32()->size()) + " floats, " +
                   std::to_string(p.q8()->size()) + " integers and " +
                   std::to_string(p.scales()->size()) + " scales for " + std::to_string(n) +
                   " entries");
      return Status::ok();
    case fb::Encoding::q8: {
      const auto* runs = p.runs();
      const bool has_runs = runs != nullptr && runs->size() != 0;
      const bool implied = p.runs_implied();
      if (implied && !implied_ok) return bad("has runs_implied (only a broadcast change or basis may)");
      if (implied && (has_runs || is_set(p.q8_rice())))
        return bad("(q8) has runs_implied and also runs or q8_rice");
      // Implied runs: implied_blocks blocks of 1..64 entries each (the receiver checks them
      // against the runs its support gives).
      if (!implied && p.implied_blocks() != 0) return bad("(q8) has implied_blocks without runs_implied");
      if (implied && (p.implied_blocks() < compress::q8_blocks(n) || p.implied_blocks() > n))
        return bad("(q8) has implied_blocks " + std::to_string(p.implied_blocks()) + " for " +
                   std::to_string(n) + " entries in blocks of 1..64");
      const std::size_t blocks =
          implied ? p.implied_blocks() : has_runs ? runs->size() : compress::q8_blocks(n);
      if (has_runs) {
        std::size_t sum = 0;
        for (flatbuffers::uoffset_t i = 0; i < runs->size(); ++i) {
          if (runs->Get(i) == 0 || runs->Get(i) > compress::kBlock)
            return bad("run " + std::to_string(i) + " has " + std::to_string(runs->Get(i)) +
                       " entries, outside 1..64");
          sum += runs->Get(i);
        }
        if (sum != n)
          return bad("(q8) runs add up to " + std::to_string(sum) + " entries, the count is " +
                     std::to_string(n));
      }
      if (is_set(p.q8_rice()) && is_set(p.q8_range())) return bad("(q8) has both q8_rice and q8_range");
      const bool coded = is_set(p.q8_rice()) || is_set(p.q8_range());
      const std::size_t integers = coded ? 0 : n;  // coded: q8 is empty
      const auto* s16 = p.scales16();
      const bool half = s16 != nullptr && s16->size() != 0;
      const bool half_coded = is_set(p.scales16_range());
      if (half && p.scales()->size() != 0) return bad("(q8) has both scales and scales16");
      if (half_coded && (half || p.scales()->size() != 0))
        return bad("(q8) has scales16_range and also scales or scales16");
      if (half) {
        checks.aligned(s16, name);
        if (!checks.status()) return checks.status();
      }
      if (half_coded) {  // kept in `ints` for unpack(); checked below as scales16 are
        const auto* coded = p.scales16_range();
        ints.scales16.resize(blocks);
        std::vector<std::int8_t>& parts = ints.q;  // scratch, overwritten by the integers below
        parts.resize(2 * blocks);
        const std::string why = range::decode(coded->data(), coded->size(), 2 * blocks, parts.data());
        if (!why.empty()) return bad("scales16_range " + why);
        for (std::size_t i = 0; i < blocks; ++i) {
          if (parts[blocks + i] < 0)
            return bad("scales16_range scale " + std::to_string(i) + " has mantissa " +
                       std::to_string(parts[blocks + i]) + ", outside 0..127");
          ints.scales16[i] = static_cast<std::uint16_t>(((parts[i] + 127) << 7) | parts[blocks + i]);
        }
      }
      const std::size_t scale_count =
          half_coded ? blocks : half ? s16->size() : p.scales()->size();
      if (p.q8()->size() != integers || scale_count != blocks || p.f32()->size() != 0)
        return bad("(q8) holds " + std::to_string(p.q8()->size()) + " integers, " +
                   std::to_string(scale_count) + (half ? " scales16 and " : " scales and ") +
                   std::to_string(p.f32()->size()) + " floats for " + std::to_string(n) +
                   " entries (expected " + std::to_string(integers) + ", " +
                   std::to_string(blocks) + ", 0" +
                   (is_set(p.q8_rice()) ? ", with q8_rice)" : is_set(p.q8_range()) ? ", with q8_range)" : ")"));
      for (flatbuffers::uoffset_t i = 0; i < blocks; ++i) {
        if (half || half_coded) {
          // Sign bit clear and the exponent not all ones: a finite bfloat16 >= 0.
          const std::uint16_t h = half ? s16->Get(i) : ints.scales16[i];
          if ((h & 0x8000u) != 0 || (h & 0x7F80u) == 0x7F80u)
            return bad((half ? "scales16 " : "scales16_range scale ") + std::to_string(i) +
                       " is " + std::to_string(h) + ", not a finite bfloat16 >= 0");
        } else if (!(p.scales()->Get(i) >= 0.0f)) {
          return bad("scale " + std::to_string(i) + " is negative");
        }
      }
      if (coded) {  // kept in `ints` for unpack()
        const std::string why = decode_integers(p, ints.q);
        if (!why.empty()) return bad(why);
        return Status::ok();
      }
      for (flatbuffers::uoffset_t i = 0; i < n; ++i)
        if (p.q8()->Get(i) < -compress::kLevels)
          return bad("integer " + std::to_string(i) + " is " + std::to_string(p.q8()->Get(i)) +
                     ", outside -127..127");
      return Status::ok();
    }
    case fb::Encoding::f64: break;
  }
  return bad("has encoding " + std::to_string(static_cast<int>(p.encoding())) +
             " (only f32 = 1 and q8 = 2 are packed)");
}

// Update's packed deltas: both or neither, of one encoding, and then instead of dw and dS.
Status check_packed(const fb::Update& t, const Limits& limits) {
  const fb::Packed* dw = t.dw_packed();
  const fb::Packed* ds = t.ds_packed();
  if (dw == nullptr && ds == nullptr) return Status::ok();
  if (dw == nullptr || ds == nullptr)
    return Status::error(std::string("Update.") + (dw ? "ds_packed" : "dw_packed") +
                         " is missing (dw and dS are packed together)");
  if (dw->encoding() != ds->encoding())
    return Status::error("Update.dw_packed and Update.ds_packed have different encodings");
  if (t.dw()->size() != 0 || t.ds()->size() != 0)
    return Status::error("Update.dw and Update.dS must be empty when they travel packed");
  if (const Status s = check_packed(*dw, limits, "Update.dw_packed", decoded(0)); !s) return s;
  return check_packed(*ds, limits, "Update.ds_packed", decoded(1));
}

// A checked q8 Packed's scales as floats, from scales16, scales16_range (decoded into `ints`)
// or scales.
void scales_of(const fb::Packed& p, const Integers& ints, std::vector<float>& out) {
  const auto* s16 = p.scales16();
  const bool coded = is_set(p.scales16_range());
  if (!coded && (s16 == nullptr || s16->size() == 0)) {
    assign(*p.scales(), out);
    return;
  }
  const std::size_t n = coded ? ints.scales16.size() : s16->size();
  out.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint16_t h = coded ? ints.scales16[i] : s16->Get(static_cast<flatbuffers::uoffset_t>(i));
    const std::uint32_t bits = static_cast<std::uint32_t>(h) << 16;
    std::memcpy(&out[i], &bits, sizeof bits);
  }
}

// Only called on a Packed that check_packed() accepted, with the `ints` it decoded: q8 as
// integers and scales.
void unpack(const fb::Packed& p, const Integers& ints, compress::Q8& out) {
  out.implied_runs = p.runs_implied();
  if (is_set(p.q8_rice()) || is_set(p.q8_range())) {
    out.q = ints.q;
  } else {
    assign(*p.q8(), out.q);
  }
  scales_of(p, ints, out.scales);
  if (p.runs() != nullptr) assign(*p.runs(), out.runs);
  else out.runs.clear();
}

// ... and as the doubles it stands for.
void unpack(const fb::Packed& p, const Integers& ints, std::vector<double>& out) {
  const std::size_t n = p.count();
  if (p.encoding() == fb::Encoding::f32) {
    out.resize(n);
    for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<double>(p.f32()->Get(static_cast<flatbuffers::uoffset_t>(i)));
    return;
  }
  // Straight from the buffer (an Update's dw and dS on the hub's receive path: no copy), or
  // from the integers check_packed() decoded.
  out.resize(n);
  const std::int8_t* q =
      is_set(p.q8_rice()) || is_set(p.q8_range()) ? ints.q.data() : p.q8()->data();
  thread_local std::vector<float> scales;  // capacity kept: the hub's receive path
  scales_of(p, ints, scales);
  const auto value = [&](std::size_t i, flatbuffers::uoffset_t s) {
    return static_cast<double>(scales[s]) * static_cast<double>(q[i]);
  };
  if (p.runs() == nullptr || p.runs()->size() == 0) {
    for (std::size_t i = 0; i < n; ++i)
      out[i] = value(i, static_cast<flatbuffers::uoffset_t>(i / compress::kBlock));
    return;
  }
  std::size_t i = 0;
  for (flatbuffers::uoffset_t s = 0; s < p.runs()->size(); ++s)
    for (std::size_t end = i + p.runs()->Get(s); i < end; ++i) out[i] = value(i, s);
}

Status convert(const fb::Update& t, const Limits& limits, msg::Message& out) {
  Checks checks(limits);
  checks.required(t.dw(), "Update.dw")
      .required(t.ds(), "Update.dS")
      .aligned(t.dw(), "Update.dw")
      .aligned(t.ds(), "Update.dS")
      .required(t.coarse_g(), "Update.coarse_g")
      .required(t.coarse_h(), "Update.coarse_h")
      .aligned(t.coarse_g(), "Update.coarse_g")
      .aligned(t.coarse_h(), "Update.coarse_h")
      .finite(t.loss_sum(), "Update.loss_sum")
      .finite(t.dw(), "Update.dw")
      .finite(t.ds(), "Update.dS")
      .finite(t.coarse_g(), "Update.coarse_g")
      .finite(t.coarse_h(), "Update.coarse_h")
      .required(t.coarse_h_f32(), "Update.coarse_h_f32")
      .aligned(t.coarse_h_f32(), "Update.coarse_h_f32")
      .finite(t.coarse_h_f32(), "Update.coarse_h_f32")
      .one_of(t.coarse_h(), t.coarse_h_f32(), "Update.coarse_h")
      .required(t.product(), "Update.product")
      .required(t.gram(), "Update.gram")
      .aligned(t.product(), "Update.product")
      .aligned(t.gram(), "Update.gram")
      .finite(t.product(), "Update.product")
      .finite(t.gram(), "Update.gram")
      .aligned(t.hessian(), "Update.hessian")
      .finite(t.hessian(), "Update.hessian")
      .aligned(t.diagonal(), "Update.diagonal")
      .finite(t.diagonal(), "Update.diagonal")
      .nonnegative(t.diagonal(), "Update.diagonal")
      .required(t.val_negatives(), "Update.validation.negatives")
      .required(t.val_positives(), "Update.validation.positives")
      .aligned(t.val_negatives(), "Update.validation.negatives")
      .aligned(t.val_positives(), "Update.validation.positives");
  if (!checks.status()) return checks.status();
  if (const Status s = check_packed(t, limits); !s) return s;
  // The counts are checked in the buffer, before `out` is touched (a refused message leaves it
  // as it was); a hostile histogram length is refused by its size, before any element is read.
  if (const Status s = check_counts(t.val_examples(), t.val_loss_sum(), t.val_correct(),
                                    *t.val_negatives(), *t.val_positives(), "Update.validation: ");
      !s)
    return s;
  msg::Update& m = slot<msg::Update>(out);
  m.round = t.round();
  m.seq = t.seq();
  m.samples = t.samples();
  m.steps = t.steps();
  m.loss_sum = t.loss_sum();
  if (t.dw_packed() != nullptr) {
    m.encoding = from_fb(t.dw_packed()->encoding());
    unpack(*t.dw_packed(), decoded(0), m.dw);
    unpack(*t.ds_packed(), decoded(1), m.dS);
  } else {
    m.encoding = msg::Encoding::f64;
    assign(*t.dw(), m.dw);
    assign(*t.ds(), m.dS);
  }
  assign(*t.coarse_g(), m.coarse_g);
  assign_either(*t.coarse_h(), *t.coarse_h_f32(), m.coarse_h);
  assign(*t.product(), m.product);
  assign(*t.gram(), m.gram);
  if (t.hessian() != nullptr) assign(*t.hessian(), m.hessian);
  else m.hessian.clear();  // keeps its capacity
  if (t.diagonal() != nullptr) assign(*t.diagonal(), m.diagonal);
  else m.diagonal.clear();
  ValidationCounts& v = m.validation;
  v.examples = t.val_examples();
  v.loss_sum = t.val_loss_sum();
  v.correct = t.val_correct();
  v.negatives.assign(t.val_negatives()->begin(), t.val_negatives()->end());
  v.positives.assign(t.val_positives()->begin(), t.val_positives()->end());
  return Status::ok();
}

Status convert(const fb::Ack& t, const Limits&, msg::Message& out) {
  msg::Ack& m = slot<msg::Ack>(out);
  m.round = t.round();
  m.seq = t.seq();
  return Status::ok();
}

Status convert(const fb::Leave& t, const Limits& limits, msg::Message& out) {
  Checks checks(limits);
  checks.required(t.reason(), "Leave.reason").length(t.reason(), "Leave.reason");
  if (!checks.status()) return checks.status();
  assign(*t.reason(), slot<msg::Leave>(out).reason);
  return Status::ok();
}

Status convert(const fb::Error& t, const Limits& limits, msg::Message& out) {
  Checks checks(limits);
  checks.required(t.text(), "Error.text")
      .known(t.code(), fb::EnumNameErrorCode, "Error.code")
      .length(t.text(), "Error.text");
  if (!checks.status()) return checks.status();
  msg::Error& m = slot<msg::Error>(out);
  m.code = from_fb(t.code());
  assign(*t.text(), m.text);
  return Status::ok();
}

Status convert(const fb::Heartbeat& t, const Limits&, msg::Message& out) {
  slot<msg::Heartbeat>(out).round = t.round();
  return Status::ok();
}

// Printable form of the 4 identifier bytes for an error message.
std::string printable(const std::uint8_t* bytes, std::size_t n) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint8_t c = bytes[i];
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  return out;
}

// The variant index of message type T (the Decoder keeps one message per index).
template <class T, std::size_t I = 0>
constexpr std::size_t kind_of() {
  if constexpr (std::is_same_v<T, std::variant_alternative_t<I, msg::Message>>) {
    return I;
  } else {
    return kind_of<T, I + 1>();
  }
}

// `target(kind)` returns the message to decode into, once the type is known and verified.
template <class Target>
Status decode_unguarded(const void* data, std::size_t size, const Limits& limits, Target&& target) {
  // 1. Size. FlatBuffers cannot address 2 GiB or more, whatever the configured limit.
  const std::size_t max_bytes =
      std::min<std::size_t>(limits.max_message_bytes, FLATBUFFERS_MAX_BUFFER_SIZE - 1);
  if (size == 0) return Status::error("empty message");
  if (size > max_bytes) {
    return Status::error("message of " + std::to_string(size) + " bytes is over the limit of " +
                         std::to_string(max_bytes) + " bytes");
  }
  if (size < kHeaderBytes) {
    return Status::error("message of " + std::to_string(size) + " bytes is shorter than the " +
                         std::to_string(kHeaderBytes) + "-byte header");
  }
  // A finished FlatBuffer is a whole number of its alignment (>= 4: Finish() pads the header),
  // so any other size is a truncated or padded frame. Besides rejecting those early, this
  // catches what the verifier cannot: a message cut inside the (at most 3) padding bytes that
  // follow a string at the end of the buffer.
  if (size % sizeof(flatbuffers::uoffset_t) != 0) {
    return Status::error("message of " + std::to_string(size) +
                         " bytes is not a whole number of 4-byte words "
                         "(truncated or padded)");
  }
  if (data == nullptr) return Status::error("null message buffer");

  // 2. Alignment. FlatBuffers reads scalars in place and its verifier checks alignment only
  // relative to the buffer start (and for vector elements not at all: Checks::aligned); an
  // unaligned double load faults on armhf (CROSS.md).
  const auto* bytes = static_cast<const std::uint8_t*>(data);
  std::unique_ptr<std::uint64_t[]> aligned;  // owns the copy while `bytes` points into it
  if (reinterpret_cast<std::uintptr_t>(bytes) % kAlignment != 0) {
    aligned.reset(new std::uint64_t[(size + sizeof(std::uint64_t) - 1) / sizeof(std::uint64_t)]);
    std::memcpy(aligned.get(), bytes, size);
    bytes = reinterpret_cast<const std::uint8_t*>(aligned.get());
  }

  // 3. Identifier: tells a dsaga message from anything else that reached the socket.
  const std::uint8_t* id = bytes + sizeof(flatbuffers::uoffset_t);
  if (std::memcmp(id, fb::EnvelopeIdentifier(), flatbuffers::kFileIdentifierLength) != 0) {
    return Status::error("bad file identifier \"" +
                         printable(id, flatbuffers::kFileIdentifierLength) + "\", expected \"" +
                         fb::EnvelopeIdentifier() + "\"");
  }

  // 4. Structure: after this every offset, vector and string lies inside [bytes, bytes + size).
  flatbuffers::Verifier::Options options;
  options.max_depth = kMaxDepth;
  options.max_tables = kMaxTables;
  options.check_alignment = true;
  flatbuffers::Verifier verifier(bytes, size, options);
  if (!fb::VerifyEnvelopeBuffer(verifier)) {
    return Status::error("malformed message of " + std::to_string(size) +
                         " bytes: FlatBuffers verification failed");
  }
  const fb::Envelope* envelope = fb::GetEnvelope(bytes);

  // 5. Version.
  if (envelope->version() != msg::kProtocolVersion) {
    return Status::error("protocol version " + std::to_string(envelope->version()) +
                         ", this build speaks " + std::to_string(msg::kProtocolVersion));
  }

  // 6. Message type. The verifier passes unknown union types (forward compatibility) without
  // looking at their table; an unknown type is rejected here before anything reads it.
  const fb::Body type = envelope->body_type();
  if (type == fb::Body::NONE || envelope->body() == nullptr) {
    return Status::error("message has no body");
  }
  // 7.-10. Per type: required fields, enums, string lengths, finite doubles; then conversion.
  switch (type) {
    case fb::Body::Join:
      return convert(*envelope->body_as_Join(), limits, target(kind_of<msg::Join>()));
    case fb::Body::Config:
      return convert(*envelope->body_as_Config(), limits, target(kind_of<msg::Config>()));
    case fb::Body::InitUpload:
      return convert(*envelope->body_as_InitUpload(), limits, target(kind_of<msg::InitUpload>()));
    case fb::Body::RoundStart:
      return convert(*envelope->body_as_RoundStart(), limits, target(kind_of<msg::RoundStart>()));
    case fb::Body::Update:
      return convert(*envelope->body_as_Update(), limits, target(kind_of<msg::Update>()));
    case fb::Body::Ack:
      return convert(*envelope->body_as_Ack(), limits, target(kind_of<msg::Ack>()));
    case fb::Body::Leave:
      return convert(*envelope->body_as_Leave(), limits, target(kind_of<msg::Leave>()));
    case fb::Body::Error:
      return convert(*envelope->body_as_Error(), limits, target(kind_of<msg::Error>()));
    case fb::Body::Heartbeat:
      return convert(*envelope->body_as_Heartbeat(), limits, target(kind_of<msg::Heartbeat>()));
    case fb::Body::NONE:
      break;  // handled above
  }
  return Status::error("unknown message type " + std::to_string(static_cast<unsigned>(type)));
}

template <class Target>
Status decode_guarded(const void* data, std::size_t size, const Limits& limits, Target&& target) {
  // Allocation is bounded by a small multiple of `size`, but `size` may be large (the default
  // limit is 256 MiB): out of memory is an expected failure on a small device, not a crash.
  try {
    return decode_unguarded(data, size, limits, target);
  } catch (const std::bad_alloc&) {
    return Status::error("out of memory decoding a message of " + std::to_string(size) + " bytes");
  }
}

template <std::size_t... I>
std::array<msg::Message, sizeof...(I)> one_of_each(std::index_sequence<I...>) {
  return {msg::Message(std::in_place_index<I>)...};
}

}  // namespace

void encode(const msg::Message& message, std::vector<std::uint8_t>& out) {
  flatbuffers::FlatBufferBuilder& fbb = thread_builder();
  fbb.Clear();  // keeps the allocation; also recovers from an exception in an earlier encode
  const auto [type, body] = std::visit(BodyEncoder{fbb}, message);
  fb::FinishEnvelopeBuffer(fbb, fb::CreateEnvelope(fbb, msg::kProtocolVersion, type, body));
  const std::uint8_t* begin = fbb.GetBufferPointer();
  out.assign(begin, begin + fbb.GetSize());  // reuses out's capacity
  if (fbb.GetSize() > kKeepBuilderBytes) fbb.Reset();
}

std::optional<std::uint32_t> foreign_version(const void* data, std::size_t size) {
  if (data == nullptr || size < kHeaderBytes || size > (std::size_t(1) << 31)) return std::nullopt;
  std::vector<std::uint64_t> aligned((size + 7) / 8);  // an error path: the copy does not matter
  std::memcpy(aligned.data(), data, size);
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(aligned.data());
  if (std::memcmp(bytes + sizeof(flatbuffers::uoffset_t), fb::EnvelopeIdentifier(),
                  flatbuffers::kFileIdentifierLength) != 0)
    return std::nullopt;
  flatbuffers::Verifier::Options options;
  options.max_depth = kMaxDepth;
  options.max_tables = kMaxTables;
  flatbuffers::Verifier verifier(bytes, size, options);
  if (!fb::VerifyEnvelopeBuffer(verifier)) return std::nullopt;
  const std::uint32_t version = fb::GetEnvelope(bytes)->version();
  if (version == msg::kProtocolVersion) return std::nullopt;
  return version;
}

namespace {

// Bytes of a vector as it lies in an encoded message (0 where it is absent).
template <class T>
std::uint64_t bytes_of(const flatbuffers::Vector<T>* v) {
  return v == nullptr ? 0 : std::uint64_t{v->size()} * sizeof(T);
}
std::uint64_t bytes_of(const fb::Packed* p) {
  if (p == nullptr) return 0;
  return bytes_of(p->f32()) + bytes_of(p->q8()) + bytes_of(p->scales()) + bytes_of(p->scales16()) +
         bytes_of(p->scales16_range()) + bytes_of(p->runs()) +
         bytes_of(p->q8_rice()) + bytes_of(p->q8_range());
}

}  // namespace

void add_part_bytes(const std::vector<std::uint8_t>& message, std::uint64_t copies,
                    msg::PartBytes& parts) {
  // Whatever form each vector took (doubles, floats, packed, a zero w as its length), its
  // bytes are the lengths of the buffer's vectors: nothing is encoded again to count it.
  const fb::Envelope* envelope = fb::GetEnvelope(message.data());
  if (const auto* u = envelope->body_as_Update()) {
    parts.deltas += copies * (bytes_of(u->dw()) + bytes_of(u->ds()) + bytes_of(u->dw_packed()) +
                              bytes_of(u->ds_packed()));
    parts.coarse += copies * (bytes_of(u->coarse_g()) + bytes_of(u->coarse_h()) +
                              bytes_of(u->coarse_h_f32()));
    parts.newton +=
        copies * (bytes_of(u->product()) + bytes_of(u->gram()) + bytes_of(u->hessian()) +
                  bytes_of(u->diagonal()));
  } else if (const auto* r = envelope->body_as_RoundStart()) {
    parts.broadcast += copies * (bytes_of(r->w()) + bytes_of(r->gbar()) + bytes_of(r->eval_w()) +
                                 bytes_of(r->w_delta()) + bytes_of(r->gbar_delta()));
    parts.newton += copies * bytes_of(r->direction());
  } else if (const auto* c = envelope->body_as_Config()) {
    parts.setup += copies * (bytes_of(c->w()) + bytes_of(c->basis()) + bytes_of(c->basis_f32()) +
                             bytes_of(c->basis_q8()));
  } else if (const auto* i = envelope->body_as_InitUpload()) {
    parts.setup += copies * (bytes_of(i->table_sum()) + bytes_of(i->table_sum_packed()) +
                             bytes_of(i->eigenvalues()) + bytes_of(i->eigenvectors()) +
                             bytes_of(i->eigenvectors_f32()) + bytes_of(i->eigenvectors_q8()));
  }
}

void encode_version_refusal(const std::string& text, std::uint32_t version,
                            std::vector<std::uint8_t>& out) {
  flatbuffers::FlatBufferBuilder fbb(256);
  const auto t = fbb.CreateString(text.substr(0, Limits{}.max_string_bytes));
  const auto body = fb::CreateError(fbb, fb::ErrorCode::unsupported_version, t);
  fb::FinishEnvelopeBuffer(fbb, fb::CreateEnvelope(fbb, version, fb::Body::Error, body.Union()));
  out.assign(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
}

std::vector<std::uint8_t> encode(const msg::Message& message) {
  std::vector<std::uint8_t> out;
  encode(message, out);
  return out;
}

Status decode_into(const void* data, std::size_t size, msg::Message& out, const Limits& limits) {
  return decode_guarded(data, size, limits, [&](std::size_t) -> msg::Message& { return out; });
}

Result<msg::Message> decode(const void* data, std::size_t size, const Limits& limits) {
  msg::Message message;  // a Join with empty strings: allocates nothing
  Status status = decode_into(data, size, message, limits);
  if (!status) return status;
  return Result<msg::Message>(std::move(message));
}

Decoder::Decoder(const Limits& limits)
    : limits_(limits),
      messages_(one_of_each(std::make_index_sequence<std::variant_size_v<msg::Message>>())) {}

Status Decoder::decode(const void* data, std::size_t size) {
  std::size_t kind = last_;
  // messages_[k] always holds alternative k, so convert() assigns into it in place.
  Status status = decode_guarded(data, size, limits_, [&](std::size_t k) -> msg::Message& {
    kind = k;
    return messages_[k];
  });
  if (status) last_ = kind;
  return status;
}

}  // namespace dsaga::wire
