// HubCore as a pure state machine: messages in, messages out, no sockets.
#include "dsaga/hub.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <tuple>

namespace dsaga {
namespace {

constexpr int kD = 3;

msg::Join make_join(const std::string& id, std::uint64_t n, double lmax = 1.0,
                    std::uint64_t incarnation = 1) {
  msg::Join j;
  j.agent_id = id;
  j.samples = n;
  j.features = kD;
  j.classes = 1;
  j.loss = Loss::logistic;
  j.lmax = lmax;
  j.incarnation = incarnation;
  return j;
}

template <class T>
std::vector<const T*> sent(const std::vector<Outgoing>& out, const PeerId& to) {
  std::vector<const T*> found;
  for (const auto& o : out)
    if (const T* m = std::get_if<T>(&o.message))
      if (std::find(o.to.begin(), o.to.end(), to) != o.to.end()) found.push_back(m);
  return found;
}

// o for one softmax agent of two classes: loss multinomial, classes 2, one expected agent.
HubOptions softmax_options(HubOptions o) {
  o.objective.loss = Loss::multinomial;
  o.objective.classes = 2;
  o.expected_agents = 1;
  return o;
}

// One softmax agent "a" on peer "pa" (n = 2, two classes on kD columns: d*C = 6, the whole space)
// admitted and initialised, on a hub of softmax_options.
void start_softmax_agent(HubCore& hub, std::vector<Outgoing>& out) {
  msg::Join join = make_join("a", 2, 2.0);
  join.classes = 2;
  join.loss = Loss::multinomial;
  ASSERT_TRUE(hub.on_message("pa", join, 0.0, out));
  ASSERT_TRUE(hub.on_message("pa", msg::InitUpload{1, 2, std::vector<double>(6, 0.0), 1.0, {}, 0, {}, {}, {}},
                             0.0, out));
  ASSERT_EQ(hub.phase(), HubCore::Phase::training);
}

class HubTest : public ::testing::Test {
 protected:
  HubTest() : hub(options()) {}

  static HubOptions options() {
    HubOptions o;
    o.aggregation = Aggregation::mean;  // plain dSAGA's accounting (two-level: its own tests)
    o.objective.loss = Loss::logistic;
    o.objective.lambda = 0.5;
    o.expected_agents = 2;
    o.server_step = 1.0;
    o.max_rounds = 10;
    return o;
  }

  // a (n = 1) and b (n = 3) admitted to h with zero tables, each with loss sum `loss`: round 1
  // open.
  static void start_zero(HubCore& h, std::vector<Outgoing>& o2, double loss = 0.0) {
    ASSERT_TRUE(h.on_message("pa", make_join("a", 1), 0, o2));
    ASSERT_TRUE(h.on_message("pb", make_join("b", 3), 0, o2));
    ASSERT_TRUE(h.on_message("pa", msg::InitUpload{1, 1, {0, 0, 0}, loss, {}, 0, {}, {}, {}}, 0, o2));
    ASSERT_TRUE(h.on_message("pb", msg::InitUpload{1, 3, {0, 0, 0}, loss, {}, 0, {}, {}, {}}, 0, o2));
  }

  // Two agents admitted and initialised: a (n = 1) and b (n = 3), N = 4.
  void start() {
    ASSERT_TRUE(hub.on_message("pa", make_join("a", 1, 2.0), 0.0, out));
    ASSERT_TRUE(out.empty());
    ASSERT_TRUE(hub.on_message("pb", make_join("b", 3, 1.0), 0.0, out));
    ASSERT_EQ(hub.phase(), HubCore::Phase::initializing);
    ASSERT_EQ(sent<msg::Config>(out, "pa").size(), 1u);
    out.clear();
    ASSERT_TRUE(hub.on_message("pa", msg::InitUpload{1, 1, {1, 2, 3}, 0.5, {}, 0, {}, {}, {}}, 0.0, out));
    ASSERT_TRUE(hub.on_message("pb", msg::InitUpload{1, 3, {3, 2, 1}, 1.5, {}, 0, {}, {}, {}}, 0.0, out));
    ASSERT_EQ(hub.phase(), HubCore::Phase::training);
    ASSERT_EQ(hub.round(), 1u);
    out.clear();
  }

  msg::Update update(std::uint64_t round, std::uint64_t seq, std::uint64_t n,
                     std::vector<double> dw, std::vector<double> ds, double loss = 1.0) {
    msg::Update u;
    u.round = round;
    u.seq = seq;
    u.samples = n;
    u.steps = n;
    u.loss_sum = loss;
    u.dw = std::move(dw);
    u.dS = std::move(ds);
    return u;
  }

  HubCore hub;
  std::vector<Outgoing> out;
};

TEST_F(HubTest, ConfigCarriesGlobalNAndStepFromGlobalLmax) {
  hub.on_message("pa", make_join("a", 1, 2.0), 0.0, out);
  hub.on_message("pb", make_join("b", 3, 1.0), 0.0, out);
  const auto configs = sent<msg::Config>(out, "pb");
  ASSERT_EQ(configs.size(), 1u);
  EXPECT_EQ(configs[0]->total_samples, 4u);
  EXPECT_DOUBLE_EQ(configs[0]->eta, 1.0 / (3.0 * (2.0 + 0.5)));  // max L_i + lambda
  EXPECT_EQ(configs[0]->steps, 3u);                              // one local epoch
  EXPECT_TRUE(configs[0]->build_table);
  EXPECT_EQ(configs[0]->w.size(), static_cast<std::size_t>(kD));
  EXPECT_NE(sent<msg::Config>(out, "pa")[0]->seed, configs[0]->seed);
}

TEST_F(HubTest, InitRoundFormsGbarAndBroadcastsRoundOne) {
  hub.on_message("pa", make_join("a", 1), 0.0, out);
  hub.on_message("pb", make_join("b", 3), 0.0, out);
  out.clear();
  hub.on_message("pa", msg::InitUpload{1, 1, {1, 2, 3}, 0.5, {}, 0, {}, {}, {}}, 0.0, out);
  EXPECT_EQ(hub.phase(), HubCore::Phase::initializing);
  hub.on_message("pb", msg::InitUpload{1, 3, {3, 2, 1}, 1.5, {}, 0, {}, {}, {}}, 0.0, out);
  EXPECT_EQ(hub.gbar(), Eigen::Vector3d(1, 1, 1));  // (S_a + S_b) / N, N = 4
  const auto starts = sent<msg::RoundStart>(out, "pa");
  ASSERT_EQ(starts.size(), 1u);
  EXPECT_EQ(starts[0]->round, 1u);
  // The first compressed broadcast: gbar as q8 on zeros, to within a rounding.
  ASSERT_TRUE(starts[0]->from_zero);
  Eigen::Vector3d g = Eigen::Vector3d::Zero();
  compress::add(starts[0]->gbar_delta, g.data());
  EXPECT_LE((g - Eigen::Vector3d(1, 1, 1)).cwiseAbs().maxCoeff(), 1.0 / 254);
  const auto reports = hub.take_reports();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].round, 0u);
  EXPECT_NEAR(reports[0].objective, (0.5 + 1.5) / 4.0, 1e-15);  // w0 = 0
  EXPECT_EQ(hub.check_invariant(), 0.0);
}

TEST_F(HubTest, RoundAggregatesWeightedMeanAndAppliesTableDeltas) {
  start();
  ASSERT_TRUE(hub.on_message("pa", update(1, 2, 1, {4, 0, 0}, {4, 0, 0}), 1.0, out));
  EXPECT_EQ(hub.round(), 1u);  // waits for b
  ASSERT_TRUE(hub.on_message("pb", update(1, 2, 3, {0, 4, 0}, {0, 0, 8}), 2.0, out));
  EXPECT_EQ(hub.round(), 2u);
  EXPECT_TRUE(hub.w().isApprox(Eigen::Vector3d(1, 3, 0)));  // 1/4 * dw_a + 3/4 * dw_b
  EXPECT_TRUE(hub.gbar().isApprox(Eigen::Vector3d(2, 1, 3)));  // + (dS_a + dS_b) / 4
  EXPECT_LE(hub.check_invariant(), 1e-15);
  const auto acks = sent<msg::Ack>(out, "pa");
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0]->seq, 2u);
  const auto reports = hub.take_reports();
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(reports[1].participants, 2);
  EXPECT_NEAR(reports[1].objective, 2.0 / 4.0, 1e-15);  // loss sums 1 + 1 at w_1 = 0
}

ValidationCounts counts(std::uint64_t examples, std::uint64_t correct, double loss,
                        std::size_t neg_bin, std::size_t pos_bin) {
  ValidationCounts c;
  c.examples = examples;
  c.correct = correct;
  c.loss_sum = loss;
  c.negatives.assign(kAucBins, 0);
  c.positives.assign(kAucBins, 0);
  c.negatives[neg_bin] = examples / 2;
  c.positives[pos_bin] = examples - examples / 2;
  return c;
}

TEST_F(HubTest, RoundSumsTheValidationCountsOfItsUpdates) {
  start();
  msg::Update a = update(1, 2, 1, {0, 0, 0}, {0, 0, 0});
  a.validation = counts(4, 3, 2.0, 10, 200);
  msg::Update b = update(1, 2, 3, {0, 0, 0}, {0, 0, 0});
  b.validation = counts(6, 6, 1.0, 20, 100);
  ASSERT_TRUE(hub.on_message("pa", a, 1.0, out));
  ASSERT_TRUE(hub.on_message("pb", b, 1.0, out));
  // Round 2 without counts: nothing, not zero.
  ASSERT_TRUE(hub.on_message("pa", update(2, 3, 1, {0, 0, 0}, {0, 0, 0}), 2.0, out));
  ASSERT_TRUE(hub.on_message("pb", update(2, 3, 3, {0, 0, 0}, {0, 0, 0}), 2.0, out));
  const auto reports = hub.take_reports();
  ASSERT_EQ(reports.size(), 3u);
  const ValidationFigures& v = reports[1].validation;
  EXPECT_EQ(v.examples, 10u);
  EXPECT_EQ(v.correct, 9u);
  EXPECT_DOUBLE_EQ(v.loss, 0.3);
  EXPECT_DOUBLE_EQ(v.accuracy, 0.9);
  // Negatives in bins 10 (2) and 20 (3), positives in 200 (2) and 100 (3): all pairs ordered.
  EXPECT_DOUBLE_EQ(v.auc, 1.0);
  EXPECT_DOUBLE_EQ(v.auc_error, 0.0);
  EXPECT_TRUE(std::isnan(reports[1].gradient_norm));  // plain dSAGA knows no gradient
  EXPECT_EQ(reports[2].validation.examples, 0u);
  EXPECT_TRUE(std::isnan(reports[2].validation.accuracy));
}

TEST_F(HubTest, InconsistentValidationCountsAreRefusedAndChangeNothing) {
  start();
  msg::Update a = update(1, 2, 1, {4, 0, 0}, {4, 0, 0});
  a.validation = counts(4, 5, 2.0, 10, 200);
  const Status s = hub.on_message("pa", a, 1.0, out);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("correct 5 > examples 4"), std::string::npos) << s.message();
  ASSERT_EQ(sent<msg::Error>(out, "pa").size(), 1u);
  EXPECT_EQ(sent<msg::Error>(out, "pa")[0]->code, msg::ErrorCode::invalid_value);
  EXPECT_EQ(hub.gbar(), Eigen::Vector3d(1, 1, 1));
  a.validation.correct = 4;
  ASSERT_TRUE(hub.on_message("pa", a, 1.0, out));  // the same seq, now consistent
}

TEST_F(HubTest, ServerStepScalesTheMean) {
  HubOptions o = options();
  o.server_step = 2.0;
  HubCore h(o);
  std::vector<Outgoing> o2;
  ASSERT_NO_FATAL_FAILURE(start_zero(h, o2));
  h.on_message("pa", update(1, 2, 1, {4, 0, 0}, {0, 0, 0}), 0, o2);
  h.on_message("pb", update(1, 2, 3, {0, 4, 0}, {0, 0, 0}), 0, o2);
  EXPECT_TRUE(h.w().isApprox(Eigen::Vector3d(2, 6, 0)));
}

TEST_F(HubTest, RetriedUpdateIsAcknowledgedButAppliedOnce) {
  start();
  const auto u = update(1, 2, 1, {4, 0, 0}, {4, 0, 0});
  ASSERT_TRUE(hub.on_message("pa", u, 1.0, out));
  out.clear();
  ASSERT_TRUE(hub.on_message("pa", u, 1.5, out));  // the same seq again (agent retry)
  EXPECT_TRUE(sent<msg::Ack>(out, "pa").empty());  // held, not applied yet: no Ack
  ASSERT_TRUE(hub.on_message("pb", update(1, 2, 3, {0, 0, 0}, {0, 0, 0}), 2.0, out));
  EXPECT_TRUE(hub.gbar().isApprox(Eigen::Vector3d(2, 1, 1)));  // dS_a counted once
  EXPECT_LE(hub.check_invariant(), 1e-15);
  EXPECT_EQ(sent<msg::Ack>(out, "pa").size(), 1u);  // acknowledged once applied
  out.clear();
  ASSERT_TRUE(hub.on_message("pa", u, 2.5, out));  // a retry after it was applied
  EXPECT_EQ(sent<msg::Ack>(out, "pa").size(), 1u);
  EXPECT_TRUE(hub.gbar().isApprox(Eigen::Vector3d(2, 1, 1)));
}

TEST_F(HubTest, BadUpdatesAreRejectedAndLeaveStateUnchanged) {
  start();
  const Eigen::VectorXd w = hub.w(), gbar = hub.gbar();
  struct Case {
    const char* what;
    msg::Update u;
    msg::ErrorCode code;
  };
  const std::vector<Case> cases = {
      {"future round", update(5, 2, 1, {1, 1, 1}, {1, 1, 1}), msg::ErrorCode::wrong_round},
      {"wrong dimension", update(1, 2, 1, {1, 1}, {1, 1, 1}), msg::ErrorCode::dimension_mismatch},
      {"wrong sample count", update(1, 2, 7, {1, 1, 1}, {1, 1, 1}),
       msg::ErrorCode::dimension_mismatch},
      {"non-finite loss", update(1, 2, 1, {1, 1, 1}, {1, 1, 1}, NAN),
       msg::ErrorCode::invalid_value},
  };
  for (const Case& c : cases) {
    out.clear();
    const Status s = hub.on_message("pa", c.u, 1.0, out);
    EXPECT_FALSE(s) << c.what;
    EXPECT_FALSE(s.message().empty()) << c.what;
    const auto errors = sent<msg::Error>(out, "pa");
    ASSERT_EQ(errors.size(), 1u) << c.what;
    EXPECT_EQ(errors[0]->code, c.code) << c.what;
    EXPECT_EQ(hub.w(), w) << c.what;
    EXPECT_EQ(hub.gbar(), gbar) << c.what;
    EXPECT_EQ(hub.round(), 1u) << c.what;
  }
  // A second update for the same round (new seq) is a replay.
  ASSERT_TRUE(hub.on_message("pa", update(1, 2, 1, {1, 1, 1}, {0, 0, 0}), 1.0, out));
  out.clear();
  EXPECT_FALSE(hub.on_message("pa", update(1, 3, 1, {1, 1, 1}, {5, 5, 5}), 1.0, out));
  EXPECT_EQ(sent<msg::Error>(out, "pa")[0]->code, msg::ErrorCode::replay);
  EXPECT_LE(hub.check_invariant(), 1e-15);
}

