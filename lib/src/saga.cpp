// The SAGA local solver (ALGORITHM.md section 2). See saga.hpp for the contract.
//
// Thread-safety: none. A SagaSolver is driven by one thread; even the const accessors w() and
// gbar() may write the solver's cached iterate (sparse path), so concurrent const calls race.
//
// Determinism: the sample sequence comes from the solver's own SplitMix64 generator, identical
// on every platform, and every reduction is written in a fixed order (the dense dot product
// keeps eight partial sums combined in a fixed tree, so SIMD width does not change it). Nothing
// depends on timing, on how the steps are split over run() calls or on calls to w()/gbar():
// the same data, options and seed give bitwise the same iterates with one build. Across
// platforms they agree to rounding (libm's exp, and FMA contraction where a compiler uses it).
//
// CSR rows are assumed to hold each column index at most once (Eigen's compressed storage, as
// built by the readers and convert(), guarantees it).
#include "dsaga/saga.hpp"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>
#include <type_traits>

namespace dsaga {

namespace {

template <class M>
constexpr bool kIsSparse = std::is_base_of_v<Eigen::SparseMatrixBase<M>, M>;

// <x, w> over d entries, accumulated in double in a fixed order: eight interleaved partial sums
// (independent chains the compiler can map onto SIMD lanes without reassociating), combined in
// a fixed tree, then the tail.
template <class S>
double dot(const S* x, const double* w, Index d) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  Index k = 0;
  for (; k + 8 <= d; k += 8) {
    for (int l = 0; l < 8; ++l) acc[l] += static_cast<double>(x[k + l]) * w[k + l];
  }
  double z = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; k < d; ++k) z += static_cast<double>(x[k]) * w[k];
  return z;
}

// The C margins of a dense row x (d entries) at w (feature-major, w[k*C + c]).
template <class S>
void dense_margins(const S* x, Index d, const double* w, int C, double* z) {
  if (C == 1) {
    z[0] = dot(x, w, d);
    return;
  }
  std::fill(z, z + C, 0.0);
  for (Index k = 0; k < d; ++k) {
    const double xk = static_cast<double>(x[k]);
    const double* wk = w + k * C;
    for (int c = 0; c < C; ++c) z[c] += xk * wk[c];
  }
}

// The fused dense update of one row for C = 1 (see run_dense). Blocks of 8 with a fixed-count
// inner loop and restrict-qualified parameters: compilers vectorise this even at -O2. Each
// entry's update is independent of the others, so the blocking does not change any result.
template <class S>
void update_dense_row(const S* __restrict x, Index d, double dj, double eta, double lambda,
                      double inv_N, double* __restrict w, double* __restrict g,
                      double* __restrict ts, double* __restrict ds) {
  Index k = 0;
  for (; k + 8 <= d; k += 8) {
    for (int l = 0; l < 8; ++l) {
      const double u = dj * static_cast<double>(x[k + l]);
      w[k + l] -= eta * (u + g[k + l] + lambda * w[k + l]);
      g[k + l] += u * inv_N;
      ts[k + l] += u;
      ds[k + l] += u;
    }
  }
  for (; k < d; ++k) {
    const double u = dj * static_cast<double>(x[k]);
    w[k] -= eta * (u + g[k] + lambda * w[k]);
    g[k] += u * inv_N;
    ts[k] += u;
    ds[k] += u;
  }
}

}  // namespace

SagaSolver::SagaSolver(const Dataset& data, const Objective& objective, const SagaOptions& options)
    : data_(data),
      objective_(objective),
      n_(data.rows()),
      d_(data.cols()),
      C_(std::max(1, objective.width())),
      rng_(options.seed),
      sparse_(data.is_sparse()) {
  assert(objective.width() >= 1 && "validate(objective, data) first");
  N_ = options.total_samples > 0 ? options.total_samples : n_;
  if (options.eta != 0.0) {
    eta_ = options.eta;
  } else {
    const double L_max = max_smoothness(data_, objective_);
    // All-zero data with lambda = 0 has L_max = 0 and a zero gradient: any step does.
    eta_ = L_max > 0.0 ? 1.0 / (3.0 * L_max) : 1.0;
  }

  const Index dC = d_ * C_;
  table_.setZero(n_, C_);
  w_.setZero(dC);
  gbar_.setZero(dC);
  table_sum_.setZero(dC);
  delta_sum_.setZero(dC);
  z_.setZero(C_);
  a_.setZero(C_);
  delta_.setZero(C_);
  if (sparse_) {
    v_.setZero(dC);
    mark_.setZero(d_);
    rho_ = 1.0 - eta_ * objective_.lambda;
    // The scaled form divides by s, which shrinks by rho each step; with rho near zero (a step
    // size beyond 1/lambda, far outside SAGA's range) fall back to an O(d) dense part per step.
    eager_ = !(rho_ >= 1e-3);
    // See the invariant below: restarting every max(d, 1024) steps bounds the cancellation in
    // A_t - mark_k at O(C) amortised cost per step.
    restart_period_ = std::max<Index>(d_, 1024);
  }
}

