// The hub's state machine: admission, the init round, synchronous rounds, aggregation and the
// table-average invariant (ALGORITHM.md section 3). It knows nothing of sockets or bytes: the
// transport adapter feeds it decoded messages with the sender's opaque PeerId and a clock
// reading, and sends what it appends to `out`. So the same logic runs under unit tests, over
// ZeroMQ inproc:// and over tcp://.
//
// Invariant, after every message and tick (S_k and gbar always change together):
//     gbar == (1/N) * sum_k S_k
// where S_k is the hub's copy of agent k's table sum (init upload plus every applied dS_k).
// Every dS_k is applied exactly once: updates carry (agent, seq); a repeated seq is acknowledged
// again and not applied; an update of the open round is held until the round closes; a late
// update (round already closed) still has its dS_k applied while its dw_k is dropped; a seq gap
// (a lost update) makes the agent rebuild its table, whose InitUpload replaces S_k wholesale.
// check_invariant() recomputes the right-hand side from the S_k.
//
// Determinism: updates of a round are aggregated in the order of agent ids, not of arrival,
// so the same seeds give the same model whatever the network does.
//
// Rejected messages (wrong dimension, wrong round, replay, not admitted, ...) return an error
// Status naming the reason and leave the state unchanged; the caller logs them and may answer
// with msg::Error.
#pragma once

#include <Eigen/Dense>

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dsaga/coarse.hpp"
#include "dsaga/messages.hpp"
#include "dsaga/newton.hpp"
#include "dsaga/objective.hpp"
#include "dsaga/peer.hpp"
#include "dsaga/status.hpp"
#include "dsaga/validation.hpp"