TEST_F(HubTest, NewtonAnswersAreRefusedByAHubOfLocalRuns) {
  start();
  const Eigen::VectorXd w = hub.w(), gbar = hub.gbar();
  msg::Update u = update(1, 2, 1, {}, {});
  u.product = {1, 2, 3};
  const Status s = hub.on_message("pa", u, 1.0, out);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("Newton-CG `product`"), std::string::npos) << s.message();
  EXPECT_EQ(hub.w(), w);
  EXPECT_EQ(hub.gbar(), gbar);
  EXPECT_EQ(hub.round(), 1u);
  // A run update with a Gram is refused too.
  u = update(1, 2, 1, {0, 0, 0}, {0, 0, 0});
  u.gram = {1, 0, 0, 1, 0, 1};
  ASSERT_FALSE(hub.on_message("pa", u, 1.0, out));
  EXPECT_EQ(hub.gbar(), gbar);
}

TEST_F(HubTest, UpdatesOverTheNormBoundAreRejected) {
  HubOptions o = options();
  o.max_update_norm = 10.0;
  HubCore h(o);
  std::vector<Outgoing> o2;
  ASSERT_NO_FATAL_FAILURE(start_zero(h, o2));
  const Eigen::VectorXd gbar = h.gbar();
  o2.clear();
  EXPECT_FALSE(h.on_message("pa", update(1, 2, 1, {1e6, 0, 0}, {0, 0, 0}), 0, o2));
  EXPECT_EQ(sent<msg::Error>(o2, "pa")[0]->code, msg::ErrorCode::invalid_value);
  EXPECT_FALSE(h.on_message("pb", update(1, 2, 3, {0, 0, 0}, {0, 0, 31}), 0, o2));  // 31/3 > 10
  EXPECT_EQ(h.gbar(), gbar);
  EXPECT_TRUE(h.on_message("pb", update(1, 2, 3, {0, 9, 0}, {0, 0, 29}), 0, o2));  // within
  EXPECT_LE(h.check_invariant(), 1e-15);
}

TEST_F(HubTest, MessagesFromStrangersAreRefused) {
  start();
  EXPECT_FALSE(hub.on_message("stranger", update(1, 2, 1, {1, 1, 1}, {1, 1, 1}), 1.0, out));
  EXPECT_EQ(sent<msg::Error>(out, "stranger")[0]->code, msg::ErrorCode::not_admitted);
  out.clear();
  EXPECT_FALSE(hub.on_message("pc", make_join("c", 5), 1.0, out));  // training has started
  EXPECT_EQ(sent<msg::Error>(out, "pc")[0]->code, msg::ErrorCode::refused);
}

TEST_F(HubTest, JoinWithWrongShapeIsRefused) {
  msg::Join j = make_join("a", 1);
  j.loss = Loss::squared;
  EXPECT_FALSE(hub.on_message("pa", j, 0, out));
  j = make_join("a", 1);
  j.agent_id = "bad id!";
  EXPECT_FALSE(hub.on_message("pa", j, 0, out));
  ASSERT_TRUE(hub.on_message("pa", make_join("a", 1), 0, out));
  j = make_join("b", 1);
  j.features = kD + 1;  // wider than a, whose dense data cannot take a wider model
  EXPECT_FALSE(hub.on_message("pb", j, 0, out));
  EXPECT_EQ(hub.agents(), 1);
}

// A natural LIBSVM split: shards whose highest feature index differs. Without --features the
// model is as wide as the widest agent; a narrower one widens its data to it (its missing
// features are zeros) and its support, in the model's columns, has its bias column last.
TEST_F(HubTest, LibsvmAgentsOfOtherWidthsTakeTheWidestWithTheBiasLast) {
  msg::Join a = make_join("a", 1);
  a.features = 5;  // four features and the bias
  a.zero_padded = a.bias = true;
  a.support = {0, 2, 4};
  msg::Join b = make_join("b", 3);
  b.features = 8;
  b.zero_padded = b.bias = true;  // every column: the empty list
  ASSERT_TRUE(hub.on_message("pa", a, 0, out));
  ASSERT_TRUE(hub.on_message("pb", b, 0, out));
  ASSERT_EQ(hub.phase(), HubCore::Phase::initializing);
  EXPECT_EQ(hub.w().size(), 8);
  ASSERT_EQ(sent<msg::Config>(out, "pa").size(), 1u);
  const msg::Config& to_a = *sent<msg::Config>(out, "pa")[0];
  EXPECT_EQ(to_a.features, 8u);
  EXPECT_TRUE(to_a.restricted);
  EXPECT_EQ(to_a.w.size(), 3u);
  EXPECT_EQ(sent<msg::Config>(out, "pb")[0]->features, 8u);
  out.clear();
  // a's table sum on its support lands on the model's columns 0, 2 and 7 (the bias).
  ASSERT_TRUE(hub.on_message("pa", msg::InitUpload{1, 1, {1, 2, 3}, 0.5, {}, 0, {}, {}, {}}, 0, out));
  ASSERT_TRUE(hub.on_message("pb", msg::InitUpload{1, 3, {0, 0, 0, 0, 0, 0, 0, 0}, 1.5, {}, 0, {},
                                                   {}, {}},
                             0, out));
  ASSERT_EQ(hub.phase(), HubCore::Phase::training);
  Eigen::VectorXd expected = Eigen::VectorXd::Zero(8);
  expected << 1, 0, 2, 0, 0, 0, 0, 3;
  EXPECT_EQ(hub.gbar(), expected / 4);
  // Restarted, a joins at its own width again: the same support, so it is taken back.
  out.clear();
  a.incarnation = 2;
  EXPECT_TRUE(hub.on_message("pa2", a, 1, out));
  EXPECT_EQ(sent<msg::Config>(out, "pa2").size(), 1u);
}

TEST_F(HubTest, WidthsThatNoModelFitsAreRefusedWithTheReason) {
  const auto refused = [](const std::vector<Outgoing>& sent_out, const PeerId& to) {
    const auto errors = sent<msg::Error>(sent_out, to);
    return errors.empty() ? std::string() : errors[0]->text;
  };
  msg::Join wide = make_join("wide", 1);
  wide.features = 8;
  wide.zero_padded = true;
  ASSERT_TRUE(hub.on_message("pw", wide, 0, out));
  // Dense (CSV) data narrower than an agent already in: its missing columns are not zeros.
  msg::Join dense = make_join("dense", 1);
  dense.features = 5;
  EXPECT_FALSE(hub.on_message("pd", dense, 0, out));
  EXPECT_NE(refused(out, "pd").find("only LIBSVM data"), std::string::npos) << refused(out, "pd");
  // A --bias column on one agent and not the other.
  msg::Join biased = make_join("biased", 1);
  biased.features = 5;
  biased.zero_padded = biased.bias = true;
  EXPECT_FALSE(hub.on_message("pb", biased, 0, out));
  EXPECT_NE(refused(out, "pb").find("--bias"), std::string::npos) << refused(out, "pb");
  // Wider than any data set can be (CSR's 32-bit columns): refused before a model is sized.
  msg::Join huge = make_join("huge", 1);
  huge.features = static_cast<std::uint32_t>(kMaxColumns) + 1;
  huge.zero_padded = true;
  EXPECT_FALSE(hub.on_message("ph", huge, 0, out));
  EXPECT_NE(refused(out, "ph").find("no data set has more than"), std::string::npos)
      << refused(out, "ph");
  EXPECT_EQ(hub.agents(), 1);

  // With --features the model's width is given: narrower LIBSVM data is taken, wider is not.
  HubOptions o = options();
  o.features = 6;
  HubCore given(o);
  std::vector<Outgoing> out2;
  msg::Join narrow = make_join("narrow", 1);
  narrow.features = 4;
  narrow.zero_padded = true;
  EXPECT_TRUE(given.on_message("pn", narrow, 0, out2));
  wide.features = 7;
  EXPECT_FALSE(given.on_message("pw", wide, 0, out2));
  EXPECT_NE(refused(out2, "pw").find("7 features, the model has 6 (--features)"),
            std::string::npos)
      << refused(out2, "pw");
}

TEST_F(HubTest, LateUpdateAppliesTableDeltaExactlyOnceAndDropsStep) {
  HubOptions o = options();
  o.round_deadline = 5.0;
  HubCore h(o);
  std::vector<Outgoing> o2;
  ASSERT_NO_FATAL_FAILURE(start_zero(h, o2));
  h.on_message("pb", update(1, 2, 3, {0, 4, 0}, {0, 4, 0}), 1, o2);
  h.on_tick(4.0, o2);
  EXPECT_EQ(h.round(), 1u);
  h.on_tick(6.0, o2);  // deadline: closes with b alone
  EXPECT_EQ(h.round(), 2u);
  EXPECT_TRUE(h.w().isApprox(Eigen::Vector3d(0, 4, 0)));  // N_r = 3: b's own mean
  ASSERT_TRUE(h.on_message("pa", update(1, 2, 1, {9, 9, 9}, {4, 0, 0}), 7, o2));
  EXPECT_TRUE(h.w().isApprox(Eigen::Vector3d(0, 4, 0)));       // its step is dropped...
  EXPECT_TRUE(h.gbar().isApprox(Eigen::Vector3d(1, 1, 0)));     // ...its dS is not
  EXPECT_LE(h.check_invariant(), 1e-15);
  const auto reports = h.take_reports();
  EXPECT_EQ(reports.back().participants, 1);
  EXPECT_TRUE(std::isnan(reports.back().objective));  // not every agent reported
}

TEST_F(HubTest, LostUpdateTriggersTableRebuildNotDoubleCounting) {
  start();
  out.clear();
  // seq 2 never arrived; seq 3 shows the gap.
  EXPECT_FALSE(hub.on_message("pa", update(1, 3, 1, {1, 1, 1}, {1, 1, 1}), 1.0, out));
  const auto configs = sent<msg::Config>(out, "pa");
  ASSERT_EQ(configs.size(), 1u);
  EXPECT_TRUE(configs[0]->build_table);
  // The rebuilt table replaces S_a wholesale.
  out.clear();
  ASSERT_TRUE(hub.on_message("pa", msg::InitUpload{4, 1, {5, 5, 5}, 0.5, {}, 0, {}, {}, {}}, 1.0, out));
  EXPECT_EQ(sent<msg::RoundStart>(out, "pa").size(), 1u);
  EXPECT_TRUE(hub.gbar().isApprox(Eigen::Vector3d(2, 1.75, 1.5)));  // (S_a' + S_b) / 4
  EXPECT_LE(hub.check_invariant(), 1e-15);
}

// The compressed broadcast (compression q8, the default): the first round goes out as changes on
// zeros, later ones as the q8 changes since the round before, to every agent that was sent that
// round; the
// sums are the hub's broadcast_w() bit for bit, which trails w() by what the changes left out
// and reaches it as w stops moving. An agent that reports a stale base, or comes back on a new
// connection, is sent the vectors.
TEST_F(HubTest, CompressedBroadcastSendsChangesOnTheRoundBefore) {
  ASSERT_TRUE(hub.on_message("pa", make_join("a", 1, 2.0), 0.0, out));
  ASSERT_TRUE(hub.on_message("pb", make_join("b", 3, 1.0), 0.0, out));
  out.clear();
  ASSERT_TRUE(hub.on_message("pa", msg::InitUpload{1, 1, {1, 2, 3}, 0.5, {}, 0, {}, {}, {}}, 0.0, out));
  ASSERT_TRUE(hub.on_message("pb", msg::InitUpload{1, 3, {3, 2, 1}, 1.5, {}, 0, {}, {}, {}}, 0.0, out));
  ASSERT_EQ(sent<msg::RoundStart>(out, "pa").size(), 1u);
  const msg::RoundStart round1 = *sent<msg::RoundStart>(out, "pa")[0];
  EXPECT_EQ(sent<msg::RoundStart>(out, "pa")[0], sent<msg::RoundStart>(out, "pb")[0]);
  EXPECT_EQ(round1.base, 0u);  // the first: changes on zeros
  EXPECT_TRUE(round1.from_zero);
  EXPECT_TRUE(round1.w.empty() && round1.gbar.empty());
  Eigen::VectorXd w_held = Eigen::VectorXd::Zero(kD), g_held = Eigen::VectorXd::Zero(kD);
  compress::add(round1.w_delta, w_held.data());
  compress::add(round1.gbar_delta, g_held.data());
  EXPECT_EQ(w_held, hub.w());  // w_1 = 0: exact
  EXPECT_EQ(w_held, hub.broadcast_w());
  EXPECT_LE((g_held - hub.gbar()).cwiseAbs().maxCoeff(), hub.gbar().cwiseAbs().maxCoeff() / 200);

  std::uint64_t seq = 2;
  double last_gap = INFINITY;
  for (std::uint64_t round = 1; round <= 5; ++round, ++seq) {
    out.clear();
    // Round 1 moves w and gbar by awkward amounts; later rounds leave them where they are.
    const bool move = round == 1;
    ASSERT_TRUE(hub.on_message("pa", update(round, seq, 1, {move ? 0.3 : 0, 0, 0}, {move ? 1.7 : 0, 0, 0}), 1.0, out));
    ASSERT_TRUE(hub.on_message("pb", update(round, seq, 3, {0, move ? -0.11 : 0, 0}, {0, 0, move ? 1e-3 : 0}), 1.0, out));
    ASSERT_EQ(hub.round(), round + 1);
    const auto starts = sent<msg::RoundStart>(out, "pa");
    ASSERT_EQ(starts.size(), 1u);
    ASSERT_EQ(sent<msg::RoundStart>(out, "pb").size(), 1u);
    EXPECT_EQ(starts[0], sent<msg::RoundStart>(out, "pb")[0]);  // one message to both
    const msg::RoundStart& start = *starts[0];
    EXPECT_EQ(start.base, round);
    EXPECT_FALSE(start.from_zero);
    EXPECT_TRUE(start.w.empty() && start.gbar.empty());
    ASSERT_EQ(start.w_delta.size(), static_cast<std::size_t>(kD));
    compress::add(start.w_delta, w_held.data());
    compress::add(start.gbar_delta, g_held.data());
    EXPECT_EQ(w_held, hub.broadcast_w());  // what the agents hold, bit for bit
    const double gap = (hub.w() - hub.broadcast_w()).cwiseAbs().maxCoeff();
    EXPECT_LE(gap, (round == 1 ? 1.0 : last_gap) / 100) << round;
    last_gap = gap;
  }
  EXPECT_LE(last_gap, 1e-9);
  EXPECT_LE(hub.check_invariant(), 1e-15);

  // A stale base reported: the open round's vectors, to that agent only.
  out.clear();
  EXPECT_FALSE(hub.on_message("pa", msg::Error{msg::ErrorCode::stale_broadcast, "holds none"}, 2.0, out));
  ASSERT_EQ(sent<msg::RoundStart>(out, "pa").size(), 1u);
  EXPECT_TRUE(sent<msg::RoundStart>(out, "pb").empty());
  const msg::RoundStart& whole = *sent<msg::RoundStart>(out, "pa")[0];
  EXPECT_EQ(whole.base, 0u);
  EXPECT_EQ(whole.round, hub.round());
  EXPECT_EQ(Eigen::Map<const Eigen::VectorXd>(whole.w.data(), kD), hub.broadcast_w());
  EXPECT_EQ(Eigen::Map<const Eigen::VectorXd>(whole.gbar.data(), kD), g_held);
  // ... and from there, changes again.
  out.clear();
  ASSERT_TRUE(hub.on_message("pa", update(hub.round(), seq, 1, {0, 0, 0}, {0, 0, 0}), 3.0, out));
  ASSERT_TRUE(hub.on_message("pb", update(hub.round(), seq, 3, {0, 0, 0}, {0, 0, 0}), 3.0, out));
  ++seq;
  ASSERT_EQ(sent<msg::RoundStart>(out, "pa").size(), 1u);
  EXPECT_NE(sent<msg::RoundStart>(out, "pa")[0]->base, 0u);
  // A new connection: whole vectors.
  out.clear();
  ASSERT_TRUE(hub.on_message("pa2", make_join("a", 1, 2.0, 1), 4.0, out));
  ASSERT_EQ(sent<msg::RoundStart>(out, "pa2").size(), 1u);
  EXPECT_EQ(sent<msg::RoundStart>(out, "pa2")[0]->base, 0u);
}

