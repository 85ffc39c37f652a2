#include "dsaga/objective.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <vector>

namespace dsaga {
namespace {

enum class Kind { dense_f64, dense_f32, sparse_f64, sparse_f32 };

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::dense_f64:
      return "dense_f64";
    case Kind::dense_f32:
      return "dense_f32";
    case Kind::sparse_f64:
      return "sparse_f64";
    case Kind::sparse_f32:
      return "sparse_f32";
  }
  return "?";
}

// A random n x d matrix with about a third of the entries zero, stored as `kind`.
Features random_features(Index n, Index d, Kind kind, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  DenseMatrix<double> X(n, d);
  for (Index i = 0; i < n; ++i)
    for (Index k = 0; k < d; ++k) X(i, k) = (u(rng) < -0.33) ? 0.0 : u(rng);
  switch (kind) {
    case Kind::dense_f64:
      return X;
    case Kind::dense_f32:
      return DenseMatrix<float>(X.cast<float>());
    case Kind::sparse_f64: {
      SparseMatrix<double> S = X.sparseView();
      S.makeCompressed();
      return S;
    }
    case Kind::sparse_f32: {
      SparseMatrix<float> S = X.cast<float>().sparseView();
      S.makeCompressed();
      return S;
    }
  }
  return X;
}

Eigen::VectorXd random_labels(Index n, const Objective& o, std::mt19937_64& rng) {
  Eigen::VectorXd y(n);
  for (Index i = 0; i < n; ++i) {
    switch (o.loss) {
      case Loss::logistic:
        y[i] = (rng() % 2) ? 1.0 : -1.0;
        break;
      case Loss::squared:
        y[i] = std::uniform_real_distribution<double>(-2.0, 2.0)(rng);
        break;
      case Loss::multinomial:
        y[i] = static_cast<double>(rng() % static_cast<unsigned>(o.classes));
        break;
    }
  }
  return y;
}

Dataset make_data(Features X, Eigen::VectorXd y) {
  Dataset d;
  d.X = std::move(X);
  d.y = std::move(y);
  return d;
}

Objective make_objective(Loss loss, int classes, double lambda) {
  Objective o;
  o.loss = loss;
  o.classes = classes;
  o.lambda = lambda;
  return o;
}

// ---------------------------------------------------------------------------------------------
// Gradient and derivative checks for every loss on every storage.

// (loss, C), storage
using Case = std::tuple<std::tuple<Loss, int>, Kind>;

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  const auto& loss_classes = std::get<0>(info.param);
  return std::string(to_string(std::get<0>(loss_classes))) +
         std::to_string(std::get<1>(loss_classes)) + "_" + kind_name(std::get<1>(info.param));
}

class ObjectiveMath : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    const auto [loss_classes, kind] = GetParam();
    const auto [loss, classes] = loss_classes;
    objective = make_objective(loss, classes, 0.1);
    std::mt19937_64 rng(1234 + classes);
    data.X = random_features(40, 6, kind, rng);
    data.y = random_labels(40, objective, rng);
    w.resize(6 * classes);
    std::normal_distribution<double> g(0.0, 0.7);
    for (Index j = 0; j < w.size(); ++j) w[j] = g(rng);
  }
  Objective objective;
  Dataset data;
  Eigen::VectorXd w;
};

TEST_P(ObjectiveMath, GradientMatchesCentralDifferences) {
  ASSERT_TRUE(validate(objective, data).is_ok());
  Eigen::VectorXd grad;
  const double F = objective_value(data, objective, w, &grad);
  ASSERT_EQ(grad.size(), w.size());
  EXPECT_DOUBLE_EQ(F, objective_value(data, objective, w));  // with and without gradient
  Eigen::VectorXd fd(w.size());
  const double h = 1e-5;
  for (Index j = 0; j < w.size(); ++j) {
    Eigen::VectorXd wp = w, wm = w;
    wp[j] += h;
    wm[j] -= h;
    fd[j] = (objective_value(data, objective, wp) - objective_value(data, objective, wm)) / (2 * h);
  }
  EXPECT_LE((grad - fd).norm(), 1e-6 * grad.norm())
      << "grad " << grad.transpose() << "\nfd " << fd.transpose();
}

