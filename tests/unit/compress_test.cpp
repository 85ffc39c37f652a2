// Compact encodings of the agents' deltas with error feedback (compress.hpp): what is sent is
// exactly representable and travels without loss, and sent + residual is exactly what was owed.
#include "dsaga/compress.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <vector>

#include "dsaga/rng.hpp"

namespace dsaga {
namespace {

using compress::Encoding;

// Values over many orders of magnitude, both signs, zeros, and blocks of one scale.
std::vector<double> awkward(std::size_t n, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<double> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    const double sign = rng.uniform() < 0.5 ? -1.0 : 1.0;
    v[i] = sign * std::pow(10.0, -12.0 + 16.0 * rng.uniform());
    if (i % 17 == 0) v[i] = 0.0;
  }
  for (std::size_t i = 128; i < std::min<std::size_t>(n, 192); ++i) v[i] = 3.0;  // a flat block
  return v;
}

TEST(Compress, NamesRoundTrip) {
  for (Encoding e : {Encoding::f64, Encoding::f32, Encoding::q8})
    EXPECT_EQ(compress::parse_encoding(compress::to_string(e)), e);
  EXPECT_FALSE(compress::parse_encoding("int8"));
  EXPECT_EQ(compress::payload_bytes(Encoding::q8, 130), 130u + 4 * 3);  // 3 float scales
  EXPECT_EQ(compress::payload_bytes(Encoding::q8, 64 * 8), 64u * 8 + 2 * 8);  // 8 in bfloat16
  EXPECT_EQ(compress::payload_bytes(Encoding::f32, 130), 520u);
}

// What is sent plus the new residual is what was owed (the delta plus the old residual), to the
// one rounding of that sum; and what is sent is exactly representable.
TEST(Compress, SentPlusResidualIsWhatWasOwed) {
  const std::size_t n = 1000;  // not a multiple of the block
  for (Encoding e : {Encoding::f64, Encoding::f32, Encoding::q8}) {
    SCOPED_TRACE(compress::to_string(e));
    std::vector<double> residual = awkward(n, 9);
    for (double& r : residual) r *= 1e-3;
    const std::vector<double> delta = awkward(n, 4);
    std::vector<double> sent = delta;
    const std::vector<double> old = residual;
    compress::round_with_feedback(e, sent.data(), residual.data(), n);
    for (std::size_t i = 0; i < n; ++i) {
      const double owed = delta[i] + old[i];
      EXPECT_EQ(sent[i] + residual[i], owed) << i;  // the residual is exact (Sterbenz)
    }
    if (e == Encoding::f64) {
      for (double r : residual) EXPECT_EQ(r, 0.0);
    }
    if (e == Encoding::f32) {
      EXPECT_TRUE(compress::fits_f32(sent.data(), n));
    }
    std::vector<float> scales(compress::q8_blocks(n));
    std::vector<std::int8_t> q(n);
    if (e == Encoding::q8) {
      ASSERT_TRUE(compress::to_q8(sent.data(), n, scales.data(), q.data()));
      std::vector<double> back(n);
      compress::from_q8(scales.data(), q.data(), n, back.data());
      EXPECT_EQ(back, sent);
      // The rounding is to the nearest level: the residual is at most half a step of its block.
      for (std::size_t i = 0; i < n; ++i)
        EXPECT_LE(std::abs(residual[i]), 0.5 * scales[i / compress::kBlock] * (1 + 1e-6)) << i;
    }
  }
}

// Error feedback: summed over rounds, what was sent follows what was owed within one residual,
// so nothing is lost, only delayed, even when every delta is below the quantization step.
TEST(Compress, FeedbackLosesNothingOverRounds) {
  const std::size_t n = 200;
  for (Encoding e : {Encoding::f32, Encoding::q8}) {
    SCOPED_TRACE(compress::to_string(e));
    Rng rng(5);
    std::vector<double> residual(n, 0.0), owed(n, 0.0), sent_sum(n, 0.0);
    for (int round = 0; round < 300; ++round) {
      std::vector<double> delta(n);
      for (std::size_t i = 0; i < n; ++i) {
        // One large entry per block sets the scale; the others are far under its step.
        delta[i] = (i % compress::kBlock == 0) ? 1.0 : 1e-4 * (rng.uniform() + 0.2);
        owed[i] += delta[i];
      }
      compress::round_with_feedback(e, delta.data(), residual.data(), n);
      for (std::size_t i = 0; i < n; ++i) sent_sum[i] += delta[i];
    }
    for (std::size_t i = 0; i < n; ++i)
      EXPECT_NEAR(sent_sum[i] + residual[i], owed[i], 1e-12 * (1 + std::abs(owed[i]))) << i;
    // Each small entry is under half a step of 1/127, so alone it would round to 0 every round;
    // summed, it gets through (owed is about 2.7 steps), within half a step.
    EXPECT_GT(owed[1], 2.0 / 127);
    EXPECT_NEAR(sent_sum[1], owed[1], 0.5 / 127);
  }
}

TEST(Compress, ExtremesStayFiniteAndExact) {
  std::vector<double> v = {1e300, -1e300, 1e-320, 0.0, -0.0, 3e38, 5e-46};
  const std::vector<double> owed = v;
  for (Encoding e : {Encoding::f32, Encoding::q8}) {
    SCOPED_TRACE(compress::to_string(e));
    std::vector<double> sent = owed;
    std::vector<double> residual(sent.size(), 0.0);
    compress::round_with_feedback(e, sent.data(), residual.data(), sent.size());
    for (std::size_t i = 0; i < sent.size(); ++i) {
      EXPECT_TRUE(std::isfinite(sent[i]) && std::isfinite(residual[i])) << i;
      EXPECT_EQ(sent[i] + residual[i], owed[i]) << i;
    }
    if (e == Encoding::f32) {
      EXPECT_TRUE(compress::fits_f32(sent.data(), sent.size()));
    }
    std::vector<float> scales(1);
    std::vector<std::int8_t> q(sent.size());
    if (e == Encoding::q8) {
      EXPECT_TRUE(compress::to_q8(sent.data(), sent.size(), scales.data(), q.data()));
    }
  }
  // A block of values too small for a normal float scale sends zeros and keeps them all.
  std::vector<double> tiny(10, 1e-300), residual(10, 0.0);
  compress::round_with_feedback(Encoding::q8, tiny.data(), residual.data(), 10);
  for (std::size_t i = 0; i < 10; ++i) {
    EXPECT_EQ(tiny[i], 0.0);
    EXPECT_EQ(residual[i], 1e-300);
  }
}

// A vector the agent did not round is refused by the wire's exact forms (the encoder then sends
// f64): a q8 block whose largest entry is not 127 steps, or a step that is not a float.
TEST(Compress, NotRoundedIsNotRepresentable) {
  std::vector<float> scales(1);
  std::vector<std::int8_t> q(3);
  const std::vector<double> off_grid = {1.0, 0.5, 0.3};
  EXPECT_FALSE(compress::to_q8(off_grid.data(), 3, scales.data(), q.data()));
  const std::vector<double> third = {1.0 / 3.0};
  EXPECT_FALSE(compress::fits_f32(third.data(), 1));
  EXPECT_FALSE(compress::to_q8(third.data(), 1, scales.data(), q.data()));
  const std::vector<double> on_grid = {127.0 * 0.25, -3 * 0.25, 0.0};
  ASSERT_TRUE(compress::to_q8(on_grid.data(), 3, scales.data(), q.data()));
  EXPECT_EQ(scales[0], 0.25f);
  EXPECT_EQ(q[0], 127);
  EXPECT_EQ(q[1], -3);
}


// q8's scales are bfloat16 (protocol 14: 2 bytes on the wire), rounded up so that every
// integer stays within -127..127 and the largest is 126 or 127; a vector q8 already represents
// comes back from quantize unchanged (the hub rounds its basis once and sends it through
// quantize again: the agents must get the values the hub uses), and to_q8 reads it back.
TEST(Compress, ScalesAreBfloat16AndRoundingAgainChangesNothing) {
  const std::size_t n = 64 * 200;
  std::vector<double> v = awkward(n, 5);
  std::vector<double> rounded = v;
  compress::Q8 first;
  compress::round_to_q8(rounded.data(), n, &first);
  int at_126 = 0;
  for (std::size_t b = 0; b < first.scales.size(); ++b) {
    const float s = first.scales[b];
    EXPECT_TRUE(compress::is_bf16(s)) << b << ": " << s;
    if (s == 0.0f) continue;
    int top = 0;
    for (std::size_t i = b * compress::kBlock; i < std::min(n, (b + 1) * compress::kBlock); ++i)
      top = std::max(top, std::abs(static_cast<int>(first.q[i])));
    EXPECT_TRUE(top == 126 || top == 127) << b << ": " << top;
    at_126 += top == 126 ? 1 : 0;
  }
  EXPECT_GT(at_126, 0);  // the case that rounding again used to get wrong is there
  compress::Q8 again;
  compress::quantize(rounded.data(), n, again);
  EXPECT_EQ(again.q, first.q);
  EXPECT_EQ(again.scales, first.scales);
  std::vector<float> scales(compress::q8_blocks(n));
  std::vector<std::int8_t> q(n);
  ASSERT_TRUE(compress::to_q8(rounded.data(), n, scales.data(), q.data()));
  std::vector<double> back(n);
  compress::from_q8(scales.data(), q.data(), n, back.data());
  EXPECT_EQ(back, rounded);
}

// The hub's broadcast changes (compress::Q8): quantize rounds like round_with_feedback, adding
// them is exact, and gathering a support keeps each entry's value (the scales of the blocks it
// touches, over runs).
TEST(Compress, Q8ChangesRoundLikeTheDeltasAndGatherExactly) {
  const std::size_t C = 3, d = 100, n = d * C;
  const std::vector<double> v = awkward(n, 9);
  compress::Q8 x;
  compress::quantize(v.data(), n, x);
  ASSERT_EQ(x.size(), n);
  EXPECT_EQ(compress::check(x), "");
  EXPECT_EQ(x.bytes(), n + 4 * compress::q8_blocks(n));  // 5 scales: floats on the wire
  // The same vector as the agents' rounding would send.
  std::vector<double> rounded = v, residual(n, 0.0);
  compress::round_with_feedback(Encoding::q8, rounded.data(), residual.data(), n);
  std::vector<double> sum(n, 0.0);
  compress::add(x, sum.data());
  EXPECT_EQ(sum, rounded);
  // Adding twice is two exact additions of the same values.
  std::vector<double> base = awkward(n, 10), expected = base;
  for (std::size_t i = 0; i < n; ++i) expected[i] += rounded[i];
  compress::add(x, base.data());
  EXPECT_EQ(base, expected);

  // A support of scattered columns, some runs crossing no block boundary, some several.
  std::vector<std::uint32_t> columns;
  for (std::uint32_t c = 0; c < d; ++c)
    if (c % 7 == 0 || c % 5 == 1 || (c >= 40 && c < 70)) columns.push_back(c);
  compress::Q8 g;
  compress::gather(x, columns, static_cast<int>(C), g);
  ASSERT_EQ(g.size(), columns.size() * C);
  EXPECT_EQ(compress::check(g), "");
  EXPECT_LT(g.scales.size(), g.size());
  std::vector<double> restricted(g.size(), 0.0);
  compress::add(g, restricted.data());
  for (std::size_t k = 0; k < g.size(); ++k)
    ASSERT_EQ(restricted[k], rounded[columns[k / C] * C + k % C]) << k;
  // The runs follow from the columns alone: a receiver that knows them derives the runs, and
  // the wire leaves them out (implied_runs).
  EXPECT_TRUE(g.implied_runs);
  std::vector<std::uint8_t> derived;
  compress::gather_runs(columns, static_cast<int>(C), derived);
  EXPECT_EQ(derived, g.runs);
  compress::Q8 bare = g;
  bare.runs.clear();
  EXPECT_EQ(compress::check(bare, derived), "");
  std::vector<double> again(g.size(), 0.0);
  compress::add(bare, derived, again.data());
  EXPECT_EQ(again, restricted);
  derived.pop_back();
  EXPECT_NE(compress::check(bare, derived), "");

  // check() names what is inconsistent.
  compress::Q8 bad = g;
  bad.runs.back() += 1;
  EXPECT_NE(compress::check(bad), "");
  bad = g;
  bad.runs[0] = 0;
  EXPECT_NE(compress::check(bad), "");
  bad = g;
  bad.scales.pop_back();
  EXPECT_NE(compress::check(bad), "");
  bad = x;
  bad.q[3] = -128;
  EXPECT_NE(compress::check(bad), "");
  bad = x;
  bad.scales[1] = -1.0f;
  EXPECT_NE(compress::check(bad), "");
}

// A column-major matrix's rows on a support, from the whole matrix's q8 blocks: each entry keeps
// its value; round_to_q8 gives the values and their integers and scales at once.
TEST(Compress, RowsOfAQ8MatrixAndRoundingToQ8) {
  const std::size_t rows = 90, cols = 4;
  std::vector<double> m = awkward(rows * cols, 12);
  compress::Q8 whole;
  compress::round_to_q8(m.data(), m.size(), &whole);
  std::vector<double> again(m.size(), 0.0);
  compress::add(whole, again.data());
  EXPECT_EQ(again, m);  // the rounded values are what the integers and scales say
  const std::vector<std::uint32_t> kept = {0, 3, 4, 5, 63, 64, 65, 89};
  compress::Q8 part;
  compress::gather_rows(whole, rows, cols, kept, part);
  EXPECT_EQ(compress::check(part), "");
  std::vector<double> values(part.size(), 0.0);
  compress::add(part, values.data());
  for (std::size_t j = 0; j < cols; ++j)
    for (std::size_t k = 0; k < kept.size(); ++k)
      ASSERT_EQ(values[j * kept.size() + k], m[j * rows + kept[k]]) << j << " " << k;
  std::vector<std::uint8_t> derived;
  compress::gather_rows_runs(rows, cols, kept, derived);
  EXPECT_EQ(derived, part.runs);
  EXPECT_TRUE(part.implied_runs);
}

// Blocks of a sparse model's delta: a few large (common columns), most 1e3-1e5 times smaller
// (rare ones), as on hashed text.
std::vector<double> uneven(std::size_t n, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<double> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t block = i / compress::kBlock;
    const double size = block % 8 == 0 ? 1.0 : std::pow(10.0, -3.0 - 2.0 * rng.uniform());
    v[i] = size * (2.0 * rng.uniform() - 1.0);
  }
  return v;
}