// compression f64: the broadcast is w itself, always whole.
TEST_F(HubTest, UncompressedBroadcastIsWholeAndExact) {
  HubOptions o = options();
  o.expected_agents = 1;
  o.compression = msg::Encoding::f64;
  HubCore plain(o);
  ASSERT_TRUE(plain.on_message("pa", make_join("a", 2), 0.0, out));
  ASSERT_TRUE(plain.on_message("pa", msg::InitUpload{1, 2, {1, 2, 3}, 0.5, {}, 0, {}, {}, {}}, 0.0, out));
  for (std::uint64_t round = 1; round <= 3; ++round) {
    out.clear();
    ASSERT_TRUE(plain.on_message("pa", update(round, round + 1, 2, {0.3, -0.1, 1.0 / 3.0}, {0.1, 0, 0}),
                                 1.0, out));
    const auto starts = sent<msg::RoundStart>(out, "pa");
    ASSERT_EQ(starts.size(), 1u);
    EXPECT_EQ(starts[0]->base, 0u);
    EXPECT_EQ(Eigen::Map<const Eigen::VectorXd>(starts[0]->w.data(), kD), plain.w());
    EXPECT_EQ(&plain.broadcast_w(), &plain.w());
  }
}

TEST_F(HubTest, RestartedAgentRebuildsAndReconnectedAgentResumes) {
  start();
  out.clear();
  // Same incarnation on a new connection: keeps its table, gets the open round again.
  ASSERT_TRUE(hub.on_message("pa2", make_join("a", 1, 2.0, 1), 1.0, out));
  ASSERT_EQ(sent<msg::Config>(out, "pa2").size(), 1u);
  EXPECT_FALSE(sent<msg::Config>(out, "pa2")[0]->build_table);
  EXPECT_EQ(sent<msg::RoundStart>(out, "pa2").size(), 1u);
  EXPECT_FALSE(hub.on_message("pa", msg::Heartbeat{}, 1.0, out));  // the old connection is gone
  out.clear();
  // A new incarnation: rebuild.
  ASSERT_TRUE(hub.on_message("pa3", make_join("a", 1, 2.0, 2), 1.0, out));
  EXPECT_TRUE(sent<msg::Config>(out, "pa3")[0]->build_table);
  EXPECT_FALSE(hub.on_message("pa3", make_join("a", 2, 2.0, 3), 1.0, out));  // n_k is fixed
}

TEST_F(HubTest, StopsAtTargetAndAtRoundCapAndTellsAgentsToLeave) {
  const auto run_round_one = [this](HubCore& h, std::vector<Outgoing>& o2) {
    ASSERT_NO_FATAL_FAILURE(start_zero(h, o2, 0.5));
    h.on_message("pa", update(1, 2, 1, {1, 0, 0}, {0, 0, 0}, 0.5), 0, o2);
    o2.clear();
    h.on_message("pb", update(1, 2, 3, {0, 0, 0}, {0, 0, 0}, 0.5), 0, o2);
  };
  // F(w_1) = (0.5 + 0.5) / 4 at w_1 = 0.
  HubOptions o = options();
  o.f_star = 0.25;
  o.target = 1e-3;
  HubCore reached(o);
  std::vector<Outgoing> o2;
  run_round_one(reached, o2);
  EXPECT_TRUE(reached.finished());
  EXPECT_EQ(reached.outcome(), Outcome::target_reached);
  EXPECT_EQ(sent<msg::Leave>(o2, "pa").size(), 1u);
  EXPECT_EQ(reached.best_round(), 1u);
  EXPECT_EQ(reached.best_w(), Eigen::Vector3d::Zero().eval());

  o.f_star = 0.2;  // (0.25 - 0.2) / 0.2 > target: goes on
  HubCore not_yet(o);
  o2.clear();
  run_round_one(not_yet, o2);
  EXPECT_FALSE(not_yet.finished());
  EXPECT_EQ(not_yet.outcome(), Outcome::running);
  EXPECT_EQ(sent<msg::RoundStart>(o2, "pa").size(), 1u);

  HubOptions c = options();
  c.max_rounds = 1;
  HubCore capped(c);
  o2.clear();
  run_round_one(capped, o2);
  EXPECT_TRUE(capped.finished());
  EXPECT_EQ(capped.outcome(), Outcome::round_cap);
  EXPECT_EQ(sent<msg::Leave>(o2, "pa").size(), 1u);
  EXPECT_EQ(sent<msg::Leave>(o2, "pb").size(), 1u);
  // A hub restored from the end of training knows how it ended.
  HubCore restored(c);
  ASSERT_TRUE(restored.restore(capped.snapshot()));
  EXPECT_TRUE(restored.finished());
  EXPECT_EQ(restored.outcome(), Outcome::round_cap);

  // F below the given F*: that F* is wrong.
  o.f_star = 0.3;
  HubCore below(o);
  o2.clear();
  run_round_one(below, o2);
  EXPECT_EQ(below.outcome(), Outcome::below_f_star);

  // An agent whose local iterate is no longer finite: diverged, whatever the words say.
  HubCore diverging(options());
  o2.clear();
  ASSERT_NO_FATAL_FAILURE(start_zero(diverging, o2, 0.5));
  diverging.on_message("pa", msg::Error{msg::ErrorCode::invalid_value, "w is not finite"}, 0, o2);
  EXPECT_TRUE(diverging.finished());
  EXPECT_EQ(diverging.outcome(), Outcome::diverged);

  HubCore stopped(options());
  stopped.stop("operator", o2);
  EXPECT_EQ(stopped.outcome(), Outcome::stopped);
}

TEST_F(HubTest, SnapshotRestoresTheCommittedStateAndRejectsCorruption) {
  start();
  ASSERT_TRUE(hub.on_message("pa", update(1, 2, 1, {4, 0, 0}, {4, 0, 0}), 1.0, out));
  ASSERT_TRUE(hub.on_message("pb", update(1, 2, 3, {0, 4, 0}, {0, 0, 8}), 2.0, out));
  ASSERT_TRUE(hub.take_commit());  // round 2 opened
  const std::string bytes = hub.snapshot();

  HubCore resumed(options());
  ASSERT_TRUE(resumed.restore(bytes)) << resumed.restore(bytes).message();
  EXPECT_EQ(resumed.round(), 2u);
  EXPECT_EQ(resumed.w(), hub.w());
  EXPECT_EQ(resumed.gbar(), hub.gbar());
  EXPECT_EQ(resumed.phase(), HubCore::Phase::training);
  EXPECT_LE(resumed.check_invariant(), 1e-15);
  // The agents rejoin on new connections with their incarnation: no table rebuild, and the
  // next update (seq 3) continues exactly.
  std::vector<Outgoing> o2;
  ASSERT_TRUE(resumed.on_message("qa", make_join("a", 1, 2.0, 1), 3.0, o2));
  EXPECT_FALSE(sent<msg::Config>(o2, "qa")[0]->build_table);
  EXPECT_EQ(sent<msg::RoundStart>(o2, "qa")[0]->round, 2u);
  ASSERT_TRUE(resumed.on_message("qb", make_join("b", 3, 1.0, 1), 3.0, o2));
  ASSERT_TRUE(resumed.on_message("qa", update(2, 3, 1, {1, 0, 0}, {1, 0, 0}), 3.0, o2));
  ASSERT_TRUE(resumed.on_message("qb", update(2, 3, 3, {0, 0, 0}, {0, 0, 0}), 3.0, o2));
  EXPECT_EQ(resumed.round(), 3u);
  EXPECT_LE(resumed.check_invariant(), 1e-15);

  // Every truncation and a flipped byte anywhere are refused, leaving the core unchanged.
  HubCore fresh(options());
  for (std::size_t cut = 0; cut < bytes.size(); cut += 7)
    EXPECT_FALSE(fresh.restore(bytes.substr(0, cut))) << cut;
  for (std::size_t i = 0; i < bytes.size(); i += 5) {
    std::string bad = bytes;
    bad[i] ^= 0x40;
    EXPECT_FALSE(fresh.restore(bad)) << "byte " << i;
  }
  EXPECT_EQ(fresh.phase(), HubCore::Phase::admitting);
  // A checkpoint of another problem is refused with the reason.
  HubOptions other = options();
  other.objective.lambda = 0.25;
  HubCore different(other);
  const Status s = different.restore(bytes);
  EXPECT_FALSE(s);
  EXPECT_NE(s.message().find("another problem"), std::string::npos);
  // ... as incompatible (the daemon then refuses to start rather than pass over it), like one
  // of another format; corruption is an ordinary error (an older checkpoint is tried instead).
  EXPECT_EQ(s.code(), StatusCode::incompatible);
  std::string old_format = bytes;
  old_format[8] = static_cast<char>(old_format[8] - 1);
  const Status f = fresh.restore(old_format);
  EXPECT_EQ(f.code(), StatusCode::incompatible) << f.message();
  std::string flipped = bytes;
  flipped[bytes.size() - 3] ^= 0x10;
  EXPECT_EQ(fresh.restore(flipped).code(), StatusCode::error);
}

// A checkpoint can be saved mid-round (here: another agent's table rebuild) while an update is
// held for the open round. The held update is not in the checkpoint, so a resumed hub must
// take the agent's resend as new: acknowledging it as "already applied" would lose its dS and
// leave the round waiting for an update that never comes (seen once in crash_churn).
TEST_F(HubTest, UpdateHeldAtAMidRoundCheckpointIsAppliedAfterResume) {
  start();
  ASSERT_TRUE(hub.on_message("pa", update(1, 2, 1, {4, 0, 0}, {4, 0, 0}), 1.0, out));
  // b restarts (new incarnation) and rebuilds its table: a commit point inside round 1.
  ASSERT_TRUE(hub.on_message("pb2", make_join("b", 3, 1.0, 2), 1.1, out));
  ASSERT_TRUE(hub.on_message("pb2", msg::InitUpload{1, 3, {3, 2, 1}, 1.5, {}, 0, {}, {}, {}}, 1.2, out));
  ASSERT_TRUE(hub.take_commit());
  const std::string bytes = hub.snapshot();

  HubCore resumed(options());
  ASSERT_TRUE(resumed.restore(bytes));
  std::vector<Outgoing> o2;
  ASSERT_TRUE(resumed.on_message("qa", make_join("a", 1, 2.0, 1), 2.0, o2));
  ASSERT_TRUE(resumed.on_message("qb", make_join("b", 3, 1.0, 2), 2.0, o2));
  o2.clear();
  ASSERT_TRUE(resumed.on_message("qa", update(1, 2, 1, {4, 0, 0}, {4, 0, 0}), 2.1, o2));
  EXPECT_TRUE(sent<msg::Ack>(o2, "qa").empty());  // held, not acknowledged as applied
  ASSERT_TRUE(resumed.on_message("qb", update(1, 2, 3, {0, 0, 0}, {0, 0, 0}), 2.2, o2));
  EXPECT_EQ(resumed.round(), 2u);                 // the round closed
  EXPECT_TRUE(resumed.gbar().isApprox(Eigen::Vector3d(2, 1, 1)));  // with a's dS, once
  EXPECT_LE(resumed.check_invariant(), 1e-15);
  EXPECT_EQ(sent<msg::Ack>(o2, "qa").size(), 1u);
}

// An agent restarts (new incarnation) while its update is held: the held update belongs to the
// dead process and is superseded by the rebuilt table; the new process's InitUpload (seq 1)
// must be applied, not taken for a duplicate of the old process's seq numbers.
TEST_F(HubTest, RestartWhileAnUpdateIsHeldRebuildsAndCountsTheNewTableOnce) {
  start();
  ASSERT_TRUE(hub.on_message("pa", update(1, 2, 1, {4, 0, 0}, {4, 0, 0}), 1.0, out));
  ASSERT_TRUE(hub.on_message("pa2", make_join("a", 1, 2.0, 2), 1.1, out));  // restarted
  ASSERT_TRUE(hub.on_message("pb", update(1, 2, 3, {0, 0, 0}, {0, 0, 0}), 1.2, out));
  EXPECT_EQ(hub.round(), 1u);  // still waiting for a's new process
  out.clear();
  ASSERT_TRUE(hub.on_message("pa2", msg::InitUpload{1, 1, {5, 5, 5}, 0.5, {}, 0, {}, {}, {}}, 1.3, out));
  // S_a replaced: gbar = (S_a_new + S_b) / N = ((5,5,5) + (3,2,1)) / 4.
  EXPECT_TRUE(hub.gbar().isApprox(Eigen::Vector3d(2, 1.75, 1.5)));
  EXPECT_LE(hub.check_invariant(), 1e-15);
  ASSERT_EQ(sent<msg::RoundStart>(out, "pa2").size(), 1u);
  ASSERT_TRUE(hub.on_message("pa2", update(1, 2, 1, {0, 0, 0}, {1, 0, 0}), 1.4, out));
  EXPECT_EQ(hub.round(), 2u);
  EXPECT_TRUE(hub.gbar().isApprox(Eigen::Vector3d(2.25, 1.75, 1.5)));
  EXPECT_LE(hub.check_invariant(), 1e-15);
}