TEST_P(ObjectiveMath, SampleDerivativeMatchesFiniteDifferencesOfLoss) {
  const int C = objective.classes;
  std::mt19937_64 rng(99);
  std::normal_distribution<double> g(0.0, 3.0);
  std::vector<double> z(C), zp(C), zm(C), a(C);
  for (int trial = 0; trial < 20; ++trial) {
    for (int c = 0; c < C; ++c) z[c] = g(rng);
    const double y = data.y[trial];
    sample_derivative(objective, y, z.data(), a.data());
    const double h = 1e-6;
    for (int c = 0; c < C; ++c) {
      zp = z;
      zm = z;
      zp[c] += h;
      zm[c] -= h;
      const double fd =
          (sample_loss(objective, y, zp.data()) - sample_loss(objective, y, zm.data())) / (2 * h);
      EXPECT_NEAR(a[c], fd, 1e-7 * std::max(1.0, std::abs(fd))) << "class " << c;
    }
  }
}

TEST_P(ObjectiveMath, LossSumAndMarginsAgreeWithSampleLoss) {
  const int C = objective.classes;
  std::vector<double> z(C);
  double total = 0.0;
  for (Index i = 0; i < data.rows(); ++i) {
    margins(data, i, w, z.data());
    total += sample_loss(objective, data.y[i], z.data());
  }
  EXPECT_NEAR(loss_sum(data, objective, w), total, 1e-12 * std::abs(total));
  EXPECT_NEAR(objective_value(data, objective, w),
              total / data.rows() + 0.5 * objective.lambda * w.squaredNorm(), 1e-12);
}

TEST_P(ObjectiveMath, CombineObjectiveEqualsObjectiveValue) {
  const double F = objective_value(data, objective, w);
  // One shard holding everything.
  EXPECT_NEAR(combine_objective(loss_sum(data, objective, w), data.rows(), objective.lambda, w), F,
              1e-14 * std::abs(F));
}

INSTANTIATE_TEST_SUITE_P(AllLossesAllStorages, ObjectiveMath,
                         ::testing::Combine(::testing::Values(std::make_tuple(Loss::logistic, 1),
                                                              std::make_tuple(Loss::squared, 1),
                                                              std::make_tuple(Loss::multinomial, 3),
                                                              std::make_tuple(Loss::multinomial,
                                                                              10)),
                                            ::testing::Values(Kind::dense_f64, Kind::dense_f32,
                                                              Kind::sparse_f64, Kind::sparse_f32)),
                         case_name);

// ---------------------------------------------------------------------------------------------
// Numerical stability: finite values and the right asymptotes far from the origin.

TEST(SampleLoss, LogisticIsStableAndAccurateForLargeMargins) {
  const Objective o = make_objective(Loss::logistic, 1, 0.0);
  double a = 0.0;
  for (double y : {1.0, -1.0}) {
    double z = 1e3 * y;  // well classified: loss -> 0, a -> 0
    EXPECT_EQ(sample_loss(o, y, &z), 0.0);
    sample_derivative(o, y, &z, &a);
    EXPECT_EQ(a, 0.0);
    z = -1e3 * y;  // badly classified: loss -> |z|, a -> -y
    EXPECT_DOUBLE_EQ(sample_loss(o, y, &z), 1e3);
    sample_derivative(o, y, &z, &a);
    EXPECT_DOUBLE_EQ(a, -y);
  }
  // Full relative precision where log(1 + exp(-t)) would round to 0.
  double z = 40.0;
  EXPECT_NEAR(sample_loss(o, 1.0, &z), std::exp(-40.0), 1e-12 * std::exp(-40.0));
  sample_derivative(o, 1.0, &z, &a);
  EXPECT_NEAR(a, -std::exp(-40.0), 1e-12 * std::exp(-40.0));
  z = 0.0;
  EXPECT_DOUBLE_EQ(sample_loss(o, -1.0, &z), std::log(2.0));
  sample_derivative(o, -1.0, &z, &a);
  EXPECT_DOUBLE_EQ(a, 0.5);
}

