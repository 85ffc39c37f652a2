// The SAGA local solver (ALGORITHM.md section 2). See saga.hpp for the contract.
//
// Thread-safety: none. A SagaSolver is driven by one thread; even the const accessors write the
// solver's buffers, so concurrent const calls race.
//
// Determinism: the sample sequence comes from the solver's own SplitMix64 generator, identical
// on every platform, and every reduction is written in a fixed order (the dense dot product
// keeps eight partial sums combined in a fixed tree, so SIMD width does not change it). Nothing
// depends on timing, on how the steps are split over run() calls or on calls to the accessors:
// the same data, options and seed give bitwise the same iterates with one build. Across
// platforms they agree to rounding (libm's exp, and FMA contraction where a compiler uses it).
//
// Speed: the dense step reads its row (3 kB in float32 for Fashion-MNIST) and is bound by the
// instructions per entry, so the loops below (a) touch the d-sized state in as few streams as
// possible (v and delta only: gbar and table_sum are derived, the shrinkage is a scale), kept on
// 64-byte boundaries, (b) make one pass per step: the update of step t also takes step t + 1's
// margin (simd::update_dot), (c) run the C = 1 kernels of simd.hpp: 16-byte lanes without
// -march, AVX2 or AVX-512 lanes chosen at run time on x86-64 CPUs that have them (bitwise the
// same results), and (d) prefetch the row two steps ahead while the current one is processed
// (indices are drawn ahead: the generator's sequence, and so every iterate, is unchanged).
// load_data backs the data set with huge pages (advise_huge_pages). bench/RESULTS.md has figures.
//
// CSR rows are assumed to hold each column index at most once (Eigen's compressed storage, as
// built by the readers and convert(), guarantees it).
#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <type_traits>

#include "dsaga/saga.hpp"
#include "huge_pages.hpp"
#include "simd.hpp"

namespace dsaga {

namespace {

template <class M>
constexpr bool kIsSparse = std::is_base_of_v<Eigen::SparseMatrixBase<M>, M>;

// The number of classes C, known at compile time for the common C = 1 (so that the loops over
// classes vanish) or at run time.
struct OneClass {
  static constexpr int value() { return 1; }
};
struct Classes {
  int C;
  int value() const { return C; }
};

// Row j of a CSR matrix: its entries [begin, end) of the column indices and values.
template <class Inner, class Value>
struct CsrRow {
  CsrRow(const Inner* inner, const Value* values, Index begin, Index end)
      : inner(inner), values(values), begin(begin), end(end) {}
  const Inner* inner;
  const Value* values;
  Index begin, end;
};

using simd::prefetch;

// Requests the cache lines of [begin, begin + bytes), so that they arrive while other work runs.
inline void prefetch_range(const void* begin, std::size_t bytes) {
  const char* p = static_cast<const char*>(begin);
  for (std::size_t off = 0; off < bytes; off += 64) prefetch(p + off);
}

// The C = 1 dense kernels (dot product with prefetch, fused update) are in simd.hpp, with the
// run-time choice of their AVX2 build.

// The C margins of a dense row x (d entries) at v (feature-major, v[k*C + c]).
template <class S>
void dense_margins(const S* x, Index d, const double* v, int C, double* z) {
  std::fill(z, z + C, 0.0);
  for (Index k = 0; k < d; ++k) {
    const double xk = static_cast<double>(x[k]);
    const double* vk = v + k * C;
    for (int c = 0; c < C; ++c) z[c] += xk * vk[c];
  }
}

}  // namespace

const char* dense_kernels() { return simd::name(simd::isa()); }

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
  rho_ = 1.0 - eta_ * objective_.lambda;
  // The scaled form divides by s, which shrinks by rho each step; with rho near zero (a step
  // size beyond 1/lambda, far outside SAGA's range) shrink w eagerly instead (s stays 1).
  eager_ = !(rho_ >= 1e-3);

