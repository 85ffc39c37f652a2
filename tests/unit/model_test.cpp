#include "dsaga/model.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace dsaga {
namespace {

Model small_model(Loss loss, int classes, Index features) {
  Model m;
  m.objective.loss = loss;
  m.objective.classes = classes;
  m.objective.lambda = 1e-3;
  m.features = features;
  m.w.resize(features * classes);
  for (Index i = 0; i < m.w.size(); ++i) m.w[i] = 0.1 * static_cast<double>(i) - 1.0 / 3.0;
  m.round = 12;
  m.objective_value = 0.25;
  return m;
}

TEST(ModelFile, RoundTripsEveryFieldBitExactly) {
  Model m = small_model(Loss::logistic, 1, 5);
  m.data_recorded = true;
  m.data = DataTransform{1.0 / 255, true, true, {0, 2, 4.5}};
  auto text = format_model(m);
  ASSERT_TRUE(text) << text.error();
  auto back = parse_model(*text, "m.txt");
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(back->format_version, 2);
  EXPECT_EQ(back->objective.loss, Loss::logistic);
  EXPECT_EQ(back->objective.classes, 1);
  EXPECT_EQ(back->objective.lambda, 1e-3);
  EXPECT_EQ(back->features, 5);
  EXPECT_EQ(back->round, 12u);
  EXPECT_EQ(back->objective_value, 0.25);
  EXPECT_TRUE(back->data_recorded);
  EXPECT_EQ(back->data.scale, 1.0 / 255);
  EXPECT_TRUE(back->data.normalize_rows);
  EXPECT_TRUE(back->data.bias);
  EXPECT_EQ(back->data.positive, (std::vector<double>{0, 2, 4.5}));
  EXPECT_EQ(back->w, m.w);  // %.17g round-trips doubles exactly
}

TEST(ModelFile, MultinomialWithUnknownDataOptionsRoundTrips) {
  Model m = small_model(Loss::multinomial, 3, 4);
  m.objective_value = std::numeric_limits<double>::quiet_NaN();
  auto back = parse_model(*format_model(m), "m.txt");
  ASSERT_TRUE(back) << back.error();
  EXPECT_FALSE(back->data_recorded);
  EXPECT_EQ(back->objective.classes, 3);
  EXPECT_TRUE(std::isnan(back->objective_value));
  EXPECT_EQ(back->w, m.w);
}

TEST(ModelFile, ReadsTheFirstFormat) {
  const std::string v1 =
      "# dsaga model\nformat dsaga-model-1\nloss squared\nclasses 1\nfeatures 2\nlambda 0.5\n"
      "round 3\nobjective 1.5\nw\n0.25\n-2\n";
  auto m = parse_model(v1, "old.txt");
  ASSERT_TRUE(m) << m.error();
  EXPECT_EQ(m->format_version, 1);
  EXPECT_FALSE(m->data_recorded);
  EXPECT_EQ(m->objective.loss, Loss::squared);
  ASSERT_EQ(m->w.size(), 2);
  EXPECT_EQ(m->w[1], -2.0);
}

// Each malformed file is refused with the file, the line and the field.
TEST(ModelFile, RefusesMalformedFilesNamingFileLineAndField) {
  const std::string head =
      "format dsaga-model-2\nloss multinomial\nclasses 2\nfeatures 2\ndata-options unknown\n";
  struct Case {
    std::string text, message;
  };
  const Case cases[] = {
      {"", "m.txt: empty, not a dsaga model"},
      {"format dsaga-model-3\n", "m.txt:1: 'format dsaga-model-3': not a model this release reads"},
      {head, "m.txt:5: the file ends before the 'w' line"},
      {head + "colour blue\nw\n", "m.txt:6: 'colour' is not a key of dsaga-model-2"},
      {"format dsaga-model-2\nloss hinge\n", "m.txt:2: loss: "},
      {"format dsaga-model-2\nloss logistic\nclasses 2\nfeatures 1\ndata-options unknown\nw\n1 2\n",
       "m.txt:6: classes 2 does not fit the logistic loss (1 expected)"},
      {"format dsaga-model-2\nclasses -1\n", "m.txt:2: classes: '-1' is not a number of classes"},
      {"format dsaga-model-2\nfeatures 0\n", "m.txt:2: features: '0' is not a width"},
      {"format dsaga-model-2\nloss squared\nclasses 1\nfeatures 1\nw\n1\n",
       "m.txt:5: the header has no 'data-options' line before 'w'"},
      {"format dsaga-model-2\nloss squared\nclasses 1\nfeatures 1\ndata-options recorded\n"
       "scale 1\nnormalize no\nw\n1\n",
       "m.txt:8: the header has no 'bias' line before 'w'"},
      {"format dsaga-model-2\nloss squared\nclasses 1\nfeatures 1\ndata-options unknown\n"
       "bias yes\nw\n1\n",
       "m.txt:7: data options given with 'data-options unknown'"},
      {"format dsaga-model-2\ndata-options recorded\nnormalize maybe\n",
       "m.txt:3: normalize: 'maybe', expected yes or no"},
      {head + "w\n1 2\n", "m.txt: 1 weight lines after 'w', expected features = 2"},
      {head + "w\n1 2\n3 4\n5 6\n", "m.txt:9: more than features (2) weight lines"},
      {head + "w\n1 2\n3\n", "m.txt:8: 1 weights on the line of feature 1, expected classes = 2"},
      {head + "w\n1 inf\n3 4\n", "m.txt:7: weight 'inf' is not a finite number"},
      {head + "w\n1 0x10\n3 4\n", "m.txt:7: weight '0x10' is not a finite number"},
      {"format dsaga-model-1\nloss squared\nclasses 1\nfeatures 1\ndata-options unknown\n",
       "m.txt:5: 'data-options' is not a key of dsaga-model-1"},
  };
  for (const Case& c : cases) {
    auto m = parse_model(c.text, "m.txt");
    ASSERT_FALSE(m) << c.text;
    EXPECT_EQ(m.error().rfind(c.message, 0), 0u) << "got: " << m.error() << "\nexpected: " << c.message;
  }
}

TEST(ModelFile, AHugeWidthInTheHeaderIsNotAllocated) {
  // 2^40 - 1 features claimed, two given: refused after reading what is there.
  auto m = parse_model(
      "format dsaga-model-2\nloss squared\nclasses 1\nfeatures 1099511627775\n"
      "data-options unknown\nw\n1\n2\n",
      "m.txt");
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().find("2 weight lines after 'w', expected features = 1099511627775"),
            std::string::npos)
      << m.error();
}

