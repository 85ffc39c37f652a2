// The convergence benchmark's problems, all built from Fashion-MNIST's 60,000 training images
// (Debian's dataset-fashion-mnist; ALGORITHM.md section 5), with the raw labels kept so that the
// shards are cut on the original classes whatever the loss maps them to:
//
//   B1  binary logistic: pixels / 255, each row scaled to unit L2 norm, then a constant 1
//       (d = 785); y = +1 for classes {0, 2, 4, 6}.
//   B2  10-class multinomial logistic on the same features (d = 785).
//   B1r, B2r  B1 and B2 on raw pixels / 255 (rows not normalised; the constant 1 kept): badly
//       conditioned, many points almost flat at the optimum (ALGORITHM.md section 7.3).
//   S1  sparse binary logistic with d = 2^18 + 1: hashed 2x2 patch codes. Each pixel p / 255 is
//       quantised to 5 levels, min(4, floor(5 p / 255)); each of the 27 x 27 overlapping 2x2
//       patches whose 4 levels are not all 0 gives the key (patch position, its 4 levels) out of
//       729 * 5^4 = 455,625, which SplitMix64's finaliser hashes to a column in 0..2^18 - 1
//       (keys that share a column add up); a row holds the counts of its columns, scaled to unit
//       L2 norm, then a constant 1 in column 2^18. Labels as B1. Stored CSR, float64. By label
//       with K = 10 each shard holds one class, with its own column support. The columns are
//       hashed, so every shard's highest column is near 2^18 (the bias is the last column): the
//       shards are not narrower than the model by nature, and all keep the common width d (the
//       hub requires every agent's width to be the model's).
//   D1  small dense binary logistic with d = 64, rows deliberately not normalised: a fixed
//       random projection of the pixels / 255 onto 63 dimensions (a 63 x 784 matrix of +-1 from
//       the library's Rng, seed 0xD1, divided by sqrt(63)), divided by the mean row norm of the
//       projection (so a typical row has norm 1), each row then multiplied by s_i = u_i^(-1/6)
//       with u_i uniform in (0, 1] (Rng seed 0xD2, one draw per row in order: a Pareto tail
//       with index 6 in s, 3 in s^2), then a constant 1. The row norms are heavy-tailed:
//       L_max / L_avg is printed by the benchmark (44 on the whole training set). Labels as B1.
//       The whole space is small enough for two-level dSAGA's coarse space to be all of it.
//
// lambda is 1/N for all four unless the benchmark is told otherwise.
#pragma once

#include <string>
#include <vector>

#include "dsaga/dataset.hpp"
#include "dsaga/objective.hpp"
#include "dsaga/status.hpp"

namespace dsaga::bench {

struct Problem {
  Dataset data;                  // features built, labels still the raw classes 0..9
  Objective objective;           // loss and classes (lambda left to the caller)
  std::vector<double> positive;  // raw labels that become +1 (logistic)
};

// "B1", "B2", "B1r", "B2r", "S1" or "D1" from the first `limit` training images (0 = all 60,000).
Result<Problem> load_problem(const std::string& name, Index limit);

}  // namespace dsaga::bench
