// Distributed Newton-CG (ALGORITHM.md section 7.3): the math only, no messages.
//
// For data whose optimum leaves many directions with almost no curvature, local runs cannot
// move those directions fast enough; a Newton step can. Each outer round the hub gathers
// F(w_r) and the gradient g = sum_k g_k / N + lambda w_r, then solves H(w_r) x = -g by
// preconditioned conjugate gradients, one exchange per CG step: the hub sends p, agent k
// returns its data part of H p from the curvature it kept at w_r,
//
//   g_k = sum_{i in k} x_i (x) a_i(w_r),     (H p)_k = sum_{i in k} x_i (x) (A_i (x_i^T P)),
//
// with a_i the loss derivative and A_i its curvature (logistic sigma (1 - sigma), squared 1,
// softmax diag(p) - p p^T). H p = sum_k (H p)_k / N + lambda p. CG stops at the inexact-Newton
// tolerance |res| <= min(0.5, sqrt|g|) |g|; then w_{r+1} = w_r + x, halved while F rises (with
// the `hessian` preconditioner: damped instead, below).
//
// Preconditioners (the hub's choice, from the model's width):
//   hessian the exact curvature, where its upload per gradient round is affordable
//          (d*C <= max_gram_columns(); not for the squared loss, whose Hessian is the Gram):
//          each gradient round every agent uploads its part sum_i (x_i x_i^T) (x) A_i at w (the
//          distinct entries of its class-pair blocks, coarse::blocks_size, float32), and the
//          hub factors M = H / N + (lambda + mu) I and solves the step itself: no CG, no
//          product round (a CG preconditioned by M only after a gradient round some agent
//          missed, when M is of another point). The step is damped Levenberg-Marquardt
//          fashion (HessianModel): a trial that raises F is replaced by the hub's own solve
//          with a larger mu, no exchange needed; mu shrinks again as F's decrease matches the
//          model's, and is raised wherever the model would promise a decrease larger than F
//          itself (F >= 0).
//   gram   every per-sample curvature is bounded (A_i <= beta I: 1/4, 1, 1/2 by loss), so
//          H(w) <= M = beta G / N + lambda I for every w, G = sum_k X_k^T X_k: each agent
//          uploads its Gram once (upper triangle, float32), the hub factors M (one d x d block,
//          the same for every class) and uses it in every later round.
//   coarse nothing uploaded, for a run that switched from two-level: that bound approximated on
//          two-level's basis U (its columns' Gram curvatures c_j, c_fine for the rest of the
//          space), M = beta (U~ diag(c) U~^T + c_fine (I - U~ U~^T)) + lambda I, with U~ the
//          basis orthonormalised through its Gram (exact where U was rounded to q8). The stiff
//          directions two-level found are scaled apart from the flat rest. The curvatures are
//          estimates and the cross terms are left out: not a strict bound on H.
//   diagonal  each gradient round every agent uploads the diagonal of its part of the Hessian at
//          w (d*C floats on its support), and the hub uses D = diag(H) as the initial matrix of
//          the pairs' recursion below (Jacobi on the first round). For wide models neither of
//          the above fits: on sparse data whose columns and rows differ in scale by decades the
//          diagonal takes 121 message rounds to 1e-6 where the pairs alone take 198
//          (bench/RESULTS.md, the sparse set of daemons_small).
//          Not Gram-bound diagonals: their saturated rows weigh as much as live ones, and on
//          that set they need more products than no preconditioner.
//   pairs  nothing uploaded: the curvature pairs (p_j, H p_j) of the previous round's CG in an
//          L-BFGS two-loop recursion (Morales and Nocedal 2000); the first round runs plain CG.
//
// Every function is deterministic (fixed summation order), so a resumed hub and an emulated
// agent compute bitwise what the originals did on the same build.
#pragma once

#include <Eigen/Cholesky>
#include <Eigen/Dense>

#include <cstdint>
#include <memory>
#include <vector>

#include "dsaga/coarse.hpp"
#include "dsaga/dataset.hpp"
#include "dsaga/objective.hpp"
#include "dsaga/status.hpp"