namespace dsaga {

struct Outgoing {
  std::vector<PeerId> to;  // one message, encoded once, sent to each
  msg::Message message;
};

// How the hub combines the agents' updates (ALGORITHM.md sections 3 and 7).
//   two_level: dSAGA's default. Synchronous rounds in which every agent runs locally on its
//          table as the hub counted it, then refreshes its whole table at w_r and reports its
//          gradient and Hessian in the coarse space U (coarse.hpp); the hub takes an exact
//          Newton step in U and the weighted mean of the runs outside it plus heavy-ball
//          momentum there, under a guard that returns to the previous w and halves the step
//          when F rose by more than it fell the round before.
//   mean:  plain dSAGA (the paper's) and the baselines: synchronous rounds;
//          w <- w + eta_g * sum_k (n_k / N_r) dw_k once a round closes.
//   async: each update is applied the moment it arrives, w <- w + eta_g * (n_k / N) dw_k
//          (eta_g = K applies every dw_k in full), and only its sender is answered, with the
//          fresh (w, gbar). An update whose starting model is more than max_staleness updates
//          old has its dw_k dropped (its dS_k is still applied, exactly once). dSAGA only.
//   newton_cg: distributed Newton-CG (newton.hpp, ALGORITHM.md section 7.3): each outer round
//          gathers F and the gradient at w_r, then solves the Newton system by preconditioned CG,
//          one exchange (one protocol round) per CG step; the step is halved while F rises. The
//          agents' tables are left as they are (no local runs).
//   automatic: for dsaga two_level, switching to newton_cg once by itself when the rounds show
//          the flat-curvature regime (hub_two_level.cpp: the median ratio of successive decreases
//          of F over the last kSwitchWindow rounds above kSwitchRatio); mean for the baselines.
enum class Aggregation : std::uint8_t {
  mean = 0,
  async = 1,
  two_level = 2,
  automatic = 3,
  newton_cg = 4,
};
const char* to_string(Aggregation aggregation);
// "auto" | "two-level" | "newton-cg" | "mean" | "async"
Result<Aggregation> parse_aggregation(const std::string& text);

// Newton-CG's preconditioner (newton.hpp): automatic = the agents' Hessians, damped, where their
// upload each gradient round is affordable (d*C <= newton::max_gram_columns(); not for
// the squared loss), else the Gram bound where its one-time d x d upload is (d <=
// newton::max_gram_columns()), else that bound approximated on two-level's basis where the run
// switched from two-level, else `diagonal`: the diagonals of the agents' Hessians each gradient
// round (d*C floats) as the initial matrix of the previous CG's curvature pairs. hessian and gram
// name the first two (each falls back as automatic where it is not affordable); pairs is the
// pairs alone, nothing uploaded.
enum class Preconditioner : std::uint8_t {
  automatic = 0,
  gram = 1,
  pairs = 2,
  hessian = 3,
  diagonal = 4
};
const char* to_string(Preconditioner preconditioner);
// "auto" | "hessian" | "gram" | "diagonal" | "pairs"
Result<Preconditioner> parse_preconditioner(const std::string& text);

struct HubOptions {
  msg::Algorithm algorithm = msg::Algorithm::dsaga;
  Aggregation aggregation = Aggregation::automatic;
  Aggregation effective_aggregation() const {
    if (aggregation != Aggregation::automatic) return aggregation;
    return algorithm == msg::Algorithm::dsaga ? Aggregation::two_level : Aggregation::mean;
  }
  // two_level: the dimension m of the coarse space; 0 = chosen by the stability rule from the
  // spectrum the agents upload (coarse.hpp), or the whole space when d * C <= 256. A value >= d
  // makes it the whole space (exact distributed Newton steps, no local runs).
  int coarse_rank = 0;
  // newton_cg (and auto once it runs Newton-CG): the CG's preconditioner. gram is refused for a
  // model wider than newton::max_gram_columns() (the hub then uses pairs and says so).
  Preconditioner preconditioner = Preconditioner::automatic;
  // How the agents round the deltas they send (Update.dw, dS), with error feedback so the
  // accounting stays exact (compress.hpp): f64 (as they are), f32, q8 (8 bits and a scale per
  // 64 entries). Other than f64, two-level's curvature payloads (basis, eigenvectors, coarse
  // Hessians) travel in floats too. With q8 the synchronous run rounds' broadcast travels as q8
  // changes with the hub's error feedback (HubCore: the compressed broadcast).
  msg::Encoding compression = msg::Encoding::q8;
  // async: the most updates applied between an agent's starting model and its update for the
  // update's dw to be used; 0 = twice the number of agents.
  std::uint64_t max_staleness = 0;
  Objective objective;            // loss, lambda, classes; every Join must agree
  Index features = 0;             // d; 0 = the widest agent's (narrower LIBSVM agents widen)
  int expected_agents = 1;        // training starts when this many have joined...
  int min_agents = 0;             // ...or, after admission_timeout seconds, this many (0 = all)
  double admission_timeout = 0.0;
  double eta = 0.0;               // local step; 0 = 1 / (3 * global L_max) (two_level: 1 / L_max,
                                  // lowered if the stability rule asks for it)
  double server_step = 1.0;       // eta_g
  double prox = 0.0;              // mu of the agents' local proximal term (local_method.hpp)
  // mean/async dSAGA: fraction of each agent's own table recomputed at the broadcast w every
  // round (local_method.hpp: refresh; 0 = none). Two-level rounds always refresh the whole
  // table, and the configuration refuses a fraction with them.
  double table_refresh = 0.0;
  double effective_table_refresh() const {
    return algorithm == msg::Algorithm::dsaga ? table_refresh : 0.0;
  }
  Index local_steps = 0;          // T; 0 = one local epoch (n_k for each agent)
  std::uint64_t seed = 0;         // agent k samples with agent_seed(seed, agent_id)
  std::uint64_t max_rounds = 100;
  double f_star = std::numeric_limits<double>::quiet_NaN();  // reference optimum, if known
  double target = 0.0;            // stop when (F - F*) / F* <= target (needs f_star)
  double round_deadline = 0.0;    // seconds; 0 = wait for every agent
  int min_participants = 1;       // a round closes at its deadline only with this many updates
  double invariant_tolerance = 1e-9;  // on ||gbar - sum S_k / N||_inf / max(1, ||gbar||_inf)
  // Rejects an update whose ||dw||_2 or ||dS||_2 / n_k is above this (0 = no bound): a poisoned
  // or corrupted update cannot move the model arbitrarily far.
  double max_update_norm = 0.0;
  // dSAGA in synchronous rounds (mean, two-level): a sparse agent's vectors travel restricted to
  // the columns its rows touch (support.hpp); the hub computes what its run did elsewhere.
  // false: every message carries the full d * C (for comparison; the results are the same to
  // rounding).
  bool restrict_to_support = true;
};

// One line of progress, produced when a round closes.
struct RoundReport {
  std::uint64_t round = 0;
  // The vector bytes of every message so far by part, received from and sent to all agents
  // (msg::PartBytes; filled in by the hub's service loop, which sees the wire).
  msg::PartBytes parts_up, parts_down;
  int agents = 0;        // admitted
  int participants = 0;  // updates aggregated into this round's w
  // F(w_r) at the round's broadcast w, from the agents' loss sums; NaN unless every agent
  // reported for this round.
  double objective = std::numeric_limits<double>::quiet_NaN();
  double suboptimality = std::numeric_limits<double>::quiet_NaN();  // (F - F*) / F*
  double invariant_error = 0.0;
  double seconds = 0.0;  // wall time of the round
  std::uint64_t local_steps = 0;  // summed over participants
  int late_updates = 0;           // updates of earlier rounds received during this one
  // async: updates applied during this round, and those whose dw was dropped as too stale.
  int updates = 0;
  int stale_dropped = 0;
  // two_level: the guard's scale of the local step and the coarse step this round set (1 =
  // full), and whether it sent the model back to the previous round's w.
  double step_scale = 1.0;
  bool reverted = false;
  // The mode that ran the round (auto: two-level, then Newton-CG once switched) and what the
  // round asked of the agents (a local run, or a Newton-CG gradient or product exchange).
  Aggregation mode = Aggregation::mean;
  msg::RoundKind kind = msg::RoundKind::run;
  std::uint64_t cg_steps = 0;  // newton_cg, on a product round: the CG steps of this outer round so far
  // Held-out validation at the round's broadcast w (the point of `objective`), from the counts
  // the agents' updates of this round carried (validation.hpp); examples 0 when none did.
  // Sync modes sum the updates the round aggregates; async the updates whose loss went into F.
  ValidationFigures validation;
  // ||grad F(w_r)||_2 where the hub knows it exactly, else NaN. Two-level rounds in which every
  // agent's update arrived: each agent recomputed its whole table at w_r, so after the round's
  // dS, gbar = (1/N) sum_i grad loss_i(w_r) and grad F(w_r) = gbar + lambda w_r. Newton-CG
  // gradient rounds with every agent: the gradient they sent. In the other modes the table
  // holds gradients at older points (gbar is not a gradient at any w). With a compressed
  // encoding (compression q8 or f32) the two-level figure is that of the gbar the hub holds,
  // which lags the exact one by the agents' residuals (sum_k r_k / N, each entry of r_k at most
  // half a rounding step of the agent's last dS, compress.hpp); Newton-CG's stays exact.
  double gradient_norm = std::numeric_limits<double>::quiet_NaN();
};

// The sampling seed of an agent: a fixed function of the run's seed and the agent id, the same
// on every platform.
std::uint64_t agent_seed(std::uint64_t run_seed, const std::string& agent_id);

// How training ended, for what a daemon decides (exit status, alerts); finish_reason() is the
// same in words, for people.
enum class Outcome : std::uint8_t {
  running,         // not finished
  target_reached,  // (F - F*) / F* <= target
  round_cap,       // max_rounds rounds closed
  below_f_star,    // F fell below the given F*: it is not this problem's optimum
  diverged,        // F, or an agent's local iterate, is no longer finite
  stopped,         // HubCore::stop: an operator ended training
};
const char* to_string(Outcome outcome);

struct Refusal;  // a refused message's code and reason (hub_mode.hpp)

class HubCore {
 public:
  enum class Phase { admitting, initializing, training, finished };

