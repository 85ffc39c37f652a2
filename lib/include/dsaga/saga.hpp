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
// exactly n x C doubles; a fixed number of d x C vectors: the step's state and the buffers the
// accessors fill). Nothing is allocated afterwards: `run`, `set_state`, `reset_delta`, the
// init functions and the accessors never touch the heap.
//
// Precision: the features may be stored in float32 (half the bytes, and the step is bound by
// reading its row: float32 storage is what makes an epoch cost half as much) or float64. Every
// quantity the solver keeps is float64 and every product with a feature is formed in float64:
// gbar and the table sums add up N tiny increments a*x/N, and the hub's invariant
// gbar == sum_k S_k / N is checked to ~1e-12, which float32 accumulation (eps 6e-8) cannot hold.
// The table stays float64 for the same reason (its entries are subtracted, a - table_j).
//
// What a step costs (the reason for the representation, see saga.cpp):
// - The L2 shrinkage is a scale factor, w = s * v, so no step multiplies the whole of w.
// - Only the round's table delta is stored per step; gbar and table_sum are derived from their
//   values at the last reset (set_state / reset_delta / init) plus that delta:
//     table_sum == table_sum0 + delta_sum,   gbar == gbar0 + delta_sum / N.
//   A dense step is then one pass over the row for <x_j, w> and one fused pass that updates v
//   and delta_sum: two d-length store streams, and the row is read from memory once (the next
//   row is prefetched while the current one is processed).
// - Sparse data uses the just-in-time update: the dense part of a step (-eta*(gbar + lambda*w))
//   is applied to a coordinate only when a row next reads it, in closed form over the skipped
//   steps, so a step costs O(nnz(x_j) * C) whatever d is. A coordinate's state (its scaled
//   weights, gbar0, delta and the mark of the closed form) sits in one record, so a row touches
//   one cache line per non-zero (for C = 1), and the next row's records are prefetched.
// Both paths give the same iterates up to rounding. The accessors w(), gbar(), table_sum() and
// delta_sum() materialise the plain vectors into preallocated buffers, O(d * C) per call.
//
// Deterministic: the same data, options and seed give the same iterates on every platform.
// Not thread-safe (even the const accessors write their buffers); the Dataset must outlive the
// solver.
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "dsaga/dataset.hpp"
#include "dsaga/objective.hpp"
#include "dsaga/rng.hpp"

namespace dsaga {

struct SagaOptions {
  double eta = 0.0;         // step size; 0 means 1 / (3 * L_max) of this data
  Index total_samples = 0;  // N; 0 means the rows of this data (single node)
  std::uint64_t seed = 0;
};

struct SagaStats {
  Index steps = 0;  // steps taken by the last run()
};

// The build of the dense kernels this process runs: "portable", "avx2" or "avx512" (chosen
// once, at first use, from the CPU; DSAGA_SIMD=portable or avx2 caps it). All give the same
// results bit for bit; see lib/src/simd.hpp.
const char* dense_kernels();

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
  // Recomputes `count` table entries, drawn like steps, at the current w without moving w (a
  // step of size 0): the table, table_sum, delta_sum and gbar change together as in a step.
  // dSAGA calls it at the broadcast w before a round's steps, so that the tables the hub's gbar
  // is made of do not lag the averaged model (local_method.hpp: refresh). Allocates nothing.
  SagaStats refresh(Index count);
  // Recomputes every table entry at the current w, in row order, without moving w (two-level
  // dSAGA's refresh at the broadcast w): one pass over the data that also returns the loss sum
  // and, when `margins` is not null, writes each row's C margins there (n x C, row-major). The
  // table, table_sum, delta_sum and gbar change together as in a step. Allocates nothing.
  double refresh_all(double* margins);
  // `steps` steps with the table held: w moves as in run(), but no table entry and so neither
  // gbar nor table_sum changes; every step is corrected by the table as it was when the run
  // started (local SVRG with the SAGA table as its anchor). The run starts a new accounting
  // period (as reset_delta()), so delta_sum() is zero after it. Allocates nothing.
  SagaStats run_held(Index steps);
  // Changes the step size between runs (two-level dSAGA's guard adapts it per round).
  void set_step(double eta);

