// What an agent computes in a round, for every algorithm the hub can run (ALGORITHM.md
// sections 3 and 4), behind one interface so that the agent, the wire and the hub's
// aggregation are the same for all of them:
//
//   w_{r+1} = w_r + eta_g * sum_k (n_k / N_r) * dw_k,      gbar_{r+1} = gbar_r + sum_k dS_k / N
//
// and each method gives its own meaning to dw_k, S_k and gbar:
//   dsaga     T local SAGA steps; S_k = sum_i table_i x_i; gbar = the global table average.
//             Two-level rounds (coarse.hpp) first take T steps with the table held as the hub
//             counted it (gbar its mean), then recompute the whole table at w_r in the pass
//             that also sums the loss (dS = that refresh's change); the hub adds a Newton step
//             in the coarse space from coarse().
//   fedavg    T local SGD steps on f_k + lambda/2 ||w||^2; S_k = 0, gbar = 0.
//   scaffold  T local steps of SGD corrected by the control variates (Karimireddy et al. 2020,
//             option II): w <- w - eta (g_j(w) - c_k + c); then c_k <- c_k - c + (w_r - w)/(T eta).
//             S_k = n_k c_k, so gbar = sum_k n_k c_k / N = c, the server control variate.
//   gd        one step of full-batch gradient descent: dw_k = -eta * grad F_k(w_r), so the
//             weighted mean is exactly -eta * grad F(w_r). S_k = 0.
// Every method allocates its state once at construction; round() does not allocate.
#pragma once

#include <Eigen/Dense>

#include <cstdint>
#include <memory>

#include "dsaga/coarse.hpp"
#include "dsaga/dataset.hpp"
#include "dsaga/messages.hpp"
#include "dsaga/objective.hpp"

namespace dsaga {

class LocalMethod {
 public:
  virtual ~LocalMethod() = default;
  // Start of training at w0: fills S_k (d*C) and returns sum_i loss(y_i, <x_i, w0>).
  virtual double init(const Eigen::VectorXd& w0, Eigen::VectorXd& table_sum) = 0;
  // One round from the broadcast state: dw = w_k - w, ds = change of S_k. Returns the number of
  // per-sample gradient evaluations it made.
  virtual std::uint64_t round(const Eigen::VectorXd& w, const Eigen::VectorXd& gbar,
                              std::uint64_t steps, Eigen::VectorXd& dw, Eigen::VectorXd& ds) = 0;
  // Bytes of state allocated by the constructor (tables, vectors).
  virtual std::size_t state_bytes() const = 0;
  // The loss sum at the last round's w when the round's own pass computed it (two-level
  // dSAGA), else NaN (the agent then makes the pass itself).
  virtual double round_loss() const;
  // The local step for the rounds to come (the hub's guard may move it per round).
  virtual void set_step(double eta) = 0;
  // Two-level dSAGA: the coarse gradient and Hessian (coarse.hpp) of the last round, at its w
  // with the refreshed table. False for methods without a coarse part.
  virtual bool coarse(coarse::AgentSpace& space, Eigen::VectorXd& g, Eigen::VectorXd& h_packed);
};

struct LocalMethodOptions {
  msg::Algorithm algorithm = msg::Algorithm::dsaga;
  double eta = 0.0;             // local step size (> 0)
  Index total_samples = 0;      // N
  std::uint64_t seed = 0;
  // mu >= 0: every local step also pulls towards the round's broadcast w, adding
  // mu (w - w_r) to its gradient (FedProx's proximal term). It bounds how far a long local
  // epoch drifts on a shard whose data leaves some directions almost flat (non-IID), where the
  // mean of the agents' steps otherwise overshoots. 0 = the plain method.
  double prox = 0.0;
  // dSAGA: the fraction of the agent's own table entries (drawn at random) recomputed at the
  // broadcast w before each round's steps, counted as gradient evaluations. Each agent's table
  // is filled along its own local trajectory, not at the averaged w, and the agents' lags
  // cancel in the mean, leaving gbar + lambda w ~ 0 while grad F is not: a slow tail that
  // serial SAGA does not have (bench/RESULTS.md, issue 4). Refreshing a fraction f per round
  // makes that mode decay at about 1 - f per round. Too large a fraction removes the damping
  // the stale tables give to long local epochs on non-IID shards and can diverge (the fractions
  // tried are in bench/RESULTS.md). 0 = plain dSAGA.
  double refresh = 0.0;
  // dSAGA: two-level rounds (see the top of this file; refresh is then the whole table).
  bool two_level = false;
};

// The Dataset must outlive the method; objective.lambda is the problem's lambda.
std::unique_ptr<LocalMethod> make_local_method(const Dataset& data, const Objective& objective,
                                               const LocalMethodOptions& options);

const char* to_string(msg::Algorithm algorithm);
// "dsaga", "fedavg", "scaffold", "gd"; the error lists them.
Result<msg::Algorithm> parse_algorithm(const std::string& name);

}  // namespace dsaga