  const Index dC = d_ * C_;
  table_.setZero(n_, C_);
  table_sum0_.setZero(dC);
  // The accessors' buffers are allocated now but only written (made resident) when called.
  w_.resize(dC);
  gbar_.resize(dC);
  table_sum_.resize(dC);
  delta_.setZero(dC);
  z_.setZero(C_);
  a_.setZero(C_);
  diff_.setZero(C_);
  if (sparse_) {
    record_size_ = 1 + 3 * Index(C_);
    // Allocated, advised (huge pages: see huge_pages.hpp), then first written.
    rec_.resize(d_ * record_size_);
    hint::huge_pages(rec_.data(), static_cast<std::size_t>(rec_.size()) * sizeof(double));
    rec_.setZero();
    // See the invariant below: restarting every max(d, 1024) steps bounds the cancellation in
    // A_t - mark_k at O(C) amortised cost per step.
    restart_period_ = std::max<Index>(d_, 1024);
  } else {
    // One block: v, gbar0 and delta, each starting on a 64-byte boundary.
    constexpr Index kLine = 64 / Index(sizeof(double));
    dense_stride_ = (dC + kLine - 1) / kLine * kLine;
    dense_block_doubles_ = static_cast<std::size_t>(3 * std::max<Index>(dense_stride_, kLine));
    double* block = static_cast<double*>(
        std::aligned_alloc(64, dense_block_doubles_ * sizeof(double)));
    if (block == nullptr) throw std::bad_alloc();
    dense_block_.reset(block);
    std::fill(block, block + dense_block_doubles_, 0.0);
    new (&v_) Eigen::Map<Eigen::VectorXd>(block, dC);
    new (&gbar0_) Eigen::Map<Eigen::VectorXd>(block + dense_stride_, dC);
    new (&live_delta_) Eigen::Map<Eigen::VectorXd>(block + 2 * dense_stride_, dC);
  }
}

// --- representation -------------------------------------------------------------------------
//
// Both paths: table_sum == table_sum0 + delta and gbar == gbar0 + delta / N (delta computed as
// delta * (1/N)), where delta is the change of table_sum since the last reset. Storing only
// delta per step saves two d-sized store streams; the derived values are exact up to the one
// rounding of the sum, and delta_sum itself is accumulated exactly as before.
//
// Dense path: w == s * v with s = the running product of rho since the last restart. A step
// w' = rho * w - eta * (u + gbar) becomes v' = v - (eta / s') * (u + gbar) with s' = s * rho:
// the shrinkage costs one multiply per step instead of one per coordinate. s is folded into v
// when it leaves [1e-100, 1e100] (an O(d) pass, rare: never within an epoch at SAGA's step).
//
// Sparse path (records [mark, v, gbar0, delta] per coordinate), for every coordinate k and
// class c, between steps:
//
//   w[k*C + c] == s * (v_kc - gbar_kc * (A - mark_k)),   gbar_kc = gbar0_kc + delta_kc / N
//
// where, over the steps since the last restart, s = rho^t (rho = 1 - eta*lambda, the running
// product as computed) and A = sum over those steps tau of eta / s_tau (Kahan-summed), and
// mark_k is the value A had when coordinate k was last brought up to date.
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

void SagaSolver::restart(const Eigen::VectorXd& w) {
  scale_ = 1.0;
  cum_ = 0.0;
  cum_carry_ = 0.0;
  since_restart_ = 0;
  if (!sparse_) {
    v_ = w;
    return;
  }
  const int C = C_;
  for (Index k = 0; k < d_; ++k) {
    double* r = record(k);
    r[kMark] = 0.0;
    for (int c = 0; c < C; ++c) r[kV + c] = w[k * C + c];
  }
}

void SagaSolver::renormalize() {
  if (!sparse_) {
    v_ *= scale_;
    scale_ = 1.0;
    return;
  }
  const int C = C_;
  const double inv_N = this->inv_N();
  for (Index k = 0; k < d_; ++k) {
    double* r = record(k);
    const double D = cum_ - r[kMark];
    for (int c = 0; c < C; ++c) {
      const double g = r[gbar0_at(C) + c] + r[delta_at(C) + c] * inv_N;
      r[kV + c] = scale_ * (r[kV + c] - g * D);
    }
    r[kMark] = 0.0;
  }
  scale_ = 1.0;
  cum_ = 0.0;
  cum_carry_ = 0.0;
  since_restart_ = 0;
}

void SagaSolver::fold_delta() {
  const double inv_N = this->inv_N();
  if (!sparse_) {
    table_sum0_ += live_delta_;
    gbar0_ += live_delta_ * inv_N;
    live_delta_.setZero();
    return;
  }
  // gbar_k must stay what the closed form assumed since mark_k: bring every coordinate up to
  // date first (O(d), as the fold itself).
  renormalize();
  const int C = C_;
  for (Index k = 0; k < d_; ++k) {
    double* r = record(k);
    for (int c = 0; c < C; ++c) {
      double& dk = r[delta_at(C) + c];
      table_sum0_[k * C + c] += dk;
      r[gbar0_at(C) + c] += dk * inv_N;
      dk = 0.0;
    }
  }
}

