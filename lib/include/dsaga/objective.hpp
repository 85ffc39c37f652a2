// Objectives (ALGORITHM.md section 1):
//
//   F(w) = (1/N) * sum_i loss(y_i, z_i) + (lambda/2) * ||w||^2,   z_i = <x_i, w>  (C margins)
//
// Weight layout: w has d*C entries, feature-major: w[k*C + c] is the weight of feature k for
// class c (C = 1 for logistic and least squares). A sparse row then touches C contiguous
// weights per non-zero. gbar, S_k and every gradient use the same layout.
//
// Losses and their per-sample derivative a = dloss/dz (what the SAGA table stores):
//   logistic    y in {-1,+1}: loss = log(1 + exp(-y z)),        a = -y / (1 + exp(y z))
//   squared     y real:       loss = (z - y)^2 / 2,             a = z - y
//   multinomial y in 0..C-1:  loss = logsumexp(z) - z_y,        a = softmax(z) - e_y
// Per-sample smoothness L_i = beta * ||x_i||^2 + lambda, beta = 1/4, 1, 1/2 respectively.
#pragma once

#include <Eigen/Dense>

#include <string>

#include "dsaga/dataset.hpp"
#include "dsaga/status.hpp"

namespace dsaga {

enum class Loss { logistic, squared, multinomial };

const char* to_string(Loss loss);
Result<Loss> parse_loss(const std::string& name);  // "logistic", "squared", "multinomial"

struct Objective {
  Loss loss = Loss::logistic;
  double lambda = 0.0;
  int classes = 1;  // C: 1 for logistic and squared, >= 2 for multinomial

  // Scalars the SAGA table holds per sample (C).
  int width() const { return classes; }
  double beta() const;  // 1/4, 1 or 1/2
};

// Checks that the objective is well formed and that the labels fit the loss (logistic: every
// label -1 or +1; multinomial: integers in 0..C-1; squared: finite). Also rejects an empty data
// set, a label count that differs from the row count and non-finite feature values. The error
// names the source, the first offending row (counted from 0) and the value.
Status validate(const Objective& objective, const Dataset& data);

// Maps raw labels to the form `validate` expects. logistic: labels in `positive` become +1, the
// rest -1 (empty `positive`: 1 and +1 are positive, 0 and -1 negative, anything else is an
// error). multinomial: integers first_class..first_class+C-1 (first_class 0 or 1, the data set's
// convention, the same on every agent), stored as 0..C-1. squared: unchanged.
Status prepare_labels(Dataset& data, const Objective& objective,
                      const std::vector<double>& positive = {}, int first_class = 0);

// Per sample, from the C margins z: the loss value and its derivative (C values into `a`).
// Numerically stable for any finite z (no overflow in exp).
double sample_loss(const Objective& objective, double y, const double* z);
void sample_derivative(const Objective& objective, double y, const double* z, double* a);

// z = margins of row i at w (C values), accumulated in double.
void margins(const Dataset& data, Index i, const Eigen::VectorXd& w, double* z);

// sum_i loss(y_i, <x_i, w>) over the rows of `data` (no regulariser). Allocates nothing.
// loss_sum and objective_value return NaN when w.size() != d*C (and set the gradient to NaN).
double loss_sum(const Dataset& data, const Objective& objective, const Eigen::VectorXd& w);

// F(w) with N = data.rows(), and optionally its gradient (resized to d*C).
double objective_value(const Dataset& data, const Objective& objective, const Eigen::VectorXd& w,
                       Eigen::VectorXd* gradient = nullptr);

// Full objective of a distributed problem from the pieces the agents report:
// F = loss_sum_total / N + lambda/2 ||w||^2 (NaN when total_samples <= 0).
double combine_objective(double loss_sum_total, Index total_samples, double lambda,
                         const Eigen::VectorXd& w);

// max_i L_i = beta * max_i ||x_i||^2 + lambda.
double max_smoothness(const Dataset& data, const Objective& objective);

}  // namespace dsaga
