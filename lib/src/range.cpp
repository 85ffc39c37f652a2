#include "range.hpp"

#include <array>

namespace dsaga::range {

namespace {

constexpr unsigned kMaxZigzag = 254;  // -127..127
constexpr unsigned kProbBits = 11, kMoveBits = 5;
constexpr std::uint32_t kTop = 1u << 24;
constexpr int kContexts = 5;

unsigned zigzag(std::int8_t q) {
  const int v = q;
  return v >= 0 ? 2u * static_cast<unsigned>(v) : 2u * static_cast<unsigned>(-v) - 1u;
}

// The tree the next integer is coded under, from the zigzag of the one before.
int context(unsigned z_before) {
  if (z_before == 0) return 0;
  if (z_before < 4) return 1;
  if (z_before < 16) return 2;
  if (z_before < 64) return 3;
  return 4;
}

// Per context, node 1..255 of the tree over the eight bits (node 0 unused).
using Model = std::array<std::array<std::uint16_t, 256>, kContexts>;

void reset(Model& m) {
  for (auto& tree : m) tree.fill(1u << (kProbBits - 1));
}

class Encoder {
 public:
  explicit Encoder(std::vector<std::uint8_t>& out) : out_(out) { out_.clear(); }
  void bit(std::uint16_t& p, unsigned b) {
    const std::uint32_t bound = (range_ >> kProbBits) * p;
    if (b == 0) {
      range_ = bound;
      p = static_cast<std::uint16_t>(p + (((1u << kProbBits) - p) >> kMoveBits));
    } else {
      low_ += bound;
      range_ -= bound;
      p = static_cast<std::uint16_t>(p - (p >> kMoveBits));
    }
    while (range_ < kTop) {
      range_ <<= 8;
      shift_low();
    }
  }
  void finish() {
    for (int i = 0; i < 5; ++i) shift_low();
  }

 private:
  void shift_low() {
    if (static_cast<std::uint32_t>(low_) < 0xFF000000u || (low_ >> 32) != 0) {
      const auto carry = static_cast<std::uint8_t>(low_ >> 32);
      std::uint8_t byte = cache_;
      do {
        out_.push_back(static_cast<std::uint8_t>(byte + carry));
        byte = 0xFF;
      } while (--pending_ != 0);
      cache_ = static_cast<std::uint8_t>(low_ >> 24);
    }
    ++pending_;
    low_ = (low_ & 0x00FFFFFFu) << 8;
  }
  std::vector<std::uint8_t>& out_;
  std::uint64_t low_ = 0;
  std::uint32_t range_ = 0xFFFFFFFFu;
  std::uint8_t cache_ = 0;
  std::uint64_t pending_ = 1;
};

class Decoder {
 public:
  Decoder(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  // False when the bytes are fewer than 5 or the first is not 0 (the encoder's first byte).
  bool start() {
    if (size_ < 5 || data_[0] != 0) return false;
    for (pos_ = 1; pos_ < 5; ++pos_) code_ = (code_ << 8) | data_[pos_];
    return true;
  }
  // False when the bytes end before the decision is whole.
  bool bit(std::uint16_t& p, unsigned& b) {
    const std::uint32_t bound = (range_ >> kProbBits) * p;
    if (code_ < bound) {
      range_ = bound;
      p = static_cast<std::uint16_t>(p + (((1u << kProbBits) - p) >> kMoveBits));
      b = 0;
    } else {
      code_ -= bound;
      range_ -= bound;
      p = static_cast<std::uint16_t>(p - (p >> kMoveBits));
      b = 1;
    }
    while (range_ < kTop) {
      if (pos_ == size_) return false;
      range_ <<= 8;
      code_ = (code_ << 8) | data_[pos_++];
    }
    return true;
  }
  std::size_t left() const { return size_ - pos_; }

 private:
  const std::uint8_t* data_;
  std::size_t size_, pos_ = 0;
  std::uint32_t code_ = 0, range_ = 0xFFFFFFFFu;
};

}  // namespace

void encode(const std::int8_t* q, std::size_t n, std::vector<std::uint8_t>& out) {
  Model model;
  reset(model);
  Encoder e(out);
  unsigned before = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned z = zigzag(q[i]);
    auto& tree = model[static_cast<std::size_t>(context(before))];
    unsigned node = 1;
    for (int k = 7; k >= 0; --k) {
      const unsigned b = (z >> k) & 1u;
      e.bit(tree[node], b);
      node = 2 * node + b;
    }
    before = z;
  }
  e.finish();
}

std::string decode(const std::uint8_t* data, std::size_t size, std::size_t n, std::int8_t* q) {
  Decoder d(data, size);
  if (!d.start())
    return size < 5 ? "has " + std::to_string(size) + " bytes, fewer than the 5 of any code"
                    : std::string("does not start with a zero byte");
  Model model;
  reset(model);
  unsigned before = 0;
  for (std::size_t i = 0; i < n; ++i) {
    auto& tree = model[static_cast<std::size_t>(context(before))];
    unsigned node = 1;
    for (int k = 0; k < 8; ++k) {
      unsigned b = 0;
      if (!d.bit(tree[node], b)) return "ends inside integer " + std::to_string(i);
      node = 2 * node + b;
    }
    const unsigned z = node - 256;
    if (z > kMaxZigzag) return "has integer " + std::to_string(i) + " past 127";
    q[i] = static_cast<std::int8_t>((z & 1u) ? -static_cast<int>((z + 1) / 2)
                                             : static_cast<int>(z / 2));
    before = z;
  }
  if (d.left() != 0) return "has " + std::to_string(d.left()) + " bytes past its integers";
  return std::string();
}

}  // namespace dsaga::range
