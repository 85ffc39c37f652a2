// The reference solver: F* to a gradient norm of 1e-10 (ALGORITHM.md section 5).
//
// Newton (d*C small): the Hessian H = X^T D X / N + lambda I is built row block by row block
// (symmetric rank-k updates, never a copy of X) and factored (Cholesky). Building it costs
// N (dC)^2 / 2 multiply-adds, tens of Hessian-vector products, so a factor is reused: the
// Newton system at a later iterate is solved by conjugate gradients with the exact
// Hessian-vector product, preconditioned by the older factor, and the Hessian is rebuilt only
// when that stops converging quickly. Near the optimum the Hessian barely moves, so the last
// iterations cost a few passes over the data each.
//
// L-BFGS (d*C large): two-loop recursion, Armijo backtracking from the unit step (the objective
// is strongly convex when lambda > 0, so every accepted step gives s^T y > 0).
//
// Both line searches work to the limit of double precision: once the predicted decrease is
// below the rounding error of F itself, a step is accepted when it reduces ||grad F||.
#include "dsaga/reference.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <type_traits>
#include <utility>
#include <vector>

namespace dsaga {

namespace {

using RowMat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Rows per block: the block's margins, derivatives and (for float storage) its double copy
// stay small (256 x d doubles) and in cache.
constexpr Index kBlockRows = 256;
// automatic: Newton when the (dC)^2 Hessian is small (2000^2 doubles = 32 MB).
constexpr Index kNewtonAutoMaxDim = 2000;
// Newton on request: refuse Hessians above 20000^2 doubles (3.2 GB).
constexpr Index kNewtonMaxDim = 20000;
// Preconditioned CG steps before the reused factor is declared stale.
constexpr int kMaxCgSteps = 12;
constexpr double kArmijo = 1e-4;
constexpr int kMaxBacktracks = 60;

template <class T>
constexpr bool kIsSparseExpr = std::is_base_of_v<Eigen::SparseMatrixBase<T>, T>;

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

// F, its gradient, and (at the last point evaluated with curvature) the Hessian, as a product
// with a vector or as an explicit matrix. Reads X in blocks of rows in place; only a block of
// float rows is converted to double (kBlockRows x d scratch).
class Problem {
 public:
  Problem(const Dataset& data, const Objective& objective)
      : data_(data),
        obj_(objective),
        n_(data.rows()),
        d_(data.cols()),
        C_(objective.classes),
        inv_n_(1.0 / static_cast<double>(data.rows())),
        Z_(kBlockRows, objective.classes),
        A_(kBlockRows, objective.classes) {}

  Index dim() const { return d_ * C_; }

  // F(w) and grad F(w). With keep_curvature the per-sample second derivatives at w are kept
  // for hessian_times and hessian (logistic and squared: D_i; multinomial: softmax p_i).
  double evaluate(const Eigen::VectorXd& w, Eigen::VectorXd& g, bool keep_curvature) {
    g.setZero(dim());
    if (keep_curvature) curvature_.resize(n_ * C_);
    const Eigen::Map<const RowMat> W(w.data(), d_, C_);
    Eigen::Map<RowMat> G(g.data(), d_, C_);
    double total = 0.0;
    for_each_block([&](Index s, const auto& Xb) {
      const Index m = Xb.rows();
      auto Z = Z_.topRows(m);
      auto A = A_.topRows(m);
      Z.noalias() = Xb * W;
      for (Index r = 0; r < m; ++r) {
        const double y = data_.y[s + r];
        const double* z = &Z(r, 0);
        total += sample_loss(obj_, y, z);
        sample_derivative(obj_, y, z, &A(r, 0));
        if (keep_curvature) store_curvature(s + r, y, z, &A(r, 0));
      }
      G.noalias() += Xb.transpose() * A;
    });
    g *= inv_n_;
    g += obj_.lambda * w;
    return total * inv_n_ + 0.5 * obj_.lambda * w.squaredNorm();
  }

  // out = H v at the point of the last evaluate(..., keep_curvature = true).
  void hessian_times(const Eigen::VectorXd& v, Eigen::VectorXd& out) {
    out.setZero(dim());
    const Eigen::Map<const RowMat> V(v.data(), d_, C_);
    Eigen::Map<RowMat> O(out.data(), d_, C_);
    for_each_block([&](Index s, const auto& Xb) {
      const Index m = Xb.rows();
      auto U = Z_.topRows(m);
      auto R = A_.topRows(m);
      U.noalias() = Xb * V;
      for (Index r = 0; r < m; ++r) {
        const double* q = curvature_.data() + (s + r) * C_;
        if (C_ == 1) {
          R(r, 0) = q[0] * U(r, 0);
        } else {
          // (diag(p) - p p^T) u
          double pu = 0.0;
          for (int c = 0; c < C_; ++c) pu += q[c] * U(r, c);
          for (int c = 0; c < C_; ++c) R(r, c) = q[c] * (U(r, c) - pu);
        }
      }
      O.noalias() += Xb.transpose() * R;
    });
    out *= inv_n_;
    out += obj_.lambda * v;
  }

