// Integers as a q8 vector holds them (-127..127), for the tests of the wire's lossless codes
// (rice_test, range_test).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace dsaga::test {

// n integers, Laplace-like: a geometric magnitude of mean ~spread, clipped to 127, random sign.
inline std::vector<std::int8_t> draw_q8_integers(std::size_t n, int spread, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::int8_t> q(n);
  for (auto& x : q) {
    std::geometric_distribution<int> magnitude(1.0 / (1.0 + spread));
    const int m = std::min(127, magnitude(rng));
    x = static_cast<std::int8_t>(rng() % 2 ? m : -m);
  }
  return q;
}

}  // namespace dsaga::test
