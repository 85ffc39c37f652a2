// How the benchmark problems are built (problems.hpp says what they are).
#include "problems.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "dsaga/data_source.hpp"
#include "dsaga/rng.hpp"

namespace dsaga::bench {

namespace {

constexpr int kSide = 28;  // Fashion-MNIST images are 28 x 28

// S1 ------------------------------------------------------------------------------------------
constexpr int kLevels = 5;
constexpr int kHashBits = 18;

// SplitMix64's finaliser: a fixed bijection of 64-bit words, the same on every platform.
std::uint64_t mix(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

Dataset hashed_patches(const DenseMatrix<double>& pixels, const Eigen::VectorXd& labels) {
  const Index n = pixels.rows();
  const Index hashed = Index(1) << kHashBits;
  const Index d = hashed + 1;  // the bias last
  std::vector<std::int32_t> outer(static_cast<std::size_t>(n) + 1, 0), inner;
  std::vector<double> values;
  inner.reserve(static_cast<std::size_t>(n) * 500);
  values.reserve(static_cast<std::size_t>(n) * 500);
  std::vector<int> level(kSide * kSide);
  std::vector<std::int32_t> cols;
  for (Index i = 0; i < n; ++i) {
    for (int p = 0; p < kSide * kSide; ++p)
      level[p] = std::min(kLevels - 1, static_cast<int>(std::floor(kLevels * pixels(i, p))));
    cols.clear();
    for (int r = 0; r + 1 < kSide; ++r) {
      for (int c = 0; c + 1 < kSide; ++c) {
        const int* top = &level[r * kSide + c];
        const int code = top[0] + kLevels * (top[1] + kLevels * (top[kSide] + kLevels * top[kSide + 1]));
        if (code == 0) continue;
        const std::uint64_t key =
            static_cast<std::uint64_t>(r * (kSide - 1) + c) * (kLevels * kLevels * kLevels * kLevels) +
            static_cast<std::uint64_t>(code);
        cols.push_back(static_cast<std::int32_t>(mix(key + 0x5151) >> (64 - kHashBits)));
      }
    }
    std::sort(cols.begin(), cols.end());
    // Counts per column (keys that hash together add up), then unit L2 norm, then the bias.
    const std::size_t first = inner.size();
    double norm2 = 0.0;
    for (std::size_t k = 0; k < cols.size();) {
      std::size_t e = k;
      while (e < cols.size() && cols[e] == cols[k]) ++e;
      const double count = static_cast<double>(e - k);
      inner.push_back(cols[k]);
      values.push_back(count);
      norm2 += count * count;
      k = e;
    }
    if (norm2 > 0.0) {
      const double inv = 1.0 / std::sqrt(norm2);
      for (std::size_t k = first; k < values.size(); ++k) values[k] *= inv;
    }
    inner.push_back(static_cast<std::int32_t>(hashed));
    values.push_back(1.0);
    outer[static_cast<std::size_t>(i) + 1] = static_cast<std::int32_t>(inner.size());
  }
  SparseMatrix<double> X(n, d);
  X.resizeNonZeros(static_cast<Index>(inner.size()));
  std::copy(outer.begin(), outer.end(), X.outerIndexPtr());
  std::copy(inner.begin(), inner.end(), X.innerIndexPtr());
  std::copy(values.begin(), values.end(), X.valuePtr());
  Dataset out;
  out.X = std::move(X);
  out.y = labels;
  out.source = "fashion-mnist/train S1";
  return out;
}

// D1 ------------------------------------------------------------------------------------------
constexpr int kProjected = 63;

Dataset projected_heavy_tailed(const DenseMatrix<double>& pixels, const Eigen::VectorXd& labels) {
  const Index n = pixels.rows(), p = pixels.cols();
  Rng signs(0xD1);
  Eigen::MatrixXd R(p, kProjected);  // column j: the j-th projection direction
  for (int j = 0; j < kProjected; ++j)
    for (Index k = 0; k < p; ++k) R(k, j) = (signs.next() >> 63) ? 1.0 : -1.0;
  R /= std::sqrt(static_cast<double>(kProjected));
  DenseMatrix<double> Y = pixels * R;
  double mean_norm = 0.0;
  for (Index i = 0; i < n; ++i) mean_norm += Y.row(i).norm();
  mean_norm /= static_cast<double>(n);
  Rng tail(0xD2);
  DenseMatrix<double> X(n, kProjected + 1);
  for (Index i = 0; i < n; ++i) {
    const double u = 1.0 - tail.uniform();  // (0, 1]
    const double s = 1.0 / std::cbrt(std::sqrt(u));  // u^(-1/6)
    X.row(i).head(kProjected) = Y.row(i) * (s / mean_norm);
    X(i, kProjected) = 1.0;
  }
  Dataset out;
  out.X = std::move(X);
  out.y = labels;
  out.source = "fashion-mnist/train D1";
  return out;
}

}  // namespace

Result<Problem> load_problem(const std::string& name, Index limit) {
  if (name != "B1" && name != "B2" && name != "S1" && name != "D1" && name != "B1r" &&
      name != "B2r")
    return Result<Problem>::failure("'" + name +
                                    "' is not a problem (expected B1, B2, B1r, B2r, S1 or D1)");
  const bool fashion = name == "B1" || name == "B2" || name == "B1r" || name == "B2r";
  const bool multinomial = name == "B2" || name == "B2r";
  DataSpec spec;
  spec.format = "fashion-mnist";
  spec.limit = limit;
  spec.scale = 1.0 / 255;
  spec.normalize_rows = name == "B1" || name == "B2";
  spec.bias = fashion;
  Objective raw;  // squared loss: load_data keeps the labels as they are (the classes 0..9)
  raw.loss = Loss::squared;
  auto pixels = load_data(spec, raw);
  if (!pixels) return pixels.status();
  Problem problem;
  if (multinomial) {
    problem.objective.loss = Loss::multinomial;
    problem.objective.classes = 10;
  } else {
    problem.objective.loss = Loss::logistic;
    problem.positive = {0, 2, 4, 6};
  }
  if (fashion) {
    problem.data = std::move(*pixels);
  } else {
    const auto& X = std::get<DenseMatrix<double>>(pixels->X);
    problem.data = name == "S1" ? hashed_patches(X, pixels->y) : projected_heavy_tailed(X, pixels->y);
  }
  return problem;
}

}  // namespace dsaga::bench