// --- state ----------------------------------------------------------------------------------

double SagaSolver::init_table(const Eigen::VectorXd& w0) {
  assert(w0.size() == table_sum0_.size() && "w0 must have d*C entries");
  if (w0.size() != table_sum0_.size()) return std::numeric_limits<double>::quiet_NaN();
  table_sum0_.setZero();
  const int C = C_;
  const double* y = data_.y.data();
  double* z = z_.data();
  double* S = table_sum0_.data();
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
              const double* wk = w0.data() + Index(X.innerIndexPtr()[p]) * C;
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
            if (C == 1) {
              z[0] = simd::dot(simd::isa(), x, w0.data(), d_, static_cast<decltype(x)>(nullptr));
            } else {
              dense_margins(x, d_, w0.data(), C, z);
            }
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
  const double inv_N = this->inv_N();
  if (sparse_) {
    for (Index k = 0; k < d_; ++k) {
      double* r = record(k);
      for (int c = 0; c < C; ++c) {
        r[gbar0_at(C) + c] = S[k * C + c] * inv_N;
        r[delta_at(C) + c] = 0.0;
      }
    }
  } else {
    gbar0_ = table_sum0_ * inv_N;
    live_delta_.setZero();
  }
  restart(w0);
  return loss;
}

void SagaSolver::init_zero(const Eigen::VectorXd& w0) {
  assert(w0.size() == table_sum0_.size() && "w0 must have d*C entries");
  if (w0.size() != table_sum0_.size()) return;
  table_.setZero();
  table_sum0_.setZero();
  if (sparse_) {
    rec_.setZero();
  } else {
    gbar0_.setZero();
    live_delta_.setZero();
  }
  restart(w0);
}

void SagaSolver::set_state(const Eigen::VectorXd& w, const Eigen::VectorXd& gbar) {
  // Sizes are checked by the caller against the model dimension (the agent rejects a message
  // whose vectors do not have d*C entries); a mismatch here is a programming error.
  assert(w.size() == table_sum0_.size() && gbar.size() == table_sum0_.size());
  if (w.size() != table_sum0_.size() || gbar.size() != table_sum0_.size()) return;
  const int C = C_;
  if (sparse_) {
    for (Index k = 0; k < d_; ++k) {
      double* r = record(k);
      for (int c = 0; c < C; ++c) {
        double& dk = r[delta_at(C) + c];
        table_sum0_[k * C + c] += dk;
        r[gbar0_at(C) + c] = gbar[k * C + c];
        dk = 0.0;
      }
    }
  } else {
    table_sum0_ += live_delta_;
    gbar0_ = gbar;
    live_delta_.setZero();
  }
  restart(w);
}

void SagaSolver::reset_delta() { fold_delta(); }

const Eigen::VectorXd& SagaSolver::w() const {
  if (!sparse_) {
    w_ = scale_ * v_;
    return w_;
  }
  const int C = C_;
  const double inv_N = this->inv_N();
  for (Index k = 0; k < d_; ++k) {
    const double* r = record(k);
    const double D = cum_ - r[kMark];
    for (int c = 0; c < C; ++c) {
      const double g = r[gbar0_at(C) + c] + r[delta_at(C) + c] * inv_N;
      w_[k * C + c] = scale_ * (r[kV + c] - g * D);
    }
  }
  return w_;
}

const Eigen::VectorXd& SagaSolver::delta_sum() const {
  if (!sparse_) {
    delta_ = live_delta_;
    return delta_;
  }
  const int C = C_;
  for (Index k = 0; k < d_; ++k)
    for (int c = 0; c < C; ++c) delta_[k * C + c] = record(k)[delta_at(C) + c];
  return delta_;
}

const Eigen::VectorXd& SagaSolver::gbar() const {
  const double inv_N = this->inv_N();
  if (!sparse_) {
    gbar_ = gbar0_ + live_delta_ * inv_N;
    return gbar_;
  }
  const int C = C_;
  for (Index k = 0; k < d_; ++k)
    for (int c = 0; c < C; ++c)
      gbar_[k * C + c] = record(k)[gbar0_at(C) + c] + record(k)[delta_at(C) + c] * inv_N;
  return gbar_;
}

