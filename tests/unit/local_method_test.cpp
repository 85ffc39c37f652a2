// The per-round computations of dSAGA and the baselines (local_method.hpp).
#include "dsaga/local_method.hpp"

#include <gtest/gtest.h>

#include "dsaga/rng.hpp"
#include "dsaga/saga.hpp"

namespace dsaga {
namespace {

Dataset problem(Index n, Index d, std::uint64_t seed) {
  Rng rng(seed);
  DenseMatrix<double> X(n, d);
  Eigen::VectorXd y(n);
  for (Index i = 0; i < n; ++i) {
    for (Index k = 0; k < d; ++k) X(i, k) = rng.uniform() - 0.5;
    y[i] = rng.uniform() < 0.5 ? -1.0 : 1.0;
  }
  Dataset data;
  data.X = X;
  data.y = y;
  return data;
}

Objective logistic(double lambda) {
  Objective o;
  o.loss = Loss::logistic;
  o.lambda = lambda;
  return o;
}

TEST(LocalMethod, GdRoundIsOneExactGradientStep) {
  const Dataset data = problem(50, 4, 1);
  const Objective objective = logistic(0.1);
  auto gd = make_local_method(data, objective, {msg::Algorithm::gd, 0.7, 50, 0});
  Eigen::VectorXd s, dw, ds;
  const Eigen::VectorXd w = Eigen::VectorXd::LinSpaced(4, -1, 1);
  gd->init(w, s);
  EXPECT_EQ(s, Eigen::VectorXd::Zero(4));
  EXPECT_EQ(gd->round(w, Eigen::VectorXd::Zero(4), 123, dw, ds), 50u);  // n evaluations
  Eigen::VectorXd gradient;
  objective_value(data, objective, w, &gradient);
  EXPECT_LE((dw + 0.7 * gradient).lpNorm<Eigen::Infinity>(), 1e-14);
  EXPECT_EQ(ds, Eigen::VectorXd::Zero(4));
}

TEST(LocalMethod, DsagaRoundIsSagaFromTheBroadcastState) {
  const Dataset data = problem(40, 3, 2);
  const Objective objective = logistic(0.05);
  auto method = make_local_method(data, objective, {msg::Algorithm::dsaga, 0.3, 120, 9});
  SagaSolver reference(data, objective, SagaOptions{0.3, 120, 9});
  Eigen::VectorXd s, dw, ds;
  const Eigen::VectorXd w0 = Eigen::VectorXd::Zero(3);
  EXPECT_DOUBLE_EQ(method->init(w0, s), reference.init_table(w0));
  EXPECT_EQ(s, reference.table_sum());
  const Eigen::VectorXd w = Eigen::VectorXd::Constant(3, 0.2), gbar = Eigen::VectorXd::Constant(3, -0.1);
  method->round(w, gbar, 60, dw, ds);
  reference.set_state(w, gbar);
  reference.run(60);
  EXPECT_EQ(dw, reference.w() - w);
  EXPECT_EQ(ds, reference.delta_sum());
}

// Two-level: the local run first, from the broadcast w with the table as the hub counted it (the
// last round's entries, whose mean over every agent is gbar), then the whole table refreshed at
// w (dS, and the coarse payload's derivatives). Refreshing first would anchor the run at a mix
// of the agent's fresh entries and the others' old ones.
TEST(LocalMethod, TwoLevelRunsOnTheCountedTableThenRefreshesItAtTheBroadcast) {
  const Dataset data = problem(40, 3, 2);
  const Objective objective = logistic(0.05);
  LocalMethodOptions options{msg::Algorithm::dsaga, 0.3, 120, 9};
  options.two_level = true;
  auto method = make_local_method(data, objective, options);
  SagaSolver reference(data, objective, SagaOptions{0.3, 120, 9});
  Eigen::VectorXd s, dw, ds;
  const Eigen::VectorXd w0 = Eigen::VectorXd::Zero(3);
  method->init(w0, s);
  reference.init_table(w0);
  const Eigen::VectorXd w = Eigen::VectorXd::Constant(3, 0.2), gbar = Eigen::VectorXd::Constant(3, -0.1);
  EXPECT_EQ(method->round(w, gbar, 60, dw, ds), 40u + 60u);  // the refresh's n, then T steps
  reference.set_state(w, gbar);
  reference.run_held(60);  // the table at w0, as counted
  EXPECT_EQ(dw, reference.w() - w);
  reference.set_state(w, gbar);
  reference.refresh_all(nullptr);
  EXPECT_EQ(ds, reference.delta_sum());
  EXPECT_GT(ds.norm(), 0.0);
  // The next round's run reads the table refreshed at w, with the gbar that counts it.
  const Eigen::VectorXd w2 = Eigen::VectorXd::Constant(3, 0.1), gbar2 = gbar + ds / 120.0;
  method->round(w2, gbar2, 60, dw, ds);
  reference.set_state(w2, gbar2);
  reference.run_held(60);
  EXPECT_EQ(dw, reference.w() - w2);
}

TEST(LocalMethod, FedAvgWithoutStepsOrWithZeroStepDoesNotMove) {
  const Dataset data = problem(30, 3, 3);
  auto fedavg = make_local_method(data, logistic(0.1), {msg::Algorithm::fedavg, 0.5, 30, 1});
  Eigen::VectorXd s, dw, ds;
  const Eigen::VectorXd w = Eigen::VectorXd::Constant(3, 0.3);
  fedavg->init(w, s);
  EXPECT_EQ(s, Eigen::VectorXd::Zero(3));
  fedavg->round(w, Eigen::VectorXd::Zero(3), 0, dw, ds);
  EXPECT_EQ(dw, Eigen::VectorXd::Zero(3));
  // Many small local steps approach a minimiser of the local objective: the local gradient
  // at w + dw is much smaller than at w.
  auto slow = make_local_method(data, logistic(0.1), {msg::Algorithm::fedavg, 0.05, 30, 1});
  slow->init(w, s);
  slow->round(w, Eigen::VectorXd::Zero(3), 20000, dw, ds);
  Eigen::VectorXd g0, g1;
  objective_value(data, logistic(0.1), w, &g0);
  objective_value(data, logistic(0.1), w + dw, &g1);
  EXPECT_LT(g1.norm(), 0.1 * g0.norm());
}

TEST(LocalMethod, ScaffoldControlVariatesFollowOptionTwo) {
  const Dataset data = problem(30, 3, 4);
  const Objective objective = logistic(0.1);
  const double eta = 0.2;
  auto scaffold = make_local_method(data, objective, {msg::Algorithm::scaffold, eta, 60, 5});
  Eigen::VectorXd s, dw, ds;
  const Eigen::VectorXd w0 = Eigen::VectorXd::Zero(3);
  scaffold->init(w0, s);
  // c_k = grad F_k(w0) and S_k = n_k c_k.
  Eigen::VectorXd g;
  objective_value(data, objective, w0, &g);
  EXPECT_LE((s - 30.0 * g).lpNorm<Eigen::Infinity>(), 1e-13);
  // One round: c_k+ - c_k = -c - dw / (T eta), and dS = n_k (c_k+ - c_k).
  const Eigen::VectorXd c = s / 60.0;  // as if another agent held zero control variates
  scaffold->round(w0, c, 25, dw, ds);
  EXPECT_LE((ds - 30.0 * (-c - dw / (25 * eta))).lpNorm<Eigen::Infinity>(), 1e-12);
}

TEST(LocalMethod, ProximalTermBoundsTheLocalDrift) {
  const Dataset data = problem(60, 4, 6);
  const Objective objective = logistic(1e-3);
  const Eigen::VectorXd w = Eigen::VectorXd::Zero(4), gbar = Eigen::VectorXd::Constant(4, 0.05);
  for (auto algorithm : {msg::Algorithm::dsaga, msg::Algorithm::fedavg, msg::Algorithm::scaffold}) {
    double previous = INFINITY;
    for (double mu : {0.0, 0.1, 1.0, 10.0}) {
      auto method = make_local_method(data, objective, {algorithm, 0.05, 60, 3, mu});
      Eigen::VectorXd s, dw, ds;
      method->init(w, s);
      method->round(w, gbar, 600, dw, ds);
      ASSERT_TRUE(dw.allFinite());
      // A stronger pull towards w_r leaves the agent closer to it.
      EXPECT_LT(dw.norm(), previous) << to_string(algorithm) << " mu " << mu;
      previous = dw.norm();
    }
  }
}

TEST(LocalMethod, AlgorithmNamesRoundTrip) {
  for (auto a : {msg::Algorithm::dsaga, msg::Algorithm::fedavg, msg::Algorithm::scaffold,
                 msg::Algorithm::gd}) {
    auto parsed = parse_algorithm(to_string(a));
    ASSERT_TRUE(parsed);
    EXPECT_EQ(*parsed, a);
  }
  auto bad = parse_algorithm("fedprox");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("dsaga, fedavg, scaffold, gd"), std::string::npos);
}

}  // namespace
}  // namespace dsaga
