// The coarse space of two-level dSAGA (coarse.hpp; ALGORITHM.md section 7).
#include "dsaga/coarse.hpp"

#include <Eigen/Cholesky>
#include <Eigen/Eigenvalues>
#include <Eigen/QR>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <numeric>
#include <type_traits>

#include "dsaga/rng.hpp"

namespace dsaga::coarse {

namespace {

template <class M>
constexpr bool kIsSparse = std::is_base_of_v<Eigen::SparseMatrixBase<M>, M>;

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Rows per block of the dense passes: a block of rows in double fits in L2 for d ~ 1000.
constexpr Index kBlock = 256;

// out = X_s^T (X_s Q) / n for the data restricted to its support (Q: |support| x p).
void gram_times(const Dataset& data, const std::vector<std::int32_t>& pos, const RowMatrix& q,
                RowMatrix& out) {
  const Index p = q.cols();
  out.setZero(q.rows(), p);
  Eigen::RowVectorXd t(p);
  std::visit(
      [&](const auto& X) {
        using M = std::decay_t<decltype(X)>;
        if constexpr (kIsSparse<M>) {
          for (Index i = 0; i < X.rows(); ++i) {
            t.setZero();
            for (typename M::InnerIterator it(X, i); it; ++it)
              t.noalias() += static_cast<double>(it.value()) * q.row(pos[it.index()]);
            for (typename M::InnerIterator it(X, i); it; ++it)
              out.row(pos[it.index()]).noalias() += static_cast<double>(it.value()) * t;
          }
        } else {
          // Dense data: the support is every column.
          for (Index i = 0; i < X.rows(); i += kBlock) {
            const Index b = std::min(kBlock, X.rows() - i);
            const RowMatrix xb = X.middleRows(i, b).template cast<double>();
            const RowMatrix tb = xb * q;
            out.noalias() += xb.transpose() * tb;
          }
        }
      },
      data.X);
  out /= static_cast<double>(std::max<Index>(1, data.rows()));
}

// Z = X_s U for U on the support (|support| x m).
void times_basis(const Dataset& data, const std::vector<std::int32_t>& pos, const Eigen::MatrixXd& u,
                 Eigen::MatrixXd& z) {
  z.setZero(data.rows(), u.cols());
  std::visit(
      [&](const auto& X) {
        using M = std::decay_t<decltype(X)>;
        if constexpr (kIsSparse<M>) {
          for (Index i = 0; i < X.rows(); ++i)
            for (typename M::InnerIterator it(X, i); it; ++it)
              z.row(i).noalias() += static_cast<double>(it.value()) * u.row(pos[it.index()]);
        } else {
          for (Index i = 0; i < X.rows(); i += kBlock) {
            const Index b = std::min(kBlock, X.rows() - i);
            z.middleRows(i, b).noalias() = X.middleRows(i, b).template cast<double>() * u;
          }
        }
      },
      data.X);
}

// Orthonormal basis of the columns of y (thin Householder Q).
RowMatrix orthonormalize(const RowMatrix& y) {
  Eigen::HouseholderQR<Eigen::MatrixXd> qr(y);
  return qr.householderQ() * Eigen::MatrixXd::Identity(y.rows(), y.cols());
}

// Per-sample curvature of the loss for C = 1 from the margin and the derivative.
double curvature(const Objective& objective, double a) {
  if (objective.loss == Loss::squared) return 1.0;
  // logistic: a = -y sigma(-y z) with y = +-1, so |a| = sigma(-y z) and h = |a| (1 - |a|).
  const double s = std::abs(a);
  return s * (1.0 - s);
}

}  // namespace

std::vector<std::int32_t> positions(Index d, const std::vector<std::uint32_t>& support) {
  std::vector<std::int32_t> pos(static_cast<std::size_t>(d), -1);
  for (std::size_t s = 0; s < support.size(); ++s) pos[support[s]] = static_cast<std::int32_t>(s);
  return pos;
}

std::vector<std::uint32_t> support_of(const Dataset& data) {
  std::vector<std::uint32_t> support;
  if (!data.is_sparse()) {
    support.resize(static_cast<std::size_t>(data.cols()));
    std::iota(support.begin(), support.end(), 0u);
    return support;
  }
  std::vector<char> seen(static_cast<std::size_t>(data.cols()), 0);
  std::visit(
      [&](const auto& X) {
        using M = std::decay_t<decltype(X)>;
        if constexpr (kIsSparse<M>) {
          const auto* inner = X.innerIndexPtr();
          for (Index p = 0; p < X.nonZeros(); ++p) seen[static_cast<std::size_t>(inner[p])] = 1;
        }
      },
      data.X);
  for (std::size_t k = 0; k < seen.size(); ++k)
    if (seen[k]) support.push_back(static_cast<std::uint32_t>(k));
  return support;
}

Eigenpairs top_gram_eigenpairs(const Dataset& data, const std::vector<std::uint32_t>& support,
                               int q, std::uint64_t seed) {
  Eigenpairs result;
  const Index s = static_cast<Index>(support.size());
  const Index p = std::min<Index>(s, Index(q) + 8);
  if (q <= 0 || p <= 0) {
    result.vectors.resize(s, 0);
    return result;
  }
  const auto pos = positions(data.cols(), support);
  // A Gaussian start block from the platform-independent generator (Box-Muller).
  Rng rng(seed);
  RowMatrix block(s, p);
  for (Index i = 0; i < s; ++i)
    for (Index j = 0; j < p; ++j) {
      const double u1 = (static_cast<double>(rng.next() >> 11) + 0.5) * 0x1.0p-53;
      const double u2 = static_cast<double>(rng.next() >> 11) * 0x1.0p-53;
      block(i, j) = std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    }
  RowMatrix y;
  block = orthonormalize(block);
  for (int it = 0; it < 12; ++it) {
    gram_times(data, pos, block, y);
    block = orthonormalize(y);
  }
  // Rayleigh-Ritz on the final block.
  gram_times(data, pos, block, y);
  Eigen::MatrixXd small = block.transpose() * y;
  small = (small + small.transpose()).eval() * 0.5;
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(small);
  const Index keep = std::min<Index>(q, p);
  result.values.resize(keep);
  result.vectors.resize(s, keep);
  // Eigen sorts ascending: the largest are last.
  for (Index j = 0; j < keep; ++j) {
    result.values[j] = std::max(0.0, eig.eigenvalues()[p - 1 - j]);
    result.vectors.col(j) = block * eig.eigenvectors().col(p - 1 - j);
  }
  result.next = keep < p ? std::max(0.0, eig.eigenvalues()[p - 1 - keep]) : 0.0;
  return result;
}

void AgentSpace::set(const Dataset& data, const std::vector<std::uint32_t>& support,
                     const Eigen::MatrixXd& u_on_support, bool identity) {
  identity_ = identity;
  if (identity) {
    dim_ = static_cast<int>(data.cols());
    z_.resize(0, 0);
  } else {
    dim_ = static_cast<int>(u_on_support.cols());
    times_basis(data, positions(data.cols(), support), u_on_support, z_);
  }
}

std::size_t AgentSpace::bytes() const {
  return static_cast<std::size_t>(z_.size() + block_.size() + hessian_.size()) * sizeof(double);
}

void AgentSpace::gradient_hessian(const Dataset& data, const Objective& objective, const double* a, Eigen::VectorXd& g,
                                  Eigen::VectorXd& h_packed) {
  const int C = std::max(1, objective.classes);
  const Index m = dim_, mC = m * C, n = data.rows();
  g.setZero(mC);
  hessian_.setZero(mC, mC);
  // Rows of Z (or of X for U = I) in blocks of kBlock, as doubles.
  const auto fill_rows = [&](Index i, Index b) {
    if (!identity_) {
      block_ = z_.middleRows(i, b);
      return;
    }
    block_.setZero(b, m);
    std::visit(
        [&](const auto& X) {
          using M = std::decay_t<decltype(X)>;
          if constexpr (kIsSparse<M>) {
            for (Index r = 0; r < b; ++r)
              for (typename M::InnerIterator it(X, i + r); it; ++it)
                block_(r, it.index()) = static_cast<double>(it.value());
          } else {
            block_ = X.middleRows(i, b).template cast<double>();
          }
        },
        data.X);
  };
  Eigen::MatrixXd weighted;
  for (Index i = 0; i < n; i += kBlock) {
    const Index b = std::min(kBlock, n - i);
    fill_rows(i, b);
    if (C == 1) {
      Eigen::Map<const Eigen::VectorXd> ab(a + i, b);
      g.noalias() += block_.transpose() * ab;
      Eigen::VectorXd root(b);
      for (Index r = 0; r < b; ++r) root[r] = std::sqrt(curvature(objective, a[i + r]));
      weighted = root.asDiagonal() * block_;
      hessian_.selfadjointView<Eigen::Upper>().rankUpdate(weighted.transpose());
      continue;
    }
    // Softmax: a = p - e_y, curvature diag(p) - p p^T per sample. H = sum_c Z^T diag(p_c) Z at
    // the (c, c) positions, minus sum_i (z_i (x) p_i)(z_i (x) p_i)^T. Only the second term
    // reaches the upload: its blocks c < c' (pack_blocks; the diagonal blocks follow from the
    // zero row sums at the hub), so the first is not computed and hessian_'s diagonal blocks
    // are left partial.
    weighted.resize(b, mC);
    Eigen::MatrixXd probs(b, C);
    for (Index r = 0; r < b; ++r) {
      const double* ar = a + (i + r) * C;
      const int y = static_cast<int>(data.y[i + r]);
      for (int c = 0; c < C; ++c) probs(r, c) = ar[c] + (c == y ? 1.0 : 0.0);
      for (Index j = 0; j < m; ++j)
        for (int c = 0; c < C; ++c) {
          g[j * C + c] += block_(r, j) * ar[c];
          weighted(r, j * C + c) = block_(r, j) * probs(r, c);
        }
    }
    hessian_.selfadjointView<Eigen::Upper>().rankUpdate(weighted.transpose(), -1.0);
  }
  // The upload: the class-pair blocks (blocks_size; the whole triangle for one class).
  const bool softmax = objective.loss == Loss::multinomial;
  h_packed.resize(static_cast<Index>(blocks_size(static_cast<std::size_t>(m), C, softmax)));
  pack_blocks(hessian_, C, softmax, h_packed.data());
}

void unpack_upper(const double* packed, Eigen::MatrixXd& full) {
  const Index n = full.rows();
  std::size_t p = 0;
  for (Index i = 0; i < n; ++i)
    for (Index j = i; j < n; ++j) {
      full(i, j) = packed[p];
      full(j, i) = packed[p];
      ++p;
    }
}

void pack_upper(const Eigen::MatrixXd& full, double* packed) {
  const Index n = full.rows();
  std::size_t p = 0;
  for (Index i = 0; i < n; ++i)
    for (Index j = i; j < n; ++j) packed[p++] = full(i, j);
}

std::size_t blocks_size(std::size_t columns, int classes, bool softmax) {
  const std::size_t C = static_cast<std::size_t>(std::max(1, classes));
  return (softmax ? C * (C - 1) / 2 : 1) * packed_size(columns);
}

void pack_blocks(const Eigen::MatrixXd& full, int classes, bool softmax, double* out) {
  if (!softmax) {
    pack_upper(full, out);
    return;
  }
  const Index C = std::max(1, classes), n = full.rows() / C;
  std::size_t k = 0;
  // Block (c, c2)'s (j, l), j <= l, is full's (j C + c, l C + c2): in its upper triangle.
  for (Index c = 0; c < C; ++c)
    for (Index c2 = c + 1; c2 < C; ++c2)
      for (Index j = 0; j < n; ++j)
        for (Index l = j; l < n; ++l) out[k++] = full(j * C + c, l * C + c2);
}

template <class T>
void add_blocks(const T* upload, const std::vector<std::uint32_t>& support, Index d, int classes,
                bool softmax, Eigen::VectorXd& sum) {
  const Index C = softmax ? std::max(1, classes) : 1, n = d * C;
  const Index s = support.empty() ? d : static_cast<Index>(support.size());
  const auto column = [&](Index j) { return support.empty() ? j : static_cast<Index>(support[j]); };
  // Entry (a, b), a <= b, of the packed upper triangle by rows.
  const auto at = [&](Index a, Index b) -> double& { return sum[a * n - a * (a - 1) / 2 + b - a]; };
  std::size_t k = 0;
  if (!softmax) {
    for (Index j = 0; j < s; ++j)
      for (Index l = j; l < s; ++l) at(column(j), column(l)) += static_cast<double>(upload[k++]);
    return;
  }
  // Block (c, c2)'s (j, l) is the matrix's (j C + c, l C + c2) and, by the block's symmetry, its
  // (l C + c, j C + c2), whose upper-triangle mirror is (j C + c2, l C + c); both diagonal
  // blocks' (j, l) lose it (zero row sums).
  for (Index c = 0; c < C; ++c)
    for (Index c2 = c + 1; c2 < C; ++c2)
      for (Index j = 0; j < s; ++j) {
        const Index gj = column(j) * C;
        for (Index l = j; l < s; ++l) {
          const Index gl = column(l) * C;
          const double v = static_cast<double>(upload[k++]);
          at(gj + c, gl + c2) += v;
          if (l != j) at(gj + c2, gl + c) += v;
          at(gj + c, gl + c) -= v;
          at(gj + c2, gl + c2) -= v;
        }
      }
}
template void add_blocks<float>(const float*, const std::vector<std::uint32_t>&, Index, int, bool,
                                Eigen::VectorXd&);
template void add_blocks<double>(const double*, const std::vector<std::uint32_t>&, Index, int,
                                 bool, Eigen::VectorXd&);

int vectors_per_agent(int agents, Index columns) {
  const Index k = std::max(1, agents);
  const Index by_count = std::clamp<Index>(kMaxUnion / k, 4, kMaxRank);
  const Index by_bytes = std::max<Index>(
      4, static_cast<Index>(kMaxUploadBytes / (sizeof(double) * std::max<Index>(1, columns))));
  return static_cast<int>(std::max<Index>(1, std::min({by_count, by_bytes, columns})));
}

namespace {
// A round's coarse payload in bytes: g_k in float64, H_k's class-pair blocks in floats.
double coarse_payload(Index m, int classes, bool softmax) {
  return 8.0 * static_cast<double>(m * std::max(1, classes)) +
         4.0 * static_cast<double>(blocks_size(static_cast<std::size_t>(m), classes, softmax));
}
}  // namespace

bool curvature_as_q8(double entries, Index m, int classes, bool softmax) {
  return 3.0 * entries > coarse_payload(m, classes, softmax);
}

bool deltas_floored(double entries, Index m, int classes, bool softmax) {
  return entries > coarse_payload(m, classes, softmax);
}

bool whole_space(Index d, int classes, int rank) {
  if (d * std::max(1, classes) > kMaxCoarseDim) return false;
  if (rank > 0) return rank >= d;
  return d * std::max(1, classes) <= 256;
}

Basis build_basis(Index d, const std::vector<AgentBasis>& agents, int max_rank, int classes) {
  Basis basis;
  // Every uploaded vector, lifted to R^d, with its weighted curvature.
  Index total = 0;
  for (const auto& a : agents) total += a.vectors.cols();
  // The work is on the rows of the union of the supports (every other row of every vector is
  // zero): on a wide sparse model, d x total doubles of mostly zeros would be most of the time
  // and memory. `rows` lists them (empty: all d, an agent uploaded dense vectors), `at` maps a
  // column of the model to its row here.
  std::vector<std::uint32_t> rows;
  bool dense = false;
  for (const auto& a : agents) dense = dense || (a.vectors.cols() > 0 && a.support.empty());
  if (!dense) {
    for (const auto& a : agents) {
      if (a.vectors.cols() == 0) continue;
      std::vector<std::uint32_t> both;
      both.reserve(rows.size() + a.support.size());
      std::set_union(rows.begin(), rows.end(), a.support.begin(), a.support.end(),
                     std::back_inserter(both));
      rows.swap(both);
    }
  }
  const Index n = dense ? d : static_cast<Index>(rows.size());
  const auto at = [&](std::uint32_t column) {
    return static_cast<Index>(std::lower_bound(rows.begin(), rows.end(), column) - rows.begin());
  };
  Eigen::MatrixXd v = Eigen::MatrixXd::Zero(n, total);
  Eigen::VectorXd weight(total);
  // What the uploads leave out: agent k's part of the Gram outside its vectors has curvature at
  // most weight_k * next_k. Their sum bounds the whole (Weyl), tight only when the leftovers
  // align (IID shards); on shards unlike each other they are nearly orthogonal and the largest
  // one is the better estimate. The largest is taken: the guard covers an underestimate.
  double residual = 0.0;
  Index col = 0;
  for (const auto& a : agents) {
    residual = std::max(residual, a.weight * a.next);
    for (Index j = 0; j < a.vectors.cols(); ++j, ++col) {
      if (a.support.empty()) {
        v.col(col) = a.vectors.col(j);
      } else {
        for (std::size_t s = 0; s < a.support.size(); ++s)
          v(dense ? static_cast<Index>(a.support[s]) : at(a.support[s]), col) =
              a.vectors(static_cast<Index>(s), j);
      }
      weight[col] = a.weight * a.values[j];
    }
  }
  basis.fine_curvature = residual;
  if (total == 0) return basis;
  // Orthonormalise the union (rank-revealing), then diagonalise the approximate global Gram
  // sum_k weight_k V_k diag(values_k) V_k^T within it.
  Eigen::ColPivHouseholderQR<Eigen::MatrixXd> qr(v);
  qr.setThreshold(1e-8);
  const Index r = qr.rank();
  if (r == 0) return basis;
  const Eigen::MatrixXd q = qr.householderQ() * Eigen::MatrixXd::Identity(n, r);
  const Eigen::MatrixXd c = q.transpose() * v;  // r x total
  const Eigen::MatrixXd g = c * weight.asDiagonal() * c.transpose();
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(0.5 * (g + g.transpose()));
  Eigen::VectorXd curv(r);
  for (Index j = 0; j < r; ++j) curv[j] = std::max(0.0, eig.eigenvalues()[r - 1 - j]);
  // The whole union up to kMaxRank directions (the approximate Gram underestimates the
  // curvature past its first few directions, so cutting the union shorter by the rule costs
  // rounds: measured in bench/RESULTS.md); the caller lowers the local step if the curvature
  // left outside is still too large for the rule.
  const auto fine = [&](Index m) { return m < r ? std::max(curv[m], residual) : residual; };
  const Index cap = std::max<Index>(1, kMaxCoarseDim / std::max(1, classes));
  const Index m = std::min<Index>({max_rank > 0 ? max_rank : kMaxRank, r, cap});
  // The kept directions, most curved first, back on the model's d rows.
  const Eigen::MatrixXd ordered = q * eig.eigenvectors().rightCols(m).rowwise().reverse();
  if (dense) {
    basis.u = ordered;
  } else {
    basis.u = Eigen::MatrixXd::Zero(d, m);
    for (Index i = 0; i < n; ++i) basis.u.row(rows[static_cast<std::size_t>(i)]) = ordered.row(i);
  }
  basis.curvature = curv.head(m);
  basis.fine_curvature = fine(m);
  return basis;
}

Result<Eigen::VectorXd> newton_step(const Eigen::MatrixXd& h, const Eigen::VectorXd& g,
                                    double lambda) {
  Eigen::MatrixXd a = h;
  a.diagonal().array() += lambda;
  Eigen::LLT<Eigen::MatrixXd> llt(a);
  if (llt.info() == Eigen::Success) {
    Eigen::VectorXd x = -llt.solve(g);
    if (x.allFinite()) return x;
  }
  // Semidefinite in rounding (lambda = 0 and a flat direction): a tiny shift.
  const double shift = 1e-12 * std::max(1.0, a.diagonal().cwiseAbs().maxCoeff());
  a.diagonal().array() += shift;
  Eigen::LDLT<Eigen::MatrixXd> ldlt(a);
  if (ldlt.info() == Eigen::Success) {
    Eigen::VectorXd x = -ldlt.solve(g);
    if (x.allFinite()) return x;
  }
  return Result<Eigen::VectorXd>::failure("the coarse Hessian is not positive definite");
}

Eigen::VectorXd restrict(const Eigen::MatrixXd& u, const Eigen::VectorXd& w, int classes) {
  const Index C = std::max(1, classes), d = u.rows(), m = u.cols();
  Eigen::Map<const RowMatrix> W(w.data(), d, C);
  RowMatrix out = u.transpose() * W;  // m x C
  return Eigen::Map<const Eigen::VectorXd>(out.data(), m * C);
}

Eigen::VectorXd prolong(const Eigen::MatrixXd& u, const Eigen::VectorXd& coarse, int classes) {
  const Index C = std::max(1, classes), d = u.rows(), m = u.cols();
  Eigen::Map<const RowMatrix> V(coarse.data(), m, C);
  RowMatrix out = u * V;  // d x C
  return Eigen::Map<const Eigen::VectorXd>(out.data(), d * C);
}

}  // namespace dsaga::coarse
