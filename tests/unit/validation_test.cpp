// Held-out validation counts and figures (validation.hpp), and the held-out split
// (data_source.hpp: hold_out).
#include "dsaga/validation.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "dsaga/data_source.hpp"
#include "dsaga/rng.hpp"

namespace dsaga {
namespace {

// Exact AUC of scores against labels in {-1,+1}: pairs (positive, negative) with the positive
// scored higher, ties one half. O(P N), as plain as it gets.
double exact_auc(const std::vector<double>& score, const std::vector<double>& y) {
  double wins = 0, pairs = 0;
  for (std::size_t i = 0; i < score.size(); ++i)
    for (std::size_t j = 0; j < score.size(); ++j)
      if (y[i] > 0 && y[j] < 0) {
        pairs += 1;
        wins += score[i] > score[j] ? 1.0 : score[i] == score[j] ? 0.5 : 0.0;
      }
  return wins / pairs;
}

// A dense logistic data set with margins spread over [-6, 6] and labels that mostly follow them.
Dataset logistic_rows(Index n, std::uint64_t seed, Eigen::VectorXd& w) {
  Rng rng(seed);
  DenseMatrix<double> X(n, 3);
  Eigen::VectorXd y(n);
  for (Index i = 0; i < n; ++i) {
    for (Index k = 0; k < 3; ++k) X(i, k) = (static_cast<double>(rng.below(2001)) - 1000.0) / 250.0;
    const double noise = (static_cast<double>(rng.below(1001)) - 500.0) / 100.0;
    y[i] = X(i, 0) + 0.5 * X(i, 1) + noise > 0 ? 1.0 : -1.0;
  }
  w = Eigen::Vector3d(1.0, 0.5, 0.0);
  Dataset d;
  d.X = std::move(X);
  d.y = std::move(y);
  d.source = "test";
  return d;
}

std::vector<double> scores_of(const Dataset& d, const Eigen::VectorXd& w) {
  std::vector<double> s(static_cast<std::size_t>(d.rows()));
  for (Index i = 0; i < d.rows(); ++i) margins(d, i, w, &s[static_cast<std::size_t>(i)]);
  return s;
}

TEST(Validation, CountsAreWhatPredictCounts) {
  Eigen::VectorXd w;
  const Dataset d = logistic_rows(500, 1, w);
  Objective obj;
  ValidationCounts c;
  count_validation(d, obj, w, c);
  double loss = 0;
  std::uint64_t correct = 0;
  for (Index i = 0; i < d.rows(); ++i) {
    double z = 0;
    margins(d, i, w, &z);
    loss += std::log1p(std::exp(-d.y[i] * z));
    correct += (z > 0 ? 1.0 : -1.0) == d.y[i];
  }
  EXPECT_EQ(c.examples, 500u);
  EXPECT_EQ(c.correct, correct);
  EXPECT_NEAR(c.loss_sum, loss, 1e-9 * loss);
  ASSERT_EQ(c.negatives.size(), static_cast<std::size_t>(kAucBins));
  const std::uint64_t binned = std::accumulate(c.negatives.begin(), c.negatives.end(), 0ull) +
                               std::accumulate(c.positives.begin(), c.positives.end(), 0ull);
  EXPECT_EQ(binned, 500u);
  EXPECT_TRUE(check_counts(c, ""));
}

// The hub's AUC from the agents' merged histograms against the exact AUC of all their rows: equal
// within the bound the hub reports, and the bound is small for spread scores.
TEST(Validation, MergedHistogramAucMatchesTheExactAucWithinItsBound) {
  Eigen::VectorXd w;
  const Dataset all = logistic_rows(900, 7, w);
  const std::vector<double> score = scores_of(all, w);
  const std::vector<double> y(all.y.data(), all.y.data() + all.y.size());
  const double exact = exact_auc(score, y);

  // Three agents hold a third each; their counts add up at the hub.
  Objective obj;
  ValidationCounts merged;
  for (int k = 0; k < 3; ++k) {
    std::vector<Index> rows;
    for (Index i = k; i < all.rows(); i += 3) rows.push_back(i);
    ValidationCounts part;
    count_validation(select_rows(all, rows), obj, w, part);
    merged.add(part);
  }
  ValidationCounts whole;
  count_validation(all, obj, w, whole);
  EXPECT_EQ(merged.negatives, whole.negatives);
  EXPECT_EQ(merged.positives, whole.positives);
  EXPECT_EQ(merged.correct, whole.correct);

  const ValidationFigures f = summarize(merged, Loss::logistic);
  EXPECT_EQ(f.examples, 900u);
  EXPECT_DOUBLE_EQ(f.accuracy, static_cast<double>(whole.correct) / 900);
  ASSERT_TRUE(std::isfinite(f.auc));
  EXPECT_LE(std::abs(f.auc - exact), f.auc_error + 1e-12) << "exact " << exact;
  EXPECT_LT(f.auc_error, 0.01);
  EXPECT_GT(f.auc, 0.6);  // the labels follow the scores: not a coin
}

// Scores far apart (one class per bin) give the exact AUC and a zero bound; scores all in one
// bin give 1/2 with the bound 1/2.
TEST(Validation, HistogramAucIsExactWhenNoBinMixesTheLabels) {
  const std::vector<double> score = {-5, -4, -3.5, 0.1, 3, 4, 6, -6};
  const std::vector<double> y = {-1, -1, 1, -1, 1, 1, 1, -1};
  std::vector<std::uint64_t> neg(kAucBins, 0), pos(kAucBins, 0);
  for (std::size_t i = 0; i < score.size(); ++i)
    ++(y[i] > 0 ? pos : neg)[static_cast<std::size_t>(auc_bin(score[i]))];
  double bound = -1;
  EXPECT_DOUBLE_EQ(histogram_auc(neg, pos, &bound), exact_auc(score, y));
  EXPECT_EQ(bound, 0.0);

  std::vector<std::uint64_t> neg1(kAucBins, 0), pos1(kAucBins, 0);
  neg1[100] = 3;
  pos1[100] = 2;
  EXPECT_DOUBLE_EQ(histogram_auc(neg1, pos1, &bound), 0.5);
  EXPECT_DOUBLE_EQ(bound, 0.5);
  EXPECT_TRUE(std::isnan(histogram_auc(neg1, std::vector<std::uint64_t>(kAucBins, 0))));
}

TEST(Validation, BinsAreMonotoneAndCoverTheRange) {
  EXPECT_EQ(auc_bin(-1000), 0);
  EXPECT_EQ(auc_bin(1000), kAucBins - 1);
  EXPECT_EQ(auc_bin(0), kAucBins / 2);
  int last = 0;
  for (double z = -40; z <= 40; z += 0.01) {
    const int b = auc_bin(z);
    EXPECT_GE(b, last);
    last = b;
  }
}

TEST(Validation, NoCountsMeanUnknownFiguresNotZero) {
  const ValidationFigures f = summarize(ValidationCounts{}, Loss::logistic);
  EXPECT_EQ(f.examples, 0u);
  EXPECT_TRUE(std::isnan(f.loss));
  EXPECT_TRUE(std::isnan(f.accuracy));
  EXPECT_TRUE(std::isnan(f.auc));
  ValidationCounts squared;
  squared.examples = 2;
  squared.loss_sum = 3.0;
  const ValidationFigures g = summarize(squared, Loss::squared);
  EXPECT_DOUBLE_EQ(g.loss, 1.5);
  EXPECT_TRUE(std::isnan(g.accuracy));  // no classes to be right about
}

TEST(Validation, MultinomialCountsTheFirstLargestMargin) {
  DenseMatrix<double> X(3, 2);
  X << 1, 0, 0, 1, 1, 1;
  Dataset d;
  d.X = X;
  d.y = Eigen::Vector3d(0, 1, 2);
  Objective obj;
  obj.loss = Loss::multinomial;
  obj.classes = 3;
  // w[k*C + c]: feature 0 favours class 0, feature 1 class 1; row 2 ties 0 and 1 -> class 0.
  Eigen::VectorXd w(6);
  w << 2, 0, 0, 0, 2, 0;
  ValidationCounts c;
  count_validation(d, obj, w, c);
  EXPECT_EQ(c.examples, 3u);
  EXPECT_EQ(c.correct, 2u);
  EXPECT_TRUE(c.negatives.empty());
}

TEST(HoldOut, SplitsEveryRowOnceDeterministically) {
  Eigen::VectorXd w;
  const Dataset d = logistic_rows(101, 3, w);
  auto a = hold_out(d, 0.2, 9);
  ASSERT_TRUE(a) << a.error();
  EXPECT_EQ(a->validation.rows(), 20);
  EXPECT_EQ(a->train.rows(), 81);
  auto b = hold_out(d, 0.2, 9);
  ASSERT_TRUE(b);
  EXPECT_EQ(std::get<DenseMatrix<double>>(a->validation.X),
            std::get<DenseMatrix<double>>(b->validation.X));
  auto other = hold_out(d, 0.2, 10);
  ASSERT_TRUE(other);
  EXPECT_NE(std::get<DenseMatrix<double>>(a->validation.X),
            std::get<DenseMatrix<double>>(other->validation.X));
  // Every row in exactly one part: the label sums add up (rows are distinct by construction).
  EXPECT_DOUBLE_EQ(a->train.y.sum() + a->validation.y.sum(), d.y.sum());
  const auto& all = std::get<DenseMatrix<double>>(d.X);
  const auto& tr = std::get<DenseMatrix<double>>(a->train.X);
  const auto& va = std::get<DenseMatrix<double>>(a->validation.X);
  EXPECT_NEAR(tr.sum() + va.sum(), all.sum(), 1e-9);
}

TEST(HoldOut, RefusesFractionsOutsideTheOpenInterval) {
  Eigen::VectorXd w;
  const Dataset d = logistic_rows(10, 3, w);
  for (double f : {0.0, 1.0, -0.1, 1.5, std::nan("")}) {
    auto r = hold_out(d, f, 1);
    ASSERT_FALSE(r) << f;
    EXPECT_NE(r.error().find("validation.holdout"), std::string::npos) << r.error();
  }
  auto tiny = hold_out(d, 0.01, 1);  // 0.1 of a row
  ASSERT_FALSE(tiny);
  EXPECT_NE(tiny.error().find("no validation row"), std::string::npos) << tiny.error();
}

}  // namespace
}  // namespace dsaga
