// A small, fully specified random number generator (SplitMix64), so that a seed gives the same
// sample sequence on every compiler, standard library and architecture (x86_64, aarch64, armhf):
// the emulated-ARM tests compare runs against native ones with the same seeds.
#pragma once

#include <cstdint>

namespace dsaga {

class Rng {
 public:
  explicit Rng(std::uint64_t seed = 0) : state_(seed) {}

  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }

  // Uniform in [0, n), n > 0, without modulo bias (Lemire's multiply-shift with rejection).
  // Portable 64x64->128 multiply: armhf has no __int128.
  std::uint64_t below(std::uint64_t n) {
    std::uint64_t hi = 0, lo = 0;
    mul128(next(), n, hi, lo);
    if (lo < n) {
      const std::uint64_t threshold = (0 - n) % n;
      while (lo < threshold) mul128(next(), n, hi, lo);
    }
    return hi;
  }

  // Uniform double in [0, 1).
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

  std::uint64_t state() const { return state_; }
  void set_state(std::uint64_t s) { state_ = s; }

 private:
  static void mul128(std::uint64_t a, std::uint64_t b, std::uint64_t& hi, std::uint64_t& lo) {
    const std::uint64_t a_lo = a & 0xFFFFFFFFu, a_hi = a >> 32;
    const std::uint64_t b_lo = b & 0xFFFFFFFFu, b_hi = b >> 32;
    const std::uint64_t p0 = a_lo * b_lo, p1 = a_lo * b_hi, p2 = a_hi * b_lo, p3 = a_hi * b_hi;
    const std::uint64_t mid = (p0 >> 32) + (p1 & 0xFFFFFFFFu) + (p2 & 0xFFFFFFFFu);
    lo = (mid << 32) | (p0 & 0xFFFFFFFFu);
    hi = p3 + (p1 >> 32) + (p2 >> 32) + (mid >> 32);
  }
  std::uint64_t state_;
};

}  // namespace dsaga