  explicit HubCore(HubOptions options);

  // Error statuses name the reason ("Update from agent 'pi-3' for round 7, the open round is
  // 9"); the state is then unchanged. A repeated (already applied) update is acknowledged again
  // and returns ok.
  Status on_message(const PeerId& from, const msg::Message& message, double now,
                    std::vector<Outgoing>& out);
  // Time passes: admission timeout, round deadline.
  void on_tick(double now, std::vector<Outgoing>& out);
  // The transport lost the peer. Its table stays counted in gbar (its samples are still part of
  // the problem); a round no longer waits for it once the deadline passes.
  void on_disconnect(const PeerId& peer, double now, std::vector<Outgoing>& out);
  // Stops training (operator request): agents are told to leave.
  void stop(const std::string& reason, std::vector<Outgoing>& out);
  // Operator command for an agent that left for good: removes its samples from the problem.
  // Its S_k leaves gbar, N drops by n_k and gbar is recomputed as sum of the others' S_k over
  // the new N, so the invariant holds for the smaller problem. The objective is then the mean
  // loss over the remaining samples: F and F* both change (a new reference optimum is needed
  // for relative suboptimality). On success the message says so, with the old and new N.
  // Refused while admitting (nothing to retire yet) and for the last agent.
  Result<std::string> retire(const std::string& agent_id);