const Eigen::VectorXd& SagaSolver::table_sum() const {
  table_sum_ = table_sum0_ + delta_sum();
  return table_sum_;
}

std::size_t SagaSolver::state_bytes() const {
  const auto doubles = table_.size() + static_cast<Index>(dense_block_doubles_) + delta_.size() +
                       rec_.size() +
                       table_sum0_.size() + w_.size() + gbar_.size() + table_sum_.size() +
                       z_.size() + a_.size() + diff_.size();
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
          if (C_ == 1) {
            run_sparse(X, steps, OneClass{});
          } else {
            run_sparse(X, steps, Classes{C_});
          }
        } else {
          if (C_ == 1) {
            run_dense(X, steps, OneClass{});
          } else {
            run_dense(X, steps, Classes{C_});
          }
        }
      },
      data_.X);
  stats.steps = steps;
  return stats;
}

SagaStats SagaSolver::refresh(Index count) {
  // eta = 0 makes a step a pure table update: rho = 1 leaves the scale s alone, and the
  // just-in-time sums (of eta / s) gain nothing, so the lazy path stays exact.
  const double eta = eta_, rho = rho_;
  eta_ = 0.0;
  rho_ = 1.0;
  const SagaStats stats = run(count);
  eta_ = eta;
  rho_ = rho;
  return stats;
}

double SagaSolver::refresh_all(double* margins_out) {
  // Every coordinate up to date first (sparse: A = 0, so changing gbar_k below cannot alter a
  // closed form still to be applied; dense: the scale folded into v). w does not move.
  renormalize();
  const Eigen::VectorXd& w = this->w();
  const int C = C_;
  const double* y = data_.y.data();
  double* z = z_.data();
  double* a = a_.data();
  double* diff = diff_.data();
  double loss = 0.0;
  std::visit(
      [&](const auto& X) {
        using M = std::decay_t<decltype(X)>;
        for (Index i = 0; i < n_; ++i) {
          margins(data_, i, w, z);
          if (margins_out != nullptr) std::copy(z, z + C, margins_out + i * C);
          loss += sample_loss(objective_, y[i], z);
          sample_derivative(objective_, y[i], z, a);
          double* table_i = table_.data() + i * C;
          for (int c = 0; c < C; ++c) {
            diff[c] = a[c] - table_i[c];
            table_i[c] = a[c];
          }
          if constexpr (kIsSparse<M>) {
            for (typename M::InnerIterator it(X, i); it; ++it) {
              double* r = record(static_cast<Index>(it.index()));
              const double x = static_cast<double>(it.value());
              for (int c = 0; c < C; ++c) r[delta_at(C) + c] += diff[c] * x;
            }
          } else {
            const auto* x = X.data() + i * d_;
            double* delta = live_delta_.data();
            for (Index k = 0; k < d_; ++k) {
              const double xk = static_cast<double>(x[k]);
              for (int c = 0; c < C; ++c) delta[k * C + c] += diff[c] * xk;
            }
          }
        }
      },
      data_.X);
  return loss;
}

SagaStats SagaSolver::run_held(Index steps) {
  fold_delta();
  hold_ = true;
  const SagaStats stats = run(steps);
  // The held steps accumulated their table differences in delta, which 1/N = 0 kept out of
  // gbar; dropping them leaves gbar, table_sum and the iterate exactly as the run left them.
  if (sparse_) {
    const int C = C_;
    for (Index k = 0; k < d_; ++k)
      for (int c = 0; c < C; ++c) record(k)[delta_at(C) + c] = 0.0;
  } else {
    live_delta_.setZero();
  }
  hold_ = false;
  return stats;
}

void SagaSolver::set_step(double eta) {
  // The scaled form (w = s * v) absorbs any rho; only the eager switch depends on it.
  renormalize();
  eta_ = eta;
  rho_ = 1.0 - eta_ * objective_.lambda;
  eager_ = !(rho_ >= 1e-3);
}