TEST(SampleLoss, SquaredAtLargeMargins) {
  const Objective o = make_objective(Loss::squared, 1, 0.0);
  double z = -1e3, a = 0.0;
  EXPECT_DOUBLE_EQ(sample_loss(o, 2.0, &z), 0.5 * 1002.0 * 1002.0);
  sample_derivative(o, 2.0, &z, &a);
  EXPECT_DOUBLE_EQ(a, -1002.0);
}

TEST(SampleLoss, MultinomialIsStableAndAccurateForLargeMargins) {
  for (int C : {3, 10}) {
    const Objective o = make_objective(Loss::multinomial, C, 0.0);
    std::vector<double> z(C, 0.0), a(C);
    z[0] = 1e3;
    z[C - 1] = -1e3;
    // y = 0 holds the largest margin: loss ~ (C-2) exp(-1000) = 0, a ~ 0.
    EXPECT_EQ(sample_loss(o, 0.0, z.data()), 0.0);
    sample_derivative(o, 0.0, z.data(), a.data());
    for (int c = 0; c < C; ++c) EXPECT_EQ(a[c], 0.0) << c;
    // y = C-1 is 2000 below the top: loss = 2000, a = e_0 - e_{C-1}.
    EXPECT_DOUBLE_EQ(sample_loss(o, C - 1.0, z.data()), 2e3);
    sample_derivative(o, C - 1.0, z.data(), a.data());
    EXPECT_DOUBLE_EQ(a[0], 1.0);
    EXPECT_DOUBLE_EQ(a[C - 1], -1.0);
    for (int c = 1; c < C - 1; ++c) EXPECT_EQ(a[c], 0.0) << c;
    // y = 1 (margin 0): loss = 1000 + log1p(...) = 1000.
    EXPECT_DOUBLE_EQ(sample_loss(o, 1.0, z.data()), 1e3);
    // Well classified with a moderate gap: loss = log1p((C-1) e^-40), full relative precision
    // (logsumexp(z) - z_y would round to 0 and p_y - 1 to 0 or -1.1e-16).
    std::fill(z.begin(), z.end(), 0.0);
    z[2] = 40.0;
    const double s = (C - 1) * std::exp(-40.0);
    EXPECT_NEAR(sample_loss(o, 2.0, z.data()), s, 1e-12 * s);
    sample_derivative(o, 2.0, z.data(), a.data());
    EXPECT_NEAR(a[2], -s / (1 + s), 1e-12 * s);
    EXPECT_NEAR(a[0], std::exp(-40.0), 1e-12 * std::exp(-40.0));
    // Softmax of equal margins: loss log C, a = 1/C - e_y.
    std::fill(z.begin(), z.end(), 7.0);
    EXPECT_NEAR(sample_loss(o, 1.0, z.data()), std::log(static_cast<double>(C)), 1e-15);
    sample_derivative(o, 1.0, z.data(), a.data());
    EXPECT_NEAR(a[1], 1.0 / C - 1.0, 1e-15);
    EXPECT_NEAR(a[0], 1.0 / C, 1e-15);
  }
}

// ---------------------------------------------------------------------------------------------
// Layout, shards, many classes.

TEST(Margins, UseTheFeatureMajorLayout) {
  // x = (1, 2), C = 2, w[k*C + c]: z_0 = 1*w[0] + 2*w[2], z_1 = 1*w[1] + 2*w[3].
  DenseMatrix<double> X(1, 2);
  X << 1.0, 2.0;
  Dataset dense = make_data(X, Eigen::VectorXd::Zero(1));
  SparseMatrix<float> S = X.cast<float>().sparseView();
  Dataset sparse = make_data(S, Eigen::VectorXd::Zero(1));
  Eigen::VectorXd w(4);
  w << 1.0, 2.0, 3.0, 4.0;
  for (const Dataset* d : {&dense, &sparse}) {
    double z[2];
    margins(*d, 0, w, z);
    EXPECT_EQ(z[0], 7.0);
    EXPECT_EQ(z[1], 10.0);
  }
  // Gradient of a single sample in the same layout: a (x) x plus lambda w.
  const Objective o = make_objective(Loss::multinomial, 2, 0.5);
  Eigen::VectorXd g;
  objective_value(dense, o, w, &g);
  double a[2];
  const double z[2] = {7.0, 10.0};
  sample_derivative(o, 0.0, z, a);
  Eigen::VectorXd expected(4);
  expected << a[0] * 1.0, a[1] * 1.0, a[0] * 2.0, a[1] * 2.0;
  expected += 0.5 * w;
  EXPECT_LE((g - expected).norm(), 1e-15);
}

