// The coarse space of two-level dSAGA (coarse.hpp): the agents' gradient and Hessian in U
// against finite differences of the objective, for every loss, dense and sparse storage, a
// basis and the whole space; the eigenpairs against a direct eigensolver; the hub's basis and
// Newton step on problems small enough to check by hand.
#include <gtest/gtest.h>

#include <Eigen/Eigenvalues>

#include <cmath>

#include "dsaga/coarse.hpp"
#include "dsaga/objective.hpp"
#include "dsaga/rng.hpp"
#include "random_problem.hpp"

namespace dsaga {
namespace {

// n x d data with a bias column and rows of very different norms; labels for `objective`.
Dataset problem(Index n, Index d, const Objective& objective, std::uint64_t seed, bool sparse) {
  return test::random_problem(n, d, objective, seed, sparse, "coarse-test");
}

// The table at w: a_i = loss'(y_i, <x_i, w>), n x C row-major.
Eigen::VectorXd derivatives(const Dataset& data, const Objective& objective,
                            const Eigen::VectorXd& w) {
  const int C = objective.classes;
  Eigen::VectorXd a(data.rows() * C), z(C);
  for (Index i = 0; i < data.rows(); ++i) {
    margins(data, i, w, z.data());
    sample_derivative(objective, data.y[i], z.data(), a.data() + i * C);
  }
  return a;
}

struct Case {
  Loss loss;
  int classes;
  bool sparse;
  bool identity;
};

class CoarseDerivatives : public ::testing::TestWithParam<Case> {};

TEST_P(CoarseDerivatives, GradientAndHessianMatchFiniteDifferences) {
  const Case c = GetParam();
  Objective objective;
  objective.loss = c.loss;
  objective.classes = c.classes;
  objective.lambda = 0.0;  // the agents' part is the loss alone; the hub adds lambda
  const Index n = 60, d = 7, C = c.classes;
  const Dataset data = problem(n, d, objective, 11, c.sparse);
  Rng rng(5);
  Eigen::VectorXd w(d * C);
  for (Index k = 0; k < w.size(); ++k) w[k] = 0.6 * (rng.uniform() * 2 - 1);

  const auto support = coarse::support_of(data);
  Eigen::MatrixXd u;
  if (!c.identity) {  // an orthonormal 3-column basis on the support
    Eigen::MatrixXd r(static_cast<Index>(support.size()), 3);
    for (Index k = 0; k < r.size(); ++k) r.data()[k] = rng.uniform() - 0.5;
    Eigen::HouseholderQR<Eigen::MatrixXd> qr(r);
    u = qr.householderQ() * Eigen::MatrixXd::Identity(r.rows(), 3);
  }
  coarse::AgentSpace space;
  space.set(data, support, u, c.identity);
  const Index m = space.dim(), mC = m * C;
  ASSERT_EQ(m, c.identity ? d : 3);
  Eigen::VectorXd g, h_packed;
  const Eigen::VectorXd a = derivatives(data, objective, w);
  space.gradient_hessian(data, objective, a.data(), g, h_packed);
  ASSERT_EQ(g.size(), mC);
  // The class-pair blocks' distinct entries (the whole triangle for one class).
  const bool softmax = objective.loss == Loss::multinomial;
  ASSERT_EQ(static_cast<std::size_t>(h_packed.size()),
            softmax ? std::size_t(C * (C - 1) / 2) * coarse::packed_size(m) : coarse::packed_size(mC));
  Eigen::VectorXd whole = Eigen::VectorXd::Zero(static_cast<Index>(coarse::packed_size(mC)));
  coarse::add_blocks(h_packed.data(), {}, m, int(C), softmax, whole);
  Eigen::MatrixXd h(mC, mC);
  coarse::unpack_upper(whole.data(), h);

  // U on the whole space (the support is every column here unless sparse left one out).
  Eigen::MatrixXd full = Eigen::MatrixXd::Identity(d, d);
  if (!c.identity) {
    full = Eigen::MatrixXd::Zero(d, 3);
    for (std::size_t s = 0; s < support.size(); ++s) full.row(support[s]) = u.row(Index(s));
  }
  // n * F(w) = sum of losses (lambda = 0): its gradient in U is g, its Hessian in U is h.
  const auto grad = [&](const Eigen::VectorXd& at) {
    Eigen::VectorXd gradient;
    objective_value(data, objective, at, &gradient);
    return Eigen::VectorXd(coarse::restrict(full, gradient * double(n), int(C)));
  };
  EXPECT_LE((g - grad(w)).lpNorm<Eigen::Infinity>(), 1e-10 * std::max(1.0, g.norm()));
  const double eps = 1e-5;
  for (Index j = 0; j < mC; ++j) {
    Eigen::VectorXd e = Eigen::VectorXd::Zero(mC);
    e[j] = eps;
    const Eigen::VectorXd step = coarse::prolong(full, e, int(C));
    const Eigen::VectorXd column = (grad(w + step) - grad(w - step)) / (2 * eps);
    EXPECT_LE((h.col(j) - column).lpNorm<Eigen::Infinity>(), 1e-6 * std::max(1.0, h.norm()))
        << "column " << j;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Losses, CoarseDerivatives,
    ::testing::Values(Case{Loss::logistic, 1, false, false}, Case{Loss::logistic, 1, true, false},
                      Case{Loss::logistic, 1, false, true}, Case{Loss::logistic, 1, true, true},
                      Case{Loss::squared, 1, false, false}, Case{Loss::squared, 1, true, true},
                      Case{Loss::multinomial, 3, false, false},
                      Case{Loss::multinomial, 3, true, false},
                      Case{Loss::multinomial, 4, false, true}));

TEST(CoarseEigenpairs, MatchADirectEigensolver) {
  Objective objective;
  for (const bool sparse : {false, true}) {
    const Dataset data = problem(200, 12, objective, 3, sparse);
    const auto support = coarse::support_of(data);
    const auto pairs = coarse::top_gram_eigenpairs(data, support, 4, 9);
    Eigen::MatrixXd gram = Eigen::MatrixXd::Zero(12, 12);
    Eigen::VectorXd x(12);
    for (Index i = 0; i < data.rows(); ++i) {
      x.setZero();
      Eigen::VectorXd e = Eigen::VectorXd::Zero(12);
      for (Index k = 0; k < 12; ++k) {
        e.setZero();
        e[k] = 1;
        double z = 0;
        margins(data, i, e, &z);
        x[k] = z;
      }
      gram += x * x.transpose() / double(data.rows());
    }
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(gram);
    ASSERT_EQ(pairs.values.size(), 4);
    for (int j = 0; j < 4; ++j) {
      EXPECT_NEAR(pairs.values[j], eig.eigenvalues()[11 - j], 1e-8 * eig.eigenvalues()[11]);
      // Same direction up to sign.
      EXPECT_NEAR(std::abs(pairs.vectors.col(j).dot(eig.eigenvectors().col(11 - j))), 1.0, 1e-6);
    }
    EXPECT_NEAR(pairs.next, eig.eigenvalues()[7], 1e-6 * eig.eigenvalues()[11]);
  }
}

TEST(CoarseBasis, UnionIsOrthonormalAndOrderedByCurvature) {
  // Two agents on disjoint supports of a 6-dimensional space, each with two eigenpairs.
  coarse::AgentBasis a, b;
  a.weight = 0.25;
  a.values = Eigen::Vector2d(4.0, 1.0);
  a.next = 0.5;
  a.support = {0, 1, 2};
  a.vectors = Eigen::MatrixXd::Zero(3, 2);
  a.vectors(0, 0) = 1;
  a.vectors(1, 1) = 1;
  b.weight = 0.75;
  b.values = Eigen::Vector2d(2.0, 0.1);
  b.next = 0.01;
  b.support = {3, 4, 5};
  b.vectors = Eigen::MatrixXd::Zero(3, 2);
  b.vectors(2, 0) = 1;
  b.vectors(0, 1) = 1;
  const coarse::Basis basis = coarse::build_basis(6, {a, b}, 0);
  ASSERT_EQ(basis.u.rows(), 6);
  ASSERT_EQ(basis.u.cols(), 4);
  EXPECT_LE((basis.u.transpose() * basis.u - Eigen::MatrixXd::Identity(4, 4)).norm(), 1e-12);
  // Weighted curvatures: 0.25 * 4 = 1 (column 0), 0.75 * 2 = 1.5 (column 5), 0.25, 0.075.
  EXPECT_NEAR(basis.curvature[0], 1.5, 1e-12);
  EXPECT_NEAR(std::abs(basis.u(5, 0)), 1.0, 1e-12);
  EXPECT_NEAR(basis.curvature[1], 1.0, 1e-12);
  EXPECT_NEAR(basis.curvature[3], 0.075, 1e-12);
  // What is left: the larger of the agents' weighted next eigenvalues.
  EXPECT_NEAR(basis.fine_curvature, 0.125, 1e-12);
  // A user's rank keeps the most curved directions.
  const coarse::Basis two = coarse::build_basis(6, {a, b}, 2);
  ASSERT_EQ(two.u.cols(), 2);
  EXPECT_NEAR(two.fine_curvature, 0.25, 1e-12);
}

TEST(CoarseNewton, SolvesTheRegularisedSystem) {
  Eigen::MatrixXd h(2, 2);
  h << 2, 1, 1, 3;
  const Eigen::Vector2d g(1, -2);
  const auto delta = coarse::newton_step(h, g, 0.5);
  ASSERT_TRUE(delta);
  // (H + 0.5 I) delta = -g by hand: [[2.5, 1], [1, 3.5]] delta = [-1, 2].
  EXPECT_NEAR(delta->x(), (-1 * 3.5 - 2 * 1) / (2.5 * 3.5 - 1), 1e-14);
  EXPECT_NEAR(delta->y(), (2.5 * 2 + 1 * 1) / (2.5 * 3.5 - 1), 1e-14);
  // A singular Hessian without lambda is still solved (a tiny shift), never NaN.
  Eigen::MatrixXd flat = Eigen::MatrixXd::Zero(2, 2);
  flat(0, 0) = 1;
  const auto shifted = coarse::newton_step(flat, Eigen::Vector2d(1, 0), 0.0);
  ASSERT_TRUE(shifted);
  EXPECT_NEAR(shifted->x(), -1.0, 1e-9);
}

// q8 curvature where the 3 bytes an entry it saves outweigh one round's coarse payload (m C
// doubles and the Hessian's class-pair blocks in floats): B1's shape (64 + 64 vectors of 785,
// m = 64, one class) and a wide sparse support yes; B2's (10 classes: 45 blocks of 64 x 64,
// 379,520 bytes a round against 301,440 saved) no, nor a saving of exactly one round's bytes.
TEST(CoarseSpace, CurvatureAsQ8WhereItOutweighsARoundsCoarsePayload) {
  EXPECT_TRUE(coarse::curvature_as_q8(128.0 * 785, 64, 1, false));
  EXPECT_TRUE(coarse::curvature_as_q8(44.0 * 116536, 40, 1, false));
  EXPECT_FALSE(coarse::curvature_as_q8(128.0 * 785, 64, 10, true));
  const double b2 = 8.0 * 640 + 4.0 * 45 * (64 * 65 / 2);
  EXPECT_EQ(b2, 379520.0);
  EXPECT_FALSE(coarse::curvature_as_q8(b2 / 3, 64, 10, true));
  EXPECT_TRUE(coarse::curvature_as_q8(b2 / 3 + 1, 64, 10, true));
  // One class: the whole triangle, 8 * 64 + 4 * 2080 bytes.
  EXPECT_FALSE(coarse::curvature_as_q8((8.0 * 64 + 4.0 * 2080) / 3, 64, 1, false));
  EXPECT_TRUE(coarse::curvature_as_q8((8.0 * 64 + 4.0 * 2080) / 3 + 1, 64, 1, false));
  // q8's floor on the deltas only where a round's four vectors outweigh its coarse payload: on
  // S1's supports (116k columns, m = 40), not on B1 (785 columns, m = 64: 3 kB against 8.8 kB)
  // nor on B2 (7850 entries, m = 64, C = 10: 31 kB against 379 kB).
  EXPECT_TRUE(coarse::deltas_floored(4.0 * 116536, 40, 1, false));
  EXPECT_FALSE(coarse::deltas_floored(4.0 * 785, 64, 1, false));
  EXPECT_FALSE(coarse::deltas_floored(4.0 * 7850, 64, 10, true));
  EXPECT_FALSE(coarse::deltas_floored(8.0 * 64 + 4.0 * 2080, 64, 1, false));
  EXPECT_TRUE(coarse::deltas_floored(8.0 * 64 + 4.0 * 2080 + 1, 64, 1, false));
}

TEST(CoarseSpace, WholeSpaceWhenTheHessianIsSmall) {
  EXPECT_TRUE(coarse::whole_space(58, 1, 0));
  EXPECT_TRUE(coarse::whole_space(25, 10, 0));
  EXPECT_FALSE(coarse::whole_space(785, 1, 0));
  EXPECT_FALSE(coarse::whole_space(785, 1, 50));
  EXPECT_TRUE(coarse::whole_space(785, 1, 785));
  // Up to 64 each while the union stays near 512 and the upload near 4 MiB; never more than the
  // agent's columns, never fewer than 4.
  EXPECT_EQ(coarse::vectors_per_agent(8, 785), 64);
  EXPECT_EQ(coarse::vectors_per_agent(1, 785), 64);
  EXPECT_EQ(coarse::vectors_per_agent(16, 785), 32);
  EXPECT_EQ(coarse::vectors_per_agent(100, 785), 5);
  EXPECT_EQ(coarse::vectors_per_agent(1000, 785), 4);
  EXPECT_EQ(coarse::vectors_per_agent(8, 20), 20);
  EXPECT_EQ(coarse::vectors_per_agent(8, 65536), 8);
  EXPECT_EQ(coarse::vectors_per_agent(8, 1 << 20), 4);
}

}  // namespace
}  // namespace dsaga
