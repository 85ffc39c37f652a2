#include "dsaga/data_source.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

namespace dsaga {
namespace {

const std::string kData = DSAGA_TEST_DATA_DIR;
const std::string kTinyImages = kData + "/tiny-images-idx3-ubyte.gz";
const std::string kTinyLabels = kData + "/tiny-labels-idx1-ubyte";

Objective squared() {
  Objective o;
  o.loss = Loss::squared;
  return o;
}

Objective logistic(double lambda = 0.0) {
  Objective o;
  o.loss = Loss::logistic;
  o.lambda = lambda;
  return o;
}

DenseMatrix<double> dense(const Dataset& d) {
  return std::visit(
      [](const auto& X) -> DenseMatrix<double> {
        return DenseMatrix<double>(X.template cast<double>());
      },
      d.X);
}

std::string error_of(const Result<Dataset>& r) { return r.is_ok() ? "(no error)" : r.error(); }

bool have_fashion_mnist() {
  return static_cast<bool>(
      std::ifstream(std::string(kFashionMnistDir) + "/train-images-idx3-ubyte.gz"));
}

TEST(PartitionNames, ParseAndPrint) {
  EXPECT_EQ(*parse_partition("iid"), PartitionKind::iid);
  EXPECT_EQ(*parse_partition("by-label"), PartitionKind::by_label);
  EXPECT_EQ(*parse_partition("by_label"), PartitionKind::by_label);
  EXPECT_STREQ(to_string(PartitionKind::iid), "iid");
  EXPECT_STREQ(to_string(PartitionKind::by_label), "by-label");
  EXPECT_EQ(parse_partition("random").error(),
            "'random' is not a partition (expected iid, by-label or dirichlet:ALPHA)");
  double alpha = 0.0;
  EXPECT_EQ(*parse_partition("dirichlet:0.3", &alpha), PartitionKind::dirichlet);
  EXPECT_EQ(alpha, 0.3);
  EXPECT_EQ(*parse_partition("dirichlet:2"), PartitionKind::dirichlet);
  EXPECT_STREQ(to_string(PartitionKind::dirichlet), "dirichlet");
  EXPECT_EQ(partition_name(PartitionKind::dirichlet, 0.3), "dirichlet:0.3");
  EXPECT_EQ(partition_name(PartitionKind::by_label, 0.3), "by-label");
  for (const char* bad : {"dirichlet", "dirichlet:", "dirichlet:0", "dirichlet:-1",
                          "dirichlet:inf", "dirichlet:nan", "dirichlet:0.3x"}) {
    SCOPED_TRACE(bad);
    alpha = 7.0;
    EXPECT_FALSE(parse_partition(bad, &alpha).is_ok());
    EXPECT_EQ(alpha, 7.0);
  }
}

TEST(LoadData, AutoPicksTheReaderByExtension) {
  DataSpec spec;
  spec.path = kData + "/valid.svm";
  auto svm = load_data(spec, squared());
  ASSERT_TRUE(svm.is_ok()) << svm.error();
  EXPECT_TRUE(svm->is_sparse());
  EXPECT_EQ(svm->rows(), 3);
  EXPECT_EQ(svm->source, spec.path);  // one shard: the whole set, no shard suffix

  spec.path = kData + "/valid.svm.gz";
  auto gz = load_data(spec, squared());
  ASSERT_TRUE(gz.is_ok()) << gz.error();
  EXPECT_EQ(dense(*gz), dense(*svm));

  spec.path = kData + "/valid.csv";
  spec.read.csv_header = true;
  auto csv = load_data(spec, squared());
  ASSERT_TRUE(csv.is_ok()) << csv.error();
  EXPECT_FALSE(csv->is_sparse());
  EXPECT_EQ(csv->y, Eigen::Vector3d(1, 0, 7));
}

// A shard of a natural LIBSVM split is narrower than the model when its highest feature index
// is lower: data.features pads it with zero columns before the bias goes last (issue 15), and a
// file wider than data.features is refused naming the file.
TEST(LoadData, FeaturesPadsANarrowerLibsvmShardBeforeTheBias) {
  DataSpec spec;
  spec.path = kData + "/valid.svm";
  auto natural = load_data(spec, squared());
  ASSERT_TRUE(natural.is_ok()) << natural.error();
  const Index width = natural->cols();
  spec.read.features = width + 4;
  spec.bias = true;
  auto padded = load_data(spec, squared());
  ASSERT_TRUE(padded.is_ok()) << padded.error();
  ASSERT_EQ(padded->cols(), width + 5);
  const Eigen::MatrixXd p = dense(*padded), n = dense(*natural);
  EXPECT_EQ(p.leftCols(width), n);
  EXPECT_TRUE(p.middleCols(width, 4).isZero());
  EXPECT_TRUE(p.col(width + 4).isOnes());  // the bias, last
  spec.read.features = width - 1;
  auto narrow = load_data(spec, squared());
  ASSERT_FALSE(narrow.is_ok());
  EXPECT_NE(narrow.error().find("valid.svm"), std::string::npos) << narrow.error();
}

TEST(LoadData, ConfigurationErrorsNameTheKey) {
  const std::string svm = kData + "/valid.svm";
  struct Case {
    DataSpec spec;
    std::string error;
  };
  std::vector<Case> cases;
  auto add = [&](auto change, std::string error) {
    DataSpec s;
    s.path = svm;
    change(s);
    cases.push_back({s, std::move(error)});
  };
  add([](DataSpec& s) { s.path = "x/data.bin"; },
      "data.format: auto cannot tell the format of 'x/data.bin' from its extension (.csv, .svm, "
      ".libsvm or .txt, optionally .gz); set data.format");
  add([](DataSpec& s) { s.path.clear(); },
      "data.path: empty; name the data file (or set data.format = \"fashion-mnist\")");
  add([](DataSpec& s) { s.format = "parquet"; },
      "data.format: 'parquet' is not a format (expected auto, libsvm, csv, idx or fashion-mnist)");
  add([](DataSpec& s) { s.shards = 0; }, "data.shards: 0 is not a number of shards (at least 1)");
  add([](DataSpec& s) { s.shards = 3, s.shard = 3; },
      "data.shard: 3 is not in 0..2 (data.shards = 3)");
  add([](DataSpec& s) { s.shard = -1; }, "data.shard: -1 is not in 0..0 (data.shards = 1)");
  add([](DataSpec& s) { s.limit = -1; }, "data.limit: -1 is negative (0 keeps every row)");
  add([](DataSpec& s) { s.scale = NAN; }, "data.scale: nan is not finite");
  add([](DataSpec& s) { s.shards = 4; },
      "data.shards: 4 shards of " + svm + ", which has 3 rows: every shard needs at least one row");
  add([](DataSpec& s) { s.shards = 3, s.limit = 2; },
      "data.shards: 3 shards of " + svm +
          ", which has 2 rows (after data.limit): every shard needs at least one row");
  add([](DataSpec& s) { s.shards = 2, s.partition = PartitionKind::dirichlet; },
      "data.partition: the Dirichlet alpha 0.000000 is not a finite number > 0 (e.g. "
      "\"dirichlet:0.3\")");
  add([](DataSpec& s) { s.format = "idx", s.path = kTinyImages; },
      "data.labels: empty; format idx needs the IDX labels file");
  add([](DataSpec& s) { s.format = "fashion-mnist", s.split = "validation"; },
      "data.split: 'validation' is not a split of fashion-mnist (expected train or test)");
  add([](DataSpec& s) { s.format = "fashion-mnist", s.path = kData; },
      kData + "/train-labels-idx1-ubyte.gz: cannot open: No such file or directory");
  add([](DataSpec& s) { s.path = kData + "/absent.csv"; },
      kData + "/absent.csv: cannot open: No such file or directory");
  for (const Case& c : cases) {
    SCOPED_TRACE(c.error);
    EXPECT_EQ(error_of(load_data(c.spec, squared())), c.error);
  }
}

TEST(LoadData, TransformsThenPartitionsOnRawLabels) {
  // Tiny IDX: labels 9 0 3; image 2 is all zero. By label: rows 1 (0), 2 (3) | 0 (9).
  DataSpec spec;
  spec.format = "idx";
  spec.path = kTinyImages;
  spec.labels_path = kTinyLabels;
  spec.scale = 1.0 / 255;
  spec.normalize_rows = true;
  spec.bias = true;
  spec.shards = 2;
  spec.partition = PartitionKind::by_label;
  auto r = load_data(spec, squared());
  ASSERT_TRUE(r.is_ok()) << r.error();
  EXPECT_EQ(r->source, kTinyImages + " [shard 0/2, by-label]");
  ASSERT_EQ(r->rows(), 2);
  ASSERT_EQ(r->cols(), 7);
  EXPECT_EQ(r->y, Eigen::Vector2d(0, 3));
  const DenseMatrix<double> X = dense(*r);
  Eigen::RowVectorXd row1(7);
  const double norm = std::sqrt(1.0 * 1 + 0.0 + (7.0 / 255) * (7.0 / 255));
  row1 << 1 / norm, 0, 0, 0, 0, (7.0 / 255) / norm, 1;
  EXPECT_TRUE(X.row(0).isApprox(row1, 1e-15)) << X.row(0);
  Eigen::RowVectorXd row2 = Eigen::RowVectorXd::Zero(7);
  row2[6] = 1;  // the zero image stays zero; only the bias is set
  EXPECT_EQ(X.row(1), row2);

  // The same raw labels mapped for a logistic loss: only 3 is positive.
  spec.positive = {3};
  auto l = load_data(spec, logistic());
  ASSERT_TRUE(l.is_ok()) << l.error();
  EXPECT_EQ(l->y, Eigen::Vector2d(-1, 1));

  // limit applies before partitioning: rows 0 (9) and 1 (0) remain; shard 1 holds row 0.
  spec.limit = 2;
  spec.shard = 1;
  auto lim = load_data(spec, squared());
  ASSERT_TRUE(lim.is_ok()) << lim.error();
  ASSERT_EQ(lim->rows(), 1);
  EXPECT_EQ(lim->y[0], 9.0);

  // Labels the loss cannot take are reported by prepare_labels, which maps the whole data set
  // before the shard is cut: the file and its row.
  spec.positive.clear();
  auto bad = load_data(spec, logistic());
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.error().find(kTinyImages + ": row 0: label 9"), std::string::npos) << bad.error();
}

TEST(LoadData, EveryShardMapsMultinomialLabelsAsTheWholeDataSet) {
  // Labels 9 0 3, by label: shard 0 holds 0 and 3, shard 1 holds 9 alone. The old guess (a
  // shard without label 0 is numbered 1..C) made its 9 class 8.
  DataSpec spec;
  spec.format = "idx";
  spec.path = kTinyImages;
  spec.labels_path = kTinyLabels;
  spec.shards = 2;
  spec.shard = 1;
  spec.partition = PartitionKind::by_label;
  Objective multi;
  multi.loss = Loss::multinomial;
  multi.classes = 10;
  auto r = load_data(spec, multi);
  ASSERT_TRUE(r.is_ok()) << r.error();
  ASSERT_EQ(r->rows(), 1);
  EXPECT_EQ(r->y[0], 9.0);
  // Nor does a file without label 0 guess (a device holding class 9 alone)...
  spec.limit = 1;  // label 9 only
  spec.shards = 1;
  spec.shard = 0;
  auto alone = load_data(spec, multi);
  ASSERT_TRUE(alone.is_ok()) << alone.error();
  EXPECT_EQ(alone->y[0], 9.0);
  // ...a data set numbered 1..C says so, and is shifted on every shard alike.
  spec.first_class = 1;
  auto shifted = load_data(spec, multi);
  ASSERT_TRUE(shifted.is_ok()) << shifted.error();
  EXPECT_EQ(shifted->y[0], 8.0);
}

TEST(LoadData, IidShardSourceNamesTheSeed) {
  DataSpec spec;
  spec.path = kData + "/valid.svm";
  spec.shards = 2;
  spec.shard = 1;
  spec.seed = 7;
  auto r = load_data(spec, squared());
  ASSERT_TRUE(r.is_ok()) << r.error();
  EXPECT_EQ(r->source, spec.path + " [shard 1/2, iid seed 7]");
  EXPECT_EQ(r->rows(), 1);
}

TEST(LoadData, DirichletShardSourceNamesAlphaAndSeed) {
  DataSpec spec;
  spec.path = kData + "/valid.svm";
  spec.shards = 3;
  spec.partition = PartitionKind::dirichlet;
  spec.dirichlet_alpha = 0.5;
  spec.seed = 2;
  Index rows = 0;
  for (int k = 0; k < 3; ++k) {
    spec.shard = k;
    auto r = load_data(spec, squared());
    ASSERT_TRUE(r.is_ok()) << r.error();
    EXPECT_EQ(r->source, spec.path + " [shard " + std::to_string(k) + "/3, dirichlet:0.5 seed 2]");
    EXPECT_GE(r->rows(), 1);
    rows += r->rows();
  }
  EXPECT_EQ(rows, 3);
}

// ALGORITHM.md section 5, B1: pixels/255, unit rows, a constant 1 (d = 785), y = +1 for classes
// {0, 2, 4, 6}, K = 8. Every class has 6000 of the 60000 rows, so by-label shard 0 (7500 rows)
// holds all of class 0 and then the first 1500 rows of class 1.
TEST(LoadData, FashionMnistB1ByLabelShard) {
  if (!have_fashion_mnist()) FAIL() << "dataset-fashion-mnist is not installed (scripts/install-deps.sh installs it)";
  DataSpec spec;
  spec.format = "fashion-mnist";
  spec.scale = 1.0 / 255;
  spec.normalize_rows = true;
  spec.bias = true;
  spec.positive = {0, 2, 4, 6};
  spec.shards = 8;
  spec.shard = 0;
  spec.partition = PartitionKind::by_label;
  auto r = load_data(spec, logistic(1.0 / 60000));
  ASSERT_TRUE(r.is_ok()) << r.error();
  EXPECT_EQ(r->source, "fashion-mnist/train [shard 0/8, by-label]");
  ASSERT_EQ(r->rows(), 7500);
  EXPECT_EQ(r->cols(), 785);
  EXPECT_FALSE(r->is_sparse());
  EXPECT_EQ(r->y.head(6000), Eigen::VectorXd::Ones(6000));   // class 0
  EXPECT_EQ(r->y.tail(1500), -Eigen::VectorXd::Ones(1500));  // class 1
  const Eigen::VectorXd norms = row_norms_squared(*r);       // unit row + bias^2
  EXPECT_NEAR(norms.minCoeff(), 2.0, 1e-12);
  EXPECT_NEAR(norms.maxCoeff(), 2.0, 1e-12);
  EXPECT_EQ(dense(*r).col(784), Eigen::VectorXd::Ones(7500));
}

TEST(LoadData, FashionMnistIidShardFollowsThePinnedPermutation) {
  if (!have_fashion_mnist()) FAIL() << "dataset-fashion-mnist is not installed (scripts/install-deps.sh installs it)";
  DataSpec spec;
  spec.format = "fashion-mnist";
  spec.scale = 1.0 / 255;
  spec.normalize_rows = true;
  spec.bias = true;
  spec.positive = {0, 2, 4, 6};
  spec.shards = 8;
  auto r = load_data(spec, logistic(1.0 / 60000));
  ASSERT_TRUE(r.is_ok()) << r.error();
  EXPECT_EQ(r->source, "fashion-mnist/train [shard 0/8, iid seed 0]");
  ASSERT_EQ(r->rows(), 7500);
  const Index positives = (r->y.array() > 0).count();
  EXPECT_GT(positives, 2800);  // 4 of 10 classes: 3000 expected, sd ~ 40
  EXPECT_LT(positives, 3200);

  // Row 0 of shard 0 is raw row 14406 (see the pinned permutation in dataset_test).
  auto raw = read_idx(std::string(kFashionMnistDir) + "/train-images-idx3-ubyte.gz",
                      std::string(kFashionMnistDir) + "/train-labels-idx1-ubyte.gz");
  ASSERT_TRUE(raw.is_ok()) << raw.error();
  Eigen::RowVectorXd x = std::get<DenseMatrix<double>>(raw->X).row(14406) / 255.0;
  x /= x.norm();
  EXPECT_TRUE(dense(*r).row(0).head(784).isApprox(x, 1e-14));
  const double c = raw->y[14406];
  EXPECT_EQ(r->y[0], (c == 0 || c == 2 || c == 4 || c == 6) ? 1.0 : -1.0);
}

TEST(LoadData, FashionMnistTestSplit) {
  if (!have_fashion_mnist()) FAIL() << "dataset-fashion-mnist is not installed (scripts/install-deps.sh installs it)";
  DataSpec spec;
  spec.format = "fashion-mnist";
  spec.split = "test";
  spec.read.precision = Precision::f32;
  Objective multi;
  multi.loss = Loss::multinomial;
  multi.classes = 10;
  auto r = load_data(spec, multi);
  ASSERT_TRUE(r.is_ok()) << r.error();
  EXPECT_EQ(r->source, "fashion-mnist/test");
  EXPECT_EQ(r->rows(), 10000);
  EXPECT_EQ(r->precision(), Precision::f32);
  EXPECT_EQ(r->y.head(6), (Eigen::VectorXd(6) << 9, 2, 1, 1, 6, 1).finished());
}

}  // namespace
}  // namespace dsaga