namespace dsaga::newton {

// Agent side ----------------------------------------------------------------------------------

// The curvature of the agent's rows at one point, kept between the gradient and the products.
class AgentCurvature {
 public:
  // One pass at w (d*C): returns sum_i loss_i, sets g_sum = sum_i x_i (x) a_i (d*C) and keeps
  // each row's curvature (n values, or n*C probabilities for the softmax).
  double gradient(const Dataset& data, const Objective& objective, const Eigen::VectorXd& w,
                  Eigen::VectorXd& g_sum);
  // out = sum_i x_i (x) (A_i (x_i^T P)) (d*C) with the curvature of the last gradient().
  void product(const Dataset& data, const Objective& objective, const Eigen::VectorXd& p,
               Eigen::VectorXd& out);
  // sum_i (x_i x_i^T) (x) A_i with the curvature of the last gradient(), on `support` (every
  // column for dense data) x classes, as its class-pair blocks (coarse::blocks_size values,
  // float32, accumulated in double).
  void hessian_upload(const Dataset& data, const Objective& objective,
                      const std::vector<std::uint32_t>& support, std::vector<float>& upload) const;
  // The diagonal of that sum, sum_i x_ij^2 (A_i)_cc, in w's layout (support position * C +
  // class), float32 (accumulated in double): s*C values where the upload has about s^2 C^2 / 4.
  void hessian_diagonal(const Dataset& data, const Objective& objective,
                        const std::vector<std::uint32_t>& support, std::vector<float>& out) const;
  // Whether the curvature held is the one at w (bitwise).
  bool at(const Eigen::VectorXd& w) const {
    return w_.size() == w.size() && w_.size() > 0 && (w_.array() == w.array()).all();
  }
  std::size_t bytes() const;

 private:
  Eigen::VectorXd w_;      // where the curvature was taken
  Eigen::VectorXd curv_;   // n (C = 1) or n*C row-major probabilities (softmax)
  Eigen::VectorXd labels_;  // the softmax's y (the probabilities are a + e_y)
  Eigen::MatrixXd block_;  // scratch of the dense passes
};

// The packed upper triangle (by rows, see coarse::packed_size) of X^T X on `support` (its
// columns, ascending; every column for dense data), in float32 (accumulated in double).
void gram_upper(const Dataset& data, const std::vector<std::uint32_t>& support,
                std::vector<float>& packed);

// Hub side ------------------------------------------------------------------------------------

// The most columns whose Gram the hub asks for: its float32 upper triangle stays under
// kMaxGramBytes per agent (a one-time upload; 4 MiB like the two-level setup's eigenvectors, so
// d <= 1447). Wider models use the pairs preconditioner.
inline constexpr std::size_t kMaxGramBytes = std::size_t(4) << 20;
Index max_gram_columns();

// The CG steps of one outer round at most: the step so far is a descent direction, and a round
// that needs more has a preconditioner that no longer fits (the hub then takes what it has).
inline constexpr std::uint64_t kMaxCgSteps = 100;
// Curvature pairs the pairs preconditioner keeps (the most recent of the last round's CG).
inline constexpr int kPairs = 20;

// The inexact-Newton tolerance on the CG residual: min(0.5, sqrt|g|) |g| (Eisenstat-Walker).
double cg_tolerance(double gradient_norm);

// M^{-1} r for M = beta G / N + lambda I (x) I_C: G is d x d, r and the result d*C in the
// feature-major layout of objective.hpp.
class GramPreconditioner {
 public:
  // `gram_packed`: sum_k X_k^T X_k, packed upper triangle of d x d. Fails if M cannot be
  // factored even with a tiny shift.
  Status factor(const Eigen::VectorXd& gram_packed, Index d, double beta, double total_samples,
                double lambda);
  bool ready() const { return llt_ != nullptr; }
  Eigen::VectorXd apply(const Eigen::VectorXd& r, int classes) const;

 private:
  std::shared_ptr<const Eigen::LLT<Eigen::MatrixXd>> llt_;  // null until factored
};

// M^{-1} r for the coarse approximation of the bound above (the header's list), on a basis it does not copy: the
// caller passes the same basis to build() and apply(). M is symmetric positive definite:
// M^{-1} = U~ D^{-1} U~^T + (I - U~ U~^T) / c, D_j = beta c_j + lambda, c = beta c_fine + lambda.
class CoarsePreconditioner {
 public:
  // Factors U^T U (d m^2 flops, once). Fails where M is not definite (lambda = 0 and a zero
  // curvature), or U's columns are dependent.
  Status build(const coarse::Basis& basis, double beta, double lambda);
  bool ready() const { return llt_ != nullptr; }
  Eigen::VectorXd apply(const coarse::Basis& basis, const Eigen::VectorXd& r, int classes) const;

