#include "dsaga/config.hpp"

#include <gtest/gtest.h>
#include <toml++/toml.h>

#include <cmath>
#include <set>

namespace dsaga {
namespace {

const std::string kConfigDir = std::string(DSAGA_TEST_DATA_DIR) + "/../../config/";

// "section.key" of every key in a TOML file.
std::set<std::string> keys_of_file(const std::string& path) {
  std::set<std::string> keys;
  const toml::table root = toml::parse_file(path);
  for (const auto& [section, node] : root) {
    const toml::table* table = node.as_table();
    if (table == nullptr) {
      keys.insert(std::string(section.str()));
      continue;
    }
    for (const auto& [key, value] : *table)
      keys.insert(std::string(section.str()) + "." + std::string(key.str()));
  }
  return keys;
}

// The annotated example file documents every option of the table with its default and nothing
// else (and is a valid configuration), and the table names each option, key and flag once: a
// new option missing from either fails here, whose message says which.
template <class Config>
void expect_file_matches_table(const std::string& file, std::vector<OptionSpec> (*table)(Config&),
                               Result<Config> (*load)(const std::string&)) {
  auto loaded = load(file);
  ASSERT_TRUE(loaded) << loaded.error();
  ASSERT_TRUE(validate(*loaded)) << validate(*loaded).message();
  Config defaults, shown = *loaded;
  const std::vector<OptionSpec> options = table(defaults);
  const std::vector<OptionSpec> in_file = table(shown);
  ASSERT_EQ(options.size(), in_file.size());
  const std::set<std::string> keys = keys_of_file(file);
  std::set<std::string> names, flags;
  for (std::size_t i = 0; i < options.size(); ++i) {
    const OptionSpec& o = options[i];
    const std::string name = std::string(o.section) + "." + o.key;
    EXPECT_TRUE(names.insert(name).second) << name << " is in the table twice";
    EXPECT_EQ(keys.count(name), 1u) << name << " is not in " << file;
    EXPECT_EQ(option_text(in_file[i].value), option_text(o.value))
        << file << " shows " << name << " = " << option_text(in_file[i].value)
        << ", its default is " << option_text(o.value);
    EXPECT_EQ(o.flag == nullptr, o.help == nullptr) << name << ": a flag needs its help";
    if (o.flag != nullptr) {
      EXPECT_TRUE(flags.insert(o.flag).second) << o.flag << " twice";
    }
  }
  for (const std::string& key : keys) EXPECT_EQ(names.count(key), 1u) << key << " is no option";
}

struct BadText {
  const char* text;
  const char* message;
};

TEST(Config, ShippedHubFileShowsEveryOptionWithItsDefault) {
  expect_file_matches_table(kConfigDir + "hub.toml", hub_options, load_hub_config);
}

TEST(Config, ShippedAgentFileShowsEveryOptionWithItsDefault) {
  expect_file_matches_table(kConfigDir + "agent.toml", agent_options, load_agent_config);
  auto c = load_agent_config(kConfigDir + "agent.toml");
  ASSERT_TRUE(c) << c.error();
  EXPECT_FALSE(c->validation.enabled());
}

TEST(Config, ValidationIsReadAndChecked) {
  auto a = parse_agent_config(
      "[validation]\nholdout = 0.1\nholdout_seed = 7\neval_every = 5\n", "a.toml");
  ASSERT_TRUE(a) << a.error();
  EXPECT_EQ(a->validation.holdout, 0.1);
  EXPECT_EQ(a->validation.holdout_seed, 7u);
  EXPECT_EQ(a->validation.eval_every, 5u);
  EXPECT_TRUE(validate(*a));
  auto file = parse_agent_config("[validation]\npath = \"v.svm\"\n", "a.toml");
  ASSERT_TRUE(file) << file.error();
  EXPECT_EQ(file->validation.path, "v.svm");
  EXPECT_TRUE(validate(*file));
  const struct {
    const char* text;
    const char* message;
  } bad[] = {
      {"[validation]\nholdout = 1.0\n", "validation.holdout: 1 is not a fraction in (0, 1)"},
      {"[validation]\nholdout = -0.2\n", "validation.holdout: -0.2"},
      {"[validation]\nholdout = 0.1\npath = \"v.svm\"\n", "validation.path and validation.holdout"},
      {"[validation]\neval_every = 0\n", "validation.eval_every: must be >= 1"},
      {"[validation]\nlabels = \"l.idx\"\n", "validation.labels needs validation.path"},
  };
  for (const auto& c : bad) {
    auto parsed = parse_agent_config(c.text, "a.toml");
    ASSERT_TRUE(parsed) << parsed.error();
    const Status s = validate(*parsed);
    ASSERT_FALSE(s) << c.text;
    EXPECT_NE(s.message().find(c.message), std::string::npos) << s.message();
  }
  auto typo = parse_agent_config("[validation]\nhold_out = 0.1\n", "a.toml");
  ASSERT_FALSE(typo);
  EXPECT_NE(typo.error().find("unknown key 'validation.hold_out'"), std::string::npos);
}

TEST(Config, ValuesAreRead) {
  auto c = parse_hub_config(
      "[hub]\nagents = 8\n[problem]\nloss = \"multinomial\"\nclasses = 10\nlambda = 1e-4\n"
      "[training]\neta = 0.5\nserver_step = 2\nf_star = 0.25\ntarget = 1e-6\n",
      "h.toml");
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->hub.expected_agents, 8);
  EXPECT_EQ(c->hub.objective.loss, Loss::multinomial);
  EXPECT_EQ(c->hub.objective.classes, 10);
  EXPECT_EQ(c->hub.objective.lambda, 1e-4);
  EXPECT_EQ(c->hub.server_step, 2.0);  // an integer where a number is expected is fine
  EXPECT_TRUE(validate(*c));
  auto a = parse_agent_config(
      "[data]\nformat = \"libsvm\"\npositive = [0, 2, 4, 6]\npartition = \"by-label\"\n"
      "precision = \"f32\"\nstorage = \"sparse\"\nshards = 8\nshard = 7\n",
      "a.toml");
  ASSERT_TRUE(a) << a.error();
  EXPECT_EQ(a->data.positive, std::vector<double>({0, 2, 4, 6}));
  EXPECT_EQ(a->data.partition, PartitionKind::by_label);
  EXPECT_EQ(a->data.read.precision, Precision::f32);
  EXPECT_TRUE(a->data.read.force_sparse);
  EXPECT_TRUE(validate(*a));
  auto dirichlet = parse_agent_config("[data]\npartition = \"dirichlet:0.3\"\n", "a.toml");
  ASSERT_TRUE(dirichlet) << dirichlet.error();
  EXPECT_EQ(dirichlet->data.partition, PartitionKind::dirichlet);
  EXPECT_EQ(dirichlet->data.dirichlet_alpha, 0.3);
}

// Each text fails to parse, with an error that says what `message` says.
template <class Config>
void expect_errors(Result<Config> (*parse)(std::string_view, const std::string&),
                   const std::string& name, const std::vector<BadText>& cases) {
  for (const BadText& c : cases) {
    auto parsed = parse(c.text, name);
    ASSERT_FALSE(parsed) << c.text;
    EXPECT_NE(parsed.error().find(c.message), std::string::npos)
        << "got: " << parsed.error() << "\nwanted: " << c.message;
  }
}

TEST(Config, ErrorsNameFileLineAndKey) {
  expect_errors(parse_hub_config, "h.toml", {
      {"[hub]\nagents = 2\n[training]\netaa = 0.1\n", "h.toml:4:1: unknown key 'training.etaa'"},
      {"[hub]\nagents = \"two\"\n", "h.toml:2:10: hub.agents: expected an integer"},
      {"[hubb]\n", "h.toml:1:2: unknown section or key 'hubb'"},
      {"[hub\n", "h.toml:1:"},
      {"[problem]\nloss = \"hinge\"\n", "h.toml:2:8: problem.loss:"},
      {"[hub]\nagents = 1e3\n", "hub.agents: expected an integer"},
      {"[hub]\nagents = 99999999999999\n", "hub.agents: 99999999999999 is out of range"},
      {"[training]\nalgorithm = \"fedprox\"\n", "training.algorithm: unknown algorithm 'fedprox'"},
  });
  expect_errors(parse_agent_config, "a.toml", {
      {"[data]\nfirst_class = 2\n", "a.toml:2:15: data.first_class: 2, expected 0 or 1"},
      {"[data]\nprecision = \"f16\"\n", "a.toml:2:13: data.precision: 'f16', expected f32 or f64"},
      {"[data]\nstorage = \"x\"\n", "data.storage: 'x', expected auto, dense or sparse"},
      {"[data]\npartition = \"x\"\n", "data.partition: 'x' is not a partition"},
      {"[data]\npositive = [1, \"a\"]\n", "data.positive: expected an array of numbers"},
      {"[transport]\nmax_message_mb = \"x\"\n", "transport.max_message_mb: expected a number"},
      {"[agent]\nlambda = 1\n", "unknown key 'agent.lambda'"},
      {"[problem]\nlambda = 1\n", "unknown key 'problem.lambda'"},  // the hub's
  });
}

TEST(Config, CrossFieldChecksNameTheKey) {
  HubConfig h;
  h.hub.target = 1e-6;
  EXPECT_NE(validate(h).message().find("training.f_star"), std::string::npos);
  h = HubConfig();
  h.hub.objective.loss = Loss::multinomial;
  EXPECT_NE(validate(h).message().find("problem.classes"), std::string::npos);
  AgentConfig a;
  a.data.shards = 4;
  a.data.shard = 4;
  EXPECT_NE(validate(a).message().find("data.shard"), std::string::npos);
  a = AgentConfig();
  a.id = "no spaces";
  EXPECT_NE(validate(a).message().find("agent.id"), std::string::npos);
}

TEST(Config, MetricsListenIsReadAndChecked) {
  auto c = parse_hub_config("[hub]\nmetrics_listen = \"9464\"\n", "h.toml");
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->metrics_listen, "9464");
  EXPECT_TRUE(validate(*c)) << validate(*c).message();
  c->metrics_listen = "localhost:http";
  EXPECT_NE(validate(*c).message().find("hub.metrics_listen"), std::string::npos);
}

TEST(Config, AsyncAggregationIsReadAndOnlyForDsaga) {
  auto c = parse_hub_config("[training]\naggregation = \"async\"\nmax_staleness = 12\n", "h.toml");
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->hub.aggregation, Aggregation::async);
  EXPECT_EQ(c->hub.max_staleness, 12u);
  EXPECT_TRUE(validate(*c)) << validate(*c).message();

  auto bad = parse_hub_config("[training]\naggregation = \"sometimes\"\n", "h.toml");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("h.toml:2"), std::string::npos) << bad.error();
  EXPECT_NE(bad.error().find("training.aggregation"), std::string::npos) << bad.error();

  auto fedavg = parse_hub_config(
      "[training]\nalgorithm = \"fedavg\"\naggregation = \"async\"\n", "h.toml");
  ASSERT_TRUE(fedavg) << fedavg.error();
  const Status s = validate(*fedavg);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("training.aggregation"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace dsaga
