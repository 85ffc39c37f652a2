// A reference full-batch solver: finds F* = min F to a gradient norm of 1e-10 (by default), for
// tests and benchmarks to measure relative suboptimality (F - F*) / F* against. Starts at w = 0.
// Methods (ReferenceResult::method):
//   "newton"  d*C <= 2000 (automatic): explicit Hessian X^T D X / N + lambda I, built row block by
//             row block (X is never copied) and factored; later iterates reuse the factor as a
//             preconditioner for CG with exact Hessian-vector products, and rebuild it when CG
//             stops converging quickly.
//   "lbfgs"   d*C > 2000 (automatic): L-BFGS with Armijo backtracking.
// Both line searches work to the limit of double precision (see reference.cpp).
#pragma once

#include <Eigen/Dense>

#include <functional>
#include <string>

#include "dsaga/dataset.hpp"
#include "dsaga/objective.hpp"
#include "dsaga/status.hpp"

namespace dsaga {

struct ReferenceOptions {
  double gradient_tolerance = 1e-10;  // stop when ||grad F||_2 <= this
  int max_iterations = 10000;
  // newton on request: explicit Hessian up to d*C = 20000 (an error beyond).
  enum class Method { automatic, newton, lbfgs } method = Method::automatic;
  int lbfgs_memory = 20;
  // Called once per iteration (iteration, F, ||grad F||); for progress output. May be empty.
  std::function<void(int, double, double)> progress;
};

struct ReferenceResult {
  Eigen::VectorXd w;
  double value = 0.0;          // F(w)
  double gradient_norm = 0.0;  // ||grad F(w)||_2
  int iterations = 0;
  std::string method;  // "newton" or "lbfgs"
};

// Fails (with the reached gradient norm in the message) when the tolerance is not reached.
Result<ReferenceResult> solve_reference(const Dataset& data, const Objective& objective,
                                        const ReferenceOptions& options = {});

}  // namespace dsaga
