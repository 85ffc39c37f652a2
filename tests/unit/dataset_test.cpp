#include "dsaga/dataset.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <vector>

namespace dsaga {
namespace {

// 4 x 5 with zeros in every row, an all-zero row (2) and values of both signs.
Dataset small_dense() {
  DenseMatrix<double> X(4, 5);
  X << 3, 0, 4, 0, 0,       //
      0, -1.5, 0, 2, 0.25,  //
      0, 0, 0, 0, 0,        //
      1e-3, 7, 0, 0, -9;
  Dataset d;
  d.X = X;
  d.y = Eigen::Vector4d(1, 0, 2, 1);
  d.source = "small";
  return d;
}

DenseMatrix<double> dense_of(const Dataset& d) {
  return std::get<DenseMatrix<double>>(convert(d, Storage::dense, Precision::f64).X);
}

template <class M>
const M& as(const Dataset& d) {
  return std::get<M>(d.X);
}

TEST(Convert, DenseSparseRoundTripIsExactAndStoresOnlyNonZeros) {
  const Dataset d = small_dense();
  const Dataset s = convert(d, Storage::sparse, Precision::f64);
  ASSERT_TRUE(s.is_sparse());
  EXPECT_EQ(s.nnz(), 8);
  EXPECT_TRUE(as<SparseMatrix<double>>(s).isCompressed());
  EXPECT_EQ(s.rows(), 4);
  EXPECT_EQ(s.cols(), 5);
  EXPECT_EQ(s.y, d.y);
  EXPECT_EQ(s.source, "small");
  EXPECT_EQ(as<SparseMatrix<double>>(s).coeff(3, 4), -9.0);
  EXPECT_EQ(dense_of(s), as<DenseMatrix<double>>(d));
}

TEST(Convert, Float32RoundsOnceAndRoundTrips) {
  Dataset d = small_dense();
  std::get<DenseMatrix<double>>(d.X)(0, 0) = 0.1;  // not representable in float
  for (Storage storage : {Storage::dense, Storage::sparse}) {
    const Dataset f = convert(d, storage, Precision::f32);
    EXPECT_EQ(f.precision(), Precision::f32);
    EXPECT_EQ(f.is_sparse(), storage == Storage::sparse);
    const DenseMatrix<double> back = dense_of(f);
    EXPECT_EQ(back(0, 0), static_cast<double>(0.1f));
    EXPECT_NE(back(0, 0), 0.1);
    EXPECT_EQ(back(3, 4), -9.0);
    // f32 -> f32 in the other storage is exact.
    const Dataset other =
        convert(f, storage == Storage::dense ? Storage::sparse : Storage::dense, Precision::f32);
    EXPECT_EQ(dense_of(other), back);
  }
}

// Applies the B1 feature pipeline and returns the result as dense f64.
DenseMatrix<double> pipeline(Dataset d, double value) {
  scale_features(d, 1.0 / 255);
  normalize_rows(d);
  append_constant(d, value);
  if (d.is_sparse()) {
    EXPECT_TRUE(d.precision() == Precision::f32 ? as<SparseMatrix<float>>(d).isCompressed()
                                                : as<SparseMatrix<double>>(d).isCompressed());
  }
  return dense_of(d);
}

TEST(Transforms, DenseAndSparseGiveBitIdenticalResults) {
  for (Precision p : {Precision::f64, Precision::f32}) {
    const Dataset dense = convert(small_dense(), Storage::dense, p);
    const Dataset sparse = convert(small_dense(), Storage::sparse, p);
    const DenseMatrix<double> a = pipeline(dense, 1.0), b = pipeline(sparse, 1.0);
    ASSERT_EQ(a.cols(), 6);
    EXPECT_EQ(a, b) << "precision " << (p == Precision::f32 ? "f32" : "f64");
  }
}

TEST(Transforms, NormalizeRowsGivesUnitRowsAndLeavesZeroRows) {
  for (Storage s : {Storage::dense, Storage::sparse}) {
    Dataset d = convert(small_dense(), s, Precision::f64);
    normalize_rows(d);
    const DenseMatrix<double> X = dense_of(d);
    EXPECT_DOUBLE_EQ(X(0, 0), 0.6);
    EXPECT_DOUBLE_EQ(X(0, 2), 0.8);
    EXPECT_EQ(X.row(2).squaredNorm(), 0.0);
    const Eigen::VectorXd n = row_norms_squared(d);
    EXPECT_NEAR(n[0], 1.0, 1e-15);
    EXPECT_NEAR(n[1], 1.0, 1e-15);
    EXPECT_EQ(n[2], 0.0);
    EXPECT_NEAR(n[3], 1.0, 1e-15);
  }
}

TEST(Transforms, NormalizeRowsSurvivesHugeValues) {
  DenseMatrix<double> X(1, 2);
  X << 3e200, 4e200;  // the plain sum of squares overflows
  Dataset d;
  d.X = X;
  d.y = Eigen::VectorXd::Zero(1);
  normalize_rows(d);
  EXPECT_DOUBLE_EQ(as<DenseMatrix<double>>(d)(0, 0), 0.6);
  EXPECT_DOUBLE_EQ(as<DenseMatrix<double>>(d)(0, 1), 0.8);
}

TEST(Transforms, ScaleFeaturesMultipliesEveryEntry) {
  for (Storage s : {Storage::dense, Storage::sparse}) {
    Dataset d = convert(small_dense(), s, Precision::f64);
    scale_features(d, -2.0);
    EXPECT_EQ(dense_of(d), -2.0 * as<DenseMatrix<double>>(small_dense()));
  }
}

TEST(Transforms, AppendConstantAddsALastColumn) {
  for (Storage s : {Storage::dense, Storage::sparse}) {
    for (Precision p : {Precision::f32, Precision::f64}) {
      Dataset d = convert(small_dense(), s, p);
      const Index nnz = d.nnz();
      append_constant(d, 1.0);
      EXPECT_EQ(d.cols(), 6);
      EXPECT_EQ(d.rows(), 4);
      EXPECT_EQ(d.is_sparse(), s == Storage::sparse);
      EXPECT_EQ(d.precision(), p);
      EXPECT_EQ(d.nnz(), s == Storage::sparse ? nnz + 4 : 24);
      const DenseMatrix<double> X = dense_of(d);
      EXPECT_EQ(X.col(5), Eigen::VectorXd::Ones(4));
      EXPECT_EQ(X.leftCols(5), dense_of(convert(small_dense(), Storage::dense, p)));
    }
  }
}

TEST(Transforms, AppendZeroConstantToSparseStoresNothing) {
  Dataset d = convert(small_dense(), Storage::sparse, Precision::f64);
  append_constant(d, 0.0);
  EXPECT_EQ(d.cols(), 6);
  EXPECT_EQ(d.nnz(), 8);
  EXPECT_EQ(dense_of(d).col(5), Eigen::VectorXd::Zero(4));
}

TEST(RowNorms, AccumulateInDouble) {
  // 1e20f squared overflows float (max ~3.4e38) but not double.
  DenseMatrix<float> X(2, 3);
  X << 1e20f, 0, 1e20f, 0.5f, 0, 0;
  Dataset d;
  d.X = X;
  d.y = Eigen::VectorXd::Zero(2);
  for (Storage s : {Storage::dense, Storage::sparse}) {
    const Eigen::VectorXd n = row_norms_squared(convert(d, s, Precision::f32));
    const double big = static_cast<double>(1e20f);
    EXPECT_EQ(n[0], 2 * big * big);
    EXPECT_EQ(n[1], 0.25);
  }
}

TEST(SelectRows, KeepsOrderLabelsStorageAndRepeats) {
  const std::vector<Index> rows = {3, 0, 3};
  for (Storage s : {Storage::dense, Storage::sparse}) {
    const Dataset d = convert(small_dense(), s, Precision::f32);
    const Dataset sel = select_rows(d, rows);
    EXPECT_EQ(sel.is_sparse(), s == Storage::sparse);
    EXPECT_EQ(sel.precision(), Precision::f32);
    EXPECT_EQ(sel.rows(), 3);
    EXPECT_EQ(sel.cols(), 5);
    EXPECT_EQ(sel.y, Eigen::Vector3d(1, 1, 1));
    const DenseMatrix<double> all = dense_of(d), X = dense_of(sel);
    EXPECT_EQ(X.row(0), all.row(3));
    EXPECT_EQ(X.row(1), all.row(0));
    EXPECT_EQ(X.row(2), all.row(3));
    if (s == Storage::sparse) {
      EXPECT_EQ(sel.nnz(), 3 + 2 + 3);
      EXPECT_TRUE(as<SparseMatrix<float>>(sel).isCompressed());
    }
  }
  EXPECT_THROW(select_rows(small_dense(), {4}), std::out_of_range);
  EXPECT_THROW(select_rows(small_dense(), {-1}), std::out_of_range);
}

Dataset labelled(const std::vector<double>& labels) {
  Dataset d;
  const Index n = static_cast<Index>(labels.size());
  DenseMatrix<double> X(n, 1);
  for (Index i = 0; i < n; ++i) X(i, 0) = static_cast<double>(i);
  d.X = X;
  d.y = Eigen::Map<const Eigen::VectorXd>(labels.data(), n);
  return d;
}

void expect_cover(const std::vector<std::vector<Index>>& shards, Index n, int K) {
  ASSERT_EQ(static_cast<int>(shards.size()), K);
  std::vector<int> seen(static_cast<std::size_t>(n), 0);
  std::size_t smallest = shards[0].size(), largest = shards[0].size();
  for (const auto& s : shards) {
    smallest = std::min(smallest, s.size());
    largest = std::max(largest, s.size());
    for (Index i : s) {
      ASSERT_GE(i, 0);
      ASSERT_LT(i, n);
      ++seen[static_cast<std::size_t>(i)];
    }
  }
  EXPECT_GE(smallest, 1u);
  EXPECT_LE(largest - smallest, 1u);
  EXPECT_TRUE(std::all_of(seen.begin(), seen.end(), [](int c) { return c == 1; }));
}

TEST(Partition, CoversEveryRowOnceWithSizesWithinOne) {
  std::vector<double> labels(103);
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<double>((i * 7) % 5);
  const Dataset d = labelled(labels);
  for (PartitionKind kind : {PartitionKind::iid, PartitionKind::by_label}) {
    for (int K : {1, 2, 8, 10, 103}) {
      SCOPED_TRACE(K);
      const auto shards = partition(d, K, kind, 5);
      expect_cover(shards, 103, K);
      // The first n % K shards hold the extra row.
      if (K == 10) {
        EXPECT_EQ(shards[2].size(), 11u);
        EXPECT_EQ(shards[3].size(), 10u);
      }
    }
  }
}

TEST(Partition, IidIsDeterministicPerSeedAndPinned) {
  const Dataset d = labelled(std::vector<double>(10, 0.0));
  const auto a = partition(d, 2, PartitionKind::iid, 0);
  EXPECT_EQ(a, partition(d, 2, PartitionKind::iid, 0));
  EXPECT_NE(a, partition(d, 2, PartitionKind::iid, 1));
  // Fisher-Yates with SplitMix64 Rng(0).below, computed independently (Python, exact integers):
  // any platform or implementation difference changes these.
  EXPECT_EQ(a[0], (std::vector<Index>{4, 9, 2, 5, 1}));
  EXPECT_EQ(a[1], (std::vector<Index>{7, 6, 0, 3, 8}));

  const Dataset big = labelled(std::vector<double>(60000, 0.0));
  const auto b = partition(big, 8, PartitionKind::iid, 0);
  EXPECT_EQ(std::vector<Index>(b[0].begin(), b[0].begin() + 4),
            (std::vector<Index>{14406, 19635, 56127, 29872}));
  EXPECT_EQ(std::vector<Index>(b[1].begin(), b[1].begin() + 4),
            (std::vector<Index>{39410, 43902, 14916, 23525}));
  EXPECT_EQ(b[7].back(), 52998);
}

TEST(Partition, ByLabelShardsAreStablySortedByLabel) {
  const std::vector<double> labels = {2, 0, 1, 0, 2, 1, 0, 1, 2, 0, 1};
  const Dataset d = labelled(labels);
  const auto shards = partition(d, 3, PartitionKind::by_label, 123);
  expect_cover(shards, 11, 3);
  std::vector<Index> all;
  for (const auto& s : shards) all.insert(all.end(), s.begin(), s.end());
  // Labels 0: rows 1 3 6 9; 1: rows 2 5 7 10; 2: rows 0 4 8 (stable: rows ascend within a label).
  EXPECT_EQ(all, (std::vector<Index>{1, 3, 6, 9, 2, 5, 7, 10, 0, 4, 8}));
  EXPECT_EQ(shards[0], (std::vector<Index>{1, 3, 6, 9}));
  // The seed plays no part.
  EXPECT_EQ(shards, partition(d, 3, PartitionKind::by_label, 0));
}

// Rows and shards, for the Dirichlet tests: every row in exactly one shard, none empty (sizes
// may differ by any amount).
void expect_cover_unequal(const std::vector<std::vector<Index>>& shards, Index n, int K) {
  ASSERT_EQ(static_cast<int>(shards.size()), K);
  std::vector<int> seen(static_cast<std::size_t>(n), 0);
  for (const auto& s : shards) {
    EXPECT_FALSE(s.empty());
    EXPECT_TRUE(std::is_sorted(s.begin(), s.end()));
    for (Index i : s) {
      ASSERT_GE(i, 0);
      ASSERT_LT(i, n);
      ++seen[static_cast<std::size_t>(i)];
    }
  }
  EXPECT_TRUE(std::all_of(seen.begin(), seen.end(), [](int c) { return c == 1; }));
}

std::vector<double> cyclic_labels(std::size_t n, int classes) {
  std::vector<double> labels(n);
  for (std::size_t i = 0; i < n; ++i) labels[i] = static_cast<double>(i % classes);
  return labels;
}

TEST(Partition, DirichletCoversEveryRowOnceWithNoShardEmpty) {
  const Dataset d = labelled(cyclic_labels(203, 5));
  for (double alpha : {0.01, 0.3, 1.0, 100.0}) {
    for (int K : {1, 2, 8, 10, 50, 203}) {
      SCOPED_TRACE(::testing::Message() << "alpha " << alpha << ", K " << K);
      expect_cover_unequal(partition(d, K, PartitionKind::dirichlet, 3, alpha), 203, K);
    }
  }
  // One class, NaN labels among others: still one cover.
  std::vector<double> odd = cyclic_labels(40, 3);
  odd[5] = odd[17] = NAN;
  expect_cover_unequal(partition(labelled(odd), 4, PartitionKind::dirichlet, 0, 0.5), 40, 4);
  expect_cover_unequal(
      partition(labelled(std::vector<double>(30, 1.0)), 6, PartitionKind::dirichlet, 0, 0.5), 30,
      6);
}

TEST(Partition, DirichletIsDeterministicPerSeedAndPinned) {
  const Dataset d = labelled(cyclic_labels(60000, 10));
  const auto a = partition(d, 8, PartitionKind::dirichlet, 0, 0.3);
  EXPECT_EQ(a, partition(d, 8, PartitionKind::dirichlet, 0, 0.3));
  EXPECT_NE(a, partition(d, 8, PartitionKind::dirichlet, 1, 0.3));
  EXPECT_NE(a, partition(d, 8, PartitionKind::dirichlet, 0, 0.31));
  // Computed independently (a Python re-implementation of the same draws in IEEE doubles):
  // a platform, libm or compiler difference in any draw changes these.
  std::vector<std::size_t> sizes;
  for (const auto& s : a) sizes.push_back(s.size());
  EXPECT_EQ(sizes, (std::vector<std::size_t>{3780, 4855, 16697, 10858, 9737, 6581, 1826, 5666}));
  EXPECT_EQ(std::vector<Index>(a[0].begin(), a[0].begin() + 3), (std::vector<Index>{8, 18, 48}));
  EXPECT_EQ(std::vector<Index>(a[6].begin(), a[6].begin() + 3), (std::vector<Index>{28, 59, 75}));
  // Small alpha, more shards than a class can fill: the empty ones take a row from the largest.
  const auto b = partition(labelled(cyclic_labels(200, 5)), 10, PartitionKind::dirichlet, 7, 0.05);
  sizes.clear();
  for (const auto& s : b) sizes.push_back(s.size());
  EXPECT_EQ(sizes, (std::vector<std::size_t>{3, 40, 92, 1, 1, 24, 35, 1, 1, 2}));
  EXPECT_EQ(b[0], (std::vector<Index>{63, 67, 118}));
  EXPECT_EQ(b[9], (std::vector<Index>{82, 107}));
}

TEST(Partition, DirichletSmallAlphaIsUnequalAndLargeAlphaNearlyIid) {
  const Dataset d = labelled(cyclic_labels(10000, 10));
  const auto count_classes = [&d](const std::vector<Index>& shard) {
    std::vector<int> per(10, 0);
    for (Index i : shard) ++per[static_cast<std::size_t>(d.y[i])];
    return per;
  };
  const auto small = partition(d, 8, PartitionKind::dirichlet, 0, 0.1);
  std::size_t smallest = small[0].size(), largest = 0;
  for (const auto& s : small) {
    smallest = std::min(smallest, s.size());
    largest = std::max(largest, s.size());
    // Mostly a few classes per shard: the largest class holds a big share.
    const auto per = count_classes(s);
    EXPECT_GT(*std::max_element(per.begin(), per.end()), static_cast<int>(s.size()) / 4);
  }
  EXPECT_GT(largest, 3 * smallest);
  const auto big = partition(d, 8, PartitionKind::dirichlet, 0, 1000.0);
  for (const auto& s : big) {
    EXPECT_NEAR(static_cast<double>(s.size()), 1250.0, 100.0);
    for (int c : count_classes(s)) EXPECT_NEAR(c, 125, 30);
  }
}

TEST(Partition, DirichletRejectsBadAlphaAndMissingLabels) {
  const Dataset d = labelled({0, 1, 2, 0});
  EXPECT_THROW(partition(d, 2, PartitionKind::dirichlet, 0, 0.0), std::invalid_argument);
  EXPECT_THROW(partition(d, 2, PartitionKind::dirichlet, 0, -1.0), std::invalid_argument);
  EXPECT_THROW(partition(d, 2, PartitionKind::dirichlet, 0, NAN), std::invalid_argument);
  EXPECT_THROW(partition(d, 5, PartitionKind::dirichlet, 0, 1.0), std::invalid_argument);
  Dataset unlabelled = d;
  unlabelled.y.resize(0);
  EXPECT_THROW(partition(unlabelled, 2, PartitionKind::dirichlet, 0, 1.0), std::invalid_argument);
}

TEST(Partition, RejectsEmptyShards) {
  const Dataset d = labelled({0, 1, 2});
  EXPECT_THROW(partition(d, 0, PartitionKind::iid, 0), std::invalid_argument);
  EXPECT_THROW(partition(d, 4, PartitionKind::by_label, 0), std::invalid_argument);
  EXPECT_NO_THROW(partition(d, 3, PartitionKind::by_label, 0));
}

// A narrower LIBSVM shard widened to the model: zeros go in before the bias column, which stays
// last; CSR keeps its entries, dense storage becomes CSR; a width it already has changes nothing.
TEST(Widen, AddsZeroColumnsBeforeTheBiasInEveryStorage) {
  DenseMatrix<double> X(2, 3);
  X << 1, 0, 1,  //
      0, 2, 1;   // the last column is the bias
  for (Storage storage : {Storage::dense, Storage::sparse}) {
    for (Precision precision : {Precision::f32, Precision::f64}) {
      Dataset data;
      data.X = X;
      data.y = Eigen::Vector2d(1, -1);
      data = convert(data, storage, precision);
      const Index nnz = data.nnz();
      widen(data, 5, true);
      ASSERT_EQ(data.cols(), 5);
      const Dataset dense = convert(data, Storage::dense, Precision::f64);
      DenseMatrix<double> expected(2, 5);
      expected << 1, 0, 0, 0, 1,  //
          0, 2, 0, 0, 1;
      EXPECT_EQ(std::get<DenseMatrix<double>>(dense.X), expected);
      EXPECT_TRUE(data.is_sparse());
      if (storage == Storage::sparse) {
        EXPECT_EQ(data.nnz(), nnz);
      }
      EXPECT_EQ(data.precision(), precision);
      widen(data, 5, true);
      EXPECT_EQ(convert(data, Storage::dense, Precision::f64).X.index(), dense.X.index());
      EXPECT_EQ(std::get<DenseMatrix<double>>(convert(data, Storage::dense, Precision::f64).X),
                expected);
      widen(data, 6, false);  // no bias: the zeros go last
      EXPECT_EQ(std::get<DenseMatrix<double>>(convert(data, Storage::dense, Precision::f64).X)
                    .col(5)
                    .squaredNorm(),
                0.0);
    }
  }
}

}  // namespace
}  // namespace dsaga