  Phase phase() const { return phase_; }
  bool finished() const { return phase_ == Phase::finished; }
  const std::string& finish_reason() const { return finish_reason_; }
  // Outcome::running until finished().
  Outcome outcome() const { return outcome_; }
  // mean: the open round. async: the reporting period (a round closes after as many applied
  // updates as there are agents, once F at its evaluation point is known).
  std::uint64_t round() const { return round_; }
  // async: updates applied since training started (each agent's RoundStart carries the version
  // its w comes from; staleness = version() - that).
  std::uint64_t version() const { return version_; }
  Index total_samples() const { return total_samples_; }
  Index features() const { return features_; }
  int agents() const { return static_cast<int>(agents_.size()); }
  // Admitted agents on a live connection: after a restore, those that have joined again.
  int connected_agents() const;
  double eta() const { return eta_; }
  const Eigen::VectorXd& w() const { return w_; }
  // The w the agents start the open round from, where F and the validation figures are measured:
  // w() but for a compressed broadcast (compression q8: HubCore::advance_broadcast), which
  // trails w() by at most one rounding of a round's change.
  const Eigen::VectorXd& broadcast_w() const { return bw_.size() == w_.size() ? bw_ : w_; }
  const Eigen::VectorXd& gbar() const { return gbar_; }
  // The w whose objective was last measured (the model to save), and that objective.
  const Eigen::VectorXd& best_w() const { return best_w_; }
  double best_objective() const { return best_objective_; }
  std::uint64_t best_round() const { return best_round_; }
  // ||gbar - sum_k S_k / N||_inf / max(1, ||gbar||_inf), recomputed from the per-agent sums.
  double check_invariant() const;
  // Reports of rounds closed since the last call.
  std::vector<RoundReport> take_reports();
  // Decisions worth a line in the log since the last call (the coarse space chosen, a guard
  // revert), in order.
  std::vector<std::string> take_notes() {
    std::vector<std::string> notes;
    notes.swap(notes_);
    return notes;
  }
  // True once after a change worth saving (a round opened, a late delta applied, training
  // finished): the caller saves snapshot() *before* sending what the call appended to `out`,
  // because those messages acknowledge updates as applied.
  bool take_commit() {
    const bool c = commit_;
    commit_ = false;
    return c;
  }
  // The whole committed state (model, gbar, every agent's S_k, seq and incarnation, round,
  // options fingerprint) as bytes with a checksum (hub_snapshot.cpp). Call at a commit point.
  std::string snapshot() const;
  // Replaces the state with a snapshot's. Fails, changing nothing, when the bytes are corrupt or
  // were written for another problem (loss, C, lambda, algorithm, agents...). Agents are then
  // disconnected until they join again (same incarnation: they keep their tables).
  Status restore(const std::string& bytes);
  const HubOptions& options() const { return options_; }

  // The aggregation modes' interface (lib/src/hub_mode.hpp, private to the library): one
  // stateless unit per Aggregation, each with access to the state below.
  class Mode;

