// The command line of the option tables (cli/config_options.hpp over config_options.cpp).
#include "config_options.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dsaga/config.hpp"

namespace dsaga {
namespace {

// Parses `args` over `c` as the daemons do after reading their --config file.
template <class Config>
Status parse_args(Config& c, std::vector<OptionSpec> (*table)(Config&),
                  const std::vector<std::string>& args) {
  CLI::App app;
  const cli::ConfigOptions options(app, table(c));
  std::vector<const char*> argv{"dsaga"};
  for (const std::string& a : args) argv.push_back(a.c_str());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::ParseError& e) {
    return Status::error(e.what());
  }
  return options.apply();
}

Status parse_hub_args(HubConfig& c, const std::vector<std::string>& args) {
  return parse_args(c, hub_options, args);
}

Status parse_agent_args(AgentConfig& c, const std::vector<std::string>& args) {
  return parse_args(c, agent_options, args);
}

HubConfig hub_file(const char* text) {
  auto c = parse_hub_config(text, "h.toml");
  EXPECT_TRUE(c) << c.error();
  return c ? *c : HubConfig();
}

TEST(ConfigOptions, CommandLineOverridesTheFileWhichOverridesTheDefault) {
  HubConfig c = hub_file("[training]\neta = 0.5\nmax_rounds = 7\naggregation = \"async\"\n");
  ASSERT_TRUE(parse_hub_args(c, {"--eta", "0.25", "--loss", "squared"}));
  EXPECT_EQ(c.hub.eta, 0.25);                              // flag over file
  EXPECT_EQ(c.hub.max_rounds, 7u);                         // file over default
  EXPECT_EQ(c.hub.aggregation, Aggregation::async);        // an enum no flag names stays
  EXPECT_EQ(c.hub.objective.loss, Loss::squared);          // flag over default
  EXPECT_EQ(c.hub.server_step, HubOptions().server_step);  // default
}

TEST(ConfigOptions, FlagsOfEveryType) {
  HubConfig c;
  ASSERT_TRUE(parse_hub_args(
      c, {"--listen", "tcp://127.0.0.1:*", "--agents", "8", "--seed", "42", "--local-steps", "5",
          "--aggregation", "mean", "--no-progress", "--allow-plaintext"}));
  EXPECT_EQ(c.listen, "tcp://127.0.0.1:*");
  EXPECT_EQ(c.hub.expected_agents, 8);
  EXPECT_EQ(c.hub.seed, 42u);
  EXPECT_EQ(c.hub.local_steps, 5);
  EXPECT_EQ(c.hub.aggregation, Aggregation::mean);
  EXPECT_FALSE(c.progress);
  EXPECT_TRUE(c.transport.allow_plaintext);
}

TEST(ConfigOptions, BadValuesNameTheFlag) {
  HubConfig c;
  const Status s = parse_hub_args(c, {"--aggregation", "bogus"});
  EXPECT_EQ(
      s.message(),
      "--aggregation: 'bogus' is not an aggregation (auto, two-level, newton-cg, mean, async)");
  EXPECT_FALSE(parse_hub_args(c, {"--seed", "-1"}));         // unsigned: no wrap-around
  EXPECT_FALSE(parse_hub_args(c, {"--coarse-rank", "-1"}));  // non_negative
  EXPECT_FALSE(parse_hub_args(c, {"--eta", "fast"}));
}

TEST(ConfigOptions, FileOnlyOptionsHaveNoFlag) {
  HubConfig c;
  EXPECT_FALSE(parse_hub_args(c, {"--checkpoint-keep", "5"}));
  EXPECT_FALSE(parse_hub_args(c, {"--max-message-mb", "5"}));
}

TEST(ConfigOptions, HelpListsEveryFlagWithItsDefault) {
  HubConfig c;
  CLI::App app;
  const cli::ConfigOptions options(app, hub_options(c));
  const std::string help = app.help();
  for (const OptionSpec& o : hub_options(c)) {
    if (o.flag == nullptr) continue;
    const std::string flag = std::string(o.flag).substr(0, std::string(o.flag).find(','));
    EXPECT_NE(help.find(flag), std::string::npos) << flag;
  }
  EXPECT_NE(help.find("=tcp://127.0.0.1:5555"), std::string::npos) << help;
  EXPECT_NE(help.find("--aggregation TEXT=auto"), std::string::npos) << help;
}

TEST(ConfigOptions, AgentDataOptions) {
  AgentConfig c;
  ASSERT_TRUE(parse_agent_args(
      c, {"--data", "a.svm", "--positive", "0,2", "--partition", "dirichlet:0.5", "--precision",
          "f32", "--storage", "dense", "--first-class", "1", "--data-seed", "3", "--normalize",
          "--validation", "v.svm", "--eval-every", "2"}));
  EXPECT_EQ(c.data.path, "a.svm");
  EXPECT_EQ(c.data.positive, std::vector<double>({0, 2}));
  EXPECT_EQ(c.data.partition, PartitionKind::dirichlet);
  EXPECT_EQ(c.data.dirichlet_alpha, 0.5);
  EXPECT_EQ(c.data.read.precision, Precision::f32);
  EXPECT_TRUE(c.data.read.force_dense);
  EXPECT_FALSE(c.data.read.force_sparse);
  EXPECT_EQ(c.data.first_class, 1);
  EXPECT_EQ(c.data.seed, 3u);
  EXPECT_TRUE(c.data.normalize_rows);
  EXPECT_EQ(c.validation.path, "v.svm");
  EXPECT_EQ(c.validation.eval_every, 2u);
}

TEST(ConfigOptions, AgentBadValuesNameTheFlag) {
  AgentConfig c;
  EXPECT_EQ(parse_agent_args(c, {"--precision", "f16"}).message(),
            "--precision: 'f16', expected f32 or f64");
  EXPECT_EQ(parse_agent_args(c, {"--storage", "x"}).message(),
            "--storage: 'x', expected auto, dense or sparse");
  EXPECT_NE(parse_agent_args(c, {"--partition", "x"}).message().find("--partition: 'x'"),
            std::string::npos);
  EXPECT_FALSE(parse_agent_args(c, {"--first-class", "2"}));
  EXPECT_FALSE(parse_agent_args(c, {"--features", "-1"}));
  EXPECT_FALSE(parse_agent_args(c, {"--eval-every", "-1"}));  // unsigned: no wrap-around
  EXPECT_FALSE(parse_agent_args(c, {"--zero-based"}));        // file only
}

}  // namespace
}  // namespace dsaga