TEST(Combine, ShardsAddUpToTheWholeObjective) {
  std::mt19937_64 rng(5);
  const Objective o = make_objective(Loss::multinomial, 4, 0.03);
  DenseMatrix<double> X =
      std::get<DenseMatrix<double>>(random_features(30, 5, Kind::dense_f64, rng));
  Eigen::VectorXd y = random_labels(30, o, rng);
  Dataset all = make_data(X, y);
  Dataset first = make_data(DenseMatrix<double>(X.topRows(12)), y.head(12));
  Dataset second = make_data(DenseMatrix<double>(X.bottomRows(18)), y.tail(18));
  Eigen::VectorXd w = Eigen::VectorXd::LinSpaced(20, -1.0, 1.0);
  const double F = objective_value(all, o, w);
  EXPECT_NEAR(combine_objective(loss_sum(first, o, w) + loss_sum(second, o, w), 30, o.lambda, w), F,
              1e-14);
  EXPECT_TRUE(std::isnan(combine_objective(1.0, 0, 0.1, w)));
}

TEST(LossSum, ManyClassesMatchesPerSampleLoss) {
  // C = 150 exceeds the stack chunk of margins, exercising the streamed log-sum-exp.
  std::mt19937_64 rng(8);
  const Objective o = make_objective(Loss::multinomial, 150, 0.0);
  Dataset data = make_data(random_features(7, 3, Kind::sparse_f64, rng), random_labels(7, o, rng));
  Eigen::VectorXd w(3 * 150);
  std::normal_distribution<double> g(0.0, 5.0);
  for (Index j = 0; j < w.size(); ++j) w[j] = g(rng);
  std::vector<double> z(150);
  double total = 0.0;
  for (Index i = 0; i < 7; ++i) {
    margins(data, i, w, z.data());
    total += sample_loss(o, data.y[i], z.data());
  }
  EXPECT_NEAR(loss_sum(data, o, w), total, 1e-12 * total);
}

TEST(LossSum, WrongWeightSizeGivesNaN) {
  Dataset data =
      make_data(DenseMatrix<double>(DenseMatrix<double>::Ones(2, 3)), Eigen::VectorXd::Ones(2));
  const Objective o = make_objective(Loss::logistic, 1, 0.1);
  EXPECT_TRUE(std::isnan(loss_sum(data, o, Eigen::VectorXd::Zero(4))));
  Eigen::VectorXd g;
  EXPECT_TRUE(std::isnan(objective_value(data, o, Eigen::VectorXd::Zero(2), &g)));
  EXPECT_EQ(g.size(), 3);
}

// ---------------------------------------------------------------------------------------------
// Smoothness.

TEST(MaxSmoothness, MatchesHandComputation) {
  // Row norms^2: 25, 1, 4 -> max 25.
  DenseMatrix<double> X(3, 2);
  X << 3.0, 4.0, 1.0, 0.0, 0.0, 2.0;
  SparseMatrix<double> S = X.sparseView();
  S.makeCompressed();
  for (const Features& f :
       {Features(X), Features(DenseMatrix<float>(X.cast<float>())), Features(S)}) {
    Dataset data = make_data(f, Eigen::VectorXd::Ones(3));
    EXPECT_DOUBLE_EQ(max_smoothness(data, make_objective(Loss::logistic, 1, 0.5)), 6.25 + 0.5);
    EXPECT_DOUBLE_EQ(max_smoothness(data, make_objective(Loss::squared, 1, 0.0)), 25.0);
    EXPECT_DOUBLE_EQ(max_smoothness(data, make_objective(Loss::multinomial, 3, 1.0)), 13.5);
  }
}

