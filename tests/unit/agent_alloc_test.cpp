// The agent's steady state allocates nothing on the heap (issue 6): after a warm-up round, every
// further round — RoundStart bytes decoded (wire::Decoder), AgentCore's local steps and Update
// (on_message into an Outbox), the Update encoded into a reused buffer (wire::encode), and the
// Ack that follows — makes zero calls to operator new or malloc, for every algorithm and storage.
//
// Not covered: what the transport does around these bytes (libzmq allocates its own message
// buffers for every send and receive, and ClientSocket::receive copies into the payload vector),
// and the daemon's per-round callback (metrics, logging). run_agent must use the Decoder and the
// Outbox for the daemon's loop to be allocation-free up to the transport.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "dsaga/agent.hpp"
#include "dsaga/coarse.hpp"
#include "dsaga/compress.hpp"
#include "dsaga/dataset.hpp"
#include "dsaga/messages.hpp"
#include "dsaga/newton.hpp"
#include "dsaga/objective.hpp"
#include "dsaga/rng.hpp"
#include "dsaga/wire.hpp"

// --- allocation counting (this test executable only) -------------------------------------------
// alloc_counter.hpp, as in saga_test.cpp. The controls below prove the counter sees both kinds
// (operator new and malloc), and that it sees the allocations of the non-reusing round path.
#include "alloc_counter.hpp"

