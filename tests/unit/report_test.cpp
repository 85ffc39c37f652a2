// The hub's metrics file and progress line (report.hpp): the validation and gradient columns
// appended after the existing ones, unknown written as unknown, never as 0.
#include "dsaga/report.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace dsaga {
namespace {

std::vector<std::string> split(const std::string& line, char sep) {
  std::vector<std::string> out;
  std::stringstream in(line);
  std::string field;
  while (std::getline(in, field, sep)) out.push_back(field);
  return out;
}

RoundReport with_validation() {
  RoundReport r;
  r.round = 3;
  r.objective = 0.5;
  r.gradient_norm = 0.25;
  r.validation.examples = 10;
  r.validation.correct = 9;
  r.validation.loss = 0.125;
  r.validation.accuracy = 0.9;
  r.validation.auc = 0.75;
  r.validation.auc_error = 0.0625;
  r.agents = 2;
  r.parts_up.deltas = 100;
  r.parts_up.coarse = 200;
  r.parts_up.setup = 300;
  r.parts_down.broadcast = 400;
  r.parts_down.setup = 500;
  return r;
}

TEST(MetricsWriter, CsvAppendsTheValidationColumnsAfterTheExistingOnes) {
  const std::string path = ::testing::TempDir() + "/report_test_metrics.csv";
  {
    auto writer = MetricsWriter::open(path);
    ASSERT_TRUE(writer) << writer.error();
    ASSERT_TRUE((*writer)->write(with_validation(), TrafficCounters{}, 1.0));
    RoundReport none;
    none.round = 4;
    ASSERT_TRUE((*writer)->write(none, TrafficCounters{}, 2.0));
  }
  std::ifstream in(path);
  std::string header, first, second;
  ASSERT_TRUE(std::getline(in, header) && std::getline(in, first) && std::getline(in, second));
  const auto names = split(header, ',');
  // The columns before issue 16 keep their numbers (scripts read them by number).
  ASSERT_EQ(names.size(), 34u);
  EXPECT_EQ(names[4], "suboptimality");
  EXPECT_EQ(names[12], "bytes_per_agent");
  EXPECT_EQ(names[16], "reverted");
  const std::vector<std::string> appended = {"gradient_norm", "val_examples", "val_correct",
                                             "val_loss",      "val_accuracy", "val_auc",
                                             "val_auc_error"};
  EXPECT_EQ(std::vector<std::string>(names.begin() + 17, names.begin() + 24), appended);
  // Then the round's mode and kind (issue 18).
  EXPECT_EQ(std::vector<std::string>(names.begin() + 24, names.begin() + 27),
            (std::vector<std::string>{"mode", "kind", "cg_steps"}));
  // Then the bytes by part of the protocol (issue 15).
  EXPECT_EQ(std::vector<std::string>(names.begin() + 27, names.end()),
            (std::vector<std::string>{"up_deltas", "up_coarse", "up_newton", "up_setup",
                                      "down_broadcast", "down_newton", "down_setup"}));
  const auto a = split(first, ',');
  ASSERT_EQ(a.size(), 34u);
  EXPECT_EQ(std::vector<std::string>(a.begin() + 17, a.begin() + 24),
            (std::vector<std::string>{"0.25", "10", "9", "0.125", "0.90000000000000002", "0.75",
                                      "0.0625"}));
  EXPECT_EQ(std::vector<std::string>(a.begin() + 24, a.end()),
            (std::vector<std::string>{"mean", "run", "0", "100", "200", "0", "300", "400", "0",
                                      "500"}));
  const auto b = split(second, ',');
  ASSERT_EQ(b.size(), 34u);
  for (std::size_t i = 17; i < 24; ++i) EXPECT_EQ(b[i], "nan") << names[i];
  std::remove(path.c_str());
}

TEST(MetricsWriter, JsonWritesUnknownValidationAsNull) {
  const std::string path = ::testing::TempDir() + "/report_test_metrics.jsonl";
  {
    auto writer = MetricsWriter::open(path);
    ASSERT_TRUE(writer) << writer.error();
    ASSERT_TRUE((*writer)->write(RoundReport{}, TrafficCounters{}, 1.0));
  }
  std::ifstream in(path);
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  EXPECT_NE(line.find("\"val_examples\":null"), std::string::npos) << line;
  EXPECT_NE(line.find("\"val_accuracy\":null"), std::string::npos) << line;
  EXPECT_NE(line.find("\"gradient_norm\":null"), std::string::npos) << line;
  std::remove(path.c_str());
}

TEST(ProgressLine, ShowsTheGradientNormAndValidationOnlyWhenKnown) {
  const std::string with = progress_line(with_validation(), 10, 0.0, TrafficCounters{});
  EXPECT_NE(with.find("|g|=2.50e-01"), std::string::npos) << with;
  EXPECT_NE(with.find("val: loss=0.125000 acc=0.9000 auc=0.7500 (10 rows)"), std::string::npos)
      << with;
  // Where the bytes went, per agent, only the parts that moved any.
  EXPECT_NE(with.find("(deltas 50 B, coarse 100 B, broadcast 200 B, setup 400 B)"),
            std::string::npos)
      << with;
  const std::string without = progress_line(RoundReport{}, 10, 0.0, TrafficCounters{});
  EXPECT_EQ(without.find("deltas"), std::string::npos) << without;
  EXPECT_EQ(without.find("|g|"), std::string::npos) << without;
  EXPECT_EQ(without.find("val:"), std::string::npos) << without;
}

}  // namespace
}  // namespace dsaga