  // The lower triangle of H (dim x dim) at the point of the last evaluate with curvature.
  // Each sample adds (x_i x_i^T) (x) B_i, B_i = D_i (C = 1) or diag(p) - p p^T. Writing
  // B_i = M M^T with column j of M equal to sqrt(p_j) (e_j - p) (this uses sum_c p_c = 1),
  // sample i contributes C rows sqrt(p_j) x_i (x) (e_j - p) to a rank-k update.
  void hessian(Eigen::MatrixXd& H) {
    H.setZero(dim(), dim());
    const Index samples_per_update = std::max<Index>(1, kBlockRows / C_);
    RowMat dense(kBlockRows, d_);
    RowMat E(samples_per_update * C_, dim());
    for_each_block([&](Index s, const auto& Xb) {
      const Index m = Xb.rows();
      using B = std::decay_t<decltype(Xb)>;
      if constexpr (kIsSparseExpr<B>) {
        dense.topRows(m) = Xb.toDense();
      } else {
        dense.topRows(m) = Xb;
      }
      if (C_ == 1) {
        for (Index r = 0; r < m; ++r) dense.row(r) *= std::sqrt(curvature_[s + r]);
        H.selfadjointView<Eigen::Lower>().rankUpdate(dense.topRows(m).transpose(), inv_n_);
        return;
      }
      for (Index r0 = 0; r0 < m; r0 += samples_per_update) {
        const Index mr = std::min(samples_per_update, m - r0);
        E.topRows(mr * C_).setZero();
        for (Index r = 0; r < mr; ++r) {
          const double* p = curvature_.data() + (s + r0 + r) * C_;
          for (int j = 0; j < C_; ++j) {
            const double sj = std::sqrt(p[j]);
            double* e = &E((r * C_) + j, 0);
            for (Index k = 0; k < d_; ++k) {
              const double xk = dense(r0 + r, k);
              if (xk == 0.0) continue;
              const double f = sj * xk;
              for (int c = 0; c < C_; ++c) e[k * C_ + c] = -f * p[c];
              e[k * C_ + j] += f;
            }
          }
        }
        H.selfadjointView<Eigen::Lower>().rankUpdate(E.topRows(mr * C_).transpose(), inv_n_);
      }
    });
    H.diagonal().array() += obj_.lambda;
  }

 private:
  void store_curvature(Index i, double y, const double* z, const double* a) {
    double* q = curvature_.data() + i * C_;
    switch (obj_.loss) {
      case Loss::logistic: {
        // sigma(t) sigma(-t) = e / (1 + e)^2 with e = exp(-|t|) <= 1.
        const double e = std::exp(-std::abs(y * z[0]));
        q[0] = e / ((1.0 + e) * (1.0 + e));
        break;
      }
      case Loss::squared:
        q[0] = 1.0;
        break;
      case Loss::multinomial:
        // p = a + e_y (a = softmax - e_y).
        for (int c = 0; c < C_; ++c) q[c] = a[c];
        q[static_cast<int>(y)] += 1.0;
        break;
    }
  }

  // Calls f(first_row, block) for consecutive blocks of at most kBlockRows rows, where block is
  // a double-valued dense or sparse matrix expression over those rows.
  template <class F>
  void for_each_block(F&& f) {
    std::visit(
        [&](const auto& X) {
          using M = std::decay_t<decltype(X)>;
          constexpr bool sparse = kIsSparseExpr<M>;
          constexpr bool f64 = std::is_same_v<typename M::Scalar, double>;
          for (Index s = 0; s < n_; s += kBlockRows) {
            const Index m = std::min(kBlockRows, n_ - s);
            if constexpr (f64) {
              f(s, X.middleRows(s, m));
            } else if constexpr (sparse) {
              sparse_block_ = X.middleRows(s, m).template cast<double>();
              f(s, sparse_block_);
            } else {
              dense_block_.resize(m, d_);
              dense_block_ = X.middleRows(s, m).template cast<double>();
              f(s, dense_block_);
            }
          }
        },
        data_.X);
  }