// q8's floor (compress.hpp): where blocks differ widely in size, small blocks are rounded to the
// vector's floor, a power of two above their own step, so their integers are small; the
// vector's squared error stays within kFloorErrorRatio times that of the blocks' own steps;
// sent + residual is still exactly what was owed, and the wire reads the floored blocks back
// exactly. Where the blocks are alike the floor changes nothing.
TEST(Compress, FloorRoundsSmallBlocksToOneStepWithinTheErrorBound) {
  const std::size_t n = 64 * 96 + 10;
  const std::vector<double> owed = uneven(n, 3);
  std::vector<double> plain = owed, plain_r(n, 0.0), floored = owed, floored_r(n, 0.0);
  compress::round_with_feedback(Encoding::q8, plain.data(), plain_r.data(), n);
  compress::round_with_feedback(Encoding::q8, floored.data(), floored_r.data(), n, true);
  double plain_err = 0.0, floored_err = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    EXPECT_EQ(floored[i] + floored_r[i], owed[i]) << i;
    plain_err += plain_r[i] * plain_r[i];
    floored_err += floored_r[i] * floored_r[i];
  }
  EXPECT_GT(floored_err, plain_err);  // the floor is on: it rounds coarser
  // The bound is on the expected error (s^2 / 12 an entry); the realized one is near it.
  EXPECT_LE(floored_err, 1.2 * compress::kFloorErrorRatio * plain_err);
  std::vector<float> scales(compress::q8_blocks(n));
  std::vector<std::int8_t> q(n);
  ASSERT_TRUE(compress::to_q8(floored.data(), n, scales.data(), q.data()));
  std::vector<double> back(n);
  compress::from_q8(scales.data(), q.data(), n, back.data());
  EXPECT_EQ(back, floored);
  // The small blocks share one power-of-two step over their own, and send integers of a few
  // levels; the large blocks keep their own step (the largest integer at 126 or 127).
  std::size_t small_levels = 0, small_blocks = 0;
  for (std::size_t b = 0; b < scales.size(); ++b) {
    int top = 0;
    for (std::size_t i = b * compress::kBlock; i < std::min(n, (b + 1) * compress::kBlock); ++i)
      top = std::max(top, std::abs(static_cast<int>(q[i])));
    if (b % 8 == 0) {
      EXPECT_TRUE(top == 126 || top == 127) << b << ": " << top;
    } else {
      const float s = scales[b];
      EXPECT_EQ(std::exp2(std::round(std::log2(s))), s) << b;  // a power of two
      small_levels += static_cast<std::size_t>(top);
      ++small_blocks;
    }
  }
  EXPECT_LT(small_levels, 8 * small_blocks);  // against 126 or 127 each without the floor
  // The hub's quantize under the floor rounds like the agents' (the same vector, no residual).
  compress::Q8 x;
  compress::quantize(owed.data(), n, x, true);
  std::vector<double> sum(n, 0.0);
  compress::add(x, sum.data());
  EXPECT_EQ(sum, floored);
  // Alike blocks: the floor is under every step and changes nothing.
  const std::vector<double> alike = awkward(64 * 4, 7);
  std::vector<double> a = alike, ar(alike.size(), 0.0), f = alike, fr(alike.size(), 0.0);
  for (double& x : a) x = std::clamp(x, -1.0, 1.0) + (x >= 0 ? 0.5 : -0.5);
  f = a;
  compress::round_with_feedback(Encoding::q8, a.data(), ar.data(), a.size());
  compress::round_with_feedback(Encoding::q8, f.data(), fr.data(), f.size(), true);
  EXPECT_EQ(a, f);
  // A zero vector and a vector of tiny values keep their rule: zeros, all in the residual.
  std::vector<double> tiny(70, 1e-300), tr(70, 0.0);
  compress::round_with_feedback(Encoding::q8, tiny.data(), tr.data(), 70, true);
  for (std::size_t i = 0; i < 70; ++i) EXPECT_EQ(tr[i], 1e-300);
}

