// The SAGA local solver (ALGORITHM.md section 2), the building block of every dSAGA agent.
//
//   pick j uniformly;  a = loss'(y_j, <x_j, w>)
//   w    <- w - eta * ((a - table_j) * x_j + gbar + lambda * w)
//   gbar <- gbar + (a - table_j) * x_j / N;   table_j <- a
//
// N is the number of samples of the *whole* problem (all agents), so that gbar is the global
// table average: gbar == (1/N) * sum_k S_k with S_k = sum_{i on agent k} table_i x_i.
// A single-node run is the case N = n.
//
// Memory contract: the constructor allocates everything the solver will ever use (the table,
// n x C doubles; w, gbar, the round's table delta and the lazy-update bookkeeping, d x C each).
// Nothing is allocated afterwards: `run` and `set_state` never touch the heap.
//
// Sparse data uses the just-in-time update: the dense part of a step (-eta*(gbar + lambda*w))
// is applied to a coordinate only when a row next reads it, in closed form over the skipped
// steps, so a step costs O(nnz(x_j) * C) whatever d is. Dense data applies it every step.
// Both paths give the same iterates up to rounding.
//
// Deterministic: the same data, options and seed give the same iterates on every platform.
// Not thread-safe; the Dataset must outlive the solver.
#pragma once

#include <Eigen/Dense>

#include <cstdint>

#include "dsaga/dataset.hpp"
#include "dsaga/objective.hpp"
#include "dsaga/rng.hpp"

namespace dsaga {

struct SagaOptions {
  double eta = 0.0;          // step size; 0 means 1 / (3 * L_max) of this data
  Index total_samples = 0;   // N; 0 means the rows of this data (single node)
  std::uint64_t seed = 0;
};

struct SagaStats {
  Index steps = 0;  // steps taken by the last run()
};

class SagaSolver {
 public:
  SagaSolver(const Dataset& data, const Objective& objective, const SagaOptions& options);
  SagaSolver(const SagaSolver&) = delete;
  SagaSolver& operator=(const SagaSolver&) = delete;

  // Fills the table at w0 (one pass: table_i = loss'(y_i, <x_i, w0>)), sets w = w0, computes
  // S = sum_i table_i x_i and sets gbar = S / N (this node's share: the full gbar when single
  // node). Returns sum_i loss(y_i, <x_i, w0>) as a by-product.
  double init_table(const Eigen::VectorXd& w0);
  // Zero table, S = 0, gbar = 0, w = w0 (the cheap start of section 2).
  void init_zero(const Eigen::VectorXd& w0);

  // Loads a state received from the hub: w and the global gbar. Resets the round's delta.
  void set_state(const Eigen::VectorXd& w, const Eigen::VectorXd& gbar);
  // Starts a new accounting period for delta_sum() without changing w or gbar.
  void reset_delta();

  // `steps` SAGA steps with indices drawn from this solver's generator (which persists across
  // calls, so k calls of n steps equal one call of k*n steps). Allocates nothing.
  SagaStats run(Index steps);

  // Current iterate and table average (all pending lazy updates applied).
  const Eigen::VectorXd& w() const;
  const Eigen::VectorXd& gbar() const;
  // sum_i table_i x_i over this node's samples (S_k), kept up to date by every step.
  const Eigen::VectorXd& table_sum() const { return table_sum_; }
  // Change of table_sum() since the last set_state / reset_delta / init (dS_k of a round).
  const Eigen::VectorXd& delta_sum() const { return delta_sum_; }
  // The table, n x C, row-major: table(i, c).
  const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>& table() const {
    return table_;
  }

  double eta() const { return eta_; }
  Index total_samples() const { return N_; }
  const Objective& objective() const { return objective_; }
  const Dataset& data() const { return data_; }
  Rng& rng() { return rng_; }
  // Bytes of solver state allocated by the constructor (table + d-sized vectors).
  std::size_t state_bytes() const;

 private:
  template <class Matrix>
  void run_dense(const Matrix& X, Index steps);
  template <class Matrix>
  void run_sparse(const Matrix& X, Index steps);
  // Sparse path: starts the lazy representation afresh from w_ (v = w, s = 1, A = 0, marks 0).
  void restart_lazy();
  // Sparse path: brings every coordinate up to date and restarts the representation, so that
  // s and A stay in range and rounding in A stays small (see saga.cpp).
  void renormalize();
  // Sparse path: writes the current iterate into w_. Leaves the lazy state untouched, so that
  // looking at w() never changes later iterates.
  void flush() const;

  const Dataset& data_;
  Objective objective_;
  Index n_ = 0, d_ = 0, N_ = 0;
  int C_ = 1;
  double eta_ = 0.0;
  Rng rng_;
  bool sparse_ = false;

  Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> table_;  // n x C
  // Dense path: the iterate. Sparse path: the iterate as of the last flush() (mutable: w()
  // refreshes it on demand).
  mutable Eigen::VectorXd w_;
  Eigen::VectorXd gbar_;  // always current: a step changes it only where its row is non-zero
  Eigen::VectorXd table_sum_;
  Eigen::VectorXd delta_sum_;
  // Sparse just-in-time state (empty for dense data); the invariant is stated in saga.cpp.
  Eigen::VectorXd v_;       // d*C scaled weights
  Eigen::VectorXd mark_;    // d: the value of A when coordinate k was last brought up to date
  double scale_ = 1.0;      // s
  double cum_ = 0.0;        // A
  double cum_carry_ = 0.0;  // Kahan compensation of A
  double rho_ = 1.0;        // 1 - eta * lambda
  bool eager_ = false;      // rho too small for the scaled form: apply the dense part eagerly
  Index since_restart_ = 0, restart_period_ = 1;
  mutable bool w_current_ = true;
  // Per-step scratch, C entries each.
  Eigen::VectorXd z_, a_, delta_;
};

}  // namespace dsaga
