#include "rice.hpp"

#include <algorithm>

namespace dsaga::rice {

namespace {

constexpr std::size_t kBlock = 64;  // compress::kBlock
constexpr unsigned kMaxZigzag = 254;  // -127..127

unsigned zigzag(std::int8_t q) {
  const int v = q;
  return v >= 0 ? 2u * static_cast<unsigned>(v) : 2u * static_cast<unsigned>(-v) - 1u;
}

// Calls f(begin, length) for each block.
template <class F>
void for_each_block(const Blocks& b, F&& f) {
  if (b.runs_count == 0) {
    for (std::size_t i = 0; i < b.n; i += kBlock) f(i, std::min(kBlock, b.n - i));
    return;
  }
  std::size_t i = 0;
  for (std::size_t r = 0; r < b.runs_count; ++r) {
    f(i, static_cast<std::size_t>(b.runs[r]));
    i += b.runs[r];
  }
}

// The best k of a block and its bits (3 for k included).
std::pair<unsigned, std::size_t> best_k(const std::int8_t* q, std::size_t len) {
  std::size_t sum[8] = {};
  for (std::size_t i = 0; i < len; ++i) {
    const unsigned z = zigzag(q[i]);
    for (unsigned k = 0; k < 8; ++k) sum[k] += z >> k;
  }
  unsigned best = 0;
  std::size_t best_bits = 0;
  for (unsigned k = 0; k < 8; ++k) {
    const std::size_t bits = 3 + len * (1 + k) + sum[k];
    if (k == 0 || bits < best_bits) {
      best = k;
      best_bits = bits;
    }
  }
  return {best, best_bits};
}

class BitWriter {
 public:
  explicit BitWriter(std::vector<std::uint8_t>& out) : out_(out) { out_.clear(); }
  void put(unsigned value, unsigned bits) {  // the low `bits` of value, least significant first
    for (unsigned i = 0; i < bits; ++i) bit((value >> i) & 1u);
  }
  void ones(unsigned count) {
    for (unsigned i = 0; i < count; ++i) bit(1);
  }
  void bit(unsigned b) {
    if (used_ == 0) out_.push_back(0);
    out_.back() = static_cast<std::uint8_t>(out_.back() | (b << used_));
    used_ = (used_ + 1) % 8;
  }

 private:
  std::vector<std::uint8_t>& out_;
  unsigned used_ = 0;  // bits used in the last byte (0: a new byte next)
};

class BitReader {
 public:
  BitReader(const std::uint8_t* data, std::size_t size) : data_(data), bits_(8 * size) {}
  bool get(unsigned bits, unsigned& value) {
    if (bits_ - pos_ < bits) return false;
    value = 0;
    for (unsigned i = 0; i < bits; ++i, ++pos_)
      value |= static_cast<unsigned>((data_[pos_ / 8] >> (pos_ % 8)) & 1u) << i;
    return true;
  }
  // The number of one-bits before the next zero-bit, which is consumed; false if the bits end
  // first or the count passes `limit`.
  bool unary(unsigned limit, unsigned& count) {
    count = 0;
    for (;;) {
      if (pos_ == bits_) return false;
      const unsigned b = (data_[pos_ / 8] >> (pos_ % 8)) & 1u;
      ++pos_;
      if (b == 0) return true;
      if (++count > limit) return false;
    }
  }
  std::size_t position() const { return pos_; }
  std::size_t size() const { return bits_; }
  bool rest_is_zero() const {
    for (std::size_t p = pos_; p < bits_; ++p)
      if ((data_[p / 8] >> (p % 8)) & 1u) return false;
    return true;
  }

 private:
  const std::uint8_t* data_;
  std::size_t bits_, pos_ = 0;
};

}  // namespace

std::size_t bytes(const std::int8_t* q, const Blocks& blocks) {
  std::size_t bits = 0;
  for_each_block(blocks, [&](std::size_t i, std::size_t len) { bits += best_k(q + i, len).second; });
  return (bits + 7) / 8;
}

void encode(const std::int8_t* q, const Blocks& blocks, std::vector<std::uint8_t>& out) {
  BitWriter w(out);
  for_each_block(blocks, [&](std::size_t i, std::size_t len) {
    const unsigned k = best_k(q + i, len).first;
    w.put(k, 3);
    for (std::size_t j = i; j < i + len; ++j) {
      const unsigned z = zigzag(q[j]);
      w.ones(z >> k);
      w.bit(0);
      w.put(z, k);
    }
  });
}

std::string decode(const std::uint8_t* data, std::size_t size, const Blocks& blocks,
                   std::int8_t* q) {
  BitReader r(data, size);
  std::string why;
  for_each_block(blocks, [&](std::size_t i, std::size_t len) {
    if (!why.empty()) return;
    unsigned k = 0;
    if (!r.get(3, k)) {
      why = "ends before integer " + std::to_string(i);
      return;
    }
    for (std::size_t j = i; j < i + len; ++j) {
      unsigned high = 0, low = 0;
      if (!r.unary(kMaxZigzag >> k, high)) {
        why = r.position() == r.size() ? "ends inside integer " + std::to_string(j)
                                       : "has integer " + std::to_string(j) + " past 127";
        return;
      }
      if (!r.get(k, low)) {
        why = "ends inside integer " + std::to_string(j);
        return;
      }
      const unsigned z = (high << k) | low;
      if (z > kMaxZigzag) {
        why = "has integer " + std::to_string(j) + " past 127";
        return;
      }
      q[j] = static_cast<std::int8_t>((z & 1u) ? -static_cast<int>((z + 1) / 2)
                                               : static_cast<int>(z / 2));
    }
  });
  if (!why.empty()) return why;
  if (r.size() - r.position() >= 8 || !r.rest_is_zero())
    return "has " + std::to_string(r.size() - r.position()) + " bits past its integers that are "
           "not the last byte's zero padding";
  return std::string();
}

}  // namespace dsaga::rice