TEST_F(HubTest, RetiringAnAgentShrinksTheProblemAndKeepsTheInvariant) {
  start();
  EXPECT_FALSE(hub.retire("nobody"));
  auto done = hub.retire("a");
  ASSERT_TRUE(done) << done.error();
  EXPECT_NE(done->find("N goes from 4 to 3"), std::string::npos) << *done;
  EXPECT_EQ(hub.total_samples(), 3);
  EXPECT_TRUE(hub.gbar().isApprox(Eigen::Vector3d(1, 2.0 / 3, 1.0 / 3)));  // S_b / 3
  EXPECT_LE(hub.check_invariant(), 1e-15);
  EXPECT_FALSE(hub.retire("b"));  // the last agent stays
  // b must rebuild for the new N: its Config says so, with N = 3.
  out.clear();
  ASSERT_TRUE(hub.on_message("pb2", make_join("b", 3, 1.0, 1), 1.0, out));
  const auto configs = sent<msg::Config>(out, "pb2");
  ASSERT_EQ(configs.size(), 1u);
  EXPECT_TRUE(configs[0]->build_table);
  EXPECT_EQ(configs[0]->total_samples, 3u);
  // The retired agent cannot come back into this problem.
  EXPECT_FALSE(hub.on_message("pa2", make_join("a", 1, 2.0, 1), 1.0, out));
}

// ---- asynchronous aggregation ---------------------------------------------------------------

class AsyncHubTest : public HubTest {
 protected:
  static HubOptions async_options(std::uint64_t max_staleness = 0) {
    HubOptions o = options();
    o.aggregation = Aggregation::async;
    o.max_staleness = max_staleness;
    return o;
  }
  // a (n = 1) and b (n = 3) initialised with S_a = (1,2,3), S_b = (3,2,1): gbar = (1,1,1).
  void start_async(HubCore& h) {
    ASSERT_TRUE(h.on_message("pa", make_join("a", 1, 2.0), 0.0, out));
    ASSERT_TRUE(h.on_message("pb", make_join("b", 3, 1.0), 0.0, out));
    ASSERT_TRUE(h.on_message("pa", msg::InitUpload{1, 1, {1, 2, 3}, 0.5, {}, 0, {}, {}, {}}, 0.0, out));
    ASSERT_TRUE(h.on_message("pb", msg::InitUpload{1, 3, {3, 2, 1}, 1.5, {}, 0, {}, {}, {}}, 0.0, out));
    ASSERT_EQ(h.phase(), HubCore::Phase::training);
  }
};

TEST_F(AsyncHubTest, EachUpdateIsAppliedOnArrivalAndOnlyItsSenderIsAnswered) {
  HubCore h(async_options());
  start_async(h);
  // Both start from version 1 and are asked for their loss at the round's evaluation point.
  const auto first = sent<msg::RoundStart>(out, "pa");
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0]->round, 1u);
  EXPECT_EQ(first[0]->eval_w, std::vector<double>({0, 0, 0}));
  out.clear();

  ASSERT_TRUE(h.on_message("pa", update(1, 2, 1, {4, 0, 0}, {4, 0, 0}, 0.25), 1.0, out));
  EXPECT_TRUE(h.w().isApprox(Eigen::Vector3d(1, 0, 0)));     // eta_g * n_a / N * dw_a
  EXPECT_TRUE(h.gbar().isApprox(Eigen::Vector3d(2, 1, 1)));  // + dS_a / N
  EXPECT_LE(h.check_invariant(), 1e-15);
  EXPECT_EQ(h.version(), 2u);
  ASSERT_EQ(sent<msg::Ack>(out, "pa").size(), 1u);
  const auto again = sent<msg::RoundStart>(out, "pa");
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0]->round, 2u);
  EXPECT_EQ(again[0]->w, std::vector<double>({1, 0, 0}));
  EXPECT_TRUE(again[0]->eval_w.empty());  // its loss at this round's point is in
  EXPECT_TRUE(sent<msg::RoundStart>(out, "pb").empty());
  EXPECT_TRUE(sent<msg::Ack>(out, "pb").empty());
  EXPECT_EQ(h.take_reports().size(), 1u);  // only the init round so far
  out.clear();

  // b's update, started at version 1, arrives one update late: still within the bound.
  ASSERT_TRUE(h.on_message("pb", update(1, 2, 3, {0, 4, 0}, {0, 0, 8}, 0.75), 2.0, out));
  EXPECT_TRUE(h.w().isApprox(Eigen::Vector3d(1, 3, 0)));
  EXPECT_TRUE(h.gbar().isApprox(Eigen::Vector3d(2, 1, 3)));
  // Two updates for two agents and both losses at w = 0: round 1 closes with F(0).
  const auto reports = h.take_reports();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].round, 1u);
  EXPECT_EQ(reports[0].updates, 2);
  EXPECT_EQ(reports[0].stale_dropped, 0);
  EXPECT_NEAR(reports[0].objective, (0.25 + 0.75) / 4.0, 1e-15);
  EXPECT_EQ(h.round(), 2u);
  // b's next start asks for its loss at round 2's point: the w when round 2 opened.
  const auto b_next = sent<msg::RoundStart>(out, "pb");
  ASSERT_EQ(b_next.size(), 1u);
  EXPECT_EQ(b_next[0]->eval_w, std::vector<double>({1, 3, 0}));
}

// Only the counts of updates whose loss is at the round's evaluation point are summed.
TEST_F(AsyncHubTest, RoundSumsTheCountsAtItsEvaluationPointOnly) {
  HubCore h(async_options());
  start_async(h);
  msg::Update a = update(1, 2, 1, {4, 0, 0}, {4, 0, 0}, 0.25);
  a.validation = counts(2, 1, 1.0, 10, 200);
  ASSERT_TRUE(h.on_message("pa", a, 1.0, out));
  // a again, from version 2 (not asked for its loss): its counts are not at the point.
  msg::Update a2 = update(2, 3, 1, {0, 0, 0}, {0, 0, 0}, 9.0);
  a2.validation = counts(2, 0, 5.0, 10, 200);
  ASSERT_TRUE(h.on_message("pa", a2, 1.5, out));
  msg::Update b = update(1, 2, 3, {0, 4, 0}, {0, 0, 8}, 0.75);
  b.validation = counts(4, 4, 1.0, 10, 200);
  ASSERT_TRUE(h.on_message("pb", b, 2.0, out));
  const auto reports = h.take_reports();
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(reports[1].validation.examples, 6u);
  EXPECT_EQ(reports[1].validation.correct, 5u);
  EXPECT_DOUBLE_EQ(reports[1].validation.loss, 2.0 / 6);
}

TEST_F(AsyncHubTest, TooStaleUpdateKeepsItsTableDeltaAndDropsItsStep) {
  HubCore h(async_options(1));
  start_async(h);
  out.clear();
  // a runs twice while b is still on version 1.
  ASSERT_TRUE(h.on_message("pa", update(1, 2, 1, {4, 0, 0}, {0, 0, 0}), 1.0, out));
  ASSERT_TRUE(h.on_message("pa", update(2, 3, 1, {4, 0, 0}, {0, 0, 0}), 1.1, out));
  const Eigen::VectorXd w_before = h.w();
  const Status s = h.on_message("pb", update(1, 2, 3, {0, 4, 0}, {0, 0, 8}), 1.2, out);
  EXPECT_FALSE(s);  // reported (and logged by the service), but applied:
  EXPECT_NE(s.message().find("dw is dropped"), std::string::npos) << s.message();
  EXPECT_EQ(h.w(), w_before);
  EXPECT_TRUE(h.gbar().isApprox(Eigen::Vector3d(1, 1, 3)));  // dS_b / N counted
  EXPECT_LE(h.check_invariant(), 1e-15);
  EXPECT_EQ(sent<msg::Ack>(out, "pb").size(), 1u);
  int dropped = 0;
  for (const auto& r : h.take_reports()) dropped += r.stale_dropped;
  EXPECT_EQ(dropped, 1);
  // A retry of the same update is acknowledged again and applied nothing.
  out.clear();
  const Eigen::VectorXd gbar = h.gbar();
  ASSERT_TRUE(h.on_message("pb", update(1, 2, 3, {0, 4, 0}, {0, 0, 8}), 1.3, out));
  EXPECT_EQ(h.gbar(), gbar);
  EXPECT_EQ(sent<msg::Ack>(out, "pb").size(), 1u);
  // An update claiming a version the hub has not reached is refused.
  EXPECT_FALSE(h.on_message("pb", update(99, 3, 3, {0, 0, 0}, {0, 0, 0}), 1.4, out));
}

TEST_F(AsyncHubTest, ARoundWithADisconnectedAgentClosesWithoutItsLoss) {
  HubCore h(async_options());
  start_async(h);
  out.clear();
  h.take_reports();
  ASSERT_TRUE(h.on_message("pa", update(1, 2, 1, {0, 0, 0}, {0, 0, 0}), 1.0, out));
  ASSERT_TRUE(h.on_message("pa", update(2, 3, 1, {0, 0, 0}, {0, 0, 0}), 1.1, out));
  EXPECT_TRUE(h.take_reports().empty());  // two updates, but b's loss is still owed
  h.on_disconnect("pb", 1.2, out);
  const auto reports = h.take_reports();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_TRUE(std::isnan(reports[0].objective));
  EXPECT_EQ(reports[0].participants, 1);
}

TEST_F(AsyncHubTest, SnapshotKeepsTheVersionAndRefusesAnotherAggregation) {
  HubCore h(async_options());
  start_async(h);
  ASSERT_TRUE(h.on_message("pa", update(1, 2, 1, {4, 0, 0}, {4, 0, 0}), 1.0, out));
  ASSERT_TRUE(h.take_commit());
  const std::string bytes = h.snapshot();
  HubCore resumed(async_options());
  ASSERT_TRUE(resumed.restore(bytes));
  EXPECT_EQ(resumed.version(), 2u);
  EXPECT_EQ(resumed.w(), h.w());
  // The agent rejoins and gets a start at the restored version.
  std::vector<Outgoing> o2;
  ASSERT_TRUE(resumed.on_message("qa", make_join("a", 1, 2.0, 1), 2.0, o2));
  const auto starts = sent<msg::RoundStart>(o2, "qa");
  ASSERT_EQ(starts.size(), 1u);
  EXPECT_EQ(starts[0]->round, 2u);
  HubCore synchronous(options());
  const Status s = synchronous.restore(bytes);
  EXPECT_FALSE(s);
  EXPECT_NE(s.message().find("aggregation"), std::string::npos) << s.message();
}

TEST(AgentSeed, DependsOnRunSeedAndIdAndIsPinned) {
  EXPECT_NE(agent_seed(0, "a"), agent_seed(0, "b"));
  EXPECT_NE(agent_seed(0, "a"), agent_seed(1, "a"));
  EXPECT_EQ(agent_seed(7, "pi-01"), agent_seed(7, "pi-01"));
}

// ---- two-level dSAGA (the default for dsaga) ------------------------------------------------
// d = 3 makes the coarse space the whole space (coarse.hpp: d * C <= 256): each round's step is
// -gamma (H / N + lambda I)^{-1} (g / N + lambda w), checkable by hand.

namespace two_level {

HubOptions options() {
  HubOptions o;  // aggregation auto: two-level for dsaga
  o.objective.loss = Loss::logistic;
  o.objective.lambda = 0.5;
  o.expected_agents = 2;
  o.max_rounds = 20;
  return o;
}

msg::Update update(std::uint64_t round, std::uint64_t seq, std::uint64_t n, std::vector<double> g,
                   std::vector<double> h, double loss, std::vector<double> ds = {0, 0, 0}) {
  msg::Update u;
  u.round = round;
  u.seq = seq;
  u.samples = n;
  u.steps = 0;
  u.loss_sum = loss;
  u.dw = {0, 0, 0};
  u.dS = std::move(ds);
  u.coarse_g = std::move(g);
  u.coarse_h = std::move(h);
  return u;
}

const std::vector<double> kIdentity = {1, 0, 0, 1, 0, 1};  // packed upper triangle of I

// Agents a (n = 1) and b (n = 3) admitted and initialised; round 1 open.
void start(HubCore& hub, std::vector<Outgoing>& out) {
  ASSERT_TRUE(hub.on_message("pa", make_join("a", 1, 2.0), 0.0, out));
  ASSERT_TRUE(hub.on_message("pb", make_join("b", 3, 1.0), 0.0, out));
  const auto configs = sent<msg::Config>(out, "pa");
  ASSERT_EQ(configs.size(), 1u);
  EXPECT_TRUE(configs[0]->two_level);
  EXPECT_EQ(configs[0]->basis_rank, 0u);  // the whole space: no eigenvectors to upload
  EXPECT_DOUBLE_EQ(configs[0]->eta, 1.0 / (2.0 + 0.5));  // two-level: 1 / L_max
  out.clear();
  ASSERT_TRUE(hub.on_message("pa", msg::InitUpload{1, 1, {1, 2, 3}, 0.5, {}, 0, {}, {}, {}}, 0.0, out));
  ASSERT_TRUE(hub.on_message("pb", msg::InitUpload{1, 3, {3, 2, 1}, 1.5, {}, 0, {}, {}, {}}, 0.0, out));
  ASSERT_EQ(hub.phase(), HubCore::Phase::training);
  // The basis (here U = I) goes out in a Config before the first RoundStart.
  const auto basis = sent<msg::Config>(out, "pb");
  ASSERT_EQ(basis.size(), 1u);
  EXPECT_FALSE(basis[0]->build_table);
  EXPECT_NE(basis[0]->basis_id, 0u);
  EXPECT_TRUE(basis[0]->basis_identity);
  EXPECT_EQ(basis[0]->steps, 0u);  // the Newton step is the whole step
  const auto starts = sent<msg::RoundStart>(out, "pb");
  ASSERT_EQ(starts.size(), 1u);
  EXPECT_DOUBLE_EQ(starts[0]->eta, 1.0 / 2.5);
  out.clear();
}

TEST(HubTwoLevel, RoundTakesTheNewtonStepOfTheCoarseModel) {
  HubCore hub(options());
  std::vector<Outgoing> out;
  start(hub, out);
  // H = (I + 3 I) / N = I, + lambda: 1.5 I; g / N = (1, 2, 0) / 4; w_1 = 0.
  ASSERT_TRUE(hub.on_message("pa", update(1, 2, 1, {1, 0, 0}, kIdentity, 1.0), 1.0, out));
  const std::vector<double> h3 = {3, 0, 0, 3, 0, 3};
  ASSERT_TRUE(hub.on_message("pb", update(1, 2, 3, {0, 2, 0}, h3, 1.0, {4, 0, 0}), 1.0, out));
  ASSERT_EQ(hub.round(), 2u);
  const Eigen::Vector3d w2(-0.25 / 1.5, -0.5 / 1.5, 0.0);
  EXPECT_NEAR((hub.w() - w2).norm(), 0.0, 1e-15);
  EXPECT_TRUE(hub.gbar().isApprox(Eigen::Vector3d(2, 1, 1)));  // + dS_b / N
  EXPECT_LE(hub.check_invariant(), 1e-15);
  // Round 2 at w_2 != 0: the gradient includes lambda w_2. H / N = diag(2, 1, 1) + lambda.
  ASSERT_TRUE(hub.on_message("pa", update(2, 3, 1, {0, 0, 4}, {8, 0, 0, 4, 0, 4}, 0.5), 2.0, out));
  ASSERT_TRUE(hub.on_message("pb", update(2, 3, 3, {0, 0, 0}, {0, 0, 0, 0, 0, 0}, 0.5), 2.0, out));
  ASSERT_EQ(hub.round(), 3u);
  const Eigen::Vector3d g2 = Eigen::Vector3d(0, 0, 1) + 0.5 * w2;
  const Eigen::Vector3d h2(2.5, 1.5, 1.5);
  const Eigen::Vector3d w3 = w2 - g2.cwiseQuotient(h2);
  EXPECT_NEAR((hub.w() - w3).norm(), 0.0, 1e-15);
}

// After a round with every agent in, gbar is the data term's gradient at the broadcast w.
TEST(HubTwoLevel, CompleteRoundReportsTheGradientNormAtItsBroadcastW) {
  HubCore hub(options());
  std::vector<Outgoing> out;
  start(hub, out);
  ASSERT_TRUE(hub.on_message("pa", update(1, 2, 1, {1, 0, 0}, kIdentity, 1.0), 1.0, out));
  const std::vector<double> h3 = {3, 0, 0, 3, 0, 3};
  ASSERT_TRUE(hub.on_message("pb", update(1, 2, 3, {0, 2, 0}, h3, 1.0, {4, 0, 0}), 1.0, out));
  const auto reports = hub.take_reports();
  ASSERT_EQ(reports.size(), 2u);
  // gbar after the round's dS: (2, 1, 1); w_1 = 0, so no lambda w term.
  EXPECT_DOUBLE_EQ(reports[1].gradient_norm, std::sqrt(6.0));
}

TEST(HubTwoLevel, CoarsePayloadOfTheWrongSizeIsRejectedAndChangesNothing) {
  HubCore hub(options());
  std::vector<Outgoing> out;
  start(hub, out);
  const Eigen::VectorXd gbar = hub.gbar();
  const Status s = hub.on_message("pa", update(1, 2, 1, {1, 0}, kIdentity, 1.0), 1.0, out);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("coarse_g has 2"), std::string::npos) << s.message();
  EXPECT_EQ(hub.gbar(), gbar);
  // The same agent's correct update is still taken (nothing was recorded for seq 2).
  ASSERT_TRUE(hub.on_message("pa", update(1, 2, 1, {1, 0, 0}, kIdentity, 1.0), 1.0, out));
}