// Dense rows: the margins, then one fused pass over the row that applies the step to v and
// delta (see the representation above):
//   u = (a - table_j) * x_jk;  v_k <- v_k - (eta / s') * (u + gbar0_k + delta_k / N);
//   delta_k += u;  s <- s' = s * rho.
// Indices are drawn two steps ahead (same generator sequence) so that rows can be prefetched;
// see the lookahead below.
template <class Matrix, class Width>
void SagaSolver::run_dense(const Matrix& X, Index steps, Width width) {
  using S = typename Matrix::Scalar;
  const Index d = d_;
  const int C = width.value();
  const double eta = eta_, rho = rho_;
  const double inv_N = this->inv_N();
  const std::uint64_t n = static_cast<std::uint64_t>(n_);
  const double* y = data_.y.data();
  const S* rows = X.data();
  double* __restrict v = v_.data();
  const double* __restrict g0 = gbar0_.data();
  double* __restrict delta = live_delta_.data();
  double* z = z_.data();
  double* a = a_.data();
  double* diff = diff_.data();
  const simd::Isa isa = simd::isa();  // the widest kernels (same results; simd.hpp)

  // Lookahead: j_1 is the next step's sample, j_2 the one after (-1: beyond `steps`), drawn in
  // the generator's order. For C = 1 the update pass of step t also takes step t + 1's margin on
  // the updated v (simd::update_dot, bitwise the same as a separate dot product), so each step
  // makes one pass over v instead of two, while row j_2 streams in.
  Index j_1 = static_cast<Index>(rng_.below(n));
  Index j_2 = steps > 1 ? static_cast<Index>(rng_.below(n)) : -1;
  bool z_ready = false;  // z_next holds <x_j, v> for this step's row
  double z_next = 0.0;
  for (Index step = 0; step < steps; ++step) {
    const Index j = j_1;
    j_1 = j_2;
    j_2 = step + 2 < steps ? static_cast<Index>(rng_.below(n)) : -1;
    const S* next = j_1 >= 0 ? rows + j_1 * d : nullptr;
    const S* far = j_2 >= 0 ? rows + j_2 * d : nullptr;
    if (next) {
      prefetch(table_.data() + j_1 * C);
      prefetch(y + j_1);
    }
    const S* __restrict x = rows + j * d;
    if (C == 1) {
      z[0] = z_ready ? z_next : simd::dot(isa, x, v, d, next);
    } else {
      if (next) prefetch_range(next, static_cast<std::size_t>(d) * sizeof(S));
      dense_margins(x, d, v, C, z);
    }
    for (int c = 0; c < C; ++c) z[c] *= scale_;
    sample_derivative(objective_, y[j], z, a);
    double* table_j = table_.data() + j * C;
    for (int c = 0; c < C; ++c) {
      diff[c] = a[c] - table_j[c];
      if (!hold_) table_j[c] = a[c];
    }
    // Scaled form: v -= (eta / s') * (...). Eager (rho out of range): s stays 1 and
    // v <- rho * v - eta * (...).
    const double s_next = eager_ ? 1.0 : scale_ * rho;
    const double c_step = eager_ ? eta : eta / s_next;
    if (C == 1) {
      const double alpha = eager_ ? rho : 1.0;
      z_ready = next != nullptr;
      if (eager_) {
        if (z_ready) {
          z_next = simd::update_dot<true>(isa, x, d, diff[0], alpha, c_step, inv_N, v, g0, delta,
                                          next, far);
        } else {
          simd::update<true>(isa, x, d, diff[0], alpha, c_step, inv_N, v, g0, delta);
        }
      } else if (z_ready) {
        z_next = simd::update_dot<false>(isa, x, d, diff[0], alpha, c_step, inv_N, v, g0, delta,
                                         next, far);
      } else {
        simd::update<false>(isa, x, d, diff[0], alpha, c_step, inv_N, v, g0, delta);
      }
    } else {
      const double alpha = eager_ ? rho : 1.0;
      for (Index k = 0; k < d; ++k) {
        const double xk = static_cast<double>(x[k]);
        const Index base = k * C;
        for (int c = 0; c < C; ++c) {
          const Index i = base + c;
          const double u = diff[c] * xk;
          const double g = g0[i] + delta[i] * inv_N;
          v[i] = alpha * v[i] - c_step * (u + g);
          delta[i] += u;
        }
      }
    }
    scale_ = s_next;
    if (!(scale_ >= 1e-100 && scale_ <= 1e100)) {
      renormalize();
      z_ready = false;  // v was rescaled: take the margin afresh
    }
  }
}

