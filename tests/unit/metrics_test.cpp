#include "dsaga/metrics.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <map>
#include <regex>
#include <sstream>
#include <thread>

namespace dsaga {
namespace {

// Checks the text against the exposition format 0.0.4 line by line and returns the samples by
// their full name (with labels). Every family has HELP then TYPE before its samples, sample
// names belong to the family just declared, counters end in _total, values parse as floats.
std::map<std::string, double> parse_exposition(const std::string& text) {
  static const std::regex help(R"(# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) \S.*)");
  static const std::regex type(R"(# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|untyped))");
  static const std::regex sample(
      R"(([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")*\})? (\S+))");
  std::map<std::string, double> samples;
  EXPECT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  std::istringstream lines(text);
  std::string line, helped, family, family_type;
  while (std::getline(lines, line)) {
    std::smatch m;
    if (std::regex_match(line, m, help)) {
      helped = m[1];
    } else if (std::regex_match(line, m, type)) {
      EXPECT_EQ(m[1], helped) << "TYPE without its HELP: " << line;
      family = m[1];
      family_type = m[2];
      if (family_type == "counter") {
        EXPECT_EQ(family.size() > 6 && family.compare(family.size() - 6, 6, "_total") == 0, true)
            << "counter not named *_total: " << family;
      }
    } else if (std::regex_match(line, m, sample)) {
      EXPECT_EQ(m[1], family) << "sample outside its family: " << line;
      const std::string value = m[3];
      char* end = nullptr;
      const double v = std::strtod(value.c_str(), &end);
      EXPECT_TRUE(end != value.c_str() && *end == '\0') << "not a float: " << line;
      EXPECT_TRUE(samples.emplace(std::string(m[1]) + std::string(m[2]), v).second)
          << "repeated sample: " << line;
    } else {
      ADD_FAILURE() << "not an exposition line: '" << line << "'";
    }
  }
  return samples;
}

TEST(Metrics, FreshHubIsValidExpositionWithoutUnknownGauges) {
  HubMetrics m;
  m.version = "0.1.0";
  m.algorithm = "dsaga";
  m.aggregation = "mean";
  const auto s = parse_exposition(format_prometheus(m, 100.0));
  EXPECT_EQ(s.at("dsaga_hub_round"), 0);
  EXPECT_EQ(s.at("dsaga_hub_phase{phase=\"admitting\"}"), 1);
  EXPECT_EQ(s.at("dsaga_hub_phase{phase=\"training\"}"), 0);
  EXPECT_EQ(
      s.at("dsaga_hub_build_info{version=\"0.1.0\",algorithm=\"dsaga\",aggregation=\"mean\"}"), 1);
  EXPECT_EQ(s.at("dsaga_hub_transport_bytes_total{direction=\"in\"}"), 0);
  // Not known yet, or not configured: no sample at all rather than a NaN.
  for (const char* absent :
       {"dsaga_hub_objective", "dsaga_hub_suboptimality", "dsaga_hub_gradient_norm",
        "dsaga_hub_last_round_duration_seconds", "dsaga_hub_checkpoints_total",
        "dsaga_hub_checkpoint_age_seconds", "dsaga_hub_two_level_reverts_total",
        "dsaga_hub_validation_round", "dsaga_hub_validation_accuracy", "dsaga_hub_validation_auc"})
    EXPECT_EQ(s.count(absent), 0u) << absent;
}