TEST(ModelFile, LoadModelNamesAMissingFile) {
  auto m = load_model("/nonexistent/model.txt");
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().find("/nonexistent/model.txt"), std::string::npos) << m.error();
}

TEST(LiblinearExport, LogisticPutsPlusOneFirstAndFoldsScaleAndBias) {
  Model m = small_model(Loss::logistic, 1, 3);
  m.w << 2.0, -4.0, 0.5;  // the last is the bias column's weight
  auto text = liblinear_model_text(m, DataTransform{0.5, false, true, {}});
  ASSERT_TRUE(text) << text.error();
  EXPECT_EQ(*text,
            "solver_type L2R_LR\nnr_class 2\nlabel 1 -1\nnr_feature 2\nbias 1\nw\n"
            "1 \n-2 \n0.5 \n");
}

TEST(LiblinearExport, SquaredWithoutBiasIsARegressionModel) {
  Model m = small_model(Loss::squared, 1, 2);
  m.w << 1.5, -3.0;
  auto text = liblinear_model_text(m, DataTransform{});
  ASSERT_TRUE(text) << text.error();
  EXPECT_EQ(*text,
            "solver_type L2R_L2LOSS_SVR\nnr_class 2\nnr_feature 2\nbias -1\nw\n1.5 \n-3 \n");
}

TEST(LiblinearExport, RefusesWhatLiblinearCannotApply) {
  auto multi = liblinear_model_text(small_model(Loss::multinomial, 3, 2), DataTransform{});
  ASSERT_FALSE(multi);
  EXPECT_NE(multi.error().find("multinomial"), std::string::npos);
  auto normalized =
      liblinear_model_text(small_model(Loss::logistic, 1, 2), DataTransform{1.0, true, false, {}});
  ASSERT_FALSE(normalized);
  EXPECT_NE(normalized.error().find("--normalize"), std::string::npos);
  // A bias column needs at least one feature besides it.
  auto only_bias =
      liblinear_model_text(small_model(Loss::logistic, 1, 1), DataTransform{1.0, false, true, {}});
  ASSERT_FALSE(only_bias);
}

}  // namespace
}  // namespace dsaga