// --- the sparse just-in-time representation ---------------------------------------------------
//
// Invariant (sparse path), for every coordinate k and class c, between steps:
//
//   w[k*C + c] == s * (v[k*C + c] - gbar[k*C + c] * (A - mark[k]))
//
// where, over the steps since the last restart, s = rho^t (rho = 1 - eta*lambda, the running
// product as computed) and A = sum over those steps tau of eta / s_tau (Kahan-summed), and
// mark[k] is the value A had when coordinate k was last brought up to date.
//
// Why it holds: a step j changes gbar_k only where x_jk != 0, so between two reads of k gbar_k
// is constant and each step does w_k <- rho * w_k - eta * gbar_k, i.e. with w = s * v,
// v_k <- v_k - gbar_k * eta / s_new. Over the skipped steps these decrements add up to
// gbar_k * (A - mark_k): the closed form applied when k is next read. A row's own coordinates
// are brought up to date before its margins are taken and then updated with the full step.
//
// Rounding: s is rounded once per step, which is a relative perturbation of the step's rho of
// one ulp, the same as the dense path's rounding of w. A - mark_k is a difference of running
// sums with error ~ eps * A; relative to the decrement that is eps * (steps since restart) /
// (steps since k was read), bounded by the restart period. Restarts also keep s >= 1e-100.

void SagaSolver::restart_lazy() {
  if (!sparse_) return;
  v_ = w_;
  mark_.setZero();
  scale_ = 1.0;
  cum_ = 0.0;
  cum_carry_ = 0.0;
  since_restart_ = 0;
  w_current_ = true;
}

void SagaSolver::renormalize() {
  const int C = C_;
  for (Index k = 0; k < d_; ++k) {
    const double D = cum_ - mark_[k];
    for (int c = 0; c < C; ++c) {
      const Index i = k * C + c;
      v_[i] = scale_ * (v_[i] - gbar_[i] * D);
    }
  }
  mark_.setZero();
  scale_ = 1.0;
  cum_ = 0.0;
  cum_carry_ = 0.0;
  since_restart_ = 0;
}

void SagaSolver::flush() const {
  if (!sparse_ || w_current_) return;
  const int C = C_;
  for (Index k = 0; k < d_; ++k) {
    const double D = cum_ - mark_[k];
    for (int c = 0; c < C; ++c) {
      const Index i = k * C + c;
      w_[i] = scale_ * (v_[i] - gbar_[i] * D);
    }
  }
  w_current_ = true;
}

// --- state ----------------------------------------------------------------------------------

double SagaSolver::init_table(const Eigen::VectorXd& w0) {
  assert(w0.size() == w_.size() && "w0 must have d*C entries");
  if (w0.size() != w_.size()) return std::numeric_limits<double>::quiet_NaN();
  w_ = w0;
  table_sum_.setZero();
  delta_sum_.setZero();
  const int C = C_;
  const double* y = data_.y.data();
  double* z = z_.data();
  double* S = table_sum_.data();
  double loss = 0.0;
  std::visit(
      [&](const auto& X) {
        using M = std::decay_t<decltype(X)>;
        for (Index i = 0; i < n_; ++i) {
          double* a = table_.data() + i * C;
          if constexpr (kIsSparse<M>) {
            const Index begin = X.outerIndexPtr()[i], end = X.outerIndexPtr()[i + 1];
            std::fill(z, z + C, 0.0);
            for (Index p = begin; p < end; ++p) {
              const double x = static_cast<double>(X.valuePtr()[p]);
              const double* wk = w_.data() + Index(X.innerIndexPtr()[p]) * C;
              for (int c = 0; c < C; ++c) z[c] += x * wk[c];
            }
            loss += sample_loss(objective_, y[i], z);
            sample_derivative(objective_, y[i], z, a);
            for (Index p = begin; p < end; ++p) {
              const double x = static_cast<double>(X.valuePtr()[p]);
              double* Sk = S + Index(X.innerIndexPtr()[p]) * C;
              for (int c = 0; c < C; ++c) Sk[c] += a[c] * x;
            }
          } else {
            const auto* x = X.data() + i * d_;
            dense_margins(x, d_, w_.data(), C, z);
            loss += sample_loss(objective_, y[i], z);
            sample_derivative(objective_, y[i], z, a);
            for (Index k = 0; k < d_; ++k) {
              const double xk = static_cast<double>(x[k]);
              for (int c = 0; c < C; ++c) S[k * C + c] += a[c] * xk;
            }
          }
        }
      },
      data_.X);
  gbar_ = table_sum_ / static_cast<double>(N_);
  restart_lazy();
  return loss;
}