  const Dataset& data_;
  const Objective obj_;
  const Index n_, d_;
  const int C_;
  const double inv_n_;
  RowMat Z_, A_;               // per block: margins, derivatives (kBlockRows x C)
  Eigen::VectorXd curvature_;  // n x C, see evaluate
  RowMat dense_block_;         // float storage: the current block in double
  SparseMatrix<double> sparse_block_;
};

// Accepts w + t p (Armijo), or, once the predicted decrease g^T p is within rounding of F, a
// step that reduces the gradient norm. Leaves w, F, g at the accepted point (and the problem's
// curvature there when keep_curvature). Returns false when no step is found.
bool line_search(Problem& problem, Eigen::VectorXd& w, double& F, Eigen::VectorXd& g,
                 const Eigen::VectorXd& p, double t, bool keep_curvature) {
  const double gp = g.dot(p);
  const double gnorm = g.norm();
  const bool at_rounding = std::abs(gp) <= 1e-12 * std::max(1.0, std::abs(F));
  Eigen::VectorXd wt(w.size()), gt(w.size());
  for (int k = 0; k < kMaxBacktracks; ++k, t *= 0.5) {
    wt = w + t * p;
    const double Ft = problem.evaluate(wt, gt, keep_curvature);
    if (!std::isfinite(Ft)) continue;
    if (Ft <= F + kArmijo * t * gp || (at_rounding && gt.norm() < gnorm)) {
      w.swap(wt);
      g.swap(gt);
      F = Ft;
      return true;
    }
  }
  // The last trial overwrote the curvature; restore it at w for the caller.
  if (keep_curvature) F = problem.evaluate(w, g, true);
  return false;
}

Status not_reached(const char* method, int iterations, double gnorm, double tolerance,
                   const std::string& why) {
  return Status::error(std::string("reference solver (") + method + "): " + why + " after " +
                       std::to_string(iterations) + " iterations; reached gradient norm " +
                       fmt(gnorm) + ", tolerance " + fmt(tolerance));
}

// Cholesky of the lower triangle of H; when it fails (lambda = 0 and a singular Hessian, as
// in the multinomial class-sum direction) a growing multiple of the identity is added.
void factor(Eigen::MatrixXd& H, Eigen::LLT<Eigen::MatrixXd, Eigen::Lower>& llt) {
  llt.compute(H);
  double shift = 1e-12 * std::max(1e-300, H.diagonal().maxCoeff());
  while (llt.info() != Eigen::Success && shift < 1e300) {
    H.diagonal().array() += shift;
    llt.compute(H);
    shift *= 100.0;
  }
}

Result<ReferenceResult> newton(Problem& problem, const ReferenceOptions& options) {
  const Index dim = problem.dim();
  ReferenceResult res;
  res.method = "newton";
  Eigen::VectorXd w = Eigen::VectorXd::Zero(dim), g, p(dim), r(dim), z(dim), q(dim), Hq(dim);
  double F = problem.evaluate(w, g, true);
  Eigen::MatrixXd H;
  Eigen::LLT<Eigen::MatrixXd, Eigen::Lower> llt;
  bool have_factor = false, stale = false;
  for (int it = 0;; ++it) {
    const double gnorm = g.norm();
    if (options.progress) options.progress(it, F, gnorm);
    res.iterations = it;
    if (gnorm <= options.gradient_tolerance) {
      res.w = std::move(w);
      res.value = F;
      res.gradient_norm = gnorm;
      return res;
    }
    if (it >= options.max_iterations)
      return not_reached("newton", it, gnorm, options.gradient_tolerance,
                         "iteration limit reached");
    if (!std::isfinite(F) || !std::isfinite(gnorm))
      return not_reached("newton", it, gnorm, options.gradient_tolerance, "F is not finite");
    const bool fresh = !have_factor || stale;
    if (fresh) {
      problem.hessian(H);
      factor(H, llt);
      have_factor = true;
      stale = false;
      p = -llt.solve(g);
    } else {
      // Inexact Newton: CG on H p = -g preconditioned by the old factor, to a relative
      // residual min(0.1, sqrt||g||) (superlinear convergence).
      const double target = std::min(0.1, std::sqrt(gnorm)) * gnorm;
      p.setZero();
      r = -g;
      z = llt.solve(r);
      q = z;
      double rz = r.dot(z);
      bool converged = false;
      for (int k = 0; k < kMaxCgSteps; ++k) {
        problem.hessian_times(q, Hq);
        const double qHq = q.dot(Hq);
        if (!(qHq > 0.0)) break;
        const double alpha = rz / qHq;
        p += alpha * q;
        r -= alpha * Hq;
        if (r.norm() <= target) {
          converged = true;
          break;
        }
        z = llt.solve(r);
        const double rz_next = r.dot(z);
        q = z + (rz_next / rz) * q;
        rz = rz_next;
      }
      // A partial CG solution is still a descent direction; take it, refresh H next time.
      if (!converged) stale = true;
      if (!(g.dot(p) < 0.0)) p = -llt.solve(g);
    }
    if (!line_search(problem, w, F, g, p, 1.0, true)) {
      if (!fresh) {
        stale = true;  // retry from a fresh Hessian before giving up
        continue;
      }
      return not_reached("newton", it, g.norm(), options.gradient_tolerance, "line search failed");
    }
  }
}

Result<ReferenceResult> lbfgs(Problem& problem, const ReferenceOptions& options) {
  const Index dim = problem.dim();
  const int mem = options.lbfgs_memory;
  ReferenceResult res;
  res.method = "lbfgs";
  Eigen::VectorXd w = Eigen::VectorXd::Zero(dim), g, p(dim), w_prev(dim), g_prev(dim);
  double F = problem.evaluate(w, g, false);
  Eigen::MatrixXd S(dim, mem), Y(dim, mem);
  std::vector<double> rho(mem), alpha(mem);
  int stored = 0, newest = -1;  // circular buffer of the last `stored` pairs
  for (int it = 0;; ++it) {
    const double gnorm = g.norm();
    if (options.progress) options.progress(it, F, gnorm);
    res.iterations = it;
    if (gnorm <= options.gradient_tolerance) {
      res.w = std::move(w);
      res.value = F;
      res.gradient_norm = gnorm;
      return res;
    }
    if (it >= options.max_iterations)
      return not_reached("lbfgs", it, gnorm, options.gradient_tolerance, "iteration limit reached");
    if (!std::isfinite(F) || !std::isfinite(gnorm))
      return not_reached("lbfgs", it, gnorm, options.gradient_tolerance, "F is not finite");
    // Two-loop recursion: p = -H_k g with H_0 = (s^T y / y^T y) I.
    p = -g;
    double t0 = 1.0;
    if (stored == 0) {
      t0 = std::min(1.0, 1.0 / gnorm);
    } else {
      for (int k = 0; k < stored; ++k) {
        const int j = (newest - k + mem) % mem;
        alpha[j] = rho[j] * S.col(j).dot(p);
        p -= alpha[j] * Y.col(j);
      }
      p *= S.col(newest).dot(Y.col(newest)) / Y.col(newest).squaredNorm();
      for (int k = stored - 1; k >= 0; --k) {
        const int j = (newest - k + mem) % mem;
        const double beta = rho[j] * Y.col(j).dot(p);
        p += (alpha[j] - beta) * S.col(j);
      }
      if (!(g.dot(p) < 0.0)) {  // lost descent (rounding): restart from steepest descent
        stored = 0;
        p = -g;
        t0 = std::min(1.0, 1.0 / gnorm);
      }
    }
    w_prev = w;
    g_prev = g;
    if (!line_search(problem, w, F, g, p, t0, false)) {
      if (stored > 0) {  // retry once along -g with a fresh memory
        stored = 0;
        continue;
      }
      return not_reached("lbfgs", it, g.norm(), options.gradient_tolerance, "line search failed");
    }
    const int slot = (newest + 1) % mem;
    S.col(slot) = w - w_prev;
    Y.col(slot) = g - g_prev;
    const double sy = S.col(slot).dot(Y.col(slot));
    // Keep only pairs with clearly positive curvature, so that H_k stays positive definite.
    if (sy > 1e-12 * S.col(slot).norm() * Y.col(slot).norm() && sy > 0.0) {
      rho[slot] = 1.0 / sy;
      newest = slot;
      stored = std::min(stored + 1, mem);
    }
  }
}

}  // namespace

Result<ReferenceResult> solve_reference(const Dataset& data, const Objective& objective,
                                        const ReferenceOptions& options) {
  if (Status s = validate(objective, data); !s) return s;
  if (!(options.gradient_tolerance > 0.0) || !std::isfinite(options.gradient_tolerance))
    return Result<ReferenceResult>::failure(
        "reference solver: gradient_tolerance must be finite and > 0, got " +
        fmt(options.gradient_tolerance));
  if (options.max_iterations < 0)
    return Result<ReferenceResult>::failure("reference solver: max_iterations must be >= 0");
  if (options.lbfgs_memory < 1)
    return Result<ReferenceResult>::failure("reference solver: lbfgs_memory must be >= 1");
  Problem problem(data, objective);
  const Index dim = problem.dim();
  using Method = ReferenceOptions::Method;
  Method method = options.method;
  if (method == Method::automatic)
    method = dim <= kNewtonAutoMaxDim ? Method::newton : Method::lbfgs;
  if (method == Method::newton && dim > kNewtonMaxDim)
    return Result<ReferenceResult>::failure(
        "reference solver: Newton needs a (d*C)^2 Hessian and d*C = " + std::to_string(dim) +
        " exceeds " + std::to_string(kNewtonMaxDim) + "; use L-BFGS");
  return method == Method::newton ? newton(problem, options) : lbfgs(problem, options);
}

}  // namespace dsaga
