// The hub's side of two-level dSAGA (hub.hpp: Aggregation::two_level; coarse.hpp has the math,
// ALGORITHM.md section 7 the derivation): the setup's basis, the checks of the coarse payloads,
// and the round's step with its guard.
#include <algorithm>
#include <cmath>

#include "strings.hpp"
#include "sync_mode.hpp"

namespace dsaga {

namespace {

// auto's switch to Newton-CG (ALGORITHM.md section 7.3): the rounds' rate rho, the fraction of
// F's decrease a round keeps (newton::median_decrease_ratio, from decreases over two rounds),
// measures how much of the remaining error a round leaves. Two-level rounds converge linearly,
// and a median rho over the last kSwitchWindow + 2 values of F above kSwitchRatio means more
// than ~22 rounds per decade (0.9^22 = 0.1):
// the flat-curvature regime, where local runs barely move the flat directions. Newton-CG from a
// point that close needs a few outer rounds of some ten CG exchanges each per decade or less, so
// below that ratio the switch would not save round trips: at a median of 0.80 (N = 2,500 test
// images, unit rows, lambda 1e-4, 5 agents by label; integration.train_two_level) switching took
// 68 round trips to 1e-8 against two-level's 67. On flat data the ratio is 0.95-0.96 (B1r).
constexpr int kSwitchWindow = 5;
constexpr double kSwitchRatio = 0.9;
// The largest heavy-ball momentum of the fine part (fine_momentum): where lambda is 0 or the
// local runs are very short, critical damping of the flattest direction asks for nearly 1,
// under which the noisy local runs would not settle. It binds only where auto would run
// Newton-CG; forced two-level there (B1 by label, lambda = 1e-7), 0.9 did best of 0.6 to 0.99
// (bench/RESULTS.md, protocol 13's section).
constexpr double kFineMomentum = 0.9;

}  // namespace

// Synchronous rounds whose step is the coarse Newton step plus the fine part of the mean.
class TwoLevelMode final : public SyncMode {
 public:
  double default_step(const HubCore&, double lmax) const override {
    // The table is held during the run and the stiff directions are the coarse step's: 1/L_max
    // (ALGORITHM.md section 7), lowered when the basis is built if the stability rule asks.
    return 1.0 / lmax;
  }
  void add_to_config(const HubCore& hub, const AgentState& agent,
                     msg::Config& config) const override;
  std::uint64_t local_steps(const HubCore& hub, std::uint64_t steps) const override {
    if (!hub.basis_ready()) return steps;
    if (hub.coarse_.basis.identity) return 0;  // the hub's Newton step is the whole step
    return hub.coarse_.max_steps > 0 ? std::min(steps, hub.coarse_.max_steps) : steps;
  }
  void add_to_start(const HubCore& hub, const AgentState*, msg::RoundStart& start) const override {
    if (hub.basis_ready()) start.eta = hub.coarse_.gamma * hub.coarse_.eta0;
  }
  Status take_init(HubCore& hub, AgentState& agent, const msg::InitUpload& init) const override;
  void start_training(HubCore& hub, double now, std::vector<Outgoing>& out) const override;
  std::optional<Refusal> check_update(const HubCore& hub, const AgentState& agent,
                                      const msg::Update& update) const override;