TEST(HubTwoLevel, GuardRevertsARoundWhoseObjectiveRoseAndHalvesTheStep) {
  HubCore hub(options());
  std::vector<Outgoing> out;
  start(hub, out);
  const auto round = [&](std::uint64_t r, double loss_a, double loss_b) {
    out.clear();
    ASSERT_TRUE(hub.on_message("pa", update(r, r + 1, 1, {0.1, 0, 0}, kIdentity, loss_a), r, out));
    ASSERT_TRUE(hub.on_message("pb", update(r, r + 1, 3, {0, 0.1, 0}, kIdentity, loss_b), r, out));
  };
  round(1, 2.0, 2.0);  // F(w_1) = 1
  const Eigen::VectorXd w2 = hub.w();  // round 2's model
  round(2, 1.0, 1.0);  // F(w_2) ~ 0.5: a decrease of ~0.5
  const Eigen::VectorXd w3 = hub.w();
  round(3, 9.0, 9.0);  // F(w_3) ~ 4.5: a rise far above the decrease before it
  auto reports = hub.take_reports();
  ASSERT_EQ(reports.back().round, 3u);
  EXPECT_TRUE(reports.back().reverted);
  EXPECT_DOUBLE_EQ(reports.back().step_scale, 0.5);
  // Halfway back along the step from the model of round 2 (the last accepted one), at once,
  // with half the local step.
  EXPECT_EQ(hub.w(), Eigen::VectorXd(w2 + 0.5 * (w3 - w2)));
  const auto starts = sent<msg::RoundStart>(out, "pa");
  ASSERT_EQ(starts.size(), 1u);
  EXPECT_EQ(starts[0]->round, 4u);
  EXPECT_DOUBLE_EQ(starts[0]->eta, 0.5 / 2.5);
  EXPECT_LE(hub.check_invariant(), 1e-15);
  // A round that lowers F by less than 3/4 of what the whole space's quadratic model predicts
  // grows the step again by 1.25 (F equal to round 2's would be a rise: none is allowed here);
  // one that lowers it by more doubles it, up to the full step.
  // F is the mean loss plus lambda / 2 |w|^2 at the round's w (w itself: the whole space has no
  // q8 broadcast); the model predicts a fall of gamma (1 - gamma / 2) d^T (H / N + lambda) d for
  // the step gamma d, and H / N + lambda = I here.
  const auto loss_for = [&](double f) { return 2 * (f - 0.25 * hub.w().squaredNorm()); };
  const double f2 = 0.5 + 0.25 * w2.squaredNorm();
  const double predicted4 = 0.5 * (1 - 0.25) * (w3 - w2).squaredNorm();  // half the step d
  const double f4 = f2 - 0.5 * predicted4;
  const Eigen::VectorXd w4 = hub.w();
  round(4, loss_for(f4), loss_for(f4));
  reports = hub.take_reports();
  EXPECT_FALSE(reports.back().reverted);
  EXPECT_DOUBLE_EQ(reports.back().step_scale, 0.625);
  const double predicted5 = 0.625 * (1 - 0.3125) * (hub.w() - w4).squaredNorm() / (0.625 * 0.625);
  const double f5 = f4 - predicted5;
  round(5, loss_for(f5), loss_for(f5));
  reports = hub.take_reports();
  EXPECT_FALSE(reports.back().reverted);
  EXPECT_DOUBLE_EQ(reports.back().step_scale, 1.0);  // 0.78125 by 1.25
}

TEST(HubTwoLevel, GuardIgnoresRoundingNoiseAtTheOptimum) {
  HubCore hub(options());
  std::vector<Outgoing> out;
  start(hub, out);
  // F flat to the last bits, as at the optimum: rises of a few ulps are not a bad round.
  const std::vector<double> zero_g = {0, 0, 0};
  const double base = 0.48459407116012482 * 4;
  for (std::uint64_t r = 1; r <= 8; ++r) {
    const double loss = base * (r % 3 == 0 ? 1 + 4e-15 : 1.0) / 4;  // flat, flat, a few ulps up
    ASSERT_TRUE(hub.on_message("pa", update(r, r + 1, 1, zero_g, kIdentity, loss), r, out));
    ASSERT_TRUE(hub.on_message("pb", update(r, r + 1, 3, zero_g, kIdentity, 3 * loss), r, out));
  }
  for (const RoundReport& r : hub.take_reports()) {
    EXPECT_FALSE(r.reverted) << "round " << r.round;
    EXPECT_DOUBLE_EQ(r.step_scale, 1.0) << "round " << r.round;
  }
}

TEST(HubTwoLevel, ResumedHubContinuesBitIdentically) {
  HubCore hub(options());
  std::vector<Outgoing> out, out2;
  start(hub, out);
  HubCore resumed(options());
  // Rounds 1-3 with a revert in round 3, so that the guard's state (step scale, previous F and
  // model) is part of what the checkpoint must carry; then both hubs get the same rounds.
  for (int r = 1; r <= 6; ++r) {
    const std::vector<double> g = {0.5 * r, -1.0, 0.25};
    const std::vector<double> h = {2, 0.5, 0, 1, 0, 1};
    const double loss = r == 3 ? 50.0 : 4.0 / r;
    for (auto* core : {&hub, &resumed}) {
      const bool first = core == &hub;
      if (!first && r <= 3) continue;
      ASSERT_TRUE(core->on_message(first ? "pa" : "qa", update(r, r + 1, 1, g, h, loss), r,
                                   first ? out : out2));
      ASSERT_TRUE(core->on_message(first ? "pb" : "qb", update(r, r + 1, 3, g, h, loss), r,
                                   first ? out : out2));
    }
    if (r == 3) {
      ASSERT_TRUE(hub.take_reports().back().reverted);
      ASSERT_TRUE(hub.take_commit());
      ASSERT_TRUE(resumed.restore(hub.snapshot()));
      // The agents come back on new connections (same incarnations: they keep their tables).
      ASSERT_TRUE(resumed.on_message("qa", make_join("a", 1, 2.0), 3.0, out2));
      ASSERT_TRUE(resumed.on_message("qb", make_join("b", 3, 1.0), 3.0, out2));
      const auto configs = sent<msg::Config>(out2, "qa");
      ASSERT_EQ(configs.size(), 1u);
      EXPECT_TRUE(configs[0]->basis_identity);  // the basis came back with the checkpoint
      const auto starts = sent<msg::RoundStart>(out2, "qa");
      ASSERT_EQ(starts.size(), 1u);
      EXPECT_DOUBLE_EQ(starts[0]->eta, 0.5 / 2.5);  // and the guard's halved step
      continue;
    }
    if (r < 3) continue;
    ASSERT_EQ(hub.round(), resumed.round());
    for (int k = 0; k < 3; ++k) EXPECT_EQ(hub.w()[k], resumed.w()[k]) << "round " << r;
    EXPECT_EQ(hub.snapshot(), resumed.snapshot()) << "round " << r;
  }
}

// A softmax coarse Hessian travels as its class-pair blocks (protocol 12): with two classes on
// d = 3 (the whole space, m = 3) that is B_01's 6 distinct entries. The whole triangle of the
// 6 x 6 matrix (21 entries, the form before protocol 12) is refused with the sizes named, and
// changes nothing; the blocks are then taken.
TEST(HubTwoLevel, ASoftmaxCoarseHessianOfTheWholeTriangleIsRefusedAndChangesNothing) {
  HubCore hub(softmax_options(options()));
  std::vector<Outgoing> out;
  ASSERT_NO_FATAL_FAILURE(start_softmax_agent(hub, out));
  ASSERT_TRUE(sent<msg::Config>(out, "pa").back()->two_level);
  const auto blocks = [](std::size_t size) {
    msg::Update u;
    u.round = 1;
    u.seq = 2;
    u.samples = 2;
    u.loss_sum = 1.0;
    u.dw.assign(6, 0.0);
    u.dS.assign(6, 0.0);
    u.coarse_g = {1, -1, 0.5, -0.5, 0.25, -0.25};
    u.coarse_h.assign(size, 0.0);
    for (std::size_t i = 0; i < size; i += 2) u.coarse_h[i] = -1.0;
    return u;
  };
  const std::string before = hub.snapshot();
  const Status refused = hub.on_message("pa", blocks(21), 1.0, out);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.message().find("coarse_h 21 entries, the coarse space needs 6 and 6"),
            std::string::npos)
      << refused.message();
  EXPECT_EQ(hub.snapshot(), before);
  EXPECT_EQ(hub.round(), 1u);
  ASSERT_TRUE(hub.on_message("pa", blocks(6), 1.0, out));
  EXPECT_EQ(hub.round(), 2u);
}

// With --compression q8 the eigenvectors (and later U) travel as q8 only where they outweigh one
// round's coarse payload: a binary model of d = 300 (64 + 64 vectors of 300 entries against a
// 64 x 64 Hessian) yes; the same with 10 classes (a 640 x 640 Hessian a round) no, as floats.
TEST(HubTwoLevel, CurvatureTravelsAsQ8OnlyWhereItOutweighsARoundsCoarsePayload) {
  for (const int classes : {1, 10}) {
    SCOPED_TRACE(classes);
    HubOptions o = options();
    o.objective.loss = classes == 1 ? Loss::logistic : Loss::multinomial;
    o.objective.classes = classes;
    o.compression = msg::Encoding::q8;
    HubCore hub(o);
    std::vector<Outgoing> out;
    msg::Join a = make_join("a", 1), b = make_join("b", 3);
    for (msg::Join* j : {&a, &b}) {
      j->features = 300;
      j->classes = static_cast<std::uint32_t>(classes);
      j->loss = o.objective.loss;
    }
    ASSERT_TRUE(hub.on_message("pa", a, 0.0, out));
    ASSERT_TRUE(hub.on_message("pb", b, 0.0, out));
    const auto configs = sent<msg::Config>(out, "pa");
    ASSERT_EQ(configs.size(), 1u);
    ASSERT_EQ(configs[0]->basis_rank, 64u);
    EXPECT_EQ(configs[0]->encoding, msg::Encoding::q8);  // the deltas: q8 either way
    EXPECT_EQ(configs[0]->curvature, classes == 1 ? msg::Encoding::q8 : msg::Encoding::f32);
  }
}

// With local runs (U = e_0 of d = 4, --coarse-rank 1), the fine part of a round's step is the
// runs' mean outside U plus beta times the last step outside U (heavy ball), beta the critical
// damping of the flattest direction: a = sum_k (n_k / N) (1 - (1 - eta lambda)^T_k), beta = (1 -
// sqrt(a))^2. The first round, and the round after a revert, have no last step to carry.
TEST(HubTwoLevel, FineStepCarriesTheMomentumOfTheFlattestDirection) {
  const Index d = 4;
  HubOptions o = options();
  o.objective.lambda = 0.1;
  o.coarse_rank = 1;
  o.compression = msg::Encoding::f64;
  HubCore hub(o);
  std::vector<Outgoing> out;
  for (const auto& [peer, id, n] : {std::tuple{"pa", "a", 1}, std::tuple{"pb", "b", 3}}) {
    msg::Join j = make_join(id, static_cast<std::uint64_t>(n), 2.0);
    j.features = d;
    ASSERT_TRUE(hub.on_message(peer, j, 0.0, out));
  }
  const auto configs = sent<msg::Config>(out, "pa");
  ASSERT_EQ(configs.size(), 1u);
  const std::size_t q = configs[0]->basis_rank;
  ASSERT_GE(q, 1u);
  ASSERT_LE(q, static_cast<std::size_t>(d));
  // Both agents' top eigenvector is e_0 (curvature 8), then e_1, ... (curvature 0.01).
  for (int k = 0; k < 2; ++k) {
    msg::InitUpload init{1, k == 0 ? 1u : 3u, std::vector<double>(d, 0.0), k == 0 ? 0.7 : 2.1,
                         std::vector<double>(q, 0.01), 0.01, std::vector<double>(q * d, 0.0), {}, {}};
    init.eigenvalues[0] = 8.0;
    for (std::size_t c = 0; c < q; ++c) init.eigenvectors[c * d + c] = 1.0;
    ASSERT_TRUE(hub.on_message(k == 0 ? "pa" : "pb", init, 0.0, out));
  }
  ASSERT_EQ(hub.phase(), HubCore::Phase::training);
  out.clear();
  const double eta = 1.0 / (2.0 + 0.1);
  const double a = 0.25 * (1 - std::pow(1 - eta * 0.1, 1.0)) + 0.75 * (1 - std::pow(1 - eta * 0.1, 3.0));
  const double beta = std::pow(1 - std::sqrt(a), 2);
  ASSERT_GT(beta, 0.4);
  // Runs that move only outside e_0 (the coarse step is then 0), and F falling a round unless
  // `rise`.
  double f = 10.0;
  const auto round = [&](std::uint64_t r, const std::vector<double>& dw, bool rise = false) {
    f = rise ? 100.0 : 0.5 * f;
    for (const auto& [peer, n] : {std::pair{"pa", 1}, std::pair{"pb", 3}}) {
      msg::Update u = update(r, r + 1, static_cast<std::uint64_t>(n), {0.0}, {1.0}, f * n,
                             std::vector<double>(d, 0.0));
      u.dw = dw;
      u.steps = static_cast<std::uint64_t>(n);
      ASSERT_TRUE(hub.on_message(peer, u, static_cast<double>(r), out));
    }
  };
  round(1, {0, 1, 0, 0});
  const Eigen::VectorXd w2 = hub.w();
  EXPECT_NEAR((w2 - Eigen::Vector4d(0, 1, 0, 0)).norm(), 0.0, 1e-15);  // no last step yet
  round(2, {0, 0, 1, 0});
  const Eigen::VectorXd w3 = hub.w();
  EXPECT_NEAR((w3 - Eigen::Vector4d(0, 1 + beta, 1, 0)).norm(), 0.0, 1e-15);
  round(3, {0, 0, 0, 1}, true);  // F(w3) rose: back to w2, the last accepted model
  EXPECT_TRUE(hub.take_reports().back().reverted);
  EXPECT_EQ(hub.w(), w2);
  round(4, {0, 0, 0, 1});  // at w2 again: no last step to carry
  EXPECT_NEAR((hub.w() - (w2 + Eigen::Vector4d(0, 0, 0, 1))).norm(), 0.0, 1e-15);
}

}  // namespace two_level

