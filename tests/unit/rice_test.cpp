// The wire's Rice codes of q8 integers (lib/src/rice.hpp): exact both ways, shorter where the
// integers crowd near zero, and every malformed stream refused with its reason.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "q8_integers.hpp"
#include "rice.hpp"

namespace dsaga {
namespace {

using test::draw_q8_integers;

std::vector<std::int8_t> round_trip(const std::vector<std::int8_t>& q, const rice::Blocks& b,
                                    std::size_t* size = nullptr) {
  std::vector<std::uint8_t> coded;
  rice::encode(q.data(), b, coded);
  EXPECT_EQ(coded.size(), rice::bytes(q.data(), b));
  if (size) *size = coded.size();
  std::vector<std::int8_t> back(q.size(), 99);
  EXPECT_EQ(rice::decode(coded.data(), coded.size(), b, back.data()), "");
  return back;
}

TEST(Rice, EveryVectorComesBackExactly) {
  for (std::size_t n : {1u, 63u, 64u, 65u, 1000u}) {
    for (int spread : {0, 1, 5, 40, 1000}) {
      SCOPED_TRACE(std::to_string(n) + " entries, spread " + std::to_string(spread));
      const auto q = draw_q8_integers(n, spread, n * 31 + static_cast<std::size_t>(spread));
      EXPECT_EQ(round_trip(q, rice::Blocks{n, nullptr, 0}), q);
      // Runs, as a restricted vector's blocks: 1..64 entries each.
      std::vector<std::uint8_t> runs;
      for (std::size_t left = n, r = 1; left > 0; r = r % 64 + 7) {
        runs.push_back(static_cast<std::uint8_t>(std::min(left, r)));
        left -= runs.back();
      }
      EXPECT_EQ(round_trip(q, rice::Blocks{n, runs.data(), runs.size()}), q);
    }
  }
  const std::vector<std::int8_t> extremes = {127, -127, 0, 1, -1, 126, -126, 127};
  EXPECT_EQ(round_trip(extremes, rice::Blocks{extremes.size(), nullptr, 0}), extremes);
}

TEST(Rice, IsShorterWhereTheIntegersCrowdNearZero) {
  std::size_t size = 0;
  const std::vector<std::int8_t> zeros(640, 0);  // k = 0: one bit each, 3 a block
  round_trip(zeros, rice::Blocks{zeros.size(), nullptr, 0}, &size);
  EXPECT_EQ(size, (10 * (3 + 64) + 7) / 8);
  // Magnitudes of mean ~5: k = 3, about 5 bits each.
  const auto near = draw_q8_integers(6400, 5, 1);
  round_trip(near, rice::Blocks{near.size(), nullptr, 0}, &size);
  EXPECT_LT(size, near.size() * 2 / 3);
  // Spread over the whole range the codes are longer than bytes (the wire then sends bytes).
  std::vector<std::int8_t> wide(6400);
  std::mt19937_64 rng(2);
  for (auto& x : wide) x = static_cast<std::int8_t>(static_cast<int>(rng() % 255) - 127);
  EXPECT_GT(rice::bytes(wide.data(), rice::Blocks{wide.size(), nullptr, 0}), wide.size());
}

TEST(Rice, MalformedStreamsAreRefusedWithTheirReason) {
  const std::vector<std::int8_t> q = {3, -2, 0};  // k = 1: 13 bits, 3 of padding
  const rice::Blocks b{q.size(), nullptr, 0};
  std::vector<std::uint8_t> coded;
  rice::encode(q.data(), b, coded);
  std::vector<std::int8_t> out(q.size());
  const auto decode = [&](const std::vector<std::uint8_t>& bytes) {
    return rice::decode(bytes.data(), bytes.size(), b, out.data());
  };
  ASSERT_EQ(coded.size(), 2u);
  ASSERT_EQ(decode(coded), "");
  EXPECT_EQ(decode({}), "ends before integer 0");
  std::vector<std::uint8_t> cut(coded.begin(), coded.end() - 1);
  EXPECT_NE(decode(cut).find("ends inside integer"), std::string::npos) << decode(cut);
  std::vector<std::uint8_t> longer = coded;
  longer.push_back(0);
  EXPECT_NE(decode(longer).find("bits past its integers"), std::string::npos) << decode(longer);
  std::vector<std::uint8_t> padded = coded;
  padded.back() = static_cast<std::uint8_t>(padded.back() | 0x80);  // a one in the padding
  EXPECT_NE(decode(padded).find("bits past its integers"), std::string::npos) << decode(padded);
  // k = 0 and 255 one-bits: a zigzag past 254 (-128).
  std::vector<std::uint8_t> big(40, 0xFF);
  big[0] = 0xF8;  // k = 0 in the first 3 bits, then ones
  EXPECT_EQ(decode(big), "has integer 0 past 127");
  // k = 7 (bits 111), high part 1 (bits 10), low part 127: zigzag 255.
  const std::vector<std::uint8_t> over = {0xEF, 0x0F};
  std::int8_t single = 0;
  EXPECT_EQ(rice::decode(over.data(), over.size(), rice::Blocks{1, nullptr, 0}, &single),
            "has integer 0 past 127");
}

}  // namespace
}  // namespace dsaga