TEST(Metrics, TrainingHubReportsEveryNumber) {
  HubMetrics m;
  m.phase = "training";
  m.round = 12;
  m.objective = 0.3125;
  m.suboptimality = 1.5e-4;
  m.last_round_seconds = 0.25;
  m.agents_admitted = 8;
  m.agents_connected = 7;
  m.late_updates_total = 3;
  m.joins_refused_total = 2;
  m.bytes_in_total = 123456789012ull;
  m.bytes_out_total = 42;
  m.checkpoints_enabled = true;
  m.last_checkpoint_time = 90.0;
  m.checkpoints_total = 13;
  m.two_level = true;
  m.reverts_total = 1;
  m.step_scale = 0.5;
  m.gradient_norm = 2.5e-3;
  m.validation_round = 10;
  m.validation_examples = 10000;
  m.validation_loss = 0.125;
  m.validation_accuracy = 0.9487;
  m.validation_auc = 0.9895;
  const auto s = parse_exposition(format_prometheus(m, 100.5));
  EXPECT_EQ(s.at("dsaga_hub_gradient_norm"), 2.5e-3);
  EXPECT_EQ(s.at("dsaga_hub_validation_round"), 10);
  EXPECT_EQ(s.at("dsaga_hub_validation_examples"), 10000);
  EXPECT_EQ(s.at("dsaga_hub_validation_loss"), 0.125);
  EXPECT_EQ(s.at("dsaga_hub_validation_accuracy"), 0.9487);
  EXPECT_EQ(s.at("dsaga_hub_validation_auc"), 0.9895);
  EXPECT_EQ(s.at("dsaga_hub_round"), 12);
  EXPECT_EQ(s.at("dsaga_hub_objective"), 0.3125);
  EXPECT_EQ(s.at("dsaga_hub_suboptimality"), 1.5e-4);
  EXPECT_EQ(s.at("dsaga_hub_last_round_duration_seconds"), 0.25);
  EXPECT_EQ(s.at("dsaga_hub_agents_admitted"), 8);
  EXPECT_EQ(s.at("dsaga_hub_agents_connected"), 7);
  EXPECT_EQ(s.at("dsaga_hub_late_updates_total"), 3);
  EXPECT_EQ(s.at("dsaga_hub_joins_refused_total"), 2);
  EXPECT_EQ(s.at("dsaga_hub_transport_bytes_total{direction=\"in\"}"), 123456789012.0);
  EXPECT_EQ(s.at("dsaga_hub_transport_bytes_total{direction=\"out\"}"), 42);
  EXPECT_EQ(s.at("dsaga_hub_checkpoints_total"), 13);
  EXPECT_EQ(s.at("dsaga_hub_checkpoint_age_seconds"), 10.5);
  EXPECT_EQ(s.at("dsaga_hub_two_level_reverts_total"), 1);
  EXPECT_EQ(s.at("dsaga_hub_two_level_step_scale"), 0.5);
  EXPECT_EQ(s.at("dsaga_hub_phase{phase=\"training\"}"), 1);
  EXPECT_EQ(s.at("dsaga_hub_phase{phase=\"admitting\"}"), 0);
}

TEST(Metrics, NumbersAndLabelsAreEscapedAsPrometheusReadsThem) {
  EXPECT_EQ(prometheus_number(std::nan("")), "NaN");
  EXPECT_EQ(prometheus_number(HUGE_VAL), "+Inf");
  EXPECT_EQ(prometheus_number(-HUGE_VAL), "-Inf");
  EXPECT_EQ(std::strtod(prometheus_number(0.1).c_str(), nullptr), 0.1);  // round trip
  EXPECT_EQ(prometheus_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  HubMetrics m;
  m.version = "1.0 \"odd\"\nbuild";
  parse_exposition(format_prometheus(m, 0.0));
}

TEST(Metrics, BoardHandsSnapshotsAcrossThreads) {
  MetricsBoard board;
  std::thread writer([&] {
    HubMetrics m;
    for (std::uint64_t r = 1; r <= 2000; ++r) {
      m.round = r;
      m.late_updates_total = r;
      board.publish(m);
    }
  });
  std::uint64_t last = 0;
  for (int i = 0; i < 2000; ++i) {
    const HubMetrics m = board.read();
    EXPECT_EQ(m.round, m.late_updates_total);  // never a torn snapshot
    EXPECT_GE(m.round, last);
    last = m.round;
  }
  writer.join();
  EXPECT_EQ(board.read().round, 2000u);
}

TEST(Metrics, ListenAddressDefaultsToLoopback) {
  auto a = parse_listen_address("9464");
  ASSERT_TRUE(a) << a.error();
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 9464);
  a = parse_listen_address("0.0.0.0:80");
  ASSERT_TRUE(a) << a.error();
  EXPECT_EQ(a->host, "0.0.0.0");
  EXPECT_EQ(a->port, 80);
  a = parse_listen_address("[::1]:0");
  ASSERT_TRUE(a) << a.error();
  EXPECT_EQ(a->host, "::1");
  EXPECT_EQ(a->port, 0);
  for (const char* bad :
       {"", "http", "host:", ":9464", "::1:9464", "[::1]9464", "70000", "1.2.3.4:-1", "123456"})
    EXPECT_FALSE(parse_listen_address(bad)) << bad;
}

}  // namespace
}  // namespace dsaga