namespace newton_cg {

// The Gram preconditioner (asked for; auto would take the Hessians at d * C = 3): the tests
// that follow the Hessians' path say so.
HubOptions options() {
  HubOptions o;
  o.aggregation = Aggregation::newton_cg;
  o.preconditioner = Preconditioner::gram;
  o.objective.loss = Loss::logistic;
  o.objective.lambda = 0.5;
  o.expected_agents = 2;
  o.max_rounds = 40;
  return o;
}

// A Newton answer: product (g_k or (H p)_k), loss sum and, when asked, the Gram, the Hessian or
// its diagonal.
msg::Update answer(std::uint64_t round, std::uint64_t seq, std::uint64_t n,
                   std::vector<double> product, double loss, std::vector<float> gram = {},
                   std::vector<float> hessian = {}, std::vector<float> diagonal = {}) {
  msg::Update u;
  u.round = round;
  u.seq = seq;
  u.samples = n;
  u.steps = n;
  u.loss_sum = loss;
  u.product = std::move(product);
  u.gram = std::move(gram);
  u.hessian = std::move(hessian);
  u.diagonal = std::move(diagonal);
  return u;
}

// Agents a (n = 1) and b (n = 3) admitted and initialised; round 1 (a gradient round that asks
// for the Grams, or the Hessians where `hessian`, or their diagonals where `diagonal`) open, its
// RoundStart in `out`.
void start(HubCore& hub, std::vector<Outgoing>& out, bool hessian = false, bool diagonal = false) {
  ASSERT_TRUE(hub.on_message("pa", make_join("a", 1, 2.0), 0.0, out));
  ASSERT_TRUE(hub.on_message("pb", make_join("b", 3, 1.0), 0.0, out));
  out.clear();
  ASSERT_TRUE(hub.on_message("pa", msg::InitUpload{1, 1, {1, 2, 3}, 0.5, {}, 0, {}, {}, {}}, 0.0, out));
  ASSERT_TRUE(hub.on_message("pb", msg::InitUpload{1, 3, {3, 2, 1}, 1.5, {}, 0, {}, {}, {}}, 0.0, out));
  ASSERT_EQ(hub.phase(), HubCore::Phase::training);
  const auto starts = sent<msg::RoundStart>(out, "pa");
  ASSERT_EQ(starts.size(), 1u);
  EXPECT_EQ(starts[0]->kind, msg::RoundKind::gradient);
  EXPECT_EQ(starts[0]->gram, !hessian && !diagonal);
  EXPECT_EQ(starts[0]->hessian, hessian);
  EXPECT_EQ(starts[0]->diagonal, diagonal);
  EXPECT_TRUE(starts[0]->gbar.empty());
  // `out` keeps round 1's RoundStart: the tests answer what the hub asked.
}

// The agents' data: H_data = sum_k (H p)_k is the same fixed matrix A (a quadratic model), so
// the hub's CG must give x = -(A / N + lambda I)^{-1} g.
Eigen::Matrix3d model_a() {
  Eigen::Matrix3d a;
  a << 4, 1, 0, 1, 3, 1, 0, 1, 2;
  return a;
}

TEST(HubNewton, CgStepsGiveTheDirectNewtonStepAndTablesStayUntouched) {
  HubCore hub(options());
  std::vector<Outgoing> out;
  start(hub, out);
  const Eigen::VectorXd gbar = hub.gbar();
  // Round 1: gradients (sum 4 * (1, -2, 0.5)) and Grams (a: I, b: 2 I, packed 3x3).
  const std::vector<float> gram_a = {1, 0, 0, 1, 0, 1}, gram_b = {2, 0, 0, 2, 0, 2};
  ASSERT_TRUE(hub.on_message("pa", answer(1, 2, 1, {1, -2, 0.5}, 2.0, gram_a), 1.0, out));
  ASSERT_TRUE(hub.on_message("pb", answer(1, 2, 3, {3, -6, 1.5}, 2.0, gram_b), 1.0, out));
  const Eigen::Vector3d g = Eigen::Vector3d(1, -2, 0.5);  // sum / N + lambda * 0
  const Eigen::Matrix3d h = model_a() / 4.0 + 0.5 * Eigen::Matrix3d::Identity();
  const Eigen::Vector3d direct = -h.ldlt().solve(g);
  // Products until the CG ends: the agents split A p as 1/4 and 3/4.
  std::uint64_t round = 2, seq = 3;
  while (hub.round() == round) {
    const auto starts = sent<msg::RoundStart>(out, "pb");
    ASSERT_FALSE(starts.empty());
    const msg::RoundStart& s = *starts.back();
    if (s.kind != msg::RoundKind::product) break;
    const Eigen::Vector3d p(s.direction[0], s.direction[1], s.direction[2]);
    const Eigen::Vector3d ap = model_a() * p;
    out.clear();
    ASSERT_TRUE(hub.on_message("pa", answer(round, seq, 1, {ap[0] / 4, ap[1] / 4, ap[2] / 4}, 0), 2.0, out));
    ASSERT_TRUE(hub.on_message("pb", answer(round, seq, 3, {3 * ap[0] / 4, 3 * ap[1] / 4, 3 * ap[2] / 4}, 0), 2.0, out));
    ++round;
    ++seq;
  }
  // The CG ended (at most 3 steps in 3 dimensions): the next round is a gradient round at
  // w = 0 + x. The inexact tolerance min(0.5, sqrt|g|)|g| may end it early; the residual then
  // says how close: |H x + g| <= tol.
  const auto starts = sent<msg::RoundStart>(out, "pa");
  ASSERT_EQ(starts.size(), 1u);
  EXPECT_EQ(starts[0]->kind, msg::RoundKind::gradient);
  EXPECT_FALSE(starts[0]->gram);  // once
  const Eigen::Vector3d x = hub.w();
  EXPECT_LE((h * x + g).norm(), std::min(0.5, std::sqrt(g.norm())) * g.norm() * (1 + 1e-12));
  EXPECT_LE(round - 2, 3u);
  // Newton rounds leave the tables alone.
  EXPECT_EQ(hub.gbar(), gbar);
  EXPECT_LE(hub.check_invariant(), 1e-15);
  (void)direct;
}

TEST(HubNewton, RunUpdatesAndMisshapenAnswersAreRefusedAndChangeNothing) {
  HubCore hub(options());
  std::vector<Outgoing> out;
  start(hub, out);
  const std::string before = hub.snapshot();
  msg::Update run;
  run.round = 1;
  run.seq = 2;
  run.samples = 1;
  run.loss_sum = 1;
  run.dw = {0, 0, 0};
  run.dS = {0, 0, 0};
  Status s = hub.on_message("pa", run, 1.0, out);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("must carry `product`"), std::string::npos) << s.message();
  // The Gram was asked: an answer without it, one with a Gram of the wrong size, a product of
  // the wrong width.
  s = hub.on_message("pa", answer(1, 2, 1, {1, 2, 3}, 1.0), 1.0, out);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("asked for the agent's Gram"), std::string::npos) << s.message();
  s = hub.on_message("pa", answer(1, 2, 1, {1, 2, 3}, 1.0, {1, 0, 1}), 1.0, out);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("gram, hessian and diagonal of"), std::string::npos) << s.message();
  s = hub.on_message("pa", answer(1, 2, 1, {1, 2}, 1.0, {1, 0, 0, 1, 0, 1}), 1.0, out);
  ASSERT_FALSE(s);
  EXPECT_EQ(hub.snapshot(), before);
  // The correct answer is still taken.
  EXPECT_TRUE(hub.on_message("pa", answer(1, 2, 1, {1, 2, 3}, 1.0, {1, 0, 0, 1, 0, 1}), 1.0, out));
}

// The agents' Hessians of the quadratic model the Newton-CG tests answer from (packed upper
// triangles): A / 4 from a, 3 A / 4 from b.
const std::vector<float> kHessianA = {1, 0.25f, 0, 0.75f, 0.25f, 0.5f},
                         kHessianB = {3, 0.75f, 0, 2.25f, 0.75f, 1.5f};

// Round 1 of a hub started with the Hessians (start(hub, out, true)), at w = 0: a sends the
// gradient sum (1, -2, 0.5) and the loss sum `loss`, b three times both, each its Hessian.
void answer_first_gradient_round(HubCore& hub, double loss, std::vector<Outgoing>& out) {
  ASSERT_TRUE(hub.on_message("pa", answer(1, 2, 1, {1, -2, 0.5}, loss, {}, kHessianA), 1.0, out));
  ASSERT_TRUE(hub.on_message("pb", answer(1, 2, 3, {3, -6, 1.5}, 3 * loss, {}, kHessianB), 1.0, out));
}

TEST(HubNewton, ResumedMidCgContinuesBitIdentically) {
 for (const Preconditioner asked :
      {Preconditioner::gram, Preconditioner::automatic, Preconditioner::diagonal}) {
  const bool with_hessian = asked == Preconditioner::automatic;  // d * C = 3
  SCOPED_TRACE(to_string(asked));
  HubOptions o = options();
  o.preconditioner = asked;
  HubCore hub(o);
  std::vector<Outgoing> out, out2;
  start(hub, out, with_hessian, asked == Preconditioner::diagonal);
  HubCore resumed(o);
  const std::vector<float> gram_a = {1, 0.5f, 0, 1, 0, 1}, gram_b = {2, 0, 0.25f, 2, 0, 2};
  // The Hessians: A / 4 and 3 A / 4 from a and b, with a rounding error each (a stands in for
  // float rounding), so that the hub's model differs from the products' A.
  const std::vector<float> hessian_a = {1.01f, 0.25f, 0, 0.75f, 0.25f, 0.5f},
                           hessian_b = {3, 0.75f, 0, 2.25f, 0.75f, 1.49f};
  const std::vector<float> diagonal_a = {1.01f, 0.75f, 0.5f}, diagonal_b = {3, 2.25f, 1.49f};
  // Both hubs get the same answers, computed from what each asks (the agents hold a quadratic
  // model); the copy takes over from a checkpoint after round 1, in the middle of the first CG
  // (with the Hessians, between the first two Newton steps).
  std::uint64_t seqs = 2;
  for (std::uint64_t r = 1; r <= 12; ++r, ++seqs) {
    for (HubCore* core : {&hub, &resumed}) {
      const bool first = core == &hub;
      if (!first && r <= 1) continue;
      std::vector<Outgoing>& o = first ? out : out2;
      const auto starts = sent<msg::RoundStart>(o, first ? "pa" : "qa");
      ASSERT_FALSE(starts.empty()) << "round " << r;
      const msg::RoundStart s = *starts.back();
      ASSERT_EQ(s.round, r);
      o.clear();
      const Eigen::Vector3d w(s.w[0], s.w[1], s.w[2]);
      const Eigen::Vector3d v = s.kind == msg::RoundKind::product
                                    ? model_a() * Eigen::Vector3d(s.direction[0], s.direction[1], s.direction[2])
                                    : Eigen::Vector3d(model_a() * w + Eigen::Vector3d(1, -2, 0.5));
      const double loss = 0.5 * w.dot(model_a() * w) + w.dot(Eigen::Vector3d(1, -2, 0.5)) + 3;
      const bool gram = s.gram;
      // Round 5's loss is high: a rise, which the Hessians' path answers with a damped step.
      const double high = r == 5 ? 100.0 : 1.0;
      ASSERT_TRUE(core->on_message(first ? "pa" : "qa",
                                   answer(r, seqs, 1, {v[0] / 4, v[1] / 4, v[2] / 4},
                                          high * loss / 4, gram ? gram_a : std::vector<float>{},
                                          s.hessian ? hessian_a : std::vector<float>{},
                                          s.diagonal ? diagonal_a : std::vector<float>{}),
                                   r, o));
      ASSERT_TRUE(core->on_message(first ? "pb" : "qb",
                                   answer(r, seqs, 3, {3 * v[0] / 4, 3 * v[1] / 4, 3 * v[2] / 4},
                                          high * 3 * loss / 4, gram ? gram_b : std::vector<float>{},
                                          s.hessian ? hessian_b : std::vector<float>{},
                                          s.diagonal ? diagonal_b : std::vector<float>{}),
                                   r, o));
    }
    if (r == 1) {
      ASSERT_TRUE(hub.take_commit());
      ASSERT_TRUE(resumed.restore(hub.snapshot()));
      ASSERT_TRUE(resumed.on_message("qa", make_join("a", 1, 2.0), 3.0, out2));
      ASSERT_TRUE(resumed.on_message("qb", make_join("b", 3, 1.0), 3.0, out2));
      // Round 2 is a CG product round (with the Hessians, the gradient round at the Newton
      // step the hub solved: no CG): it goes out again the same.
      const auto again = sent<msg::RoundStart>(out2, "qa");
      const auto original = sent<msg::RoundStart>(out, "pa");
      ASSERT_EQ(again.size(), 1u);
      ASSERT_EQ(original.size(), 1u);
      EXPECT_EQ(again[0]->kind,
                with_hessian ? msg::RoundKind::gradient : msg::RoundKind::product);
      EXPECT_EQ(again[0]->direction, original[0]->direction);
      EXPECT_EQ(again[0]->w, original[0]->w);
      continue;
    }
    if (r < 1) continue;
    ASSERT_EQ(hub.round(), resumed.round());
    EXPECT_EQ(hub.w(), resumed.w()) << "round " << r;
    EXPECT_EQ(hub.snapshot(), resumed.snapshot()) << "round " << r;
  }
  // Round 5 was a gradient round whose F rose: halved (the Gram, the diagonals) or damped (the
  // Hessians).
  bool rose = false, damped = false;
  for (const std::string& note : hub.take_notes()) {
    rose = rose || note.find("F rose") != std::string::npos;
    damped = damped || note.find("damping mu") != std::string::npos;
  }
  EXPECT_TRUE(rose);
  EXPECT_EQ(damped, with_hessian);
 }
}