// CSR rows: O(nnz(x_j) * C) per step with the just-in-time invariant above. Two steps of
// lookahead: during step t the CSR entries of row j_{t+2} and the records of row j_{t+1}
// (whose column indices are then in cache) are prefetched; the generator is drawn in the same
// order as without lookahead and never past `steps`, so the samples do not change.
//
// Why the cost still grows with d: each non-zero reads and writes its coordinate's 32-byte
// record. For d = 2^14 the 512 kB of records stay in L2; for d = 2^20 (32 MB, uniform columns)
// almost every non-zero is an L2 miss served by L3 plus a write-back, and the prefetches can
// hide the latency of those transfers but not their throughput (bench/RESULTS.md, issue 6).
template <class Matrix, class Width>
void SagaSolver::run_sparse(const Matrix& X, Index steps, Width width) {
  const auto* outer = X.outerIndexPtr();
  const auto* inner = X.innerIndexPtr();
  const auto* values = X.valuePtr();
  const int C = width.value();
  // The record size, a compile-time constant for C = 1 (so the prefetch of a record's lines is
  // one instruction, not a loop).
  const Index R = std::is_same_v<Width, OneClass> ? Index(4) : record_size_;
  assert(R == record_size_);
  const double inv_N = this->inv_N();
  const std::uint64_t n = static_cast<std::uint64_t>(n_);
  const double* y = data_.y.data();
  double* __restrict rec = rec_.data();
  double* z = z_.data();
  double* a = a_.data();
  double* diff = diff_.data();

  const auto prefetch_entries = [&](Index i) {
    const Index b = outer[i], e = outer[i + 1];
    prefetch_range(inner + b, static_cast<std::size_t>(e - b) * sizeof(*inner));
    prefetch_range(values + b, static_cast<std::size_t>(e - b) * sizeof(*values));
  };
  // A record is R doubles (32 bytes for C = 1) but rec_ is only 16-byte aligned (malloc puts a
  // large block 16 bytes past a page), so records can straddle two cache lines (half of them for
  // C = 1): the record's last line is then requested too, or every other non-zero would pay a
  // demand miss on it. last = R - 1 when a record can straddle, else 0.
  const bool may_straddle = 64 % (R * Index(sizeof(double))) != 0 ||
                            reinterpret_cast<std::uintptr_t>(rec) % (R * sizeof(double)) != 0;
  const Index last = may_straddle ? R - 1 : 0;
  // Row j_1's records are requested during row j's margin loop, one record per entry of row j
  // (the rest after the loop), not all at the start of the step: ~100-200 requests at once
  // exceed the misses a core can track (its fill buffers), and this step's own loads would
  // queue behind them. [q, q_end) are the entries of row j_1 whose records are not requested.
  Index q = 0, q_end = 0;
  const auto prefetch_next_record = [&] {
    if (q < q_end) {
      const double* r = rec + Index(inner[q]) * R;
      for (Index o = 0; o < R; o += 8) prefetch(r + o);  // one per line (C > 1: R > 8)
      if (last != 0) prefetch(r + last);
      ++q;
    }
  };

  // Lookahead queue: j_cur (this step), j_1 (next), j_2 (the one after); -1 = beyond `steps`.
  Index j_1 = static_cast<Index>(rng_.below(n));
  Index j_2 = steps > 1 ? static_cast<Index>(rng_.below(n)) : -1;
  for (Index step = 0; step < steps; ++step) {
    const Index j = j_1;
    j_1 = j_2;
    j_2 = step + 2 < steps ? static_cast<Index>(rng_.below(n)) : -1;
    if (j_2 >= 0) prefetch_entries(j_2);
    if (j_1 >= 0) {
      q = outer[j_1];
      q_end = outer[j_1 + 1];
      prefetch(table_.data() + j_1 * C);
    }
    const CsrRow row(inner, values, outer[j], outer[j + 1]);

    catch_up_row(rec, R, row, width, inv_N, z, prefetch_next_record);
    while (q < q_end) prefetch_next_record();

    sample_derivative(objective_, y[j], z, a);
    double* table_j = table_.data() + j * C;
    for (int c = 0; c < C; ++c) {
      diff[c] = a[c] - table_j[c];
      if (!hold_) table_j[c] = a[c];
    }

    if (eager_) {
      step_row_eager(rec, R, row, width, inv_N, diff);
    } else {
      step_row_lazy(rec, R, row, width, inv_N, diff);
    }
  }
}

