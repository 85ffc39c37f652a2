// A small random problem for the coarse-space and Newton-CG tests (coarse_test, newton_test).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "dsaga/dataset.hpp"
#include "dsaga/objective.hpp"
#include "dsaga/rng.hpp"

namespace dsaga::test {

// n x d data with a bias column (the last), rows of very different norms, labels for
// `objective`. sparse: about 40% of the entries kept, stored sparse, and column `empty_column`
// (when >= 0) never used, so a support leaves it out. Named `source`.
inline Dataset random_problem(Index n, Index d, const Objective& objective, std::uint64_t seed,
                              bool sparse, const std::string& source, Index empty_column = -1) {
  Rng rng(seed);
  DenseMatrix<double> X = DenseMatrix<double>::Zero(n, d);
  Eigen::VectorXd y(n);
  for (Index i = 0; i < n; ++i) {
    const double scale = 0.2 + 3.0 * rng.uniform() * rng.uniform();
    for (Index k = 0; k + 1 < d; ++k)
      if (!sparse || (k != empty_column && rng.uniform() < 0.4))
        X(i, k) = scale * (rng.uniform() * 2 - 1);
    X(i, d - 1) = 1.0;
    const double u = rng.uniform();
    if (objective.loss == Loss::multinomial)
      y[i] = std::floor(u * objective.classes);
    else if (objective.loss == Loss::logistic)
      y[i] = u < 0.4 ? -1.0 : 1.0;
    else
      y[i] = 3 * u - 1;
  }
  Dataset data;
  data.X = X;
  data.y = y;
  if (sparse) data = convert(data, Storage::sparse, Precision::f64);
  data.source = source;
  return data;
}

}  // namespace dsaga::test