 private:
  // Once every agent's eigenpairs are in: U, m and the local step (coarse.hpp).
  static void build_coarse_space(HubCore& hub);
  // The two-level step, then (auto) the switch's look at the rounds so far.
  void step(HubCore& hub, const Eigen::VectorXd& w_round, double n_round, double objective,
            RoundReport& report) const override;
  // The momentum of the fine part for the round's local runs (the critical damping of the
  // flattest direction).
  static double fine_momentum(const HubCore& hub, double n_round);
  // The guard, the coarse Newton step and the fine part of the weighted mean of the dw.
  static void two_level_step(HubCore& hub, const Eigen::VectorXd& w_round, double n_round,
                             double objective, RoundReport& report);
  // auto: whether the last rounds' F shows the flat-curvature regime (and then switches).
  static void consider_switch(HubCore& hub, double objective, const RoundReport& report);
};

const HubCore::Mode& two_level_mode() {
  static const TwoLevelMode mode;
  return mode;
}

Status TwoLevelMode::take_init(HubCore& hub, AgentState& agent,
                               const msg::InitUpload& init) const {
  if (hub.basis_ready()) return Status::ok();  // a rebuilt table: the basis is fixed
  const int agents = hub.agents();
  const std::size_t q = init.eigenvalues.size();
  const std::size_t rows =
      agent.support.empty() ? static_cast<std::size_t>(hub.features_) : agent.support.size();
  const auto most = static_cast<std::size_t>(
      coarse::vectors_per_agent(agents, static_cast<Index>(rows)));
  if (q > most || init.eigenvectors.size() != q * rows)
    return Status::error(cat(q, " eigenvalues and ", init.eigenvectors.size(),
                             " eigenvector entries, expected at most ", most, " pairs on ", rows,
                             " columns"));
  for (std::size_t j = 0; j < q; ++j)
    if (init.eigenvalues[j] < 0 || (j > 0 && init.eigenvalues[j] > init.eigenvalues[j - 1]))
      return Status::error(cat("eigenvalues[", j, "] = ", init.eigenvalues[j],
                               ": they must be >= 0 and descending"));
  if (init.eigen_next < 0) return Status::error(cat("eigen_next = ", init.eigen_next));
  agent.eigen.values = view(init.eigenvalues);
  agent.eigen.next = init.eigen_next;
  agent.eigen.support = agent.support;
  agent.eigen.vectors = Eigen::Map<const Eigen::MatrixXd>(
      init.eigenvectors.data(), static_cast<Index>(rows), static_cast<Index>(q));
  return Status::ok();
}

void TwoLevelMode::start_training(HubCore& hub, double now, std::vector<Outgoing>& out) const {
  // The basis travels in a Config (build_table = false): every agent takes it before the first
  // RoundStart, which follows on the same connection.
  build_coarse_space(hub);
  for (auto& [id, a] : hub.agents_)
    if (a.connected) out.push_back(Outgoing{{a.peer}, hub.config_for(a, false)});
  open_round(hub, now, out);
}

void TwoLevelMode::build_coarse_space(HubCore& hub) {
  hub.coarse_ = HubCore::CoarseState{};
  hub.coarse_.eta0 = hub.eta_;
  if (coarse::whole_space(hub.features_, hub.options_.objective.classes, hub.options_.coarse_rank)) {
    hub.coarse_.basis.identity = true;
  } else {
    std::vector<coarse::AgentBasis> uploads;
    double max_steps = 0.0;
    for (auto& [id, a] : hub.agents_) {
      a.eigen.weight = static_cast<double>(a.samples) / static_cast<double>(hub.total_samples_);
      uploads.push_back(std::move(a.eigen));
      a.eigen = coarse::AgentBasis{};
      max_steps = std::max(max_steps, static_cast<double>(hub.options_.local_steps > 0
                                                              ? static_cast<std::uint64_t>(
                                                                    hub.options_.local_steps)
                                                              : a.samples));
    }
    const double beta = hub.options_.objective.beta();
    // The basis goes to each agent in one Config of |support_k| x m doubles: m is capped so
    // that it stays under 32 MiB for the widest support (the daemons' default frame limit is
    // 64 MiB; a sparse model with 150k-column supports gets m = 28 instead of 64).
    std::size_t widest = 1;
    for (const auto& a : uploads)
      widest = std::max(widest, a.support.empty() ? static_cast<std::size_t>(hub.features_)
                                                  : a.support.size());
    // (Rounded to float or q8, with --compression, it is 4 bytes an entry or less; the cap is
    // that of floats either way.)
    const bool floats = hub.options_.compression != msg::Encoding::f64;
    const int byte_cap = static_cast<int>(std::max<std::size_t>(
        1, (std::size_t(32) << 20) / ((floats ? sizeof(float) : sizeof(double)) * widest)));
    const int rank = std::min(hub.options_.coarse_rank > 0 ? hub.options_.coarse_rank
                                                           : coarse::kMaxRank,
                              byte_cap);
    hub.coarse_.basis =
        coarse::build_basis(hub.features_, uploads, rank, hub.options_.objective.classes);
    // The agents get U in floats or q8 (at a half or an eighth of the bytes); the hub's coarse
    // step uses the same rounded U, so both sides work in one coarse space, and its Gram U^T U
    // where it took I for an orthonormal one (two_level_step).
    // q8 only where U's rows outweigh one round's coarse payload (coarse::curvature_as_q8,
    // on the mean agent's share: its rows of U and the eigenvectors it sent).
    Eigen::MatrixXd& u = hub.coarse_.basis.u;
    double entries = 0.0;
    for (const auto& a : uploads)
      entries += static_cast<double>(a.vectors.cols() + u.cols()) *
                 static_cast<double>(a.support.empty() ? hub.features_
                                                       : static_cast<Index>(a.support.size()));
    hub.coarse_.basis_q8 =
        hub.options_.compression == msg::Encoding::q8 &&
        coarse::curvature_as_q8(entries / static_cast<double>(std::max<std::size_t>(1, uploads.size())),
                                u.cols(), hub.options_.objective.classes,
                                hub.options_.objective.loss == Loss::multinomial);
    // Under q8's floor too where the rounds are mostly deltas (coarse::deltas_floored, the rule
    // of the broadcast's floor): a wide sparse model's U has the same rare and common columns.
    if (hub.coarse_.basis_q8)
      compress::round_to_q8(u.data(), static_cast<std::size_t>(u.size()), nullptr,
                            hub.broadcast_floored());
    else if (floats)
      compress::round_to_float(u.data(), static_cast<std::size_t>(u.size()));
    // Where even the whole union leaves too much curvature to the local runs, the step shrinks
    // until eta * T * beta * curvature meets the bound (the rule of coarse.hpp).
    // An agent whose run would leave too much curvature to itself (eta * T * beta * c_fine over
    // the bound: a large shard, a long T) runs fewer steps; the others keep theirs and the step.
    const double per_step = hub.eta_ * beta * hub.coarse_.basis.fine_curvature;
    if (per_step * max_steps > coarse::kStabilityBound)
      hub.coarse_.max_steps =
          std::max<std::uint64_t>(1, static_cast<std::uint64_t>(coarse::kStabilityBound / per_step));
  }
  hub.coarse_.basis_id = 1;
  const int C = hub.options_.objective.classes;
  const coarse::Basis& b = hub.coarse_.basis;
  hub.notes_.push_back(
      b.identity
          ? cat("two-level: the coarse space is the whole space (d * C = ", hub.features_ * C,
                "): each round is an exact distributed Newton step, no local runs")
          : cat("two-level: coarse space of m = ", b.u.cols(), " directions (x ", C,
                " classes) from the agents' eigenvectors, curvature ", b.curvature[0], " to ",
                b.curvature[b.curvature.size() - 1], ", about ", b.fine_curvature,
                " left to the local runs; local step ", hub.coarse_.eta0,
                hub.coarse_.max_steps > 0
                    ? cat(", at most ", hub.coarse_.max_steps,
                          " local steps per round (the stability rule)")
                    : std::string()));
}

void TwoLevelMode::add_to_config(const HubCore& hub, const AgentState& agent,
                                 msg::Config& config) const {
  config.two_level = true;
  config.refresh = 0.0;  // the whole table, every round
  if (!hub.basis_ready()) {
    // The setup: the agent's top eigenpairs come back with its table, as q8 where they and
    // its rows of U (m at most the union, at most kMaxRank) outweigh a round's coarse payload.
    const int C = hub.options_.objective.classes;
    if (!coarse::whole_space(hub.features_, C, hub.options_.coarse_rank)) {
      const Index columns =
          agent.support.empty() ? hub.features_ : static_cast<Index>(agent.support.size());
      const int q = coarse::vectors_per_agent(hub.agents(), columns);
      config.basis_rank = static_cast<std::uint32_t>(q);
      const Index m = std::min<Index>(
          hub.options_.coarse_rank > 0 ? hub.options_.coarse_rank : coarse::kMaxRank,
          static_cast<Index>(q) * std::max(1, hub.agents()));
      if (config.curvature == msg::Encoding::q8 &&
          !coarse::curvature_as_q8(static_cast<double>(q + m) * static_cast<double>(columns),
                                   m, C, hub.options_.objective.loss == Loss::multinomial))
        config.curvature = msg::Encoding::f32;
    }
    return;
  }
  // The step stays Config.eta (a changed one would make the agent rebuild its solver): the
  // round's step, eta0 scaled by the guard, travels in each RoundStart.
  config.basis_id = hub.coarse_.basis_id;
  if (hub.coarse_.basis.identity) {
    config.basis_identity = true;
    config.basis_dim = static_cast<std::uint32_t>(hub.features_);
    return;
  }
  const Eigen::MatrixXd& u = hub.coarse_.basis.u;
  config.basis_dim = static_cast<std::uint32_t>(u.cols());
  if (hub.coarse_.basis_q8) {
    // U is q8 already (build_coarse_space): its integers and scales, restricted to the support
    // with the whole matrix's blocks.
    compress::Q8 whole;
    compress::quantize(u.data(), static_cast<std::size_t>(u.size()), whole, /*floor=*/true);
    if (agent.support.empty())
      config.basis_q8 = std::move(whole);
    else
      compress::gather_rows(whole, static_cast<std::size_t>(u.rows()),
                            static_cast<std::size_t>(u.cols()), agent.support, config.basis_q8);
    config.basis.clear();
    return;
  }
  // U restricted to the rows of the agent's support, column-major.
  const std::size_t rows = agent.support.empty() ? static_cast<std::size_t>(u.rows())
                                                 : agent.support.size();
  config.basis.resize(rows * static_cast<std::size_t>(u.cols()));
  for (Index j = 0; j < u.cols(); ++j)
    for (std::size_t s = 0; s < rows; ++s)
      config.basis[static_cast<std::size_t>(j) * rows + s] =
          u(agent.support.empty() ? static_cast<Index>(s) : agent.support[s], j);
}

std::optional<Refusal> TwoLevelMode::check_update(const HubCore& hub, const AgentState& agent,
                                                  const msg::Update& update) const {
  if (auto refusal = SyncMode::check_update(hub, agent, update)) return refusal;
  if (!hub.basis_ready()) return no_coarse_payload(update);
  const std::size_t mc = static_cast<std::size_t>(hub.coarse_.basis.dim(hub.features_)) *
                         static_cast<std::size_t>(hub.options_.objective.classes);
  // coarse_h: the class-pair blocks of the m x m coarse space (coarse::blocks_size).
  const std::size_t mh = coarse::blocks_size(
      static_cast<std::size_t>(hub.coarse_.basis.dim(hub.features_)),
      hub.options_.objective.classes, hub.options_.objective.loss == Loss::multinomial);
  if (update.coarse_g.size() != mc || update.coarse_h.size() != mh)
    return Refusal{msg::ErrorCode::dimension_mismatch, cat("coarse_g has ", update.coarse_g.size(), " and coarse_h ",
                             update.coarse_h.size(), " entries, the coarse space needs ", mc,
                             " and ", mh)};
  return std::nullopt;
}

void TwoLevelMode::step(HubCore& hub, const Eigen::VectorXd& w_round, double n_round,
                        double objective, RoundReport& report) const {
  two_level_step(hub, w_round, n_round, objective, report);
  if (hub.options_.aggregation == Aggregation::automatic && !hub.coarse_.basis.identity)
    consider_switch(hub, objective, report);
}

void TwoLevelMode::consider_switch(HubCore& hub, double objective, const RoundReport& report) {
  std::vector<double>& f = hub.f_history_;
  // A round the guard sent back, or one whose F is unknown, starts the count again.
  if (report.reverted || !std::isfinite(objective)) {
    f.clear();
    return;
  }
  f.push_back(objective);
  const std::size_t need = kSwitchWindow + 2;
  if (f.size() > need) f.erase(f.begin());
  if (f.size() < need) return;
  const double median = newton::median_decrease_ratio(f);
  if (!(median > kSwitchRatio)) return;
  switch_to_newton(hub, cat("F's decrease over the last ", need - 1, " rounds keeps ", median,
                            " of itself a round (the median, from decreases over two rounds; over ",
                            kSwitchRatio, "): the flat-curvature regime"));
}

double TwoLevelMode::fine_momentum(const HubCore& hub, double n_round) {
  // A direction the data leave flat (curvature lambda alone) is where a round's fine part moves
  // least: T_k local steps of eta take it a share 1 - (1 - eta (lambda + mu))^T_k of the way
  // (lambda / (lambda + mu) of that with a proximal term mu), and the hub's mean a share a of
  // those. Heavy ball damps that mode critically with beta = (1 - sqrt(a))^2: the error then
  // falls by 1 - sqrt(a) a round instead of 1 - a.
  const double lambda = hub.options_.objective.lambda;
  const double mu = hub.options_.prox;
  if (!(lambda > 0) || !(hub.round_eta_ > 0) || !(n_round > 0)) return 0.0;
  double a = 0.0;
  for (const auto& [id, u] : hub.pending_) {
    const auto agent = hub.agents_.find(id);
    if (agent == hub.agents_.end()) continue;
    const double steps = static_cast<double>(hub.local_steps_for(agent->second));
    const double kept = std::pow(std::max(0.0, 1.0 - hub.round_eta_ * (lambda + mu)), steps);
    a += (static_cast<double>(u.samples) / n_round) * (lambda / (lambda + mu)) * (1.0 - kept);
  }
  if (!(a > 0)) return 0.0;
  const double beta = std::pow(1.0 - std::sqrt(std::min(a, 1.0)), 2);
  return std::min(beta, kFineMomentum);
}

void TwoLevelMode::two_level_step(HubCore& hub, const Eigen::VectorXd& w_round, double n_round,
                                  double objective, RoundReport& report) {
  HubCore::CoarseState& s = hub.coarse_;
  // Every agent refreshed its whole table at w_round this round, and the round's dS are applied:
  // with all of them in, gbar is the data term's gradient at w_round (hub.hpp: gradient_norm).
  if (hub.pending_.size() == hub.agents_.size())
    report.gradient_norm =
        (hub.gbar_ + hub.options_.objective.lambda * hub.broadcast_w()).norm();
  // The guard (on rounds whose F is known): a rise of F larger than the decrease before it (in
  // the whole space, any rise) sends the model back, and halves the step scale; a good round
  // grows the scale back by 1.25 up to the full one (by 2 where the Newton model holds).
  if (std::isfinite(objective)) {
    // Near the optimum F changes between rounds only by rounding (sums of N losses differ in
    // the last bits): a rise within 1e-12 relative is noise, not a bad round.
    const double noise = 1e-12 * std::abs(s.f_prev);
    // The whole space takes exact Newton steps, which must lower F (Armijo's rule without its
    // fraction) from the first; local runs may raise F a little on a round that still helps
    // (f_prev2 is infinite at the start and after a revert: any F is taken).
    const double allowed = s.basis.identity ? 0.0 : std::max(s.f_prev2 - s.f_prev, 0.0);
    if (s.w_prev.size() == w_round.size() && objective - s.f_prev > allowed + noise) {
      // In the whole space a backtracking line search, one round a try: the next round is at
      // the shorter step already, not at the accepted w again (whose F, gradient and Hessian
      // the hub has had). With local runs, back to the accepted w, whose round runs them again
      // with the smaller step (its F is measured where the agents are, at a q8 broadcast
      // perhaps, so the round after a revert is taken whatever its F).
      hub.w_ = s.basis.identity ? Eigen::VectorXd(s.w_prev + 0.5 * (w_round - s.w_prev))
                                : s.w_prev;
      s.gamma *= 0.5;
      s.f_prev2 = std::numeric_limits<double>::infinity();
      ++s.reverts;
      hub.notes_.push_back(cat("two-level guard: F rose to ", objective, " at round ", hub.round_,
                           " (from ", s.f_prev, "): ",
                           s.basis.identity ? "half that step" : "back to the previous model",
                           ", step scale ", s.gamma));
      report.reverted = true;
      report.step_scale = s.gamma;
      return;
    }
    if (std::isfinite(s.f_prev)) {
      // In the whole space the round was an exact Newton step scaled by gamma, whose quadratic
      // model predicts F to fall by gamma (1 - gamma / 2) d^T (H + lambda) d: where F fell by at
      // least 3/4 of that the model holds and the scale doubles (a trust region's rule, back to
      // the full step in few rounds); otherwise, and with local runs, it grows by 1.25.
      const double predicted = s.gamma * (1 - 0.5 * s.gamma) * s.step_quadratic;
      const bool model_holds = s.basis.identity && predicted > 0 &&
                               s.f_prev - objective >= 0.75 * predicted;
      s.gamma = std::min(1.0, (model_holds ? 2.0 : 1.25) * s.gamma);
    }
    s.f_prev2 = s.f_prev;
    s.f_prev = objective;
  }
  report.step_scale = s.gamma;
  // The last round's step (none after a revert, which restarts at w_prev), for the momentum.
  const Eigen::VectorXd last_step = s.w_prev.size() == w_round.size()
                                        ? Eigen::VectorXd(w_round - s.w_prev)
                                        : Eigen::VectorXd::Zero(w_round.size());
  s.w_prev = w_round;

  // The participants' sums; with some agents missing (a round deadline) their mean stands in for
  // the whole (N_r instead of N), which the guard checks once F is known again.
  const int C = hub.options_.objective.classes;
  const Index mc = static_cast<Index>(s.basis.dim(hub.features_)) * C;
  Eigen::VectorXd g = Eigen::VectorXd::Zero(mc), dbar = Eigen::VectorXd::Zero(w_round.size());
  Eigen::VectorXd h_packed = Eigen::VectorXd::Zero(static_cast<Index>(coarse::packed_size(mc)));
  const bool softmax = hub.options_.objective.loss == Loss::multinomial;
  for (const auto& [id, u] : hub.pending_) {
    g += view(u.coarse_g);
    coarse::add_blocks(u.coarse_h.data(), {}, s.basis.dim(hub.features_), C, softmax, h_packed);
    dbar += (static_cast<double>(u.samples) / n_round) * view(u.dw);
  }
  Eigen::MatrixXd h(mc, mc);
  coarse::unpack_upper(h_packed.data(), h);
  h /= n_round;
  const double lambda = hub.options_.objective.lambda;
  // A rounded U (compression f32 or q8) is orthonormal only to its rounding: the regulariser's
  // coarse Hessian is lambda U^T U, and the coarse part of dbar its projection through U^T U.
  const bool rounded = !s.basis.identity && hub.options_.compression != msg::Encoding::f64;
  Eigen::LLT<Eigen::MatrixXd> gram;
  if (rounded) {
    const Eigen::MatrixXd utu = s.basis.u.transpose() * s.basis.u;
    gram.compute(utu);
    const Index m = s.basis.u.cols();
    for (Index j = 0; j < m; ++j)
      for (Index l = 0; l < m; ++l)
        for (Index c = 0; c < C; ++c)
          h(j * C + c, l * C + c) += lambda * (utu(j, l) - (j == l ? 1.0 : 0.0));
  }
  const Eigen::VectorXd w_coarse =
      s.basis.identity ? w_round : coarse::restrict(s.basis.u, w_round, C);
  const Eigen::VectorXd g_u = g / n_round + lambda * w_coarse;
  const auto delta = coarse::newton_step(h, g_u, lambda);
  if (!delta) {
    // Cannot happen with lambda > 0; with lambda = 0 and a singular coarse Hessian the runs'
    // mean is the step.
    hub.w_ = w_round + dbar;
    return;
  }
  if (s.basis.identity) {
    hub.w_ = w_round + s.gamma * *delta;
    s.step_quadratic = delta->dot(h * *delta) + lambda * delta->squaredNorm();
    return;
  }
  // The part of a vector outside U (through U^T U where U is rounded).
  const auto outside_u = [&](const Eigen::VectorXd& v) -> Eigen::VectorXd {
    Eigen::VectorXd part = coarse::restrict(s.basis.u, v, C);  // m x C, row-major
    if (rounded && gram.info() == Eigen::Success) {
      using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
      Eigen::Map<RowMatrix> block(part.data(), s.basis.u.cols(), C);
      block = gram.solve(RowMatrix(block));
    }
    return v - coarse::prolong(s.basis.u, part, C);
  };
  // The fine part: the runs' mean outside U, plus beta times the last round's step outside U
  // (heavy ball; none after a revert). One epoch of local steps moves the flattest directions
  // only a share a = 1 - (1 - eta lambda)^n_k of the way a round (0.18 on S1), which the
  // momentum raises to about sqrt(a). It needs the runs anchored where the hub counted the
  // tables (local_method.cpp): with the agents' refreshed tables mixed into gbar, F alternated
  // between large and small decreases, and momentum made that worse.
  Eigen::VectorXd fine = outside_u(dbar);
  const double beta = fine_momentum(hub, n_round);
  if (beta > 0 && last_step.squaredNorm() > 0) fine += beta * outside_u(last_step);
  hub.w_ = w_round + s.gamma * coarse::prolong(s.basis.u, *delta, C) + fine;
}

}  // namespace dsaga
