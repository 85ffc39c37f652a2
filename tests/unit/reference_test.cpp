#include "dsaga/reference.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

namespace dsaga {
namespace {

using Method = ReferenceOptions::Method;

// Correlated features (x_k shares a common factor), so that the problems are not trivially
// conditioned, plus a constant bias column.
DenseMatrix<double> correlated(Index n, Index d, std::mt19937_64& rng) {
  std::normal_distribution<double> g(0.0, 1.0);
  DenseMatrix<double> X(n, d);
  for (Index i = 0; i < n; ++i) {
    const double common = g(rng);
    for (Index k = 0; k + 1 < d; ++k) X(i, k) = 0.8 * common + 0.6 * g(rng);
    X(i, d - 1) = 1.0;
  }
  return X;
}

Dataset problem(Loss loss, int classes, Index n, Index d, bool sparse, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  DenseMatrix<double> X = correlated(n, d, rng);
  // A planted linear model, so that labels depend on the features (no trivial solution).
  Eigen::MatrixXd Wtrue = Eigen::MatrixXd::Zero(d, classes);
  std::normal_distribution<double> g(0.0, 1.0);
  for (Index k = 0; k < d; ++k)
    for (int c = 0; c < classes; ++c) Wtrue(k, c) = g(rng);
  Eigen::MatrixXd Z = X * Wtrue;
  Eigen::VectorXd y(n);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (Index i = 0; i < n; ++i) {
    switch (loss) {
      case Loss::logistic:
        y[i] = u(rng) < 1.0 / (1.0 + std::exp(-Z(i, 0))) ? 1.0 : -1.0;
        break;
      case Loss::squared:
        y[i] = Z(i, 0) + 0.3 * g(rng);
        break;
      case Loss::multinomial: {
        Eigen::Index best = 0;
        (Z.row(i).transpose() + Eigen::VectorXd::NullaryExpr(classes, [&]() {
           return g(rng);
         })).maxCoeff(&best);
        y[i] = static_cast<double>(best);
        break;
      }
    }
  }
  Dataset data;
  if (sparse) {
    // Zero out a third of the entries so that the CSR path is really sparse.
    for (Index i = 0; i < n; ++i)
      for (Index k = 0; k + 1 < d; ++k)
        if (u(rng) < 0.33) X(i, k) = 0.0;
    SparseMatrix<double> S = X.sparseView();
    S.makeCompressed();
    data.X = S;
  } else {
    data.X = X;
  }
  data.y = y;
  data.source = "synthetic";
  return data;
}

Objective make_objective(Loss loss, int classes, double lambda) {
  Objective o;
  o.loss = loss;
  o.classes = classes;
  o.lambda = lambda;
  return o;
}

ReferenceOptions with(Method m) {
  ReferenceOptions o;
  o.method = m;
  return o;
}

TEST(Reference, RidgeMatchesNormalEquations) {
  for (bool sparse : {false, true}) {
    const Dataset data = problem(Loss::squared, 1, 120, 8, sparse, 11);
    const Objective o = make_objective(Loss::squared, 1, 1e-3);
    // (X^T X / N + lambda I) w = X^T y / N.
    Eigen::MatrixXd X = std::visit(
        [](const auto& M) -> Eigen::MatrixXd {
          if constexpr (std::is_base_of_v<Eigen::SparseMatrixBase<std::decay_t<decltype(M)>>,
                                          std::decay_t<decltype(M)>>)
            return Eigen::MatrixXd(M.toDense().template cast<double>());
          else
            return M.template cast<double>();
        },
        data.X);
    const double N = 120.0;
    Eigen::MatrixXd A = X.transpose() * X / N + o.lambda * Eigen::MatrixXd::Identity(8, 8);
    Eigen::VectorXd w_star = A.ldlt().solve(X.transpose() * data.y / N);
    const double F_star =
        0.5 * (X * w_star - data.y).squaredNorm() / N + 0.5 * o.lambda * w_star.squaredNorm();
    for (Method m : {Method::automatic, Method::newton, Method::lbfgs}) {
      auto r = solve_reference(data, o, with(m));
      ASSERT_TRUE(r.is_ok()) << r.error();
      EXPECT_LE(r->gradient_norm, 1e-10);
      EXPECT_LE((r->w - w_star).norm(), 1e-10 * std::max(1.0, w_star.norm()));
      EXPECT_NEAR(r->value, F_star, 1e-10 * F_star);
    }
  }
}

struct Case {
  Loss loss;
  int classes;
  bool sparse;
};

class ReferenceAllLosses : public ::testing::TestWithParam<Case> {};

TEST_P(ReferenceAllLosses, ReachesToleranceAndNewtonAgreesWithLbfgs) {
  const Case c = GetParam();
  const Dataset data = problem(c.loss, c.classes, 300, 6, c.sparse, 7 + c.classes);
  const Objective o = make_objective(c.loss, c.classes, 1e-4);
  auto newton = solve_reference(data, o, with(Method::newton));
  auto lbfgs = solve_reference(data, o, with(Method::lbfgs));
  ASSERT_TRUE(newton.is_ok()) << newton.error();
  ASSERT_TRUE(lbfgs.is_ok()) << lbfgs.error();
  EXPECT_EQ(newton->method, "newton");
  EXPECT_EQ(lbfgs->method, "lbfgs");
  for (const ReferenceResult* r : {&*newton, &*lbfgs}) {
    EXPECT_LE(r->gradient_norm, 1e-10);
    // Independent check with the objective's own gradient.
    Eigen::VectorXd g;
    const double F = objective_value(data, o, r->w, &g);
    EXPECT_LE(g.norm(), 1e-10) << r->method;
    EXPECT_NEAR(F, r->value, 1e-14 * std::abs(F)) << r->method;
  }
  EXPECT_NEAR(newton->value, lbfgs->value, 1e-10 * std::abs(newton->value));
  // Strong convexity: F - F* >= lambda/2 ||w - w*||^2, with F - F* ~ 1e-20 here.
  EXPECT_LE((newton->w - lbfgs->w).norm(), 1e-5 * std::max(1.0, newton->w.norm()));
}

INSTANTIATE_TEST_SUITE_P(
    Losses, ReferenceAllLosses,
    ::testing::Values(Case{Loss::logistic, 1, false}, Case{Loss::logistic, 1, true},
                      Case{Loss::squared, 1, false}, Case{Loss::multinomial, 3, false},
                      Case{Loss::multinomial, 3, true}, Case{Loss::multinomial, 10, false},
                      Case{Loss::multinomial, 10, true}),
    [](const ::testing::TestParamInfo<Case>& info) {
      return std::string(to_string(info.param.loss)) + std::to_string(info.param.classes) +
             (info.param.sparse ? "_sparse" : "_dense");
    });

TEST(Reference, FloatStorageSolvesItsOwnProblem) {
  Dataset data = problem(Loss::logistic, 1, 200, 5, false, 3);
  data.X = DenseMatrix<float>(std::get<DenseMatrix<double>>(data.X).cast<float>());
  const Objective o = make_objective(Loss::logistic, 1, 1e-3);
  auto r = solve_reference(data, o);
  ASSERT_TRUE(r.is_ok()) << r.error();
  Eigen::VectorXd g;
  objective_value(data, o, r->w, &g);
  EXPECT_LE(g.norm(), 1e-10);
}

TEST(Reference, IllConditionedLogisticConverges) {
  // Nearly collinear features and a tiny lambda: condition number ~1e8.
  std::mt19937_64 rng(21);
  std::normal_distribution<double> g(0.0, 1.0);
  const Index n = 400;
  DenseMatrix<double> X(n, 4);
  Eigen::VectorXd y(n);
  for (Index i = 0; i < n; ++i) {
    const double t = g(rng);
    X.row(i) << t, t + 1e-3 * g(rng), g(rng), 1.0;
    y[i] = (t + 0.5 * X(i, 2) + 0.5 * g(rng)) > 0 ? 1.0 : -1.0;
  }
  Dataset data;
  data.X = X;
  data.y = y;
  const Objective o = make_objective(Loss::logistic, 1, 1.0 / n);
  int calls = 0;
  double last_norm = 0.0;
  ReferenceOptions opt;
  opt.progress = [&](int, double, double gn) {
    ++calls;
    last_norm = gn;
  };
  auto r = solve_reference(data, o, opt);
  ASSERT_TRUE(r.is_ok()) << r.error();
  EXPECT_EQ(r->method, "newton");
  EXPECT_LE(r->gradient_norm, 1e-10);
  EXPECT_EQ(calls, r->iterations + 1);  // once per iteration, including the start
  EXPECT_EQ(last_norm, r->gradient_norm);
}

TEST(Reference, AutomaticPicksLbfgsForLargeBinaryModels) {
  // d = 2100 > 2000: no explicit Hessian, and no Kronecker structure for one class.
  const Dataset data = problem(Loss::logistic, 1, 150, 2100, true, 4);
  const Objective o = make_objective(Loss::logistic, 1, 1e-2);
  auto r = solve_reference(data, o);
  ASSERT_TRUE(r.is_ok()) << r.error();
  EXPECT_EQ(r->method, "lbfgs");
  EXPECT_LE(r->gradient_norm, 1e-10);
}

TEST(Reference, AutomaticPicksLbfgsForManyClasses) {
  // d * C = 2010 > 2000.
  const Dataset data = problem(Loss::multinomial, 10, 300, 201, true, 4);
  const Objective o = make_objective(Loss::multinomial, 10, 1e-3);
  auto r = solve_reference(data, o);
  ASSERT_TRUE(r.is_ok()) << r.error();
  EXPECT_EQ(r->method, "lbfgs");
  EXPECT_LE(r->gradient_norm, 1e-10);
  Eigen::VectorXd g;
  objective_value(data, o, r->w, &g);
  EXPECT_LE(g.norm(), 1e-10);
}

TEST(Reference, FailsWithTheReachedGradientNorm) {
  const Dataset data = problem(Loss::logistic, 1, 100, 5, false, 2);
  ReferenceOptions opt;
  opt.max_iterations = 1;
  auto r = solve_reference(data, make_objective(Loss::logistic, 1, 1e-4), opt);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.error().find("gradient norm"), std::string::npos) << r.error();
  EXPECT_NE(r.error().find("1 iterations"), std::string::npos) << r.error();
}

TEST(Reference, RejectsInvalidInput) {
  Dataset data = problem(Loss::logistic, 1, 20, 3, false, 2);
  data.y[4] = 0.0;  // not -1/+1
  auto r = solve_reference(data, make_objective(Loss::logistic, 1, 1e-4));
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.error().find("row 4"), std::string::npos) << r.error();
  data.y[4] = 1.0;
  ReferenceOptions opt;
  opt.gradient_tolerance = 0.0;
  EXPECT_FALSE(solve_reference(data, make_objective(Loss::logistic, 1, 1e-4), opt).is_ok());
}

}  // namespace
}  // namespace dsaga