// Two-level's basis under the floor (hub_two_level.cpp): the hub rounds U once and sends it
// through quantize again, which must read each floored block's power-of-two scale back and keep
// the values; without the floor's readback it would round them again onto another step.
TEST(Compress, BasisRoundedUnderTheFloorComesBackUnchanged) {
  const std::size_t n = 64 * 40 + 3;
  std::vector<double> u = uneven(n, 8);
  for (std::size_t i = 0; i < n; ++i)
    if ((i / compress::kBlock) % 8 != 0) u[i] = std::copysign(0.05, u[i]) * (i % 7) / 6.0;
  compress::Q8 first;
  compress::round_to_q8(u.data(), n, &first, true);
  EXPECT_GT(first.scales[1], 0.05f / 127 * 2);  // floored, with integers of a few levels
  EXPECT_LT(first.scales[1], 0.05f / 2);
  compress::Q8 again;
  compress::quantize(u.data(), n, again, true);
  std::vector<double> back(n, 0.0);
  compress::add(again, back.data());
  EXPECT_EQ(back, u);
  compress::Q8 plain;
  compress::quantize(u.data(), n, plain);
  std::vector<double> moved(n, 0.0);
  compress::add(plain, moved.data());
  EXPECT_NE(moved, u);
}

// Error feedback under the floor: summed over rounds, nothing is lost, and each round's error
// stays within its bound, so the sent sum follows the owed one.
TEST(Compress, FloorLosesNothingOverRounds) {
  const std::size_t n = 64 * 16;
  std::vector<double> residual(n, 0.0), owed(n, 0.0), sent_sum(n, 0.0);
  for (int round = 0; round < 100; ++round) {
    std::vector<double> delta = uneven(n, 100 + static_cast<std::uint64_t>(round));
    for (std::size_t i = 0; i < n; ++i) owed[i] += delta[i];
    compress::round_with_feedback(Encoding::q8, delta.data(), residual.data(), n, true);
    for (std::size_t i = 0; i < n; ++i) sent_sum[i] += delta[i];
  }
  double worst = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    EXPECT_NEAR(sent_sum[i] + residual[i], owed[i], 1e-12) << i;
    worst = std::max(worst, std::abs(residual[i]));
  }
  EXPECT_LT(worst, 0.05);  // one floored step at most, not 100 rounds' worth
}

// The hub's error feedback on the broadcast: with w fixed, each round's changes shrink what the
// broadcast lacks by a factor of about 254 per block, so it reaches w in a few rounds.
TEST(Compress, BroadcastWithFeedbackReachesTheTarget) {
  const std::size_t n = 500;
  const std::vector<double> w = awkward(n, 11);
  std::vector<double> b(n, 0.0), change(n);
  double last = INFINITY;
  for (int round = 0; round < 6; ++round) {
    for (std::size_t i = 0; i < n; ++i) change[i] = w[i] - b[i];
    compress::Q8 x;
    compress::quantize(change.data(), n, x);
    compress::add(x, b.data());
    double gap = 0.0;
    for (std::size_t i = 0; i < n; ++i) gap = std::max(gap, std::abs(w[i] - b[i]));
    EXPECT_LE(gap, last / 100) << round;
    last = gap;
  }
  EXPECT_LE(last, 1e-10);
}

}  // namespace
}  // namespace dsaga