 private:
  std::shared_ptr<const Eigen::LLT<Eigen::MatrixXd>> llt_;  // U^T U = L L^T; null until built
  Eigen::VectorXd shift_;  // 1 / D_j - 1 / c, per column of U~
  double fine_ = 0.0;      // 1 / c
};

// The Hessian the agents upload (the header's `hessian`): H = sum_k H_k / N + lambda I, held
// dense, and M = H + mu I factored, for CG's preconditioner and for the damped step. mu is the
// Levenberg-Marquardt damping (Nielsen 1999; Madsen, Nielsen and Tingleff 2004, section 3.2): it
// grows where F's decrease falls short of the quadratic model's and shrinks where it matches.
class HessianModel {
 public:
  // `packed`: sum_k H_k, packed upper triangle of n x n (n = d*C). Fails on a wrong size.
  Status set(const Eigen::VectorXd& packed, Index n, double total_samples, double lambda);
  bool has() const { return h_.size() > 0; }
  // M = H + mu I; a tiny shift where float rounding left H not quite definite (lambda = 0).
  Status factor(double mu);
  bool ready() const { return llt_ != nullptr; }
  double mu() const { return mu_; }
  Eigen::VectorXd solve(const Eigen::VectorXd& r) const { return llt_->solve(r); }
  // The quadratic model's decrease for a step x from a point of gradient g: -(g.x + x.H x / 2).
  double predicted_decrease(const Eigen::VectorXd& g, const Eigen::VectorXd& x) const;
  // The damping's first value where a step failed: 1e-3 of H's largest diagonal entry (the
  // reference's tau = 1e-3, relative to the curvature's scale).
  double initial_damping() const;
  std::size_t bytes() const;

 private:
  Eigen::MatrixXd h_;  // H, lower triangle filled too
  std::shared_ptr<const Eigen::LLT<Eigen::MatrixXd>> llt_;  // of H + mu I; null until factored
  double mu_ = 0.0;
};

// The damping after a step whose F decrease was `ratio` times the model's (a step that raised
// F has ratio < 0): ratio > 3/4 divides mu by 3, ratio < 1/4 multiplies it by 4 (at least
// `initial`); below a thousandth of lambda it is 0 again, the plain Newton step. (Factors 3 and
// 4 rather than Madsen et al.'s continuous rule: in a simulation of these rounds on the digits
// of bench/daemons_small.sh with rows over four decades, 96 rounds to 1e-6 against 136.)
double next_damping(double mu, double ratio, double initial, double lambda);
// The damping raised: max(4 mu, initial), at most kMaxDamping times `initial` (a step then a
// 1e-9 of the gradient step: nothing, yet finite, so that the ratio can shrink it again).
inline constexpr double kMaxDamping = 1e12;
double raise_damping(double mu, double initial);

// The L-BFGS two-loop recursion on pairs (s_j, y_j = H s_j), columns of `s` and `y` (oldest
// first). Its initial matrix is diag(`diagonal`)^{-1} where that is given (positive entries, the
// width of r), else the scalar s.y / y.y of the newest pair; with no pairs: r / diagonal, or r.
Eigen::VectorXd apply_pairs(const Eigen::MatrixXd& s, const Eigen::MatrixXd& y,
                            const Eigen::VectorXd& r,
                            const Eigen::VectorXd& diagonal = Eigen::VectorXd());

// Preconditioned CG on H x = -g from x = 0, one product at a time (the hub's state: every
// member is checkpointed).
struct Cg {
  Eigen::VectorXd x, r, p;  // iterate, residual -g - H x, search direction
  double rz = 0.0;          // r . M^{-1} r
  double tol = 0.0;         // stop at |r| <= tol
  std::uint64_t steps = 0;  // products taken

  // x = 0, r = -g, p = z = M^{-1} r (z given by the caller).
  void start(const Eigen::VectorXd& g, const Eigen::VectorXd& z, double tolerance);
  // Takes q = H p. Returns false when the curvature along p is not positive (x unchanged):
  // CG ends there.
  bool take(const Eigen::VectorXd& q);
  bool converged() const { return r.norm() <= tol; }
  // p <- z + (r.z / rz) p for z = M^{-1} r of the new residual.
  void next_direction(const Eigen::VectorXd& z);
};

// auto's measured switch (hub_two_level.cpp): from consecutive F values f_0..f_n (n >= 4), the
// fraction of the decrease each round keeps, a linear rate: the median over j of
// rho_j = sqrt(D_j / D_{j-2}), with D_j = f_{j-2} - f_j the decrease over two rounds. Two
// rounds, not one: two-level rounds often alternate a large and a small decrease (the guard lets
// F rise a little), and ratios of single rounds then swing around 1 whatever the rate (S1 by
// label with q8: 0.03, 13.6, 0.09, 3.9 at a rate of 0.64). NaN when some two rounds did not
// decrease F, or the decrease before them was only rounding (1e-10 relative): then there is
// nothing to judge by.
double median_decrease_ratio(const std::vector<double>& f);

}  // namespace dsaga::newton