 private:
  friend class SyncMode;
  friend class MeanMode;
  friend class TwoLevelMode;
  friend class AsyncMode;
  friend class NewtonMode;

  struct AgentState {
    std::string agent_id;
    PeerId peer;
    bool connected = true;
    std::uint64_t samples = 0;
    double lmax = 0.0;
    std::uint64_t incarnation = 0;
    std::uint64_t last_seq = 0;  // highest seq applied (exactly-once accounting)
    bool initialized = false;    // S_k received for the current table
    double init_loss = 0.0;      // loss sum at w0 (init round)
    Eigen::VectorXd table_sum;   // S_k
    // Columns its rows touch (empty: every column), in the model's columns once the model's
    // width is known (start_initialization; model_support).
    std::vector<std::uint32_t> support;
    // From its last Join (not checkpointed): its data's width, whether that data's missing
    // features are zeros (LIBSVM, so it may be narrower than the model) and whether its last
    // column is --bias's. 0: not seen since this hub started.
    Index width = 0;
    bool zero_padded = false;
    bool bias = false;
    // The round whose broadcast (bw_, bg_) it was last sent: it can take the next one as
    // changes. 0: none (it joined, lost its connection, or was sent whole vectors).
    std::uint64_t holds_round = 0;
    // two_level setup: its eigenpairs, until the basis is built (not checkpointed: a hub that
    // restarts before the first round asks again).
    coarse::AgentBasis eigen;
    // async (not checkpointed: a restored hub sends every agent a fresh start):
    std::uint64_t eval_round = 0;    // that RoundStart asked for F at this round's eval point
    std::uint64_t eval_version = 0;  // ... and carried this version
  };

  Status on_join(const PeerId& from, const msg::Join& join, double now,
                 std::vector<Outgoing>& out);
  // A Join's width against the model's (features_, when known) and the other agents': a
  // refusal's code and reason, or nothing.
  std::optional<Refusal> check_width(const msg::Join& join) const;
  Status on_init(AgentState& agent, const msg::InitUpload& init, double now,
                 std::vector<Outgoing>& out);
  Status on_update(AgentState& agent, const msg::Update& update, double now,
                   std::vector<Outgoing>& out);
  // on_update's seq gap (an update was lost): the agent rebuilds its table.
  Status rebuild_after_lost_update(AgentState& agent, const msg::Update& update,
                                   std::vector<Outgoing>& out);
  // on_update's checks of a new update's payload, which change nothing: a refusal, or nothing
  // and, for an agent restricted to its support, the update made whole in `widened` (the bound
  // on its norm applies to the whole vectors).
  std::optional<Refusal> check_update_payload(const AgentState& agent, const msg::Update& update,
                                              std::optional<msg::Update>& widened) const;
  AgentState* agent_for_peer(const PeerId& peer);
  msg::Config config_for(const AgentState& agent, bool build_table) const;
  // Whether this agent's vectors travel restricted to its support (options_.restrict_to_support,
  // dSAGA, a mode that knows the round's broadcast, an agent narrower than the model).
  bool restricted(const AgentState& agent) const;
  // The local steps per round the agent runs (its Config.steps).
  std::uint64_t local_steps_for(const AgentState& agent) const;
  // The RoundStart of the open round for this agent (restricted or whole), with the vectors.
  msg::RoundStart round_start_for(const AgentState& agent) const;
  // The compressed broadcast (HubOptions::compression q8, synchronous run rounds, a coarse
  // space short of the whole one). Every agent
  // starts its run not from w_ but from bw_ (and bg_ for gbar), which each round moves by the
  // q8 rounding of w_ - bw_ (of round_gbar_ - bg_): the hub's error feedback, so what is left
  // out of one round's change goes out with the next, and bw_ -> w_ as the changes vanish. The
  // modes step w_ (exactly as without compression); F is measured at bw_, where the agents were.
  bool compressed_broadcast() const;
  // Whether the changes (and two-level's basis, once) are rounded under q8's floor
  // (compress.hpp): two-level rounds whose bytes are mostly the deltas (coarse::deltas_floored,
  // on the mean agent; false until the basis is built).
  bool broadcast_floored() const;
  // At a round's opening (after round_gbar_ is set): moves bw_ and bg_, keeping the changes
  // (the first compressed round sets them to w_ and round_gbar_ and has none).
  void advance_broadcast();
  // Whether `agent` holds the last round's broadcast and so takes this round's as changes.
  bool takes_changes(const AgentState& agent) const;
  // The open round's RoundStart as changes (agent: restricted to its support; nullptr: whole).
  msg::RoundStart changes_start(const AgentState* agent) const;
  // The open round's RoundStart for `agent`, changes when it can take them, and its holds_round.
  msg::RoundStart broadcast_to(AgentState& agent);