// auto's choice at d * C = 3: the agents' Hessians each gradient round. With every agent's
// Hessian the hub solves the Newton step itself, and the next round is the gradient round there
// (no product round); a gradient round whose F rose is answered the same way, w = w_outer -
// (H + mu I)^{-1} g with mu = 1e-3 max diag H. Answers without the Hessian or with one of the
// wrong size are refused and change nothing.
TEST(HubNewton, TheHessiansGiveTheNewtonStepAtTheHubAndARiseIsDampedWithoutAnExchange) {
  HubOptions o = options();
  o.preconditioner = Preconditioner::automatic;
  HubCore hub(o);
  std::vector<Outgoing> out;
  start(hub, out, true);
  const std::string before = hub.snapshot();
  Status refused = hub.on_message("pa", answer(1, 2, 1, {1, -2, 0.5}, 2.0), 1.0, out);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.message().find("asked for the agent's Hessian"), std::string::npos)
      << refused.message();
  refused = hub.on_message("pa", answer(1, 2, 1, {1, -2, 0.5}, 2.0, {}, {1, 0, 1}), 1.0, out);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.message().find("hessian and diagonal of"), std::string::npos) << refused.message();
  EXPECT_EQ(hub.snapshot(), before);
  // Round 1 at w = 0: gradient sum 4 (1, -2, 0.5), F(0) = 40 / 4 (above the Newton step's model
  // decrease, 2.1: the damping stays 0).
  ASSERT_NO_FATAL_FAILURE(answer_first_gradient_round(hub, 10.0, out));
  const Eigen::Vector3d g(1, -2, 0.5);
  const Eigen::Matrix3d h = model_a() / 4.0 + 0.5 * Eigen::Matrix3d::Identity();
  auto starts = sent<msg::RoundStart>(out, "pa");
  ASSERT_EQ(starts.back()->round, 2u);
  EXPECT_EQ(starts.back()->kind, msg::RoundKind::gradient);  // no CG: the step is solved
  EXPECT_TRUE(starts.back()->hessian);
  const Eigen::Vector3d newton = -h.ldlt().solve(g);
  EXPECT_LE((hub.w() - newton).norm(), 1e-12);
  ASSERT_EQ(starts.back()->w.size(), 3u);
  EXPECT_EQ(Eigen::Vector3d(starts.back()->w[0], starts.back()->w[1], starts.back()->w[2]),
            hub.w());
  // Round 2: F rose (loss sums 400 against F(0) = 10). The hub damps the step itself.
  out.clear();
  ASSERT_TRUE(hub.on_message("pa", answer(2, 3, 1, {0, 0, 0}, 100.0, {}, kHessianA), 2.0, out));
  ASSERT_TRUE(hub.on_message("pb", answer(2, 3, 3, {0, 0, 0}, 300.0, {}, kHessianB), 2.0, out));
  starts = sent<msg::RoundStart>(out, "pa");
  ASSERT_EQ(starts.size(), 1u);
  EXPECT_EQ(starts[0]->kind, msg::RoundKind::gradient);
  EXPECT_TRUE(starts[0]->hessian);
  const double mu = 1e-3 * h.diagonal().maxCoeff();
  const Eigen::Vector3d damped = -(h + mu * Eigen::Matrix3d::Identity()).ldlt().solve(g);
  EXPECT_LE((hub.w() - damped).norm(), 1e-12);
  EXPECT_LT(damped.norm(), newton.norm());
  bool noted = false;
  for (const std::string& note : hub.take_notes())
    noted = noted || note.find("damping mu") != std::string::npos;
  EXPECT_TRUE(noted);
  // The state survives a checkpoint, the damping included.
  ASSERT_TRUE(hub.take_commit());
  HubCore copy(o);
  ASSERT_TRUE(copy.restore(hub.snapshot()));
  EXPECT_EQ(copy.snapshot(), hub.snapshot());
}

// A softmax Hessian travels as its class-pair blocks' distinct entries (protocol 11): with two
// classes one s x s block, B_01, whose negation is each diagonal block. The hub's Newton step is
// the one of the whole Hessian those blocks make; the whole triangle (protocol 10's upload) is
// refused with the sizes named, and changes nothing.
TEST(HubNewton, ASoftmaxHessianTravelsAsItsOffDiagonalClassBlock) {
  HubOptions o = options();
  o.preconditioner = Preconditioner::automatic;
  o = softmax_options(o);
  HubCore hub(o);
  std::vector<Outgoing> out;
  ASSERT_NO_FATAL_FAILURE(start_softmax_agent(hub, out));
  ASSERT_TRUE(sent<msg::RoundStart>(out, "pa").back()->hessian);
  // B_01 = -sum_i p_0 p_1 x_i x_i^T, 3 x 3, its upper triangle by rows.
  Eigen::Matrix3d b;
  b << -2, 0.5, 0.25, 0.5, -1, 0.125, 0.25, 0.125, -1.5;
  const std::vector<float> block = {-2, 0.5f, 0.25f, -1, 0.125f, -1.5f};
  const std::vector<double> g = {1, -1, 0.5, -0.5, 0.25, -0.25};  // w's layout: j * 2 + c
  const std::string before = hub.snapshot();
  const Status refused =
      hub.on_message("pa", answer(1, 2, 2, g, 2.0, {}, std::vector<float>(21, 1.0f)), 1.0, out);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.message().find("0 or 6"), std::string::npos) << refused.message();
  EXPECT_EQ(hub.snapshot(), before);
  out.clear();
  ASSERT_TRUE(hub.on_message("pa", answer(1, 2, 2, g, 2.0, {}, block), 1.0, out));
  // H (index j * 2 + c): block (c, c') = B_01 off the diagonal, -B_01 on it.
  Eigen::Matrix<double, 6, 6> h;
  for (int j = 0; j < 3; ++j)
    for (int l = 0; l < 3; ++l)
      for (int c = 0; c < 2; ++c)
        for (int c2 = 0; c2 < 2; ++c2) h(j * 2 + c, l * 2 + c2) = c == c2 ? -b(j, l) : b(j, l);
  const Eigen::Matrix<double, 6, 6> model =
      h / 2.0 + o.objective.lambda * Eigen::Matrix<double, 6, 6>::Identity();
  const Eigen::Matrix<double, 6, 1> grad =
      Eigen::Map<const Eigen::Matrix<double, 6, 1>>(g.data()) / 2.0;
  const auto starts = sent<msg::RoundStart>(out, "pa");
  ASSERT_EQ(starts.size(), 1u);
  EXPECT_EQ(starts[0]->kind, msg::RoundKind::gradient);
  EXPECT_LE((hub.w() - (-model.ldlt().solve(grad))).norm(), 1e-12);
}

// A gradient round some agent missed leaves the hub with the last Hessians, of another point:
// the step is then the CG's, whose product rounds measure H at the new point.
TEST(HubNewton, AfterAGradientRoundMissingAnAgentTheStaleHessiansOnlyPrecondition) {
  HubOptions o = options();
  o.preconditioner = Preconditioner::automatic;
  o.round_deadline = 1.0;
  HubCore hub(o);
  std::vector<Outgoing> out;
  start(hub, out, true);
  ASSERT_NO_FATAL_FAILURE(answer_first_gradient_round(hub, 10.0, out));
  ASSERT_EQ(sent<msg::RoundStart>(out, "pa").back()->kind, msg::RoundKind::gradient);
  out.clear();
  // Round 2 (opened at t = 1): only a answers before the deadline.
  ASSERT_TRUE(hub.on_message("pa", answer(2, 3, 1, {0.5, -1, 0.25}, 5.0, {}, kHessianA), 1.5, out));
  hub.on_tick(2.1, out);
  ASSERT_EQ(hub.round(), 3u);
  const auto next = sent<msg::RoundStart>(out, "pa");
  ASSERT_FALSE(next.empty());
  EXPECT_EQ(next.back()->kind, msg::RoundKind::product);
  EXPECT_FALSE(next.back()->hessian);
  EXPECT_EQ(next.back()->direction.size(), 3u);
  // A Hessian in a product round was not asked for: refused, nothing changes.
  const std::string before = hub.snapshot();
  const Status refused =
      hub.on_message("pa", answer(3, 4, 1, {0.1, 0.2, 0.3}, 0, {}, kHessianA), 2.2, out);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.message().find("did not ask for"), std::string::npos) << refused.message();
  EXPECT_TRUE(hub.snapshot() == before);
}

// --preconditioner diagonal (auto's choice on models too wide for the Hessians or the Gram, here
// asked for on d = 3): each gradient round asks for the diagonals of the agents' Hessians, and
// the first CG direction is -g / (sum_k diag_k / N + lambda).
TEST(HubNewton, TheDiagonalsPreconditionAndTravelOnlyInGradientRounds) {
  HubOptions o = options();
  o.preconditioner = Preconditioner::diagonal;
  HubCore hub(o);
  std::vector<Outgoing> out;
  ASSERT_TRUE(hub.on_message("pa", make_join("a", 1, 2.0), 0.0, out));
  ASSERT_TRUE(hub.on_message("pb", make_join("b", 3, 1.0), 0.0, out));
  out.clear();
  ASSERT_TRUE(hub.on_message("pa", msg::InitUpload{1, 1, {1, 2, 3}, 0.5, {}, 0, {}, {}, {}}, 0.0, out));
  ASSERT_TRUE(hub.on_message("pb", msg::InitUpload{1, 3, {3, 2, 1}, 1.5, {}, 0, {}, {}, {}}, 0.0, out));
  auto starts = sent<msg::RoundStart>(out, "pa");
  ASSERT_EQ(starts.size(), 1u);
  EXPECT_EQ(starts[0]->kind, msg::RoundKind::gradient);
  EXPECT_TRUE(starts[0]->diagonal);
  EXPECT_FALSE(starts[0]->gram);
  EXPECT_FALSE(starts[0]->hessian);
  const std::vector<float> diagonal_a = {1, 2, 4}, diagonal_b = {3, 6, 0};
  const std::string before = hub.snapshot();
  Status refused = hub.on_message("pa", answer(1, 2, 1, {1, -2, 0.5}, 2.0), 1.0, out);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.message().find("asked for the diagonal"), std::string::npos)
      << refused.message();
  refused = hub.on_message("pa", answer(1, 2, 1, {1, -2, 0.5}, 2.0, {}, {}, {1, 2}), 1.0, out);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.message().find("diagonal of"), std::string::npos) << refused.message();
  EXPECT_EQ(hub.snapshot(), before);
  out.clear();
  ASSERT_TRUE(hub.on_message("pa", answer(1, 2, 1, {1, -2, 0.5}, 2.0, {}, {}, diagonal_a), 1.0, out));
  ASSERT_TRUE(hub.on_message("pb", answer(1, 2, 3, {3, -6, 1.5}, 2.0, {}, {}, diagonal_b), 1.0, out));
  starts = sent<msg::RoundStart>(out, "pa");
  ASSERT_EQ(starts.size(), 1u);
  ASSERT_EQ(starts[0]->kind, msg::RoundKind::product);
  EXPECT_FALSE(starts[0]->diagonal);
  const Eigen::Vector3d g(1, -2, 0.5), d(4.0 / 4 + 0.5, 8.0 / 4 + 0.5, 4.0 / 4 + 0.5);
  const Eigen::Vector3d p(starts[0]->direction[0], starts[0]->direction[1],
                          starts[0]->direction[2]);
  EXPECT_LE((p + g.cwiseQuotient(d)).norm(), 1e-15);
  // A diagonal in a product round was not asked for; the state survives a checkpoint.
  out.clear();
  refused = hub.on_message("pa", answer(2, 3, 1, {0.1, 0.2, 0.3}, 0, {}, {}, diagonal_a), 2.0, out);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.message().find("did not ask for"), std::string::npos) << refused.message();
  HubCore copy(o);
  ASSERT_TRUE(copy.restore(hub.snapshot()));
  EXPECT_EQ(copy.snapshot(), hub.snapshot());
  // The rounds after the CG ask again.
  for (std::uint64_t round = 2; round < 10; ++round) {
    out.clear();
    const auto open = sent<msg::RoundStart>(
        (hub.on_message("pa", answer(round, round + 1, 1, {0.5, 0.25, 0.125}, 0), 2.0, out),
         hub.on_message("pb", answer(round, round + 1, 3, {1.5, 0.75, 0.375}, 0), 2.0, out), out),
        "pa");
    ASSERT_EQ(open.size(), 1u);
    if (open[0]->kind == msg::RoundKind::gradient) {
      EXPECT_TRUE(open[0]->diagonal);
      return;
    }
  }
  ADD_FAILURE() << "the CG did not end";
}

// Every loss is >= 0, so F is: a quadratic model that promises a decrease larger than F(w) is
// trusted too far. At w = 0 with F = 1 the Newton step's model decrease is 2.1: the hub raises mu
// (by 4s from 1e-3 max diag H) until the damped step's decrease is at most F, and no further.
TEST(HubNewton, TheDampedModelPromisesNoMoreThanF) {
  HubOptions o = options();
  o.preconditioner = Preconditioner::automatic;
  HubCore hub(o);
  std::vector<Outgoing> out;
  start(hub, out, true);
  ASSERT_NO_FATAL_FAILURE(answer_first_gradient_round(hub, 1.0, out));
  const Eigen::Vector3d g(1, -2, 0.5);
  const Eigen::Matrix3d h = model_a() / 4.0 + 0.5 * Eigen::Matrix3d::Identity();
  const auto decrease = [&](const Eigen::Vector3d& x) { return -(g.dot(x) + 0.5 * x.dot(h * x)); };
  const Eigen::Vector3d newton = -h.ldlt().solve(g);
  ASSERT_GT(decrease(newton), 1.0);
  const auto starts = sent<msg::RoundStart>(out, "pa");
  ASSERT_EQ(starts.back()->kind, msg::RoundKind::gradient);
  // The step from w = 0 is -(H + mu I)^{-1} g: mu from it.
  const Eigen::Vector3d p = hub.w();
  const double mu = -(g + h * p).dot(p) / p.squaredNorm();
  const double floor = 1e-3 * h.diagonal().maxCoeff();
  EXPECT_LE(((h + mu * Eigen::Matrix3d::Identity()) * p + g).norm(), 1e-12);
  EXPECT_LE(decrease(p), 1.0);
  // mu = floor 4^k, the first such one that keeps the promise.
  const double k = std::log(mu / floor) / std::log(4.0);
  EXPECT_NEAR(k, std::round(k), 1e-9);
  ASSERT_GE(k, 1.0);
  EXPECT_GT(decrease(-(h + mu / 4 * Eigen::Matrix3d::Identity()).ldlt().solve(g)), 1.0);
}