  // Current iterate and table average (all pending lazy updates applied). Each accessor returns
  // a buffer of its own, valid until the next call of a non-const member or of the same
  // accessor; reading them never changes later iterates.
  const Eigen::VectorXd& w() const;
  const Eigen::VectorXd& gbar() const;
  // sum_i table_i x_i over this node's samples (S_k), as of the last step.
  const Eigen::VectorXd& table_sum() const;
  // Change of table_sum() since the last set_state / reset_delta / init (dS_k of a round).
  const Eigen::VectorXd& delta_sum() const;
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
  template <class Matrix, class Width>
  void run_dense(const Matrix& X, Index steps, Width width);
  template <class Matrix, class Width>
  void run_sparse(const Matrix& X, Index steps, Width width);
  // run_sparse's parts (saga.cpp): a row's lazy catch-up and margins, then the step itself.
  template <class Width, class Row, class Prefetch>
  void catch_up_row(double* rec, Index R, const Row& row, Width width, double inv_N, double* z,
                    Prefetch& prefetch_next);
  template <class Width, class Row>
  void step_row_eager(double* rec, Index R, const Row& row, Width width, double inv_N,
                      const double* diff);
  template <class Width, class Row>
  void step_row_lazy(double* rec, Index R, const Row& row, Width width, double inv_N,
                     const double* diff);
  // Starts the step representation afresh from the iterate w (s = 1; sparse: A = 0, marks 0).
  void restart(const Eigen::VectorXd& w);
  // Folds the scale into v (dense), or brings every coordinate up to date and restarts the
  // closed form (sparse), without changing the iterate beyond rounding (see saga.cpp).
  void renormalize();
  // Starts a new accounting period: table_sum0 += delta, gbar0 += delta / N, delta = 0.
  void fold_delta();
  // 1/N, or 0 while the table is held (run_held): gbar stays gbar0 whatever delta does.
  double inv_N() const { return hold_ ? 0.0 : 1.0 / static_cast<double>(N_); }
  // Sparse path: pointer to coordinate k's record.
  double* record(Index k) { return rec_.data() + k * record_size_; }
  const double* record(Index k) const { return rec_.data() + k * record_size_; }

  const Dataset& data_;
  Objective objective_;
  Index n_ = 0, d_ = 0, N_ = 0;
  int C_ = 1;
  double eta_ = 0.0;
  Rng rng_;
  bool sparse_ = false;

  Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> table_;  // n x C
  // Step state, dense path (d*C each; w = scale_ * v_, gbar = gbar0_ + live_delta_ / N), views
  // of one block in which each vector starts on a 64-byte boundary (a cache line, and the width
  // of the widest loads: VectorXd's 16-byte alignment would split most of them in two).
  struct FreeBlock {
    void operator()(double* p) const { std::free(p); }
  };
  std::unique_ptr<double[], FreeBlock> dense_block_;
  std::size_t dense_block_doubles_ = 0;
  Eigen::Map<Eigen::VectorXd> v_{nullptr, 0};
  Eigen::Map<Eigen::VectorXd> gbar0_{nullptr, 0};
  Eigen::Map<Eigen::VectorXd> live_delta_{nullptr, 0};
  Index dense_stride_ = 0;  // doubles between the block's vectors
  // delta_sum()'s buffer, filled from live_delta_ (dense) or the records (sparse).
  mutable Eigen::VectorXd delta_;
  // Step state, sparse path: d records of record_size_ = 1 + 3C doubles,
  // [mark, v (C), gbar0 (C), delta (C)]; see the invariant in saga.cpp. The fields' offsets:
  // r[kMark], r[kV + c], r[gbar0_at(C) + c], r[delta_at(C) + c] (free at run time).
  static constexpr Index kMark = 0;
  static constexpr Index kV = 1;
  static constexpr Index gbar0_at(Index C) { return 1 + C; }
  static constexpr Index delta_at(Index C) { return 1 + 2 * C; }
  Eigen::VectorXd rec_;
  Index record_size_ = 0;
  Eigen::VectorXd table_sum0_;  // table_sum at the last reset (both paths)
  double scale_ = 1.0;          // s
  double cum_ = 0.0;            // A (sparse)
  double cum_carry_ = 0.0;      // Kahan compensation of A
  double rho_ = 1.0;            // 1 - eta * lambda
  bool eager_ = false;          // rho too small for the scaled form: shrink w every step
  bool hold_ = false;           // run_held: table entries are read, never written
  Index since_restart_ = 0, restart_period_ = 1;
  // The accessors' buffers (filled on each call).
  mutable Eigen::VectorXd w_, gbar_, table_sum_;
  // Per-step scratch, C entries each.
  Eigen::VectorXd z_, a_, diff_;
};

}  // namespace dsaga
