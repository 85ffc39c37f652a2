// Dataset conversion, feature transforms, row selection and partitions.
//
// Every transform is written once per storage kind and gives bit-identical results on dense and
// CSR storage of the same data: reductions run over a row's entries in column order, accumulated
// in double, and the zeros a dense row holds add exactly nothing to them. CSR results are always
// compressed and never hold explicit zeros created here (dense -> sparse drops exact zeros).
#include "dsaga/dataset.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "dsaga/rng.hpp"
#include "huge_pages.hpp"

namespace dsaga {

namespace {

template <class M>
constexpr bool kIsSparse = std::is_base_of_v<Eigen::SparseMatrixBase<M>, M>;

using StorageIndex = SparseMatrix<double>::StorageIndex;
constexpr Index kMaxStorageIndex = std::numeric_limits<StorageIndex>::max();

// CSR index arrays are 32-bit: a matrix with more non-zeros or columns does not fit. The readers
// report this as an input error before it can happen; reaching it here is a caller's bug.
void check_csr_fits(Index nnz, Index cols, const char* what) {
  if (nnz > kMaxStorageIndex || cols > kMaxStorageIndex) {
    throw std::length_error(std::string(what) + ": " + std::to_string(nnz) + " non-zeros x " +
                            std::to_string(cols) +
                            " columns do not fit the 32-bit indices of CSR storage");
  }
}

// A compressed CSR matrix with `nnz` entries whose arrays the caller fills directly:
// outerIndexPtr()[0..rows], innerIndexPtr()[0..nnz), valuePtr()[0..nnz).
template <class S>
SparseMatrix<S> empty_csr(Index rows, Index cols, Index nnz) {
  SparseMatrix<S> M(rows, cols);  // compressed, outer index all zero
  M.resizeNonZeros(nnz);
  return M;
}

template <class S, class M>
DenseMatrix<S> to_dense(const M& X) {
  if constexpr (kIsSparse<M>) {
    DenseMatrix<S> D = DenseMatrix<S>::Zero(X.rows(), X.cols());
    for (Index r = 0; r < X.outerSize(); ++r) {
      for (typename M::InnerIterator it(X, r); it; ++it)
        D(r, it.col()) = static_cast<S>(it.value());
    }
    return D;
  } else {
    return X.template cast<S>();
  }
}

template <class S, class M>
SparseMatrix<S> to_sparse(const M& X) {
  if constexpr (kIsSparse<M>) {
    SparseMatrix<S> R = X.template cast<S>();
    R.makeCompressed();
    return R;
  } else {
    using T = typename M::Scalar;
    Index nnz = 0;
    for (Index k = 0; k < X.size(); ++k) nnz += X.data()[k] != T(0);
    check_csr_fits(nnz, X.cols(), "convert");
    SparseMatrix<S> R = empty_csr<S>(X.rows(), X.cols(), nnz);
    StorageIndex* outer = R.outerIndexPtr();
    StorageIndex* inner = R.innerIndexPtr();
    S* values = R.valuePtr();
    StorageIndex k = 0;
    for (Index r = 0; r < X.rows(); ++r) {
      outer[r] = k;
      const T* row = X.data() + r * X.cols();
      for (Index c = 0; c < X.cols(); ++c) {
        if (row[c] != T(0)) {
          inner[k] = static_cast<StorageIndex>(c);
          values[k] = static_cast<S>(row[c]);
          ++k;
        }
      }
    }
    outer[X.rows()] = k;
    return R;
  }
}

// The entries of row r as a contiguous span (dense: all columns; CSR: the stored ones).
template <class S>
std::pair<S*, Index> row_values(DenseMatrix<S>& X, Index r) {
  return {X.data() + r * X.cols(), X.cols()};
}
template <class S>
std::pair<S*, Index> row_values(SparseMatrix<S>& X, Index r) {
  const auto begin = X.outerIndexPtr()[r];
  return {X.valuePtr() + begin, X.outerIndexPtr()[r + 1] - begin};
}
template <class S>
std::pair<const S*, Index> row_values(const DenseMatrix<S>& X, Index r) {
  return {X.data() + r * X.cols(), X.cols()};
}
template <class S>
std::pair<const S*, Index> row_values(const SparseMatrix<S>& X, Index r) {
  const auto begin = X.outerIndexPtr()[r];
  return {X.valuePtr() + begin, X.outerIndexPtr()[r + 1] - begin};
}

template <class S>
double sum_squares(const S* v, Index n) {
  double s = 0.0;
  for (Index k = 0; k < n; ++k) s += static_cast<double>(v[k]) * static_cast<double>(v[k]);
  return s;
}

// L2 norm without overflow: values near the double range (|v| > ~1e154) overflow the plain sum
// of squares; rescaling by the largest magnitude keeps such rows finite.
template <class S>
double row_norm(const S* v, Index n) {
  const double s = sum_squares(v, n);
  if (std::isfinite(s)) return std::sqrt(s);
  double m = 0.0;
  for (Index k = 0; k < n; ++k) m = std::max(m, std::abs(static_cast<double>(v[k])));
  if (!std::isfinite(m)) return m;
  double t = 0.0;
  for (Index k = 0; k < n; ++k) {
    const double u = static_cast<double>(v[k]) / m;
    t += u * u;
  }
  return m * std::sqrt(t);
}

}  // namespace

Dataset convert(const Dataset& data, Storage storage, Precision precision) {
  Dataset out;
  out.y = data.y;
  out.source = data.source;
  std::visit(
      [&](const auto& X) {
        if (storage == Storage::dense) {
          if (precision == Precision::f32)
            out.X = to_dense<float>(X);
          else
            out.X = to_dense<double>(X);
        } else {
          if (precision == Precision::f32)
            out.X = to_sparse<float>(X);
          else
            out.X = to_sparse<double>(X);
        }
      },
      data.X);
  return out;
}

void scale_features(Dataset& data, double factor) {
  std::visit(
      [&](auto& X) {
        using M = std::decay_t<decltype(X)>;
        using S = typename M::Scalar;
        // Multiply in double and round once, so f32 storage gets the correctly rounded product.
        S* v = nullptr;
        Index n = 0;
        if constexpr (kIsSparse<M>) {
          v = X.valuePtr();
          n = static_cast<Index>(X.nonZeros());
        } else {
          v = X.data();
          n = static_cast<Index>(X.size());
        }
        for (Index k = 0; k < n; ++k) v[k] = static_cast<S>(static_cast<double>(v[k]) * factor);
      },
      data.X);
}

void normalize_rows(Dataset& data) {
  std::visit(
      [&](auto& X) {
        using S = typename std::decay_t<decltype(X)>::Scalar;
        for (Index r = 0; r < X.rows(); ++r) {
          auto [v, n] = row_values(X, r);
          const double norm = row_norm(v, n);
          if (!(norm > 0.0) || !std::isfinite(norm)) continue;  // all-zero rows stay as they are
          for (Index k = 0; k < n; ++k) v[k] = static_cast<S>(static_cast<double>(v[k]) / norm);
        }
      },
      data.X);
}

void append_constant(Dataset& data, double value) {
  std::visit(
      [&](auto& X) {
        using M = std::decay_t<decltype(X)>;
        using S = typename M::Scalar;
        const Index rows = X.rows(), cols = X.cols();
        if constexpr (kIsSparse<M>) {
          // A zero constant adds an empty column and no stored entries.
          const Index extra = value != 0.0 ? rows : 0;
          check_csr_fits(static_cast<Index>(X.nonZeros()) + extra, cols + 1, "append_constant");
          M R = empty_csr<S>(rows, cols + 1, static_cast<Index>(X.nonZeros()) + extra);
          StorageIndex k = 0;
          for (Index r = 0; r < rows; ++r) {
            R.outerIndexPtr()[r] = k;
            for (auto j = X.outerIndexPtr()[r]; j < X.outerIndexPtr()[r + 1]; ++j, ++k) {
              R.innerIndexPtr()[k] = X.innerIndexPtr()[j];
              R.valuePtr()[k] = X.valuePtr()[j];
            }
            if (extra) {
              R.innerIndexPtr()[k] = static_cast<StorageIndex>(cols);
              R.valuePtr()[k] = static_cast<S>(value);
              ++k;
            }
          }
          R.outerIndexPtr()[rows] = k;
          X = std::move(R);
        } else {
          M R(rows, cols + 1);
          R.leftCols(cols) = X;
          R.col(cols).setConstant(static_cast<S>(value));
          X = std::move(R);
        }
      },
      data.X);
}

void widen(Dataset& data, Index cols, bool bias_last) {
  if (cols <= data.cols()) return;
  if (!data.is_sparse()) data = convert(data, Storage::sparse, data.precision());
  std::visit(
      [&](auto& X) {
        using M = std::decay_t<decltype(X)>;
        const Index rows = X.rows(), old = X.cols();
        const bool move_bias = bias_last && old > 0;
        if constexpr (kIsSparse<M>) {
          check_csr_fits(static_cast<Index>(X.nonZeros()), cols, "widen");
          // A compressed row-major matrix gains columns without touching its entries; the bias
          // entries, the last of their rows, stay the last under their new index.
          X.conservativeResize(rows, cols);
          if (move_bias) {
            using StorageIndex = typename M::StorageIndex;
            for (Index k = 0; k < static_cast<Index>(X.nonZeros()); ++k)
              if (X.innerIndexPtr()[k] == static_cast<StorageIndex>(old - 1))
                X.innerIndexPtr()[k] = static_cast<StorageIndex>(cols - 1);
          }
        }
      },
      data.X);
}

Eigen::VectorXd row_norms_squared(const Dataset& data) {
  return std::visit(
      [](const auto& X) {
        Eigen::VectorXd out(X.rows());
        for (Index r = 0; r < X.rows(); ++r) {
          const auto [v, n] = row_values(X, r);
          out[r] = sum_squares(v, n);
        }
        return out;
      },
      data.X);
}

void advise_huge_pages(const Dataset& data) {
  std::visit(
      [](const auto& X) {
        using M = std::decay_t<decltype(X)>;
        using S = typename M::Scalar;
        if constexpr (kIsSparse<M>) {
          const auto nnz = static_cast<std::size_t>(X.nonZeros());
          hint::huge_pages_now(X.valuePtr(), nnz * sizeof(S));
          hint::huge_pages_now(X.innerIndexPtr(), nnz * sizeof(*X.innerIndexPtr()));
        } else {
          hint::huge_pages_now(X.data(), static_cast<std::size_t>(X.size()) * sizeof(S));
        }
      },
      data.X);
}

Dataset select_rows(const Dataset& data, const std::vector<Index>& rows) {
  const Index n = data.rows();
  for (Index r : rows) {
    if (r < 0 || r >= n) {
      throw std::out_of_range("select_rows: row " + std::to_string(r) + " of a data set of " +
                              std::to_string(n) + " rows");
    }
  }
  Dataset out;
  out.source = data.source;
  const Index m = static_cast<Index>(rows.size());
  const bool labelled = data.y.size() == n;  // an unlabelled data set gives an unlabelled one
  out.y.resize(labelled ? m : 0);
  if (labelled) {
    for (Index k = 0; k < m; ++k) out.y[k] = data.y[rows[k]];
  }
  std::visit(
      [&](const auto& X) {
        using M = std::decay_t<decltype(X)>;
        using S = typename M::Scalar;
        if constexpr (kIsSparse<M>) {
          Index nnz = 0;
          for (Index r : rows) nnz += X.outerIndexPtr()[r + 1] - X.outerIndexPtr()[r];
          check_csr_fits(nnz, X.cols(), "select_rows");  // rows may repeat
          M R = empty_csr<S>(m, X.cols(), nnz);
          StorageIndex k = 0;
          for (Index i = 0; i < m; ++i) {
            R.outerIndexPtr()[i] = k;
            const auto begin = X.outerIndexPtr()[rows[i]], end = X.outerIndexPtr()[rows[i] + 1];
            std::copy(X.innerIndexPtr() + begin, X.innerIndexPtr() + end, R.innerIndexPtr() + k);
            std::copy(X.valuePtr() + begin, X.valuePtr() + end, R.valuePtr() + k);
            k += end - begin;
          }
          R.outerIndexPtr()[m] = k;
          out.X = std::move(R);
        } else {
          M R(m, X.cols());
          for (Index i = 0; i < m; ++i) R.row(i) = X.row(rows[i]);
          out.X = std::move(R);
        }
      },
      data.X);
  return out;
}

namespace {

// log and exp from + - * / and exact scalings only (no libm), so that the Dirichlet partition
// draws the same shards on every platform: libm's log/exp may differ in the last bit between
// implementations and architectures, and one bit can move a row from one shard to another.
// The build turns off fused multiply-adds (-ffp-contract=off), so each operation rounds once.
// Both are accurate to a few ulp, which is all a sampler needs.
constexpr double kLn2 = 0.6931471805599453094;

double portable_log(double x) {  // x > 0 and finite
  int e = 0;
  double m = std::frexp(x, &e);  // x = m 2^e, m in [0.5, 1): exact
  if (m < 0.70710678118654752) {
    m *= 2.0;
    --e;
  }
  // log m = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.172: the series to s^25 is below 1e-19.
  const double s = (m - 1.0) / (m + 1.0), s2 = s * s;
  double term = s, sum = 0.0;
  for (int k = 1; k <= 25; k += 2) {
    sum += term / k;
    term *= s2;
  }
  return 2.0 * sum + e * kLn2;
}

double portable_exp(double x) {
  if (x < -745.0) return 0.0;
  if (x > 709.0) return std::numeric_limits<double>::infinity();
  const double k = std::floor(x / kLn2 + 0.5);
  const double r = x - k * kLn2;  // |r| <= 0.35 (to rounding): 20 Taylor terms suffice
  double term = 1.0, sum = 1.0;
  for (int j = 1; j <= 20; ++j) {
    term *= r / j;
    sum += term;
  }
  return std::ldexp(sum, static_cast<int>(k));
}

// A standard normal variate: Marsaglia's polar method (one of the pair is used).
double normal(Rng& rng) {
  for (;;) {
    const double u = 2.0 * rng.uniform() - 1.0, v = 2.0 * rng.uniform() - 1.0;
    const double s = u * u + v * v;
    if (s > 0.0 && s < 1.0) return u * std::sqrt(-2.0 * portable_log(s) / s);
  }
}

// log of a Gamma(a, 1) variate, a > 0: Marsaglia and Tsang (2000) for a >= 1; for a < 1,
// Gamma(a + 1) U^(1/a), kept as a logarithm because U^(1/a) underflows for small a.
double log_gamma_variate(Rng& rng, double a) {
  const double boost = a < 1.0 ? portable_log(1.0 - rng.uniform()) / a : 0.0;  // log U^(1/a)
  const double b = a < 1.0 ? a + 1.0 : a;
  const double d = b - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    const double x = normal(rng);
    double v = 1.0 + c * x;
    if (v <= 0.0) continue;
    v = v * v * v;
    const double u = 1.0 - rng.uniform();  // (0, 1]
    const double x2 = x * x;
    if (u < 1.0 - 0.0331 * x2 * x2 ||
        portable_log(u) < 0.5 * x2 + d * (1.0 - v + portable_log(v)))
      return portable_log(d * v) + boost;
  }
}

// Row counts of n rows over K shards with proportions ~ Dirichlet(alpha): floors of p_k n,
// the rest one each to the largest remainders (ties: lower k).
std::vector<Index> dirichlet_counts(Rng& rng, Index n, int K, double alpha) {
  std::vector<double> logs(static_cast<std::size_t>(K)), p(static_cast<std::size_t>(K));
  for (double& l : logs) l = log_gamma_variate(rng, alpha);
  const double top = *std::max_element(logs.begin(), logs.end());
  double total = 0.0;
  for (int k = 0; k < K; ++k) total += p[k] = portable_exp(logs[k] - top);  // the largest is 1
  std::vector<Index> count(static_cast<std::size_t>(K));
  std::vector<double> rest(static_cast<std::size_t>(K));
  Index given = 0;
  for (int k = 0; k < K; ++k) {
    const double target = p[k] / total * static_cast<double>(n);
    count[k] = std::min(n, static_cast<Index>(std::floor(target)));
    rest[k] = target - static_cast<double>(count[k]);
    given += count[k];
  }
  std::vector<int> order(static_cast<std::size_t>(K));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&rest](int a, int b) { return rest[a] > rest[b]; });
  // The floors add up to an integer below sum(targets) + 1 = n + 1 (up to rounding), so at most
  // n, and n minus them is below K + 1: one round over the remainders gives the rest out.
  for (std::size_t j = 0; given < n; j = (j + 1) % order.size(), ++given) ++count[order[j]];
  return count;
}

}  // namespace