TEST(Objective, BetaPerLoss) {
  EXPECT_EQ(make_objective(Loss::logistic, 1, 0).beta(), 0.25);
  EXPECT_EQ(make_objective(Loss::squared, 1, 0).beta(), 1.0);
  EXPECT_EQ(make_objective(Loss::multinomial, 5, 0).beta(), 0.5);
  EXPECT_EQ(make_objective(Loss::multinomial, 5, 0).width(), 5);
}

// ---------------------------------------------------------------------------------------------
// Names, validation and label preparation.

TEST(LossNames, RoundTripAndErrorListsValidNames) {
  for (Loss l : {Loss::logistic, Loss::squared, Loss::multinomial}) {
    auto r = parse_loss(to_string(l));
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(*r, l);
  }
  auto bad = parse_loss("hinge");
  ASSERT_FALSE(bad.is_ok());
  for (const char* name : {"hinge", "logistic", "squared", "multinomial"})
    EXPECT_NE(bad.error().find(name), std::string::npos) << bad.error();
}

Dataset small(const Eigen::VectorXd& y) {
  Dataset d = make_data(DenseMatrix<double>(DenseMatrix<double>::Ones(y.size(), 2)), y);
  d.source = "small.svm";
  return d;
}

void expect_error_mentions(const Status& s, const std::vector<std::string>& parts) {
  ASSERT_FALSE(s.is_ok());
  for (const auto& p : parts) EXPECT_NE(s.message().find(p), std::string::npos) << s.message();
}

TEST(Validate, AcceptsWellFormedLabels) {
  Eigen::VectorXd y(3);
  y << 1, -1, 1;
  EXPECT_TRUE(validate(make_objective(Loss::logistic, 1, 0.1), small(y)).is_ok());
  y << 0, 2, 1;
  EXPECT_TRUE(validate(make_objective(Loss::multinomial, 3, 0.1), small(y)).is_ok());
  y << 0.5, -7, 1e9;
  EXPECT_TRUE(validate(make_objective(Loss::squared, 1, 0.0), small(y)).is_ok());
}

TEST(Validate, RejectsBadLabelsNamingTheRow) {
  Eigen::VectorXd y(4);
  y << 1, -1, 0.5, 0;
  expect_error_mentions(validate(make_objective(Loss::logistic, 1, 0.1), small(y)),
                        {"small.svm", "row 2", "0.5"});
  y << 0, 3, 1, 1;
  expect_error_mentions(validate(make_objective(Loss::multinomial, 3, 0.1), small(y)),
                        {"row 1", "label 3"});
  y << 0, 1, 1.5, 1;
  expect_error_mentions(validate(make_objective(Loss::multinomial, 3, 0.1), small(y)),
                        {"row 2", "1.5"});
  y << 0, 1, 2, std::nan("");
  expect_error_mentions(validate(make_objective(Loss::squared, 1, 0.1), small(y)),
                        {"row 3", "nan"});
}

TEST(Validate, RejectsMalformedObjectivesAndData) {
  Eigen::VectorXd y(2);
  y << 1, -1;
  expect_error_mentions(validate(make_objective(Loss::logistic, 1, -1.0), small(y)), {"lambda"});
  expect_error_mentions(validate(make_objective(Loss::logistic, 2, 0.1), small(y)), {"classes"});
  expect_error_mentions(validate(make_objective(Loss::multinomial, 1, 0.1), small(y)), {"classes"});
  Dataset d = small(y);
  d.y.resize(3);
  expect_error_mentions(validate(make_objective(Loss::logistic, 1, 0.1), d),
                        {"3 labels", "2 rows"});
  d = small(y);
  std::get<DenseMatrix<double>>(d.X)(1, 1) = std::numeric_limits<double>::infinity();
  expect_error_mentions(validate(make_objective(Loss::logistic, 1, 0.1), d),
                        {"row 1", "column 1", "inf"});
  Dataset empty = make_data(DenseMatrix<double>(0, 3), Eigen::VectorXd(0));
  EXPECT_FALSE(validate(make_objective(Loss::logistic, 1, 0.1), empty).is_ok());
}

