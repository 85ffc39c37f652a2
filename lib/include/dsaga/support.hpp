// Messages restricted to an agent's support (issue 15): a sparse agent's rows touch only the
// columns of its support S_k, so of every d*C vector it trades with the hub only |S_k| * C
// entries carry information the other side lacks:
//   - w and gbar (hub -> agent): the agent's margins, losses and table read only S_k;
//   - S_k and dS (agent -> hub): zero off S_k, since every table gradient is a multiple of a row;
//   - dw (agent -> hub): off S_k a local step only shrinks and follows the held average,
//       w_j <- rho w_j - eta (gbar_j - mu w_r,j),   rho = 1 - eta (lambda + mu),
//     the same every step, so after T steps from w_r,j
//       dw_j = (rho^T - 1) w_r,j - eta g_j (1 - rho^T) / (1 - rho),   g_j = gbar_j - mu w_r,j
//     (-T eta g_j when rho = 1), which the hub computes itself (off_support_run).
// Vectors are d*C, column-major by coordinate: entry k*C + c is column k, class c; a restricted
// vector lists the columns of S_k in ascending order, each with its C classes.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <vector>

#include "dsaga/dataset.hpp"

namespace dsaga::support {

using Columns = std::vector<std::uint32_t>;  // ascending, each < d

// The entries of `full` (d*C) on `columns`: |columns| * C values.
std::vector<double> gather(const Eigen::VectorXd& full, const Columns& columns, int classes);
void gather(const Eigen::VectorXd& full, const Columns& columns, int classes,
            std::vector<double>& out);
// Writes |columns| * C values into `full` (d*C) on `columns` and `fill` everywhere else.
void scatter(const double* restricted, const Columns& columns, int classes, double fill,
             Eigen::VectorXd& full);

// What one agent's local run did off its support, written into dw at every column not in
// `columns` (the entries on `columns` are left as they are). w_round and gbar are the round's
// broadcast; eta the round's local step; steps T the w-moving steps of the run.
struct LocalRun {
  double eta = 0.0;
  double lambda = 0.0;
  double prox = 0.0;
  std::uint64_t steps = 0;
};
void off_support_run(const Eigen::VectorXd& w_round, const Eigen::VectorXd& gbar,
                     const Columns& columns, int classes, const LocalRun& run,
                     Eigen::VectorXd& dw);

}  // namespace dsaga::support