  // The Update as the modes see it: restricted vectors made whole (dS zero off the support, dw
  // off it by the closed form of support.hpp from the round's broadcast).
  msg::Update whole_update(const AgentState& agent, const msg::Update& update) const;
  void start_initialization(double now, std::vector<Outgoing>& out);
  void finish(Outcome outcome, const std::string& reason, std::vector<Outgoing>& out);
  // F at w from the agents' loss sums, into the report and as the model to save.
  void record_objective(RoundReport& report, double loss_sum, const Eigen::VectorXd& w);
  // After a round's report: finishes on target, round cap or divergence; true if it did.
  bool finish_if_done(const RoundReport& report, bool evaluated, std::vector<Outgoing>& out);
  msg::RoundStart round_start() const;
  std::vector<PeerId> connected_peers() const;
  // An update of a round already closed (or of a finished hub): its dS is applied, exactly
  // once, and acknowledged; its step is dropped.
  void apply_late(AgentState& agent, const msg::Update& update, std::vector<Outgoing>& out);
  bool basis_ready() const { return coarse_.basis_id != 0; }
  void send_async_start(AgentState& agent, std::vector<Outgoing>& out);
  Status apply_async(AgentState& agent, const msg::Update& update, double now,
                     std::vector<Outgoing>& out);
  void open_async_round(double now);
  void maybe_close_async_round(double now, std::vector<Outgoing>& out);
  std::uint64_t staleness_bound() const;