std::vector<std::vector<Index>> partition(const Dataset& data, int shards, PartitionKind kind,
                                          std::uint64_t seed, double alpha) {
  const Index n = data.rows();
  if (shards < 1 || shards > n) {
    throw std::invalid_argument("partition: " + std::to_string(shards) + " shards of " +
                                std::to_string(n) +
                                " rows (need 1 <= shards <= rows: no shard may be empty)");
  }
  if (kind != PartitionKind::iid && data.y.size() != n) {
    throw std::invalid_argument("partition by label: " + std::to_string(data.y.size()) +
                                " labels for " + std::to_string(n) + " rows");
  }
  if (kind == PartitionKind::dirichlet && !(std::isfinite(alpha) && alpha > 0.0)) {
    throw std::invalid_argument("partition: Dirichlet alpha " + std::to_string(alpha) +
                                " (need a finite alpha > 0)");
  }
  std::vector<Index> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), Index(0));
  if (kind == PartitionKind::iid) {
    // Fisher-Yates from the top with Rng::below: the same permutation on every platform.
    Rng rng(seed);
    for (Index i = n - 1; i > 0; --i) {
      const auto j = static_cast<Index>(rng.below(static_cast<std::uint64_t>(i) + 1));
      std::swap(order[i], order[j]);
    }
  } else {
    // NaN labels sort last, so the comparison stays a strict weak ordering on any input.
    const Eigen::VectorXd& y = data.y;
    std::stable_sort(order.begin(), order.end(), [&y](Index a, Index b) {
      const bool na = std::isnan(y[a]), nb = std::isnan(y[b]);
      if (na || nb) return !na && nb;
      return y[a] < y[b];
    });
  }
  std::vector<std::vector<Index>> out(static_cast<std::size_t>(shards));
  if (kind == PartitionKind::dirichlet) {
    Rng rng(seed);
    const Eigen::VectorXd& y = data.y;
    const auto same = [&y](Index a, Index b) {
      return y[a] == y[b] || (std::isnan(y[a]) && std::isnan(y[b]));
    };
    for (Index begin = 0; begin < n;) {  // one class: a run of equal labels in `order`
      Index end = begin + 1;
      while (end < n && same(order[begin], order[end])) ++end;
      const Index size = end - begin;
      const std::vector<Index> count = dirichlet_counts(rng, size, shards, alpha);
      for (Index i = size - 1; i > 0; --i) {  // which of the class's rows go where
        const auto j = static_cast<Index>(rng.below(static_cast<std::uint64_t>(i) + 1));
        std::swap(order[begin + i], order[begin + j]);
      }
      Index next = begin;
      for (int k = 0; k < shards; ++k) {
        out[k].insert(out[k].end(), order.begin() + next, order.begin() + next + count[k]);
        next += count[k];
      }
      begin = end;
    }
    for (auto& shard : out) {
      if (!shard.empty()) continue;
      // n >= K, so while a shard is empty the largest holds at least two rows.
      auto largest = std::max_element(out.begin(), out.end(), [](const auto& a, const auto& b) {
        return a.size() < b.size();
      });
      shard.push_back(largest->back());
      largest->pop_back();
    }
    for (auto& shard : out) std::sort(shard.begin(), shard.end());
    return out;
  }
  // Contiguous chunks; the first n % K get one row more, so sizes differ by at most one.
  const Index base = n / shards, extra = n % shards;
  Index start = 0;
  for (Index k = 0; k < shards; ++k) {
    const Index size = base + (k < extra ? 1 : 0);
    out[k].assign(order.begin() + start, order.begin() + start + size);
    start += size;
  }
  return out;
}

}  // namespace dsaga