void SagaSolver::init_zero(const Eigen::VectorXd& w0) {
  assert(w0.size() == w_.size() && "w0 must have d*C entries");
  if (w0.size() != w_.size()) return;
  w_ = w0;
  table_.setZero();
  table_sum_.setZero();
  delta_sum_.setZero();
  gbar_.setZero();
  restart_lazy();
}

void SagaSolver::set_state(const Eigen::VectorXd& w, const Eigen::VectorXd& gbar) {
  // Sizes are checked by the caller against the model dimension (the agent rejects a message
  // whose vectors do not have d*C entries); a mismatch here is a programming error.
  assert(w.size() == w_.size() && gbar.size() == gbar_.size());
  if (w.size() != w_.size() || gbar.size() != gbar_.size()) return;
  w_ = w;
  gbar_ = gbar;
  delta_sum_.setZero();
  restart_lazy();
}

void SagaSolver::reset_delta() { delta_sum_.setZero(); }

const Eigen::VectorXd& SagaSolver::w() const {
  flush();
  return w_;
}

const Eigen::VectorXd& SagaSolver::gbar() const { return gbar_; }

std::size_t SagaSolver::state_bytes() const {
  const auto doubles = table_.size() + w_.size() + gbar_.size() + table_sum_.size() +
                       delta_sum_.size() + v_.size() + mark_.size() + z_.size() + a_.size() +
                       delta_.size();
  return static_cast<std::size_t>(doubles) * sizeof(double);
}

// --- the step ---------------------------------------------------------------------------------

SagaStats SagaSolver::run(Index steps) {
  SagaStats stats;
  if (steps <= 0 || n_ == 0) return stats;
  std::visit(
      [&](const auto& X) {
        using M = std::decay_t<decltype(X)>;
        if constexpr (kIsSparse<M>) {
          run_sparse(X, steps);
        } else {
          run_dense(X, steps);
        }
      },
      data_.X);
  stats.steps = steps;
  return stats;
}

// Dense rows: the margins, then one fused pass over the row that applies the step to w, gbar,
// table_sum and delta_sum together:
//   u = (a - table_j) * x_jk;  w_k -= eta * (u + gbar_k + lambda * w_k);  gbar_k += u / N;
//   table_sum_k += u;  delta_sum_k += u.
template <class Matrix>
void SagaSolver::run_dense(const Matrix& X, Index steps) {
  using S = typename Matrix::Scalar;
  const Index d = d_;
  const int C = C_;
  const double eta = eta_, lambda = objective_.lambda;
  const double inv_N = 1.0 / static_cast<double>(N_);
  const double* y = data_.y.data();
  const S* rows = X.data();
  double* __restrict w = w_.data();
  double* __restrict g = gbar_.data();
  double* __restrict ts = table_sum_.data();
  double* __restrict ds = delta_sum_.data();
  double* z = z_.data();
  double* a = a_.data();
  double* delta = delta_.data();

  for (Index step = 0; step < steps; ++step) {
    const Index j = static_cast<Index>(rng_.below(static_cast<std::uint64_t>(n_)));
    const S* __restrict x = rows + j * d;
    dense_margins(x, d, w, C, z);
    sample_derivative(objective_, y[j], z, a);
    double* table_j = table_.data() + j * C;
    for (int c = 0; c < C; ++c) {
      delta[c] = a[c] - table_j[c];
      table_j[c] = a[c];
    }
    if (C == 1) {
      update_dense_row(x, d, delta[0], eta, lambda, inv_N, w, g, ts, ds);
    } else {
      for (Index k = 0; k < d; ++k) {
        const double xk = static_cast<double>(x[k]);
        const Index base = k * C;
        for (int c = 0; c < C; ++c) {
          const Index i = base + c;
          const double u = delta[c] * xk;
          w[i] -= eta * (u + g[i] + lambda * w[i]);
          g[i] += u * inv_N;
          ts[i] += u;
          ds[i] += u;
        }
      }
    }
  }
}

