// The wire's range code of q8 integers (lib/src/range.hpp): exact both ways, near the order-0
// entropy where the integers crowd near zero, and every malformed stream refused with its reason.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "q8_integers.hpp"
#include "range.hpp"
#include "rice.hpp"

namespace dsaga {
namespace {

using test::draw_q8_integers;

std::vector<std::int8_t> round_trip(const std::vector<std::int8_t>& q,
                                    std::size_t* size = nullptr) {
  std::vector<std::uint8_t> coded;
  range::encode(q.data(), q.size(), coded);
  if (size) *size = coded.size();
  std::vector<std::int8_t> back(q.size(), 99);
  EXPECT_EQ(range::decode(coded.data(), coded.size(), q.size(), back.data()), "");
  return back;
}

// Bits an integer of q's order-0 entropy.
double entropy_bits(const std::vector<std::int8_t>& q) {
  std::vector<double> count(256, 0.0);
  for (const std::int8_t x : q) count[static_cast<std::uint8_t>(x)] += 1;
  double bits = 0.0;
  for (const double c : count)
    if (c > 0) bits -= c * std::log2(c / static_cast<double>(q.size()));
  return bits / static_cast<double>(q.size());
}

TEST(Range, EveryVectorComesBackExactly) {
  for (std::size_t n : {0u, 1u, 63u, 64u, 65u, 1000u, 100000u}) {
    for (int spread : {0, 1, 5, 40, 1000}) {
      SCOPED_TRACE(std::to_string(n) + " entries, spread " + std::to_string(spread));
      const auto q = draw_q8_integers(n, spread, n * 31 + static_cast<std::size_t>(spread));
      EXPECT_EQ(round_trip(q), q);
    }
  }
  // Every value, and long runs of the extremes (the carries of the coder).
  std::vector<std::int8_t> all;
  for (int v = -127; v <= 127; ++v) all.push_back(static_cast<std::int8_t>(v));
  for (int i = 0; i < 5000; ++i) all.push_back(static_cast<std::int8_t>(i % 3 == 0 ? -127 : 127));
  for (int i = 0; i < 5000; ++i) all.push_back(0);
  EXPECT_EQ(round_trip(all), all);
}

TEST(Range, IsNearTheEntropyAndShorterThanRice) {
  std::size_t size = 0;
  const std::vector<std::int8_t> zeros(6400, 0);
  round_trip(zeros, &size);
  // Once the model has learnt them, about 0.17 bits each: eight decisions at the probability's
  // ceiling of 1 - 1/64 or so (11 bits, moved by 1/32).
  EXPECT_LT(size, 6400u / 32);
  for (int spread : {5, 40}) {
    SCOPED_TRACE(spread);
    const auto q = draw_q8_integers(100000, spread, 7);
    round_trip(q, &size);
    const double bits = 8.0 * static_cast<double>(size) / static_cast<double>(q.size());
    EXPECT_LT(bits, entropy_bits(q) * 1.03);
    EXPECT_LT(size, rice::bytes(q.data(), rice::Blocks{q.size(), nullptr, 0}));
  }
}

TEST(Range, MalformedStreamsAreRefusedWithTheirReason) {
  const std::vector<std::int8_t> q = {3, -2, 0, 127, -127};
  std::vector<std::uint8_t> coded;
  range::encode(q.data(), q.size(), coded);
  std::vector<std::int8_t> out(q.size());
  const auto decode = [&](const std::vector<std::uint8_t>& bytes) {
    return range::decode(bytes.data(), bytes.size(), q.size(), out.data());
  };
  ASSERT_EQ(decode(coded), "");
  EXPECT_EQ(out, q);
  EXPECT_EQ(decode({}), "has 0 bytes, fewer than the 5 of any code");
  std::vector<std::uint8_t> first = coded;
  first[0] = 7;
  EXPECT_EQ(decode(first), "does not start with a zero byte");
  std::vector<std::uint8_t> cut(coded.begin(), coded.end() - 1);
  EXPECT_NE(decode(cut).find("ends inside integer"), std::string::npos) << decode(cut);
  std::vector<std::uint8_t> longer = coded;
  longer.push_back(0);
  EXPECT_EQ(decode(longer), "has 1 bytes past its integers");
  // All ones after the zero byte: the tree's last leaf, zigzag 255 (-128).
  const std::vector<std::uint8_t> over = {0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
  std::int8_t single = 0;
  EXPECT_EQ(range::decode(over.data(), over.size(), 1, &single), "has integer 0 past 127");
  // Arbitrary bytes decode to some integers or a reason, never past their end.
  std::mt19937_64 rng(3);
  for (int t = 0; t < 2000; ++t) {
    std::vector<std::uint8_t> junk(5 + rng() % 40);
    for (auto& b : junk) b = static_cast<std::uint8_t>(rng());
    junk[0] = 0;
    std::vector<std::int8_t> ints(1 + rng() % 60);
    const std::string why = range::decode(junk.data(), junk.size(), ints.size(), ints.data());
    for (const std::int8_t x : ints) EXPECT_GE(x, -127);
    (void)why;
  }
}

}  // namespace
}  // namespace dsaga