// An operator retires an agent mid-run: N drops, and the factors the hub keeps off the checkpoint
// (the Gram bound's, the Hessians' model) are of the old N. The live hub must go on as one
// restored from its checkpoint does, which builds them from the new N.
TEST(HubNewton, AfterARetireTheLiveHubStepsAsARestoredOne) {
  for (const Preconditioner asked : {Preconditioner::gram, Preconditioner::automatic}) {
    SCOPED_TRACE(to_string(asked));
    const bool hessian = asked == Preconditioner::automatic;
    HubOptions o = options();
    o.preconditioner = asked;
    HubCore hub(o);
    std::vector<Outgoing> out;
    start(hub, out, hessian);
    const std::vector<float> none, gram = {1, 0.5f, 0, 1, 0, 1},
                                   h = {1, 0.25f, 0, 0.75f, 0.25f, 0.5f};
    const auto gradient_answer = [&](std::uint64_t round, std::uint64_t seq, std::uint64_t n,
                                     double scale, bool with_gram) {
      return answer(round, seq, n, {scale * 1, scale * -2, scale * 0.5}, scale * 10.0,
                    with_gram ? gram : none, hessian ? h : none);
    };
    ASSERT_TRUE(hub.on_message("pa", gradient_answer(1, 2, 1, 1.0, !hessian), 1.0, out));
    ASSERT_TRUE(hub.on_message("pb", gradient_answer(1, 2, 3, 3.0, !hessian), 1.0, out));
    // The Gram's CG: its product rounds to the end of the CG (the hub factored the bound).
    for (std::uint64_t r = 2; !hessian && r < 20; ++r) {
      const auto open = sent<msg::RoundStart>(out, "pa");
      if (open.back()->kind != msg::RoundKind::product) break;
      const std::vector<double> p = open.back()->direction;  // a copy: out is cleared
      out.clear();
      ASSERT_TRUE(hub.on_message("pa", answer(r, r + 1, 1, {p[0], p[1], p[2]}, 0), 1.0, out));
      ASSERT_TRUE(hub.on_message("pb", answer(r, r + 1, 3, {3 * p[0], 3 * p[1], 3 * p[2]}, 0), 1.0, out));
    }
    ASSERT_TRUE(hub.retire("a"));
    ASSERT_TRUE(hub.take_commit());
    HubCore copy(o);
    ASSERT_TRUE(copy.restore(hub.snapshot()));
    // b joins both again, rebuilds its table and answers the open gradient round the same.
    for (HubCore* core : {&hub, &copy}) {
      std::vector<Outgoing> o2;
      ASSERT_TRUE(core->on_message("pc", make_join("b", 3, 1.0), 5.0, o2));
      ASSERT_TRUE(core->on_message("pc", msg::InitUpload{50, 3, {3, 2, 1}, 1.5, {}, 0, {}, {}, {}},
                                   5.0, o2));
      const auto open = sent<msg::RoundStart>(o2, "pc");
      ASSERT_FALSE(open.empty());
      ASSERT_EQ(open.back()->kind, msg::RoundKind::gradient);
      ASSERT_TRUE(core->on_message("pc", gradient_answer(open.back()->round, 51, 3, 2.0, false),
                                   6.0, o2));
    }
    EXPECT_TRUE(hub.snapshot() == copy.snapshot());  // (bytes: not printed)
    EXPECT_EQ(hub.w(), copy.w());
  }
}

// A round deadline with an agent missing: a partial product is another matrix, so the CG ends
// with the step it has (before any CG step: the first direction, the preconditioned gradient
// step); the next round is a gradient round at w_outer + that step.
TEST(HubNewton, AProductRoundMissingAnAgentEndsTheCgWithTheStepSoFar) {
  HubOptions o = options();
  o.round_deadline = 1.0;
  HubCore hub(o);
  std::vector<Outgoing> out;
  start(hub, out);
  const std::vector<float> gram_a = {1, 0, 0, 1, 0, 1}, gram_b = {2, 0, 0, 2, 0, 2};
  ASSERT_TRUE(hub.on_message("pa", answer(1, 2, 1, {1, -2, 0.5}, 2.0, gram_a), 1.0, out));
  ASSERT_TRUE(hub.on_message("pb", answer(1, 2, 3, {3, -6, 1.5}, 2.0, gram_b), 1.0, out));
  const auto starts = sent<msg::RoundStart>(out, "pa");
  ASSERT_EQ(starts.back()->kind, msg::RoundKind::product);
  const std::vector<double> p = starts.back()->direction;
  out.clear();
  // Round 2 opened at t = 1.
  ASSERT_TRUE(hub.on_message("pa", answer(2, 3, 1, {0.1, 0.2, 0.3}, 0), 1.5, out));
  hub.on_tick(1.9, out);  // within the deadline: still open
  ASSERT_EQ(hub.round(), 2u);
  hub.on_tick(2.1, out);  // past it, with one of two answers
  ASSERT_EQ(hub.round(), 3u);
  const auto next = sent<msg::RoundStart>(out, "pa");
  ASSERT_FALSE(next.empty());
  EXPECT_EQ(next.back()->kind, msg::RoundKind::gradient);
  for (int k = 0; k < 3; ++k) EXPECT_EQ(hub.w()[k], p[static_cast<std::size_t>(k)]) << k;
  // The missing agent's late answer is acknowledged and changes nothing.
  const Eigen::VectorXd w = hub.w();
  out.clear();
  ASSERT_TRUE(hub.on_message("pb", answer(2, 3, 3, {0.3, 0.6, 0.9}, 0), 4.0, out));
  EXPECT_EQ(sent<msg::Ack>(out, "pb").size(), 1u);
  EXPECT_EQ(hub.w(), w);
}

// auto chooses before the first round: Newton-CG where eta T lambda is tiny (a large L_max and a
// small lambda), two-level otherwise.
TEST(HubNewton, AutoStartsWithNewtonCgOnlyWhereLocalRunsCannotMoveFlatDirections) {
  // A model of d = 300 (at d * C <= 256 two-level's coarse space is the whole space: exact
  // Newton), and one too wide for the Gram (d = 1500), whose CG has the agents' diagonals.
  for (const std::uint32_t d : {300u, 1500u}) {
   for (const bool flat : {true, false}) {
    SCOPED_TRACE(std::to_string(d) + (flat ? " flat" : " well-conditioned"));
    HubOptions o = options();
    o.aggregation = Aggregation::automatic;
    o.preconditioner = Preconditioner::automatic;
    o.objective.lambda = flat ? 1e-4 : 0.5;
    HubCore hub(o);
    std::vector<Outgoing> out;
    // eta = 1 / L_max; T = n_k (1 and 3): eta T lambda = 3 lambda / (L_max + lambda).
    msg::Join a = make_join("a", 1, flat ? 500.0 : 1.0), b = make_join("b", 3, 1.0);
    a.features = b.features = d;
    ASSERT_TRUE(hub.on_message("pa", a, 0.0, out));
    ASSERT_TRUE(hub.on_message("pb", b, 0.0, out));
    const auto configs = sent<msg::Config>(out, "pa");
    ASSERT_EQ(configs.size(), 1u);
    EXPECT_EQ(configs[0]->two_level, !flat);
    bool noted = false;
    for (const std::string& note : hub.take_notes())
      noted = noted || note.find("Newton-CG from the start") != std::string::npos;
    EXPECT_EQ(noted, flat);
    if (!flat) continue;
    // The first round asks for the preconditioner's upload, and the hub names it.
    out.clear();
    const std::vector<double> zeros(d, 0.0);
    ASSERT_TRUE(hub.on_message("pa", msg::InitUpload{1, 1, zeros, 0.5, {}, 0, {}, {}, {}}, 0.0, out));
    ASSERT_TRUE(hub.on_message("pb", msg::InitUpload{1, 3, zeros, 1.5, {}, 0, {}, {}, {}}, 0.0, out));
    const auto starts = sent<msg::RoundStart>(out, "pa");
    ASSERT_EQ(starts.size(), 1u);
    EXPECT_EQ(starts[0]->kind, msg::RoundKind::gradient);
    EXPECT_EQ(starts[0]->diagonal, d > 1447);
    EXPECT_EQ(starts[0]->hessian, d <= 1447);
    bool diagonal = false;
    for (const std::string& note : hub.take_notes())
      diagonal = diagonal || note.find("on the diagonal of the agents' Hessians") != std::string::npos;
    EXPECT_EQ(diagonal, d > 1447);
   }
  }
}

// auto on a model too wide for the Gram upload (d = 1500 > 1447): two-level's rounds barely move
// F, the hub switches to Newton-CG, and its CG is preconditioned by the bound on two-level's basis
// (newton.hpp: coarse), not by plain CG: the first direction scales the basis's stiff direction
// apart from the rest. A hub restored from a checkpoint mid-CG rebuilds it and sends the same
// next direction, bit for bit.
TEST(HubNewton, AutoSwitchOnAWideModelPreconditionsWithTheCoarseBasis) {
  const Index d = 1500;
  HubOptions o;  // aggregation auto
  o.objective.loss = Loss::logistic;
  // eta T lambda = 3 lambda / (2 + lambda) = 0.015: not flat enough for Newton-CG from the start.
  o.objective.lambda = 1e-2;
  o.expected_agents = 2;
  o.max_rounds = 40;
  o.compression = msg::Encoding::f64;
  HubCore hub(o);
  std::vector<Outgoing> out;
  const auto join = [&](HubCore& core, const PeerId& peer, const char* id, std::uint64_t n,
                        std::vector<Outgoing>& o2) {
    msg::Join j = make_join(id, n, 2.0);
    j.features = d;
    ASSERT_TRUE(core.on_message(peer, j, 0.0, o2));
  };
  join(hub, "pa", "a", 1, out);
  join(hub, "pb", "b", 3, out);
  // Each agent's top eigenvector: e_0 (curvature 8) and e_1 (curvature 4); little outside them.
  for (int k = 0; k < 2; ++k) {
    msg::InitUpload init{1, k == 0 ? 1u : 3u, std::vector<double>(d, 0.0), k == 0 ? 0.7 : 2.1,
                         {k == 0 ? 8.0 : 4.0}, 0.01, std::vector<double>(d, 0.0), {}, {}};
    init.eigenvectors[k] = 1.0;
    ASSERT_TRUE(hub.on_message(k == 0 ? "pa" : "pb", init, 0.0, out));
  }
  ASSERT_EQ(hub.phase(), HubCore::Phase::training);
  // Two-level rounds whose F = (sum of losses) / N falls by 5% of the gap a round: the switch.
  const auto run_update = [&](std::uint64_t r, std::uint64_t n, double loss) {
    msg::Update u;
    u.round = r;
    u.seq = r + 1;
    u.samples = n;
    u.steps = n;
    u.loss_sum = loss;
    u.dw.assign(d, 0.0);
    u.dS.assign(d, 0.0);
    u.coarse_g = {0.0, 0.0};
    u.coarse_h = {1.0, 0.0, 1.0};
    return u;
  };
  std::uint64_t r = 1;
  bool gradient_round = false;
  for (; r <= 12 && !gradient_round; ++r) {
    const double f = 0.5 + 0.2 * std::pow(0.95, static_cast<double>(r));
    out.clear();
    ASSERT_TRUE(hub.on_message("pa", run_update(r, 1, f), 1.0, out));
    ASSERT_TRUE(hub.on_message("pb", run_update(r, 3, 3 * f), 1.0, out));
    const auto next = sent<msg::RoundStart>(out, "pa");
    ASSERT_EQ(next.size(), 1u) << "round " << r;
    gradient_round = next[0]->kind == msg::RoundKind::gradient;
  }
  ASSERT_TRUE(gradient_round);
  bool noted = false;
  for (const std::string& note : hub.take_notes())
    noted = noted || note.find("bounded on two-level's basis") != std::string::npos;
  EXPECT_TRUE(noted);
  // The gradient round: g = (1, 1, 1, 0, ...) / N.
  std::vector<double> g(d, 0.0);
  g[0] = g[1] = g[2] = 1.0;
  out.clear();
  ASSERT_TRUE(hub.on_message("pa", answer(r, r + 1, 1, g, 0.5), 2.0, out));
  ASSERT_TRUE(hub.on_message("pb", answer(r, r + 1, 3, std::vector<double>(d, 0.0), 1.5), 2.0, out));
  ++r;
  auto starts = sent<msg::RoundStart>(out, "pa");
  ASSERT_EQ(starts.size(), 1u);
  ASSERT_EQ(starts[0]->kind, msg::RoundKind::product);
  const std::vector<double> p = starts[0]->direction;
  ASSERT_EQ(p.size(), static_cast<std::size_t>(d));
  // Plain CG would start along -g: equal entries. The bound scales each direction by its
  // curvature: e_0 by beta 2 + lambda (a's 8 at weight 1/4), e_1 by beta 3 + lambda (b's 4 at
  // 3/4), e_2 by what is left outside the basis, far less.
  const double beta = 0.25, lambda = o.objective.lambda;
  EXPECT_NEAR(p[0], -0.25 / (beta * 2 + lambda), 1e-12);
  EXPECT_NEAR(p[1], -0.25 / (beta * 3 + lambda), 1e-12);
  EXPECT_LT(p[2], 10 * p[0]);
  // A checkpoint now; the next product round's direction from the hub and from its copy.
  ASSERT_TRUE(hub.take_commit());
  HubCore resumed(o);
  ASSERT_TRUE(resumed.restore(hub.snapshot()));
  std::vector<Outgoing> out2;
  join(resumed, "qa", "a", 1, out2);
  join(resumed, "qb", "b", 3, out2);
  std::vector<double> hp(d, 0.0);
  for (Index i = 0; i < d; ++i) hp[static_cast<std::size_t>(i)] = (i % 3 + 1) * p[static_cast<std::size_t>(i)];
  out.clear();
  out2.clear();
  for (auto [core, o2, pa, pb] : {std::make_tuple(&hub, &out, "pa", "pb"),
                                  std::make_tuple(&resumed, &out2, "qa", "qb")}) {
    ASSERT_TRUE(core->on_message(pa, answer(r, r + 1, 1, hp, 0.0), 3.0, *o2));
    ASSERT_TRUE(core->on_message(pb, answer(r, r + 1, 3, std::vector<double>(d, 0.0), 0.0), 3.0, *o2));
  }
  starts = sent<msg::RoundStart>(out, "pa");
  const auto again = sent<msg::RoundStart>(out2, "qa");
  ASSERT_EQ(starts.size(), 1u);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(starts[0]->kind, again[0]->kind);
  EXPECT_EQ(starts[0]->direction, again[0]->direction);
  EXPECT_EQ(hub.snapshot(), resumed.snapshot());
}

}  // namespace newton_cg

}  // namespace
}  // namespace dsaga