// CSR rows: O(nnz(x_j) * C) per step with the just-in-time invariant above.
template <class Matrix>
void SagaSolver::run_sparse(const Matrix& X, Index steps) {
  const auto* outer = X.outerIndexPtr();
  const auto* inner = X.innerIndexPtr();
  const auto* values = X.valuePtr();
  const int C = C_;
  const Index dC = d_ * C;
  const double eta = eta_, lambda = objective_.lambda;
  const double inv_N = 1.0 / static_cast<double>(N_);
  const double* y = data_.y.data();
  double* __restrict v = v_.data();
  double* __restrict g = gbar_.data();
  double* __restrict ts = table_sum_.data();
  double* __restrict ds = delta_sum_.data();
  double* __restrict mark = mark_.data();
  double* z = z_.data();
  double* a = a_.data();
  double* delta = delta_.data();

  for (Index step = 0; step < steps; ++step) {
    const Index j = static_cast<Index>(rng_.below(static_cast<std::uint64_t>(n_)));
    const Index begin = outer[j], end = outer[j + 1];

    // Bring the row's coordinates up to date (closed form over the steps since each was last
    // read) and take the margins <x_j, w> = s * <x_j, v>.
    std::fill(z, z + C, 0.0);
    for (Index p = begin; p < end; ++p) {
      const Index k = inner[p];
      const double x = static_cast<double>(values[p]);
      const double D = cum_ - mark[k];
      double* vk = v + k * C;
      const double* gk = g + k * C;
      for (int c = 0; c < C; ++c) {
        vk[c] -= gk[c] * D;
        z[c] += x * vk[c];
      }
    }
    for (int c = 0; c < C; ++c) z[c] *= scale_;

    sample_derivative(objective_, y[j], z, a);
    double* table_j = table_.data() + j * C;
    for (int c = 0; c < C; ++c) {
      delta[c] = a[c] - table_j[c];
      table_j[c] = a[c];
    }

    if (eager_) {
      // s == 1 and A == 0 throughout: the dense part goes to every coordinate now.
      for (Index i = 0; i < dC; ++i) v[i] -= eta * (g[i] + lambda * v[i]);
      for (Index p = begin; p < end; ++p) {
        const double x = static_cast<double>(values[p]);
        const Index base = Index(inner[p]) * C;
        for (int c = 0; c < C; ++c) {
          const Index i = base + c;
          const double u = delta[c] * x;
          v[i] -= eta * u;
          g[i] += u * inv_N;
          ts[i] += u;
          ds[i] += u;
        }
      }
      continue;
    }

    // w' = rho * w - eta * (gbar + u) with w = s * v becomes v' = v - (eta / s') * (gbar + u):
    // the row's coordinates take this step in full (with the old gbar) and are marked up to
    // date at the new A.
    const double s_next = scale_ * rho_;
    const double inc = eta / s_next;
    {  // A += inc, Kahan-compensated
      const double t = inc - cum_carry_;
      const double sum = cum_ + t;
      cum_carry_ = (sum - cum_) - t;
      cum_ = sum;
    }
    for (Index p = begin; p < end; ++p) {
      const Index k = inner[p];
      const double x = static_cast<double>(values[p]);
      const Index base = k * C;
      for (int c = 0; c < C; ++c) {
        const Index i = base + c;
        const double u = delta[c] * x;
        v[i] -= inc * (g[i] + u);
        g[i] += u * inv_N;
        ts[i] += u;
        ds[i] += u;
      }
      mark[k] = cum_;
    }
    scale_ = s_next;
    if (++since_restart_ >= restart_period_ || !(scale_ >= 1e-100 && scale_ <= 1e100)) {
      renormalize();
    }
  }
  w_current_ = false;
}

}  // namespace dsaga
