// The dense kernels of lib/src/simd.hpp: every build this CPU runs (portable, AVX2, AVX-512)
// gives bitwise the results of the portable build, and the fused update + next dot product
// gives bitwise what the two kernels give one after the other. Lengths cover the vector bodies
// and every tail (d mod 16), float and double rows, with and without the eager shrink.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "simd.hpp"

namespace {

using dsaga::Index;
using dsaga::simd::Isa;

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

template <class S>
std::vector<S> random_row(Index d, std::mt19937_64& gen) {
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<S> x(static_cast<std::size_t>(d));
  for (auto& e : x) e = static_cast<S>(u(gen));
  return x;
}

// The state of one kernel call: v, g0, delta with values of mixed magnitude.
struct State {
  std::vector<double> v, g0, delta;
  State(Index d, std::mt19937_64& gen)
      : v(random_row<double>(d, gen)), g0(random_row<double>(d, gen)),
        delta(random_row<double>(d, gen)) {
    for (std::size_t k = 0; k < v.size(); k += 3) v[k] *= 1e-7;  // cancellations in the sums
  }
};

std::vector<Isa> builds() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::portable, Isa::avx2, Isa::avx512}) {
    if (dsaga::simd::supported(isa)) out.push_back(isa);
  }
  return out;
}

const Index kLengths[] = {0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 785};

template <class S>
void check_all_builds_agree() {
  std::mt19937_64 gen(7);
  for (const Index d : kLengths) {
    const auto x = random_row<S>(d, gen), xn = random_row<S>(d, gen);
    const State start(d, gen);
    const double diff = 0.37, c = 1.3e-3, inv_N = 1.0 / 60000.0;
    for (const bool shrink : {false, true}) {
      const double alpha = shrink ? 0.999 : 1.0;
      // Reference: portable update, then portable dot on the result.
      State ref = start;
      const double dot0 = dsaga::simd::dot(Isa::portable, x.data(), start.v.data(), d,
                                           static_cast<const S*>(nullptr));
      if (shrink) {
        dsaga::simd::update<true>(Isa::portable, x.data(), d, diff, alpha, c, inv_N, ref.v.data(),
                                  ref.g0.data(), ref.delta.data());
      } else {
        dsaga::simd::update<false>(Isa::portable, x.data(), d, diff, alpha, c, inv_N,
                                   ref.v.data(), ref.g0.data(), ref.delta.data());
      }
      const double dot1 = dsaga::simd::dot(Isa::portable, xn.data(), ref.v.data(), d,
                                           static_cast<const S*>(nullptr));
      for (const Isa isa : builds()) {
        SCOPED_TRACE(testing::Message() << dsaga::simd::name(isa) << " d=" << d
                                        << " shrink=" << shrink << " bytes=" << sizeof(S));
        EXPECT_TRUE(same_bits(dsaga::simd::dot(isa, x.data(), start.v.data(), d, xn.data()), dot0));
        // The two kernels in turn.
        State two = start;
        if (shrink) {
          dsaga::simd::update<true>(isa, x.data(), d, diff, alpha, c, inv_N, two.v.data(),
                                    two.g0.data(), two.delta.data());
        } else {
          dsaga::simd::update<false>(isa, x.data(), d, diff, alpha, c, inv_N, two.v.data(),
                                     two.g0.data(), two.delta.data());
        }
        // The fused kernel.
        State fused = start;
        const double dot_fused =
            shrink ? dsaga::simd::update_dot<true>(isa, x.data(), d, diff, alpha, c, inv_N,
                                                   fused.v.data(), fused.g0.data(),
                                                   fused.delta.data(), xn.data(), x.data())
                   : dsaga::simd::update_dot<false>(isa, x.data(), d, diff, alpha, c, inv_N,
                                                    fused.v.data(), fused.g0.data(),
                                                    fused.delta.data(), xn.data(),
                                                    static_cast<const S*>(nullptr));
        EXPECT_TRUE(same_bits(dot_fused, dot1)) << dot_fused << " vs " << dot1;
        for (Index k = 0; k < d; ++k) {
          const auto i = static_cast<std::size_t>(k);
          ASSERT_TRUE(same_bits(two.v[i], ref.v[i])) << "v[" << k << "] (update)";
          ASSERT_TRUE(same_bits(two.delta[i], ref.delta[i])) << "delta[" << k << "] (update)";
          ASSERT_TRUE(same_bits(fused.v[i], ref.v[i])) << "v[" << k << "] (update_dot)";
          ASSERT_TRUE(same_bits(fused.delta[i], ref.delta[i])) << "delta[" << k << "] (update_dot)";
        }
        EXPECT_EQ(fused.g0, start.g0);  // read only
      }
    }
  }
}

TEST(Simd, EveryBuildGivesThePortableBitsFloatRows) { check_all_builds_agree<float>(); }
TEST(Simd, EveryBuildGivesThePortableBitsDoubleRows) { check_all_builds_agree<double>(); }

TEST(Simd, TheUpdateMovesVAsTheFormulaSays) {
  // One entry by hand: u = diff * x; v' = alpha * v - c * (u + g0 + delta / N); delta' = delta + u.
  const float x[1] = {2.0f};
  double v[1] = {1.0}, g0[1] = {0.5}, delta[1] = {4.0};
  dsaga::simd::update<true>(Isa::portable, x, 1, 0.25, 0.5, 0.1, 0.5, v, g0, delta);
  EXPECT_DOUBLE_EQ(v[0], 0.5 * 1.0 - 0.1 * (0.5 + 0.5 + 2.0));
  EXPECT_DOUBLE_EQ(delta[0], 4.5);
}

TEST(Simd, TheChosenBuildIsOneThisCpuRuns) {
  EXPECT_TRUE(dsaga::simd::supported(dsaga::simd::isa()));
  EXPECT_TRUE(dsaga::simd::supported(Isa::portable));
}

}  // namespace