// Before a sparse step: brings row j's coordinates up to date (the closed form over the steps
// since each was last read) and takes the margins z = <x_j, w> = s * <x_j, v>, requesting one
// of the next row's records per entry (prefetch_next).
template <class Width, class Row, class Prefetch>
void SagaSolver::catch_up_row(double* __restrict rec, Index R, const Row& row, Width width,
                              double inv_N, double* z, Prefetch& prefetch_next) {
  const auto* inner = row.inner;
  const auto* values = row.values;
  const Index begin = row.begin, end = row.end;
  const double A = cum_;
  if constexpr (std::is_same_v<Width, OneClass>) {
    // Two partial sums in registers (even and odd entries): the margin's add chain, not the
    // loads, bounds this loop otherwise.
    const auto catch_up = [&](Index p) {  // brings entry p's coordinate up to date: x * v
      double* r = rec + Index(inner[p]) * R;
      const double vk = r[kV] - (r[gbar0_at(1)] + r[delta_at(1)] * inv_N) * (A - r[kMark]);
      r[kV] = vk;
      return static_cast<double>(values[p]) * vk;
    };
    double z_even = 0.0, z_odd = 0.0;
    Index p = begin;
    for (; p + 2 <= end; p += 2) {
      prefetch_next();
      prefetch_next();
      z_even += catch_up(p);
      z_odd += catch_up(p + 1);
    }
    if (p < end) z_even += catch_up(p);
    z[0] = scale_ * (z_even + z_odd);
  } else {
    const int C = width.value();
    std::fill(z, z + C, 0.0);
    for (Index p = begin; p < end; ++p) {
      prefetch_next();
      double* r = rec + Index(inner[p]) * R;
      const double x = static_cast<double>(values[p]);
      const double D = A - r[kMark];
      for (int c = 0; c < C; ++c) {
        const double g = r[gbar0_at(C) + c] + r[delta_at(C) + c] * inv_N;
        const double vk = r[kV + c] - g * D;
        r[kV + c] = vk;
        z[c] += x * vk;
      }
    }
    for (int c = 0; c < C; ++c) z[c] *= scale_;
  }
}

// A sparse step when rho is out of range (eager_): s == 1 and A == 0 throughout, so the dense
// part goes to every coordinate now, then row j's part u = diff * x_j.
template <class Width, class Row>
void SagaSolver::step_row_eager(double* __restrict rec, Index R, const Row& row, Width width,
                                double inv_N, const double* diff) {
  const int C = width.value();
  const double eta = eta_, lambda = objective_.lambda;
  for (Index k = 0; k < d_; ++k) {
    double* r = rec + k * R;
    for (int c = 0; c < C; ++c) {
      const double g = r[gbar0_at(C) + c] + r[delta_at(C) + c] * inv_N;
      r[kV + c] -= eta * (g + lambda * r[kV + c]);
    }
  }
  for (Index p = row.begin; p < row.end; ++p) {
    double* r = rec + Index(row.inner[p]) * R;
    const double x = static_cast<double>(row.values[p]);
    for (int c = 0; c < C; ++c) {
      const double u = diff[c] * x;
      r[kV + c] -= eta * u;
      r[delta_at(C) + c] += u;
    }
  }
}

// A sparse step in the scaled form: w' = rho * w - eta * (gbar + u) with w = s * v becomes
// v' = v - (eta / s') * (gbar + u). The row's coordinates take this step in full (with the old
// gbar) and are marked up to date at the new A; the others follow by the closed form when next
// read. Restarts the representation when its period is over or s is out of range.
template <class Width, class Row>
void SagaSolver::step_row_lazy(double* __restrict rec, Index R, const Row& row, Width width,
                               double inv_N, const double* diff) {
  const int C = width.value();
  const double s_next = scale_ * rho_;
  const double inc = eta_ / s_next;
  {  // A += inc, Kahan-compensated
    const double t = inc - cum_carry_;
    const double sum = cum_ + t;
    cum_carry_ = (sum - cum_) - t;
    cum_ = sum;
  }
  for (Index p = row.begin; p < row.end; ++p) {
    double* r = rec + Index(row.inner[p]) * R;
    const double x = static_cast<double>(row.values[p]);
    for (int c = 0; c < C; ++c) {
      const double u = diff[c] * x;
      const double g = r[gbar0_at(C) + c] + r[delta_at(C) + c] * inv_N;
      r[kV + c] -= inc * (g + u);
      r[delta_at(C) + c] += u;
    }
    r[kMark] = cum_;
  }
  scale_ = s_next;
  if (++since_restart_ >= restart_period_ || !(scale_ >= 1e-100 && scale_ <= 1e100)) {
    renormalize();
  }
}

}  // namespace dsaga