namespace dsaga {
namespace {

constexpr int kRounds = 6;  // counted rounds, after the warm-up round

// Counts the allocations made while it is alive (on any thread; the test runs one).
class Counting {
 public:
  Counting() {
    g_allocations = 0;
    g_counting = true;
  }
  ~Counting() { g_counting = false; }
  long count() const { return g_allocations.load(); }
};

// n x d problem with labels for `objective` (logistic: +-1; multinomial: 0..C-1).
Dataset problem(Index n, Index d, const Objective& objective, std::uint64_t seed) {
  Rng rng(seed);
  DenseMatrix<double> X(n, d);
  Eigen::VectorXd y(n);
  for (Index i = 0; i < n; ++i) {
    for (Index k = 0; k < d; ++k) X(i, k) = rng.uniform() < 0.3 ? rng.uniform() * 2 - 1 : 0.0;
    y[i] = objective.loss == Loss::multinomial
               ? static_cast<double>(rng.below(static_cast<std::uint64_t>(objective.classes)))
               : (rng.uniform() < 0.5 ? -1.0 : 1.0);
  }
  Dataset data;
  data.X = X;
  data.y = y;
  data.source = "agent_alloc_test";
  return data;
}

std::vector<double> random_vector(std::size_t n, std::uint64_t seed, double scale) {
  Rng rng(seed);
  std::vector<double> v(n);
  for (double& x : v) x = scale * (rng.uniform() * 2 - 1);
  return v;
}

// FNV-1a of an encoded message: compares the Updates of two runs without storing them.
std::uint64_t fingerprint(const std::vector<std::uint8_t>& bytes) {
  std::uint64_t h = 1469598103934665603ULL;
  for (std::uint8_t b : bytes) h = (h ^ b) * 1099511628211ULL;
  return h;
}

// The hub's side of a session, as bytes: Config, then for round r = 1..1+kRounds a RoundStart
// (a different w and gbar every round) and the Ack of the agent's Update (seq r + 1: the
// InitUpload is seq 1), plus a Heartbeat between rounds.
struct HubScript {
  std::vector<std::uint8_t> config, init_ack, heartbeat;
  std::vector<std::vector<std::uint8_t>> round_start, ack;
};

// changes: rounds after the first carry the broadcast as q8 changes on the round before
// (RoundStart.base, the default compressed broadcast) instead of w and gbar.
HubScript script(const Dataset& data, const Objective& objective, msg::Algorithm algorithm,
                 bool changes = false) {
  const std::size_t dim = static_cast<std::size_t>(data.cols() * objective.classes);
  HubScript s;
  msg::Config config;
  config.algorithm = algorithm;
  config.total_samples = static_cast<std::uint64_t>(3 * data.rows());
  config.features = static_cast<std::uint32_t>(data.cols());
  config.classes = static_cast<std::uint32_t>(objective.classes);
  config.loss = objective.loss;
  config.lambda = 1e-3;
  config.eta = 0.05;
  config.steps = static_cast<std::uint64_t>(data.rows());
  config.seed = 11;
  config.build_table = true;
  config.w = random_vector(dim, 1, 0.1);
  s.config = wire::encode(config);
  s.init_ack = wire::encode(msg::Ack{0, 1});
  s.heartbeat = wire::encode(msg::Heartbeat{1});
  for (int r = 1; r <= 2 + kRounds; ++r) {
    msg::RoundStart start;
    start.round = static_cast<std::uint64_t>(r);
    start.w = random_vector(dim, 100 + r, 0.1);
    start.gbar = random_vector(dim, 200 + r, 0.01);
    if (changes && r > 1) {
      start.base = start.round - 1;
      compress::quantize(start.w.data(), dim, start.w_delta);
      compress::quantize(start.gbar.data(), dim, start.gbar_delta);
      start.w.clear();
      start.gbar.clear();
    }
    s.round_start.push_back(wire::encode(start));
    s.ack.push_back(wire::encode(msg::Ack{start.round, static_cast<std::uint64_t>(r + 1)}));
  }
  return s;
}

struct Case {
  const char* name;
  msg::Algorithm algorithm;
  Objective objective;
  Storage storage;
  Precision precision;
};

std::vector<Case> cases() {
  const Objective logistic{Loss::logistic, 0.0, 1};
  const Objective multinomial{Loss::multinomial, 0.0, 3};
  return {
      {"dsaga dense f64", msg::Algorithm::dsaga, logistic, Storage::dense, Precision::f64},
      {"dsaga dense f32", msg::Algorithm::dsaga, logistic, Storage::dense, Precision::f32},
      {"dsaga sparse f64", msg::Algorithm::dsaga, logistic, Storage::sparse, Precision::f64},
      {"dsaga dense multinomial", msg::Algorithm::dsaga, multinomial, Storage::dense,
       Precision::f64},
      {"fedavg dense f64", msg::Algorithm::fedavg, logistic, Storage::dense, Precision::f64},
      {"scaffold sparse f32", msg::Algorithm::scaffold, logistic, Storage::sparse, Precision::f32},
      {"gd dense f64", msg::Algorithm::gd, logistic, Storage::dense, Precision::f64},
  };
}

// d = 300: an Update of 2 x 300 doubles outgrows the builder's initial 4 KiB, so the warm-up
// round really does grow the buffers the counted rounds then reuse.
Dataset data_for(const Case& c) {
  return convert(problem(120, 300, c.objective, 5), c.storage, c.precision);
}

TEST(AgentAlloc, SteadyStateRoundAllocatesNothing) {
  if (!kCountsAllocations) GTEST_SKIP() << "a sanitizer owns malloc: nothing to count with";
  for (const bool changes : {false, true})
  for (const Case& c : cases()) {
    SCOPED_TRACE(std::string(c.name) + (changes ? ", broadcast as changes" : ""));
    const Dataset data = data_for(c);
    const HubScript hub = script(data, c.objective, c.algorithm, changes);
    // Warm-up rounds: the first, and with changes the first one of those too.
    const int warm = changes ? 2 : 1;
    AgentCore core(data, c.objective, AgentOptions{"agent-1", 7});
    wire::Decoder decoder;
    Outbox out;
    std::vector<std::uint8_t> sent;

    // Warm-up: Config -> InitUpload, its Ack, round 1 -> Update, its Ack, a Heartbeat.
    const auto deliver = [&](const std::vector<std::uint8_t>& bytes) {
      const Status decoded = decoder.decode(bytes.data(), bytes.size());
      ASSERT_TRUE(decoded) << decoded.message();
      out.clear();
      const Status status = core.on_message(decoder.message(), out);
      ASSERT_TRUE(status) << status.message();
    };
    deliver(hub.config);
    ASSERT_EQ(out.size(), 1u);
    ASSERT_TRUE(std::holds_alternative<msg::InitUpload>(out[0]));
    deliver(hub.init_ack);
    for (int w = 0; w < warm; ++w) {
      deliver(hub.round_start[w]);
      ASSERT_EQ(out.size(), 1u);
      ASSERT_TRUE(std::holds_alternative<msg::Update>(out[0]));
      wire::encode(out[0], sent);
      deliver(hub.ack[w]);
    }
    deliver(hub.heartbeat);
    ASSERT_EQ(core.pending(), nullptr);

    // Counted rounds. Results go to preallocated arrays and are checked afterwards, so nothing
    // in the loop allocates unless the code under test does.
    std::vector<std::uint64_t> rounds(kRounds), seqs(kRounds), prints(kRounds);
    std::vector<std::size_t> replies(kRounds), after_ack(kRounds);
    std::vector<char> ok(kRounds, 0);
    long allocations = 0;
    {
      Counting counting;
      for (int k = 0; k < kRounds; ++k) {
        const auto& start = hub.round_start[warm + k];
        bool good = decoder.decode(start.data(), start.size()).is_ok();
        out.clear();
        good = good && core.on_message(decoder.message(), out).is_ok();
        replies[k] = out.size();
        if (out.size() == 1) {
          if (const auto* update = std::get_if<msg::Update>(&out[0])) {
            rounds[k] = update->round;
            seqs[k] = update->seq;
          }
          wire::encode(out[0], sent);
          prints[k] = fingerprint(sent);
        }
        const auto& ack = hub.ack[warm + k];
        good = good && decoder.decode(ack.data(), ack.size()).is_ok();
        out.clear();
        good = good && core.on_message(decoder.message(), out).is_ok();
        good = good && decoder.decode(hub.heartbeat.data(), hub.heartbeat.size()).is_ok();
        good = good && core.on_message(decoder.message(), out).is_ok();
        after_ack[k] = out.size() + (core.pending() != nullptr ? 1 : 0);
        ok[k] = good;
      }
      allocations = counting.count();
    }
    EXPECT_EQ(allocations, 0);

    // The counted rounds did the work: one Update per round, acknowledged, and byte-identical
    // to what the std::vector<msg::Message> interface and wire::decode produce for the same
    // hub messages (a second agent, uncounted).
    AgentCore reference(data, c.objective, AgentOptions{"agent-1", 7});
    std::vector<msg::Message> ref_out;
    const auto ref_deliver = [&](const std::vector<std::uint8_t>& bytes) {
      auto message = wire::decode(bytes.data(), bytes.size());
      ASSERT_TRUE(message) << message.error();
      ref_out.clear();
      ASSERT_TRUE(reference.on_message(*message, ref_out));
    };
    ref_deliver(hub.config);
    ref_deliver(hub.init_ack);
    for (int w = 0; w < warm; ++w) {
      ref_deliver(hub.round_start[w]);
      ref_deliver(hub.ack[w]);
    }
    for (int k = 0; k < kRounds; ++k) {
      SCOPED_TRACE("round " + std::to_string(warm + k + 1));
      EXPECT_TRUE(ok[k]);
      EXPECT_EQ(replies[k], 1u);
      EXPECT_EQ(rounds[k], static_cast<std::uint64_t>(warm + k + 1));
      EXPECT_EQ(seqs[k], static_cast<std::uint64_t>(warm + k + 2));
      EXPECT_EQ(after_ack[k], 0u);  // acknowledged: nothing pending, no reply to Ack/Heartbeat
      ref_deliver(hub.round_start[warm + k]);
      ASSERT_EQ(ref_out.size(), 1u);
      EXPECT_EQ(fingerprint(wire::encode(ref_out[0])), prints[k]);
      ref_deliver(hub.ack[warm + k]);
    }
  }
}

// Negative control: the same rounds through the non-reusing path (wire::decode into a fresh
// message, a std::vector<msg::Message> cleared every round) allocate, and the counter sees it;
// so does it see a bare operator new and an Eigen (malloc) allocation. Without these the zero
// above could come from a counter that counts nothing.
TEST(AgentAlloc, CounterSeesTheAllocationsOfTheNonReusingPath) {
  if (!kCountsAllocations) GTEST_SKIP() << "a sanitizer owns malloc: nothing to count with";
  const Case c = cases()[0];
  const Dataset data = data_for(c);
  const HubScript hub = script(data, c.objective, c.algorithm);
  AgentCore core(data, c.objective, AgentOptions{"agent-1", 7});
  std::vector<msg::Message> out;
  std::vector<std::uint8_t> sent;
  const auto deliver = [&](const std::vector<std::uint8_t>& bytes) {
    auto message = wire::decode(bytes.data(), bytes.size());
    ASSERT_TRUE(message) << message.error();
    out.clear();
    ASSERT_TRUE(core.on_message(*message, out));
    for (const msg::Message& m : out) wire::encode(m, sent);
  };
  deliver(hub.config);
  deliver(hub.init_ack);
  deliver(hub.round_start[0]);
  deliver(hub.ack[0]);
  long allocations = 0;
  {
    Counting counting;
    deliver(hub.round_start[1]);
    deliver(hub.ack[1]);
    allocations = counting.count();
  }
  // At least the decoded w and gbar and the Update's dw and dS.
  EXPECT_GE(allocations, 4);

  {
    Counting counting;
    int* p = new int(3);
    volatile int sink = *p;
    (void)sink;
    delete p;
    EXPECT_GE(counting.count(), 1);  // operator new, and the malloc under it on glibc
  }
#if defined(__GLIBC__)
  {
    Counting counting;
    Eigen::VectorXd v = Eigen::VectorXd::Constant(64, 1.0);
    volatile double sink = v.sum();
    (void)sink;
    EXPECT_GT(counting.count(), 0);
  }
#endif
}

// A Newton-CG gradient round that asks for the diagonal of the agent's Hessian part is answered
// with g_k and that diagonal (newton.hpp), and a run round after it carries neither, nor the
// Hessian (the Update is built in the same slot: a hub started afresh in another mode).
TEST(AgentNewton, TheDiagonalAnswersItsGradientRoundAndNoRunRoundAfter) {
  const Case c = cases()[3];  // dense multinomial, C = 3
  const Dataset data = data_for(c);
  const HubScript hub = script(data, c.objective, c.algorithm);
  AgentCore core(data, c.objective, AgentOptions{"agent-1", 7});
  std::vector<msg::Message> out;
  const auto deliver = [&](const msg::Message& message) {
    out.clear();
    const Status status = core.on_message(message, out);
    ASSERT_TRUE(status) << status.message();
  };
  const auto decoded = [](const std::vector<std::uint8_t>& bytes) {
    auto m = wire::decode(bytes.data(), bytes.size());
    EXPECT_TRUE(m) << m.error();
    return *m;
  };
  deliver(decoded(hub.config));
  deliver(decoded(hub.init_ack));
  const std::size_t dim = static_cast<std::size_t>(data.cols() * c.objective.classes);
  msg::RoundStart gradient;
  gradient.round = 1;
  gradient.kind = msg::RoundKind::gradient;
  gradient.diagonal = true;
  gradient.w = random_vector(dim, 5, 0.3);
  deliver(gradient);
  ASSERT_EQ(out.size(), 1u);
  ASSERT_TRUE(std::holds_alternative<msg::Update>(out[0]));
  const msg::Update& answer = std::get<msg::Update>(out[0]);
  Objective objective = c.objective;
  objective.lambda = 1e-3;
  newton::AgentCurvature curvature;
  Eigen::VectorXd g;
  curvature.gradient(data, objective, Eigen::Map<const Eigen::VectorXd>(gradient.w.data(),
                                                                       static_cast<Index>(dim)),
                     g);
  std::vector<float> want;
  curvature.hessian_diagonal(data, objective, coarse::support_of(data), want);
  EXPECT_EQ(answer.diagonal, want);
  EXPECT_TRUE(answer.hessian.empty());
  EXPECT_EQ(answer.product.size(), dim);
  deliver(msg::Ack{1, answer.seq});
  // The run round of script's round 2.
  msg::Message run = decoded(hub.round_start[1]);
  std::get<msg::RoundStart>(run).round = 2;
  deliver(run);
  ASSERT_EQ(out.size(), 1u);
  const msg::Update& update = std::get<msg::Update>(out[0]);
  EXPECT_EQ(update.round, 2u);
  EXPECT_TRUE(update.diagonal.empty());
  EXPECT_TRUE(update.hessian.empty());
  EXPECT_TRUE(update.product.empty());
  EXPECT_EQ(update.dw.size(), dim);
}

}  // namespace
}  // namespace dsaga