TEST(PrepareLabels, LogisticMapsPositiveClasses) {
  Eigen::VectorXd y(5);
  y << 0, 1, 2, 7, 6;
  Dataset d = small(y);
  ASSERT_TRUE(prepare_labels(d, make_objective(Loss::logistic, 1, 0.1), {0, 2, 4, 6}).is_ok());
  Eigen::VectorXd expected(5);
  expected << 1, -1, 1, -1, 1;
  EXPECT_EQ(d.y, expected);
  EXPECT_TRUE(validate(make_objective(Loss::logistic, 1, 0.1), d).is_ok());
}

TEST(PrepareLabels, LogisticDefaultsToZeroOneOrMinusOnePlusOne) {
  Eigen::VectorXd y(4);
  y << 0, 1, -1, 1;
  Dataset d = small(y);
  ASSERT_TRUE(prepare_labels(d, make_objective(Loss::logistic, 1, 0.1)).is_ok());
  Eigen::VectorXd expected(4);
  expected << -1, 1, -1, 1;
  EXPECT_EQ(d.y, expected);
  y << 0, 1, 2, 1;
  d = small(y);
  expect_error_mentions(prepare_labels(d, make_objective(Loss::logistic, 1, 0.1)),
                        {"small.svm", "row 2", "label 2"});
  EXPECT_EQ(d.y, y);  // untouched on failure
}

TEST(PrepareLabels, MultinomialFirstClassIsTheDataSetsNotTheShards) {
  // A shard holding classes 1 and 2 of 0..2 keeps them: no guess from its own rows (it once
  // shifted them to 0 and 1 because the shard had no 0, silently relabelling every device that
  // did not hold class 0).
  Eigen::VectorXd y(4);
  y << 1, 2, 2, 1;
  Dataset d = small(y);
  ASSERT_TRUE(prepare_labels(d, make_objective(Loss::multinomial, 3, 0.1)).is_ok());
  EXPECT_EQ(d.y, y);
  // 1..C labels when the data set says so.
  y << 1, 3, 2, 3;
  d = small(y);
  ASSERT_TRUE(prepare_labels(d, make_objective(Loss::multinomial, 3, 0.1), {}, 1).is_ok());
  Eigen::VectorXd expected(4);
  expected << 0, 2, 1, 2;
  EXPECT_EQ(d.y, expected);
  // ...and without it, C itself is out of range with a hint.
  d = small(y);
  expect_error_mentions(prepare_labels(d, make_objective(Loss::multinomial, 3, 0.1)),
                        {"row 1", "label 3", "first class as 1"});
  expect_error_mentions(prepare_labels(d, make_objective(Loss::multinomial, 3, 0.1), {}, 2),
                        {"first class is 2"});
}

TEST(PrepareLabels, MultinomialRejectsOutOfRangeNamingTheRow) {
  Eigen::VectorXd y(4);
  y << 0, 1, 3, 1;
  Dataset d = small(y);
  expect_error_mentions(prepare_labels(d, make_objective(Loss::multinomial, 3, 0.1)),
                        {"row 2", "label 3"});
  y << 1, 2, 4, 1;  // no zero: read as 1..3, and 4 is out of range
  d = small(y);
  expect_error_mentions(prepare_labels(d, make_objective(Loss::multinomial, 3, 0.1)),
                        {"row 2", "label 4"});
  y << 1, 0.5, 2, 1;
  d = small(y);
  expect_error_mentions(prepare_labels(d, make_objective(Loss::multinomial, 3, 0.1)),
                        {"row 1", "0.5"});
}

TEST(PrepareLabels, SquaredKeepsLabelsButRejectsNonFinite) {
  Eigen::VectorXd y(3);
  y << 0.25, -3, 8;
  Dataset d = small(y);
  ASSERT_TRUE(prepare_labels(d, make_objective(Loss::squared, 1, 0.1)).is_ok());
  EXPECT_EQ(d.y, y);
  y << 0.25, std::numeric_limits<double>::infinity(), 8;
  d = small(y);
  expect_error_mentions(prepare_labels(d, make_objective(Loss::squared, 1, 0.1)), {"row 1"});
}

}  // namespace
}  // namespace dsaga
