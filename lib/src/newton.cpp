// Distributed Newton-CG (newton.hpp; ALGORITHM.md section 7.3).
#include "dsaga/newton.hpp"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <utility>

#include "dsaga/coarse.hpp"

namespace dsaga::newton {

namespace {

template <class M>
constexpr bool kIsSparse = std::is_base_of_v<Eigen::SparseMatrixBase<M>, M>;

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Rows per block of the dense passes (a block of rows in double fits in L2 for d ~ 1000).
constexpr Index kBlock = 256;

// v = A_i u for one row: the loss's curvature (C values at `c`) applied to u.
inline void apply_curvature(const double* c, int C, bool softmax, const double* u, double* v) {
  if (!softmax) {
    v[0] = c[0] * u[0];
    return;
  }
  double pu = 0.0;
  for (int k = 0; k < C; ++k) pu += c[k] * u[k];
  for (int k = 0; k < C; ++k) v[k] = c[k] * (u[k] - pu);
}

}  // namespace

double AgentCurvature::gradient(const Dataset& data, const Objective& objective,
                                const Eigen::VectorXd& w, Eigen::VectorXd& g_sum) {
  const int C = std::max(1, objective.classes);
  const bool softmax = objective.loss == Loss::multinomial;
  const Index n = data.rows(), d = data.cols();
  w_ = w;
  curv_.resize(softmax ? n * C : n);
  g_sum.setZero(d * C);
  Eigen::Map<const RowMatrix> W(w.data(), d, C);
  Eigen::Map<RowMatrix> G(g_sum.data(), d, C);
  double loss = 0.0;
  std::vector<double> a(static_cast<std::size_t>(C));
  // Per row, from its C margins: the loss, the derivative (into `out`) and the curvature.
  const auto take_row = [&](Index i, const double* z, double* out) {
    const double y = data.y[i];
    loss += sample_loss(objective, y, z);
    sample_derivative(objective, y, z, out);
    if (softmax) {
      for (int c = 0; c < C; ++c) curv_[i * C + c] = out[c] + (c == static_cast<int>(y) ? 1.0 : 0.0);
    } else if (objective.loss == Loss::squared) {
      curv_[i] = 1.0;
    } else {
      const double s = std::abs(out[0]);  // sigma(-y z)
      curv_[i] = s * (1.0 - s);
    }
  };
  std::visit(
      [&](const auto& X) {
        using M = std::decay_t<decltype(X)>;
        if constexpr (kIsSparse<M>) {
          std::vector<double> z(static_cast<std::size_t>(C));
          for (Index i = 0; i < n; ++i) {
            std::fill(z.begin(), z.end(), 0.0);
            for (typename M::InnerIterator it(X, i); it; ++it)
              for (int c = 0; c < C; ++c)
                z[c] += static_cast<double>(it.value()) * W(it.index(), c);
            take_row(i, z.data(), a.data());
            for (typename M::InnerIterator it(X, i); it; ++it)
              for (int c = 0; c < C; ++c) G(it.index(), c) += static_cast<double>(it.value()) * a[c];
          }
        } else {
          RowMatrix derivative;
          for (Index i = 0; i < n; i += kBlock) {
            const Index b = std::min(kBlock, n - i);
            block_ = X.middleRows(i, b).template cast<double>();
            const RowMatrix z = block_ * W;
            derivative.resize(b, C);
            for (Index r = 0; r < b; ++r) take_row(i + r, z.row(r).data(), derivative.row(r).data());
            G.noalias() += block_.transpose() * derivative;
          }
        }
      },
      data.X);
  return loss;
}

void AgentCurvature::product(const Dataset& data, const Objective& objective,
                             const Eigen::VectorXd& p, Eigen::VectorXd& out) {
  const int C = std::max(1, objective.classes);
  const bool softmax = objective.loss == Loss::multinomial;
  const Index n = data.rows(), d = data.cols();
  out.setZero(d * C);
  Eigen::Map<const RowMatrix> P(p.data(), d, C);
  Eigen::Map<RowMatrix> O(out.data(), d, C);
  const Index stride = softmax ? C : 1;
  std::visit(
      [&](const auto& X) {
        using M = std::decay_t<decltype(X)>;
        if constexpr (kIsSparse<M>) {
          std::vector<double> u(static_cast<std::size_t>(C)), v(static_cast<std::size_t>(C));
          for (Index i = 0; i < n; ++i) {
            std::fill(u.begin(), u.end(), 0.0);
            for (typename M::InnerIterator it(X, i); it; ++it)
              for (int c = 0; c < C; ++c) u[c] += static_cast<double>(it.value()) * P(it.index(), c);
            apply_curvature(curv_.data() + i * stride, C, softmax, u.data(), v.data());
            for (typename M::InnerIterator it(X, i); it; ++it)
              for (int c = 0; c < C; ++c) O(it.index(), c) += static_cast<double>(it.value()) * v[c];
          }
        } else {
          RowMatrix v;
          for (Index i = 0; i < n; i += kBlock) {
            const Index b = std::min(kBlock, n - i);
            block_ = X.middleRows(i, b).template cast<double>();
            const RowMatrix u = block_ * P;
            v.resize(b, C);
            for (Index r = 0; r < b; ++r)
              apply_curvature(curv_.data() + (i + r) * stride, C, softmax, u.row(r).data(),
                              v.row(r).data());
            O.noalias() += block_.transpose() * v;
          }
        }
      },
      data.X);
}

std::size_t AgentCurvature::bytes() const {
  return static_cast<std::size_t>(w_.size() + curv_.size() + block_.size()) *
         sizeof(double);
}

void AgentCurvature::hessian_upload(const Dataset& data, const Objective& objective,
                                    const std::vector<std::uint32_t>& support,
                                    std::vector<float>& upload) const {
  const int C = std::max(1, objective.classes);
  const bool softmax = objective.loss == Loss::multinomial;
  const Index s = static_cast<Index>(support.size()), n = data.rows();
  const Index stride = softmax ? C : 1;
  // The blocks the upload holds (coarse::blocks_size): one, sum_i h_i x_i x_i^T, or for the
  // softmax (c, c2), c < c2, -sum_i p_c p_c2 x_i x_i^T = -(diag(p_c) X)^T (diag(p_c2) X).
  std::vector<std::pair<int, int>> pairs;
  if (!softmax) pairs.emplace_back(0, 0);
  for (int c = 0; softmax && c < C; ++c)
    for (int c2 = c + 1; c2 < C; ++c2) pairs.emplace_back(c, c2);
  std::vector<Eigen::MatrixXd> blocks(pairs.size());
  for (auto& b : blocks) b.setZero(s, s);
  std::visit(
      [&](const auto& X) {
        using M = std::decay_t<decltype(X)>;
        if constexpr (kIsSparse<M>) {
          const std::vector<std::int32_t> pos = coarse::positions(X.cols(), support);
          for (Index i = 0; i < n; ++i) {
            const double* p = curv_.data() + i * stride;
            for (typename M::InnerIterator a(X, i); a; ++a)
              for (typename M::InnerIterator b(X, i); b; ++b) {
                const double xx = static_cast<double>(a.value()) * static_cast<double>(b.value());
                const Index pa = pos[a.index()], pb = pos[b.index()];
                for (std::size_t q = 0; q < pairs.size(); ++q)
                  blocks[q](pa, pb) +=
                      softmax ? -xx * (p[pairs[q].first] * p[pairs[q].second]) : xx * p[0];
              }
          }
        } else {
          // Dense data: the support is every column.
          Eigen::MatrixXd rows;
          std::vector<Eigen::MatrixXd> scaled(static_cast<std::size_t>(C));
          for (Index i = 0; i < n; i += kBlock) {
            const Index b = std::min(kBlock, n - i);
            rows = X.middleRows(i, b).template cast<double>();
            for (int c = 0; c < C; ++c) {
              Eigen::VectorXd weight(b);
              for (Index r = 0; r < b; ++r) weight[r] = curv_[(i + r) * stride + c];
              scaled[static_cast<std::size_t>(c)] = weight.asDiagonal() * rows;
            }
            for (std::size_t q = 0; q < pairs.size(); ++q) {
              const auto [c, c2] = pairs[q];
              if (!softmax)
                blocks[q].noalias() += rows.transpose() * scaled[0];
              else
                blocks[q].noalias() -= scaled[static_cast<std::size_t>(c)].transpose() *
                                       scaled[static_cast<std::size_t>(c2)];
            }
          }
        }
      },
      data.X);
  upload.resize(coarse::blocks_size(static_cast<std::size_t>(s), C, softmax));
  std::size_t k = 0;
  for (const Eigen::MatrixXd& block : blocks)
    for (Index j = 0; j < s; ++j)
      for (Index l = j; l < s; ++l) upload[k++] = static_cast<float>(block(j, l));
}

void AgentCurvature::hessian_diagonal(const Dataset& data, const Objective& objective,
                                      const std::vector<std::uint32_t>& support,
                                      std::vector<float>& out) const {
  const int C = std::max(1, objective.classes);
  const bool softmax = objective.loss == Loss::multinomial;
  const Index n = data.rows();
  const Index stride = softmax ? C : 1;
  Eigen::VectorXd diagonal = Eigen::VectorXd::Zero(static_cast<Index>(support.size()) * C);
  // Row i adds x_ij^2 (A_i)_cc at (position of j) * C + c: A_i = h_i, or p_c (1 - p_c).
  const auto add = [&](Index i, Index position, double x) {
    const double* p = curv_.data() + i * stride;
    for (int c = 0; c < C; ++c)
      diagonal[position * C + c] += x * x * (softmax ? p[c] * (1.0 - p[c]) : p[0]);
  };
  std::visit(
      [&](const auto& X) {
        using M = std::decay_t<decltype(X)>;
        if constexpr (kIsSparse<M>) {
          const std::vector<std::int32_t> pos = coarse::positions(X.cols(), support);
          for (Index i = 0; i < n; ++i)
            for (typename M::InnerIterator a(X, i); a; ++a)
              add(i, pos[a.index()], static_cast<double>(a.value()));
        } else {
          // Dense data: the support is every column.
          for (Index i = 0; i < n; ++i)
            for (Index j = 0; j < X.cols(); ++j) add(i, j, static_cast<double>(X(i, j)));
        }
      },
      data.X);
  out.resize(static_cast<std::size_t>(diagonal.size()));
  for (Index k = 0; k < diagonal.size(); ++k) out[static_cast<std::size_t>(k)] = static_cast<float>(diagonal[k]);
}

void gram_upper(const Dataset& data, const std::vector<std::uint32_t>& support,
                std::vector<float>& packed) {
  const Index s = static_cast<Index>(support.size());
  Eigen::MatrixXd gram = Eigen::MatrixXd::Zero(s, s);
  std::visit(
      [&](const auto& X) {
        using M = std::decay_t<decltype(X)>;
        if constexpr (kIsSparse<M>) {
          const std::vector<std::int32_t> pos = coarse::positions(X.cols(), support);
          for (Index i = 0; i < X.rows(); ++i)
            for (typename M::InnerIterator a(X, i); a; ++a) {
              const Index pa = pos[a.index()];
              for (typename M::InnerIterator b(X, i); b; ++b) {
                const Index pb = pos[b.index()];
                if (pb >= pa)
                  gram(pa, pb) += static_cast<double>(a.value()) * static_cast<double>(b.value());
              }
            }
        } else {
          // Dense data: the support is every column.
          Eigen::MatrixXd block;
          for (Index i = 0; i < X.rows(); i += kBlock) {
            const Index b = std::min(kBlock, X.rows() - i);
            block = X.middleRows(i, b).template cast<double>();
            gram.selfadjointView<Eigen::Upper>().rankUpdate(block.transpose());
          }
        }
      },
      data.X);
  packed.resize(coarse::packed_size(static_cast<std::size_t>(s)));
  std::size_t k = 0;
  for (Index i = 0; i < s; ++i)
    for (Index j = i; j < s; ++j) packed[k++] = static_cast<float>(gram(i, j));
}

Index max_gram_columns() {
  // s (s + 1) / 2 * 4 bytes <= kMaxGramBytes.
  const double s = (std::sqrt(1.0 + 2.0 * static_cast<double>(kMaxGramBytes)) - 1.0) / 2.0;
  return static_cast<Index>(s);
}

double cg_tolerance(double gradient_norm) {
  return std::min(0.5, std::sqrt(gradient_norm)) * gradient_norm;
}

Status GramPreconditioner::factor(const Eigen::VectorXd& gram_packed, Index d, double beta,
                                  double total_samples, double lambda) {
  llt_.reset();
  if (static_cast<std::size_t>(gram_packed.size()) != coarse::packed_size(static_cast<std::size_t>(d)))
    return Status::error("the Gram's size does not match the model's width");
  Eigen::MatrixXd m(d, d);
  coarse::unpack_upper(gram_packed.data(), m);
  m *= beta / total_samples;
  m.diagonal().array() += lambda;
  auto llt = std::make_shared<Eigen::LLT<Eigen::MatrixXd>>(m);
  if (llt->info() != Eigen::Success) {
    // lambda = 0 and a column the data never touches: a tiny shift keeps M definite.
    m.diagonal().array() += 1e-12 * std::max(1.0, m.diagonal().cwiseAbs().maxCoeff());
    llt->compute(m);
    if (llt->info() != Eigen::Success)
      return Status::error("the Gram preconditioner is not positive definite");
  }
  llt_ = std::move(llt);
  return Status::ok();
}

Eigen::VectorXd GramPreconditioner::apply(const Eigen::VectorXd& r, int classes) const {
  const Index C = std::max(1, classes), d = r.size() / C;
  RowMatrix z = llt_->solve(Eigen::Map<const RowMatrix>(r.data(), d, C));
  return Eigen::Map<const Eigen::VectorXd>(z.data(), d * C);
}

Status HessianModel::set(const Eigen::VectorXd& packed, Index n, double total_samples,
                         double lambda) {
  llt_.reset();
  h_.resize(0, 0);
  if (static_cast<std::size_t>(packed.size()) != coarse::packed_size(static_cast<std::size_t>(n)))
    return Status::error("the Hessian's size does not match the model's width");
  h_.resize(n, n);
  coarse::unpack_upper(packed.data(), h_);
  h_ /= total_samples;
  h_.diagonal().array() += lambda;
  return Status::ok();
}

Status HessianModel::factor(double mu) {
  llt_.reset();
  mu_ = mu;
  Eigen::MatrixXd m = h_;
  m.diagonal().array() += mu;
  auto llt = std::make_shared<Eigen::LLT<Eigen::MatrixXd>>(m);
  // lambda = 0 and a direction the data never touches, or float rounding of a flat direction:
  // shifts up to a millionth of the largest curvature keep M definite.
  for (double shift = 1e-12; llt->info() != Eigen::Success && shift <= 1e-6; shift *= 100.0) {
    m.diagonal().array() += shift * std::max(1.0, m.diagonal().cwiseAbs().maxCoeff());
    llt->compute(m);
  }
  if (llt->info() != Eigen::Success)
    return Status::error("the uploaded Hessian is not positive definite");
  llt_ = std::move(llt);
  return Status::ok();
}

double HessianModel::predicted_decrease(const Eigen::VectorXd& g, const Eigen::VectorXd& x) const {
  return -(g.dot(x) + 0.5 * x.dot(h_ * x));
}

double HessianModel::initial_damping() const {
  return h_.size() == 0 ? 0.0 : 1e-3 * h_.diagonal().cwiseAbs().maxCoeff();
}

std::size_t HessianModel::bytes() const {
  return static_cast<std::size_t>(h_.size()) * sizeof(double) * (llt_ != nullptr ? 2 : 1);
}

double raise_damping(double mu, double initial) {
  return std::min(std::max(4.0 * mu, initial), kMaxDamping * initial);
}

double next_damping(double mu, double ratio, double initial, double lambda) {
  if (ratio > 0.75) mu /= 3.0;
  else if (ratio < 0.25) mu = raise_damping(mu, initial);
  return mu < 1e-3 * lambda ? 0.0 : mu;
}

Status CoarsePreconditioner::build(const coarse::Basis& basis, double beta, double lambda) {
  llt_.reset();
  const Index m = basis.u.cols();
  if (basis.identity || m == 0 || basis.curvature.size() != m)
    return Status::error("no coarse basis to build the preconditioner on");
  const double fine = beta * basis.fine_curvature + lambda;
  if (!(fine > 0.0) || !std::isfinite(fine))
    return Status::error("the curvature left outside the basis is zero (lambda = 0)");
  shift_.resize(m);
  for (Index j = 0; j < m; ++j) {
    const double stiff = beta * basis.curvature[j] + lambda;
    if (!(stiff > 0.0) || !std::isfinite(stiff))
      return Status::error("a basis column has no curvature (lambda = 0)");
    shift_[j] = 1.0 / stiff - 1.0 / fine;
    if (!std::isfinite(shift_[j]))
      return Status::error("a basis column's curvature is too small to invert");
  }
  fine_ = 1.0 / fine;
  auto llt = std::make_shared<Eigen::LLT<Eigen::MatrixXd>>(basis.u.transpose() * basis.u);
  if (llt->info() != Eigen::Success) return Status::error("the basis's columns are dependent");
  llt_ = std::move(llt);
  return Status::ok();
}

Eigen::VectorXd CoarsePreconditioner::apply(const coarse::Basis& basis, const Eigen::VectorXd& r,
                                            int classes) const {
  // U~ = U L^{-T}: U~^T r = L^{-1} U^T r, and M^{-1} r = r / c + U L^{-T} diag(shift) U~^T r.
  const Index C = std::max(1, classes), m = basis.u.cols();
  const auto& L = llt_->matrixL();
  const Eigen::VectorXd ur = coarse::restrict(basis.u, r, C);  // U^T r, m x C
  RowMatrix b = L.solve(Eigen::Map<const RowMatrix>(ur.data(), m, C));
  b = shift_.asDiagonal() * b;
  b = L.transpose().solve(b);
  Eigen::VectorXd out = coarse::prolong(basis.u, Eigen::Map<const Eigen::VectorXd>(b.data(), m * C), C);
  out += fine_ * r;
  return out;
}

Eigen::VectorXd apply_pairs(const Eigen::MatrixXd& s, const Eigen::MatrixXd& y,
                            const Eigen::VectorXd& r, const Eigen::VectorXd& diagonal) {
  const Index m = s.cols();
  const bool scaled = diagonal.size() == r.size();
  Eigen::VectorXd q = r;
  if (m == 0) return scaled ? Eigen::VectorXd(q.cwiseQuotient(diagonal)) : q;
  Eigen::VectorXd alpha(m), rho(m);
  for (Index j = m - 1; j >= 0; --j) {
    rho[j] = 1.0 / y.col(j).dot(s.col(j));
    alpha[j] = rho[j] * s.col(j).dot(q);
    q -= alpha[j] * y.col(j);
  }
  if (scaled) q = q.cwiseQuotient(diagonal);
  else q *= s.col(m - 1).dot(y.col(m - 1)) / y.col(m - 1).squaredNorm();
  for (Index j = 0; j < m; ++j) {
    const double beta = rho[j] * y.col(j).dot(q);
    q += (alpha[j] - beta) * s.col(j);
  }
  return q;
}

void Cg::start(const Eigen::VectorXd& g, const Eigen::VectorXd& z, double tolerance) {
  x = Eigen::VectorXd::Zero(g.size());
  r = -g;
  p = z;
  rz = r.dot(z);
  tol = tolerance;
  steps = 0;
}

bool Cg::take(const Eigen::VectorXd& q) {
  ++steps;
  const double pq = p.dot(q);
  if (!(pq > 0) || !(rz > 0)) return false;
  const double alpha = rz / pq;
  x += alpha * p;
  r -= alpha * q;
  return true;
}

void Cg::next_direction(const Eigen::VectorXd& z) {
  const double next = r.dot(z);
  p = z + (next / rz) * p;
  rz = next;
}

double median_decrease_ratio(const std::vector<double>& f) {
  // D_j = f_j - f_{j+2}, and rho^2 = D_{j+2} / D_j.
  std::vector<double> rho;
  for (std::size_t j = 4; j < f.size(); ++j) {
    const double before = f[j - 4] - f[j - 2], now = f[j - 2] - f[j];
    if (!(before > 1e-10 * std::abs(f[j])) || !(now > 0)) return std::nan("");
    rho.push_back(std::sqrt(now / before));
  }
  if (rho.empty()) return std::nan("");
  std::sort(rho.begin(), rho.end());
  const std::size_t n = rho.size();
  return n % 2 == 1 ? rho[n / 2] : 0.5 * (rho[n / 2 - 1] + rho[n / 2]);
}

}  // namespace dsaga::newton
