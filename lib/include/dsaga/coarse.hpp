// The coarse space of two-level dSAGA (ALGORITHM.md section 7): the math only, no messages.
//
// Plain dSAGA averages K local runs that all start from the hub's w. On data split unlike its
// whole (one label per device), that average overshoots a few high-curvature "global"
// directions (the mean input, the bias, the top principal components) and undershoots the flat
// rest. Two-level dSAGA corrects the first with an exact Newton step in a small subspace U
// (d x m, orthonormal), taken by the hub from every agent's gradient and Hessian in U, and keeps
// the averaged local runs only for the complement:
//
//   w_{r+1} = w_r + gamma * U delta + (I - U U^T) dbar,   delta = -H_U^{-1} g_U,
//   g_U = sum_k g_k / N + lambda U^T w_r,   H_U = sum_k H_k / N + lambda I,
//   g_k = Z_k^T a_k(w_r),   H_k = Z_k^T D_k(w_r) Z_k,   Z_k = X_k U   (agent k's rows).
//
// For C classes the space is U (x) I_C: coarse coordinate (j, c) sits at j*C + c, as w[k*C + c]
// does (objective.hpp), and H_k is (mC) x (mC) with the softmax's per-sample C x C curvature
// diag(p) - p p^T. Where the whole space is affordable (d <= m_max, see choose_rank) U = I and
// the hub's step is an exact distributed Newton step; the agents then skip their local runs.
//
// Setup, once: each agent uploads the top q eigenpairs of its Gram X_k^T X_k / n_k (and the
// (q+1)-th eigenvalue, which bounds what it leaves out); the hub orthonormalises the union into
// U, ordered by the curvature of the global Gram that the uploads approximate, and lowers the
// local step until the runs are stable by the rule of section 7 (eta * T * beta * the largest
// curvature left outside U <= 4). An agent's basis vectors lie in the span of its rows, so they
// travel restricted to the columns its rows touch (its support); so does the U it downloads.
//
// Every function is deterministic (fixed seeds, fixed summation order), so a resumed hub and an
// emulated agent compute bitwise what the originals did on the same build.
#pragma once

#include <Eigen/Dense>

#include <cstdint>
#include <vector>

#include "dsaga/dataset.hpp"
#include "dsaga/objective.hpp"
#include "dsaga/status.hpp"

namespace dsaga::coarse {

// The stability bound on eta * T * beta * (largest curvature left to the local runs).
inline constexpr double kStabilityBound = 4.0;
// The coarse dimension m (per class) unless the user sets one: the uploads' union, at most this.
inline constexpr int kMaxRank = 64;
// The largest coarse dimension m * C anyone builds or accepts: its Hessian is (mC)^2 doubles
// (128 MiB at 4096), so a larger one, asked for or received, is refused.
inline constexpr Index kMaxCoarseDim = 4096;

// Agent side ----------------------------------------------------------------------------------

// The columns the rows of `data` touch, ascending (every column for dense storage).
std::vector<std::uint32_t> support_of(const Dataset& data);
// Column -> its position in `support` (-1: outside), d entries: for the sparse passes.
std::vector<std::int32_t> positions(Index d, const std::vector<std::uint32_t>& support);

struct Eigenpairs {
  Eigen::VectorXd values;   // q largest eigenvalues of X^T X / n, descending
  double next = 0.0;        // the (q+1)-th (an upper bound on the curvature outside `vectors`)
  Eigen::MatrixXd vectors;  // |support| x q, orthonormal: the eigenvectors on the support
};

// Top q eigenpairs of X^T X / n by randomized block subspace iteration (an oversampled block of
// q + 8 vectors, 12 iterations, Rayleigh-Ritz), on the columns `support` (support_of(data)).
// O(nnz * (q + 8)) per iteration, O(|support| * (q + 8)) memory besides the data. Fewer pairs
// than q when the data has lower rank.
Eigenpairs top_gram_eigenpairs(const Dataset& data, const std::vector<std::uint32_t>& support,
                               int q, std::uint64_t seed);

// Z_k = X_k U for U given on the agent's support (|support| x m), or nothing for U = I (the
// coarse quantities are then taken from the rows themselves).
class AgentSpace {
 public:
  AgentSpace() = default;
  // U restricted to `support` (|support| x m, column-major), or identity = true (m = d).
  void set(const Dataset& data, const std::vector<std::uint32_t>& support,
           const Eigen::MatrixXd& u_on_support, bool identity);
  bool empty() const { return dim_ == 0; }
  int dim() const { return dim_; }  // m
  // g (m*C) and the upper triangle of H (packed, see packed_size) from the loss derivatives `a`
  // (n x C, row-major: the table just refreshed at w), which also give each sample's curvature
  // (logistic |a| (1 - |a|), squared 1, softmax diag(p) - p p^T with p = a + e_y).
  void gradient_hessian(const Dataset& data, const Objective& objective, const double* a,
                        Eigen::VectorXd& g, Eigen::VectorXd& h_packed);
  // Bytes held (Z_k and scratch).
  std::size_t bytes() const;