  HubOptions options_;
  const Mode* mode_;  // mode_for(options_.effective_aggregation())
  Phase phase_ = Phase::admitting;
  std::string finish_reason_;
  Outcome outcome_ = Outcome::running;
  // Keyed by agent id: iteration (and so aggregation) order is deterministic.
  std::map<std::string, AgentState> agents_;
  std::map<PeerId, std::string> agent_of_peer_;
  std::uint64_t round_ = 0;
  Index total_samples_ = 0;
  Index features_ = 0;
  double eta_ = 0.0;
  Eigen::VectorXd w_, gbar_, best_w_;
  // Synchronous rounds: the open round's broadcast gbar and local step (late updates move gbar_
  // during a round; every RoundStart of the round, and the closed form off an agent's support,
  // use these). Checkpointed.
  Eigen::VectorXd round_gbar_;
  double round_eta_ = 0.0;
  // The gbar every RoundStart of the open round carries (async keeps no round_gbar_: gbar_).
  const Eigen::VectorXd& broadcast_gbar() const {
    if (bg_.size() == gbar_.size()) return bg_;
    return round_gbar_.size() == gbar_.size() ? round_gbar_ : gbar_;
  }
  // The compressed broadcast (empty when off; checkpointed) and the open round's changes.
  Eigen::VectorXd bw_, bg_;
  compress::Q8 w_change_, gbar_change_;
  // The open round is the first compressed one: its changes are on zeros, for every agent.
  bool changes_from_zero_ = false;
  double best_objective_ = std::numeric_limits<double>::quiet_NaN();
  std::uint64_t best_round_ = 0;
  double admission_started_ = -1.0;
  double round_started_ = 0.0;
  std::map<std::string, msg::Update> pending_;  // this round's updates by agent id
  int late_updates_ = 0;
  // async state
  std::uint64_t version_ = 0;
  int round_updates_ = 0, round_stale_ = 0;
  std::uint64_t round_steps_ = 0;
  Eigen::VectorXd eval_w_;              // w when the round opened: where F is measured
  double eval_loss_ = 0.0;              // sum of the agents' loss sums at eval_w_
  std::map<std::string, bool> eval_reported_;  // agents whose loss at eval_w_ is in eval_loss_
  ValidationCounts eval_validation_;    // their validation counts at eval_w_ (not checkpointed)
  // two_level state (checkpointed)
  struct CoarseState {
    coarse::Basis basis;
    std::uint64_t basis_id = 0;   // 0 until built
    bool basis_q8 = false;        // U is rounded to q8 and travels so (else floats, or doubles)
    double eta0 = 0.0;            // the local step (1/L_max unless the options set one)
    std::uint64_t max_steps = 0;  // the local steps per round the stability rule allows (0: n_k)
    double gamma = 1.0;           // the guard's scale of eta0 and of the coarse step
    double f_prev = std::numeric_limits<double>::infinity();   // F at the last accepted w
    double f_prev2 = std::numeric_limits<double>::infinity();  // ... and the one before
    Eigen::VectorXd w_prev;       // the last accepted broadcast w (where a revert returns)
    std::uint64_t reverts = 0;
    // Whole space (U = I): d^T (H + lambda) d of the Newton step d the broadcast w took (scaled
    // by gamma), so that F's decrease can be held to the quadratic model's; NaN: none.
    double step_quadratic = std::numeric_limits<double>::quiet_NaN();
  } coarse_;
  // newton_cg state (checkpointed but for the factor, rebuilt from the Gram)
  struct NewtonState {
    msg::RoundKind stage = msg::RoundKind::gradient;  // what the open round asks
    bool use_hessian = false;       // the agents' Hessians each gradient round, damped by mu
    bool use_gram = false;          // the Gram bound; else two-level's basis or curvature pairs
    bool gram_asked = false;        // the open gradient round asks for the agents' Grams
    Eigen::VectorXd gram;           // sum_k X_k^T X_k, packed upper triangle (empty: none yet)
    newton::Cg cg;                  // the open round's CG
    Eigen::VectorXd w_outer;        // the last accepted w (where the CG's Hessian is)
    double f_outer = std::numeric_limits<double>::infinity();  // F(w_outer)
    Eigen::VectorXd step;           // the last Newton step x (w = w_outer + t x)
    double t = 1.0;                 // its length while backtracking
    std::uint64_t outer = 0;        // outer rounds (gradients accepted)
    Eigen::MatrixXd pairs_s, pairs_y;  // the last CG's (p_j, H p_j), for the pairs preconditioner
    Eigen::MatrixXd next_s, next_y;    // ... and the open CG's, for the next one
    newton::GramPreconditioner factor;  // from `gram` (not checkpointed: refactored on demand)
    // use_hessian: sum_k H_k at w_outer (packed upper triangle of d*C; empty: none yet), the
    // gradient there, the damping mu and the model's decrease for the step taken from w_outer
    // (NaN: none); `model` is rebuilt from them on demand (not checkpointed).
    Eigen::VectorXd hessian;
    Eigen::VectorXd g_outer;
    double mu = 0.0;
    double predicted = std::numeric_limits<double>::quiet_NaN();
    newton::HessianModel model;
    // use_diagonal: sum_k diag(H_k) at w_outer (d*C; empty: none yet), the initial matrix of the
    // curvature pairs' recursion (newton.hpp: diagonal).
    bool use_diagonal = false;
    Eigen::VectorXd diagonal;
    // From two-level's basis (coarse_), where the Gram is not used and pairs were not asked for
    // (not checkpointed: rebuilt on demand; `coarse_failed` once it could not be).
    newton::CoarsePreconditioner coarse;
    bool coarse_failed = false;
  } newton_;
  // auto: the mode running now (two_level until the switch), and F of the last rounds that the
  // switch looks at (checkpointed).
  Aggregation active_ = Aggregation::mean;
  std::vector<double> f_history_;
  bool commit_ = false;
  std::vector<RoundReport> reports_;
  std::vector<std::string> notes_;
};

}  // namespace dsaga