 private:
  int dim_ = 0;
  bool identity_ = false;
  Eigen::MatrixXd z_;  // n x m (empty for the identity)
  Eigen::MatrixXd block_, hessian_;  // scratch
};

// Hub side ------------------------------------------------------------------------------------

// Entries of the packed upper triangle of an n x n symmetric matrix: n (n + 1) / 2. Packed by
// rows: (0,0), (0,1), ..., (0,n-1), (1,1), ...
inline std::size_t packed_size(std::size_t n) { return n * (n + 1) / 2; }
void unpack_upper(const double* packed, Eigen::MatrixXd& full);  // full is n x n, sized
void pack_upper(const Eigen::MatrixXd& full, double* packed);

// A curvature upload as class-pair blocks (Newton-CG's Hessians since protocol 11, two-level's
// coarse Hessians since 12). A matrix sum_i (z_i z_i^T) (x) A_i on n columns x C classes (index
// column * C + class, w's layout) is made of blocks B_cc' = sum_i (A_i)_cc' z_i z_i^T (n x n):
// each is symmetric, and B_c'c = B_cc'. For the softmax every row of A_i = diag(p_i) - p_i p_i^T
// sums to zero, so B_cc = -sum_{c' != c} B_cc' follows from the others. The upload holds the
// blocks c < c' (by c, then c'), each as its packed upper triangle by rows: C (C - 1) / 2 *
// n (n + 1) / 2 values where the whole triangle has nC (nC + 1) / 2 (about 54% fewer at C = 10,
// 75% at C = 2). With one class (logistic, squared, a Gram) it is the one block's triangle.
std::size_t blocks_size(std::size_t columns, int classes, bool softmax);
// The upload of `full` (nC x nC; its upper triangle is read) into `out` (blocks_size values).
void pack_blocks(const Eigen::MatrixXd& full, int classes, bool softmax, double* out);
// Adds an upload (blocks_size(s, classes, softmax) values, unchecked) into `sum`, the packed
// upper triangle of the d*C x d*C matrix. `support` lists the upload's s columns among the d,
// ascending; empty = every one. Fixed summation order. T: float or double.
template <class T>
void add_blocks(const T* upload, const std::vector<std::uint32_t>& support, Index d, int classes,
                bool softmax, Eigen::VectorXd& sum);

// One agent's setup upload, as the hub sees it.
struct AgentBasis {
  double weight = 0.0;                    // n_k / N
  Eigen::VectorXd values;                 // its top eigenvalues of X_k^T X_k / n_k
  double next = 0.0;                      // its (q+1)-th
  std::vector<std::uint32_t> support;     // empty = every column
  Eigen::MatrixXd vectors;                // |support| x q (or d x q)
};

struct Basis {
  Eigen::MatrixXd u;      // d x m, orthonormal columns, by decreasing curvature (empty: U = I)
  bool identity = false;  // the whole space (m = d)
  Eigen::VectorXd curvature;  // estimated eigenvalues of X^T X / N along the kept columns
  double fine_curvature = 0.0;  // estimated largest curvature of X^T X / N outside U
  int dim(Index d) const { return identity ? static_cast<int>(d) : static_cast<int>(u.cols()); }
};

// The union of the agents' eigenvectors, orthonormalised and ordered by the curvature of
// sum_k weight_k V_k diag(values_k) V_k^T, cut to m = min(union rank, max_rank or kMaxRank)
// columns (and m * classes <= kMaxCoarseDim). fine_curvature estimates what is left outside: the (m+1)-th curvature of that sum,
// or at least the largest weight_k * next_k (see coarse.cpp for why not their sum). The caller
// lowers the local step eta until eta * T * beta * fine_curvature <= kStabilityBound.
Basis build_basis(Index d, const std::vector<AgentBasis>& agents, int max_rank,
                  int classes = 1);

// How many eigenvectors an agent with `columns` columns (its support) uploads, one of K:
// q = min(clamp(kMaxUnion / K, 4, kMaxRank), kMaxUploadBytes / (8 * columns), columns), at least
// 4 (or columns). The union is ordered by the approximate global Gram and cut to m <= kMaxRank:
// the more each agent offers, the closer that is to the global top-m (docs/ALGORITHM.md section
// 7; the rounds it saves are in bench/RESULTS.md). The byte bound keeps a wide sparse agent's
// one-time upload near 4 MiB.
inline constexpr Index kMaxUnion = 512;
inline constexpr std::size_t kMaxUploadBytes = std::size_t(4) << 20;
int vectors_per_agent(int agents, Index columns);
// Whether two-level's curvature payloads, an agent's eigenvectors up and its rows of U down
// (`entries` values for one agent), are rounded to q8 under --compression q8 rather than to
// floats: only where the bytes that saves outweigh one round's coarse payload (the coarse
// gradient, m * C doubles, and the Hessian's class-pair blocks, blocks_size(m, ...) floats).
// Rounding them saves about 3 bytes an entry, once, and can cost rounds (bench/RESULTS.md,
// issue 15: one on B1, two on B2); a saving under one round's coarse payload cannot pay for one
// lost round.
bool curvature_as_q8(double entries, Index m, int classes, bool softmax);
// Whether a two-level round's q8 deltas and broadcast changes (the agent's dw and dS up, the
// changes of w and gbar down: `entries` values for one agent, at about a byte each) are rounded
// under compress.hpp's floor: only where they outweigh the round's coarse payload. The floor
// saves bits of the deltas and can cost a round (bench/RESULTS.md, issue 15: none on S1, where a
// round is nearly all deltas; two on B2, whose deltas are 6% of a round and save nothing worth
// one), so it is for rounds whose bytes are mostly the deltas.
bool deltas_floored(double entries, Index m, int classes, bool softmax);
// Whether the coarse space is the whole space (U = I, m = d): when the model's Hessian is at most
// 256 x 256 (d * C <= 256: 32,896 scalars, 257 kB in float64 per agent per round, a link-cost
// budget), or when the user's `rank` (0 = automatic) is >= d; never when d * C > kMaxCoarseDim.
bool whole_space(Index d, int classes, int rank);

// delta = -(H + lambda I)^{-1} g (Cholesky; a tiny diagonal shift if H + lambda I is only
// semidefinite in rounding). Fails if the system cannot be solved.
Result<Eigen::VectorXd> newton_step(const Eigen::MatrixXd& h, const Eigen::VectorXd& g,
                                    double lambda);

// U^T W for a feature-major model w (d*C) and back: coarse (m*C) <-> model (d*C).
Eigen::VectorXd restrict(const Eigen::MatrixXd& u, const Eigen::VectorXd& w, int classes);
Eigen::VectorXd prolong(const Eigen::MatrixXd& u, const Eigen::VectorXd& coarse, int classes);

}  // namespace dsaga::coarse
