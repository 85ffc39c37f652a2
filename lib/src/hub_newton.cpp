// The hub's side of distributed Newton-CG (hub.hpp: Aggregation::newton_cg; newton.hpp has the
// math, ALGORITHM.md section 7.3 the derivation). Synchronous rounds, each one exchange:
//
//   gradient round  every agent sends its loss sum and g_k at w (and, the first time, its Gram;
//                   or every time its part of the Hessian at w, or that part's diagonal on a
//                   wide model). F rose against the last
//                   accepted point: the step is halved and asked again (with the Hessians: the
//                   hub solves (H + mu I) x = -g itself with a larger damping mu, no exchange).
//                   Otherwise w is accepted and CG starts on (H(w) + mu I) x = -g; with
//                   every agent's Hessian at w the hub solves that itself instead, and the
//                   next round is the gradient round at the new point.
//   product round   the hub sends p; every agent sends (H p)_k. One CG step; when the residual
//                   meets the tolerance (or after kMaxCgSteps) w <- w + x and a gradient round
//                   follows.
//
// Missing agents (a round deadline): a gradient round's participants stand for the whole (as in
// the other synchronous modes; F is then unknown and the step is not checked); a product round
// with an agent missing ends the CG with the step it has (after no CG step yet: the first
// direction, the preconditioned gradient step), since a partial product is another matrix. The
// tables of dSAGA are left as they were: the Updates carry no dS.
#include <algorithm>
#include <cmath>

#include "dsaga/support.hpp"
#include "strings.hpp"
#include "sync_mode.hpp"

namespace dsaga {

namespace {

// auto's choice at the start (choose_start_mode): Newton-CG when the two-level local runs would
// move the flattest directions by less than this fraction per round (more than ~230 rounds per
// decade there: 0.99^230 = 0.1).
constexpr double kFlatProgress = 0.01;

}  // namespace

class NewtonMode final : public SyncMode {
 public:
  void add_to_start(const HubCore& hub, const AgentState* agent,
                    msg::RoundStart& start) const override;
  msg::RoundKind round_kind(const HubCore& hub) const override { return hub.newton_.stage; }
  void start_training(HubCore& hub, double now, std::vector<Outgoing>& out) const override {
    begin(hub);
    open_round(hub, now, out);
  }
  std::optional<Refusal> check_update(const HubCore& hub, const AgentState& agent,
                                      const msg::Update& update) const override;
  // The state for the first gradient round at the hub's w.
  static void begin(HubCore& hub);
  static void switch_to(HubCore& hub, const std::string& why);
  static void choose_at_start(HubCore& hub);

 private:
  void step(HubCore& hub, const Eigen::VectorXd& w_round, double n_round, double objective,
            RoundReport& report) const override;
  static void take_gradient(HubCore& hub, const Eigen::VectorXd& w_round, double n_round,
                            double objective, bool complete, RoundReport& report);
  static void take_product(HubCore& hub, bool complete, RoundReport& report);
  // w <- w_outer + x; the next round is a gradient round.
  static void end_cg(HubCore& hub, RoundReport& report);
  static Eigen::VectorXd precondition(HubCore& hub, const Eigen::VectorXd& r);
  // Whether the preconditioner is the bound on two-level's basis (newton.hpp: coarse).
  static bool on_coarse_basis(const HubCore& hub);
  // use_hessian: the model of the Hessian at w_outer, factored with the damping mu (rebuilt from
  // the checkpointed sum on a restored hub). False when it cannot be (the hub then goes on
  // with the Gram bound or curvature pairs, and says so).
  static bool hessian_ready(HubCore& hub);
  // use_hessian: mu raised (x4, at least the model's initial damping) until the model's decrease
  // for the step -(H + mu I)^{-1} g at w_outer is at most F(w_outer). Every loss is >= 0, so
  // F >= 0 everywhere: a model that promises more than F is trusted too far (on rows of very
  // different scales its Newton step is mostly the flat directions', which lambda alone holds,
  // and the trial point's F is then thousands of times the start's). F unknown: mu as it is.
  static void bound_damping(HubCore& hub);
};

const HubCore::Mode& newton_mode() {
  static const NewtonMode mode;
  return mode;
}

void switch_to_newton(HubCore& hub, const std::string& why) { NewtonMode::switch_to(hub, why); }

void NewtonMode::switch_to(HubCore& hub, const std::string& why) {
  hub.active_ = Aggregation::newton_cg;
  hub.mode_ = &newton_mode();
  if (hub.phase_ != HubCore::Phase::training) {  // before the first round: start_training begins
    hub.notes_.push_back(cat("Newton-CG from the start: ", why));
    return;
  }
  hub.notes_.push_back(cat("switching to Newton-CG at round ", hub.round_, ": ", why));
  begin(hub);
}

void choose_start_mode(HubCore& hub) { NewtonMode::choose_at_start(hub); }

void NewtonMode::choose_at_start(HubCore& hub) {
  // (Every model has a preconditioner from the start but with `pairs`: the Hessians or the Gram
  // where they fit, else the diagonals.)
  if (hub.options_.aggregation != Aggregation::automatic || hub.active_ != Aggregation::two_level ||
      hub.options_.preconditioner == Preconditioner::pairs ||
      coarse::whole_space(hub.features_, hub.options_.objective.classes, hub.options_.coarse_rank))
    return;
  // A local run of T steps of size eta moves a direction of curvature c by about eta T c; the
  // flattest directions have curvature lambda. The longest run's eta T lambda below kFlatProgress
  // means two-level's local runs leave those directions where they are.
  double progress = 0.0;
  for (const auto& [id, a] : hub.agents_)
    progress = std::max(progress, hub.eta_ * static_cast<double>(hub.local_steps_for(a)) *
                                      hub.options_.objective.lambda);
  if (progress >= kFlatProgress) return;
  switch_to(hub, cat("the local runs would move the flattest directions (curvature lambda) by ",
                     "eta T lambda = ", progress, " per round at most (below ", kFlatProgress,
                     ")"));
}

void NewtonMode::begin(HubCore& hub) {
  HubCore::NewtonState& s = hub.newton_;
  s = HubCore::NewtonState{};
  s.stage = msg::RoundKind::gradient;
  // The Hessians need an upload each gradient round (their distinct entries, C (C - 1) / 2
  // triangles of d x d, one for logistic: coarse::blocks_size) and a d*C factor, the Gram
  // bound a d x d upload once: each affordable up to max_gram_columns(). The squared loss's
  // Hessian is its Gram.
  const Preconditioner asked = hub.options_.preconditioner;
  const Index width = hub.features_ * hub.options_.objective.classes;
  const bool affordable = hub.features_ <= newton::max_gram_columns();
  s.use_hessian = width <= newton::max_gram_columns() &&
                  hub.options_.objective.loss != Loss::squared &&
                  (asked == Preconditioner::automatic || asked == Preconditioner::hessian);
  s.use_gram = !s.use_hessian && affordable && asked != Preconditioner::pairs &&
               asked != Preconditioner::diagonal;
  s.gram_asked = s.use_gram;
  // The diagonal where neither fits (or asked), but after a switch from two-level, whose basis
  // bound does better (docs/ALGORITHM.md 7.3): d*C floats each gradient round, as the initial
  // matrix of the curvature pairs' recursion.
  s.use_diagonal = !s.use_hessian && !s.use_gram && asked != Preconditioner::pairs &&
                   (asked == Preconditioner::diagonal || !on_coarse_basis(hub));
  s.w_outer = hub.w_;
  const std::string over = cat("d = ", hub.features_, " is over ", newton::max_gram_columns(),
                               " columns for a Gram upload; ");
  hub.notes_.push_back(
      s.use_hessian
          ? cat("Newton-CG: the damped Newton step (H / N + (lambda + mu) I) x = -g solved at "
                "the hub from the agents' Hessians at each point (d*C = ", width, ": ",
                coarse::packed_size(static_cast<std::size_t>(width)) * sizeof(float),
                " bytes from each agent a gradient round); CG products only after a round some "
                "agent missed")
      : s.use_gram ? cat("Newton-CG: preconditioner M = beta X^T X / N + lambda I from the agents' "
                       "Grams (d = ", hub.features_, ": one upload each)")
      : s.use_diagonal
          ? cat("Newton-CG: ", affordable ? std::string() : over,
                "preconditioner from the last round's CG curvature pairs on the diagonal of the "
                "agents' Hessians at each accepted point (d*C = ", width, ": ",
                width * static_cast<Index>(sizeof(float)),
                " bytes at most from each agent a gradient round)")
      : on_coarse_basis(hub)
          ? cat("Newton-CG: ", affordable ? std::string() : over,
                "preconditioner M = beta X^T X / N + lambda I bounded on two-level's basis (",
                hub.coarse_.basis.u.cols(), " directions, curvature ",
                hub.coarse_.basis.fine_curvature, " outside them)")
      : affordable
          ? std::string("Newton-CG: preconditioner from the last round's CG curvature pairs (as "
                        "asked)")
          : cat("Newton-CG: ", over, "preconditioner from the last round's CG curvature pairs"));
}

bool NewtonMode::on_coarse_basis(const HubCore& hub) {
  const HubCore::NewtonState& s = hub.newton_;
  const coarse::Basis& b = hub.coarse_.basis;
  return !s.use_gram && !s.use_diagonal && !s.coarse_failed &&
         hub.options_.preconditioner != Preconditioner::pairs &&
         hub.options_.preconditioner != Preconditioner::diagonal && !b.identity && b.u.cols() > 0;
}

void NewtonMode::add_to_start(const HubCore& hub, const AgentState* agent,
                              msg::RoundStart& start) const {
  const HubCore::NewtonState& s = hub.newton_;
  start.kind = s.stage;
  start.gbar.clear();
  start.eta = 0.0;
  start.gram = s.stage == msg::RoundKind::gradient && s.gram_asked;
  start.hessian = s.stage == msg::RoundKind::gradient && s.use_hessian;
  start.diagonal = s.stage == msg::RoundKind::gradient && s.use_diagonal;
  start.direction.clear();
  if (s.stage == msg::RoundKind::product)
    start.direction = agent != nullptr
                          ? support::gather(s.cg.p, agent->support, hub.options_.objective.classes)
                          : to_std(s.cg.p);
}

std::optional<Refusal> NewtonMode::check_update(const HubCore& hub, const AgentState& agent,
                                                const msg::Update& update) const {
  if (auto refusal = SyncMode::check_update(hub, agent, update)) return refusal;
  if (update.round < hub.round_) return std::nullopt;  // late: nothing but its dS is used
  if (update.product.empty())
    return Refusal{msg::ErrorCode::wrong_round,
                   cat("round ", hub.round_, " is a Newton-CG ", to_string(hub.newton_.stage),
                       " round: the update must carry `product`, not a local run")};
  const bool hessian = hub.newton_.stage == msg::RoundKind::gradient && hub.newton_.use_hessian;
  if (update.hessian.empty() == hessian)
    return Refusal{msg::ErrorCode::dimension_mismatch,
                   hessian ? "the round asked for the agent's Hessian and the update has none"
                           : "the update carries a Hessian the round did not ask for"};
  const bool diagonal = hub.newton_.stage == msg::RoundKind::gradient && hub.newton_.use_diagonal;
  if (update.diagonal.empty() == diagonal)
    return Refusal{msg::ErrorCode::dimension_mismatch,
                   diagonal ? "the round asked for the diagonal of the agent's Hessian and the "
                              "update has none"
                            : "the update carries a Hessian diagonal the round did not ask for"};
  const bool gram = hub.newton_.stage == msg::RoundKind::gradient && hub.newton_.gram_asked;
  if (update.gram.empty() == gram)
    return Refusal{msg::ErrorCode::dimension_mismatch,
                   gram ? "the round asked for the agent's Gram and the update has none"
                        : "the update carries a Gram the round did not ask for"};
  return std::nullopt;
}

void NewtonMode::step(HubCore& hub, const Eigen::VectorXd& w_round, double n_round,
                      double objective, RoundReport& report) const {
  const bool complete = hub.pending_.size() == hub.agents_.size();
  if (hub.newton_.stage == msg::RoundKind::gradient)
    take_gradient(hub, w_round, n_round, objective, complete, report);
  else
    take_product(hub, complete, report);
}

void NewtonMode::take_gradient(HubCore& hub, const Eigen::VectorXd& w_round, double n_round,
                               double objective, bool complete, RoundReport& report) {
  HubCore::NewtonState& s = hub.newton_;
  const double lambda = hub.options_.objective.lambda;
  // The sum of the agents' uploads (coarse::add_blocks: the Grams one class, the Hessians the
  // model's), each on its support, as the packed upper triangle of the whole matrix.
  const auto sum_uploads = [&hub](std::vector<float> msg::Update::*field, int classes,
                                  bool softmax) {
    const Index n = hub.features_ * classes;
    Eigen::VectorXd sum = Eigen::VectorXd::Zero(static_cast<Index>(coarse::packed_size(n)));
    for (const auto& [id, u] : hub.pending_)
      coarse::add_blocks((u.*field).data(), hub.agents_.at(id).support, hub.features_, classes,
                         softmax, sum);
    return sum;
  };
  // The Grams, once, and only from every agent (a partial sum is no bound).
  if (s.gram_asked && complete) {
    const Index d = hub.features_;
    s.gram = sum_uploads(&msg::Update::gram, 1, false);
    s.gram_asked = false;
    if (const Status f = s.factor.factor(s.gram, d, hub.options_.objective.beta(),
                                         static_cast<double>(hub.total_samples_), lambda);
        !f) {
      s.use_gram = false;
      hub.notes_.push_back(cat("Newton-CG: ", f.message(),
                               on_coarse_basis(hub) ? "; the bound on two-level's basis instead"
                                                    : "; curvature pairs instead"));
    }
  }
  // F rose against the last accepted point (by more than rounding): with the Hessians, a
  // shorter step bent towards the gradient, (H + mu I) x = -g with a larger mu, solved here;
  // else half the step back.
  if (std::isfinite(objective) && std::isfinite(s.f_outer) &&
      objective - s.f_outer > 1e-12 * std::abs(s.f_outer)) {
    if (s.use_hessian && s.g_outer.size() == w_round.size() && s.hessian.size() > 0) {
      if (!s.model.has()) hessian_ready(hub);  // a restored hub: the model again
      if (s.model.has()) s.mu = newton::raise_damping(s.mu, s.model.initial_damping());
      bound_damping(hub);
      if (s.use_hessian && hessian_ready(hub)) {
        s.step = -s.model.solve(s.g_outer);
        s.predicted = s.model.predicted_decrease(s.g_outer, s.step);
        s.t = 1.0;
        hub.w_ = s.w_outer + s.step;
        report.reverted = true;
        hub.notes_.push_back(cat("Newton-CG: F rose to ", objective, " at round ", hub.round_,
                                 " (from ", s.f_outer, "): damping mu = ", s.mu));
        return;
      }
    }
    s.t *= 0.5;
    hub.w_ = s.w_outer + s.t * s.step;
    report.reverted = true;
    report.step_scale = s.t;
    hub.notes_.push_back(cat("Newton-CG: F rose to ", objective, " at round ", hub.round_,
                             " (from ", s.f_outer, "): step length ", s.t));
    return;
  }
  // The damping follows how F's decrease compared with the model's (newton::next_damping).
  if (s.use_hessian && s.hessian.size() > 0 && !s.model.has()) hessian_ready(hub);  // restored
  if (s.use_hessian && std::isfinite(objective) && std::isfinite(s.f_outer) &&
      std::isfinite(s.predicted) && s.predicted > 0.0 && s.model.has())
    s.mu = newton::next_damping(s.mu, (s.f_outer - objective) / s.predicted,
                                s.model.initial_damping(), lambda);
  s.predicted = std::numeric_limits<double>::quiet_NaN();
  s.w_outer = w_round;
  if (std::isfinite(objective)) s.f_outer = objective;
  ++s.outer;
  s.t = 1.0;
  Eigen::VectorXd g = Eigen::VectorXd::Zero(w_round.size());
  for (const auto& [id, u] : hub.pending_) g += view(u.product);
  g = g / n_round + lambda * w_round;
  if (complete) report.gradient_norm = g.norm();  // the whole gradient at w: exact
  if (s.use_hessian) {
    s.g_outer = g;
    // The Hessians at the new point, from every agent; after a partial round the last ones
    // stay (still a preconditioner, if a stale one).
    if (complete) {
      s.hessian = sum_uploads(&msg::Update::hessian, hub.options_.objective.classes,
                              hub.options_.objective.loss == Loss::multinomial);
      s.model = newton::HessianModel{};
    }
    if (s.hessian.size() > 0 && hessian_ready(hub)) bound_damping(hub);  // (a failure is said)
  }
  // The diagonals at the new point, from every agent (after a partial round the last stay).
  if (s.use_diagonal && complete) {
    const int C = hub.options_.objective.classes;
    s.diagonal = Eigen::VectorXd::Zero(w_round.size());
    for (const auto& [id, u] : hub.pending_) {
      const AgentState& a = hub.agents_.at(id);
      for (std::size_t i = 0; i < u.diagonal.size(); ++i)
        s.diagonal[a.support.empty() ? static_cast<Index>(i)
                                     : static_cast<Index>(a.support[i / C]) * C +
                                           static_cast<Index>(i % C)] += u.diagonal[i];
    }
  }
  // Every agent's Hessian at w is here: the damped Newton step is the model's minimiser, solved
  // at the hub, and the next round is the gradient round at the new point. (A CG would ask the
  // agents for H p, which the hub holds to float32's rounding: a round more per Newton step for
  // nothing. After a partial round the model is a stale one, and CG's products correct it.)
  if (s.use_hessian && complete && hessian_ready(hub)) {
    s.step = -s.model.solve(g);
    s.predicted = s.model.predicted_decrease(g, s.step);
    s.t = 1.0;
    hub.w_ = s.w_outer + s.step;
    report.cg_steps = 0;
    return;
  }
  s.cg.start(g, precondition(hub, -g), newton::cg_tolerance(g.norm()));
  s.stage = msg::RoundKind::product;
}

void NewtonMode::take_product(HubCore& hub, bool complete, RoundReport& report) {
  HubCore::NewtonState& s = hub.newton_;
  if (!complete) {
    if (s.cg.steps == 0) s.cg.x = s.cg.p;  // the preconditioned gradient step
    end_cg(hub, report);
    return;
  }
  Eigen::VectorXd q = Eigen::VectorXd::Zero(s.cg.p.size());
  for (const auto& [id, u] : hub.pending_) q += view(u.product);
  q = q / static_cast<double>(hub.total_samples_) +
      (hub.options_.objective.lambda + (s.use_hessian ? s.mu : 0.0)) * s.cg.p;
  const Eigen::VectorXd p = s.cg.p;
  if (!s.cg.take(q)) {
    if (s.cg.x.isZero(0.0)) s.cg.x = p;
    end_cg(hub, report);
    return;
  }
  // The pair (p, H p) for the next round's pairs preconditioner: the newest kPairs.
  s.next_s.conservativeResize(p.size(), std::min<Index>(s.next_s.cols() + 1, newton::kPairs));
  s.next_y.conservativeResize(p.size(), s.next_s.cols());
  if (s.next_s.cols() == newton::kPairs && s.cg.steps > static_cast<std::uint64_t>(newton::kPairs)) {
    // Full: drop the oldest (shift left), the newest goes last.
    for (Index j = 0; j + 1 < s.next_s.cols(); ++j) {
      s.next_s.col(j) = s.next_s.col(j + 1);
      s.next_y.col(j) = s.next_y.col(j + 1);
    }
  }
  s.next_s.col(s.next_s.cols() - 1) = p;
  s.next_y.col(s.next_y.cols() - 1) = q;
  report.cg_steps = s.cg.steps;
  if (s.cg.converged() || s.cg.steps >= newton::kMaxCgSteps) {
    end_cg(hub, report);
    return;
  }
  s.cg.next_direction(precondition(hub, s.cg.r));
}

void NewtonMode::end_cg(HubCore& hub, RoundReport& report) {
  HubCore::NewtonState& s = hub.newton_;
  report.cg_steps = s.cg.steps;
  s.step = s.cg.x;
  s.t = 1.0;
  // (hessian_ready: a restored hub builds the model again first.)
  if (s.use_hessian && s.hessian.size() > 0 && (s.model.has() || hessian_ready(hub)))
    s.predicted = s.model.predicted_decrease(s.g_outer, s.step);
  hub.w_ = s.w_outer + s.step;
  s.stage = msg::RoundKind::gradient;
  if (s.next_s.cols() > 0) {
    s.pairs_s = std::move(s.next_s);
    s.pairs_y = std::move(s.next_y);
  }
  s.next_s.resize(0, 0);
  s.next_y.resize(0, 0);
}

bool NewtonMode::hessian_ready(HubCore& hub) {
  HubCore::NewtonState& s = hub.newton_;
  const Index width = hub.w_.size();
  if (s.hessian.size() == 0) return false;
  Status status = Status::ok();
  if (!s.model.has())
    status = s.model.set(s.hessian, width, static_cast<double>(hub.total_samples_),
                         hub.options_.objective.lambda);
  if (status && (!s.model.ready() || s.model.mu() != s.mu)) status = s.model.factor(s.mu);
  if (status) return true;
  s.use_hessian = false;
  s.use_gram = false;
  s.model = newton::HessianModel{};
  hub.notes_.push_back(cat("Newton-CG: ", status.message(),
                           on_coarse_basis(hub) ? "; the bound on two-level's basis instead"
                                                : "; curvature pairs instead"));
  return false;
}

void NewtonMode::bound_damping(HubCore& hub) {
  HubCore::NewtonState& s = hub.newton_;
  if (!std::isfinite(s.f_outer) || !(s.f_outer > 0.0) || s.g_outer.size() != hub.w_.size())
    return;
  // (H + mu I)^{-1} g shrinks like 1 / mu, and mu stops at kMaxDamping times the initial
  // value: about 20 factors at most. A decrease that is not finite (a Hessian of huge floats)
  // ends the search: the trial's F is checked like any.
  for (int k = 0; k < 30 && s.use_hessian && hessian_ready(hub); ++k) {
    const Eigen::VectorXd x = -s.model.solve(s.g_outer);
    const double decrease = s.model.predicted_decrease(s.g_outer, x);
    if (!std::isfinite(decrease) || decrease <= s.f_outer) return;
    const double raised = newton::raise_damping(s.mu, s.model.initial_damping());
    if (raised == s.mu) return;  // at the bound
    s.mu = raised;
  }
}

Eigen::VectorXd NewtonMode::precondition(HubCore& hub, const Eigen::VectorXd& r) {
  HubCore::NewtonState& s = hub.newton_;
  if (s.use_hessian && hessian_ready(hub)) return s.model.solve(r);
  if (s.use_gram && s.gram.size() > 0) {
    if (!s.factor.ready()) {  // a restored hub: the factor again, from the checkpointed Gram
      const Status f = s.factor.factor(s.gram, hub.features_, hub.options_.objective.beta(),
                                       static_cast<double>(hub.total_samples_),
                                       hub.options_.objective.lambda);
      if (!f) s.use_gram = false;
    }
    if (s.factor.ready()) return s.factor.apply(r, hub.options_.objective.classes);
  }
  if (on_coarse_basis(hub)) {
    if (!s.coarse.ready()) {  // the first CG after the switch, or a restored hub
      const Status b = s.coarse.build(hub.coarse_.basis, hub.options_.objective.beta(),
                                      hub.options_.objective.lambda);
      if (!b) {
        s.coarse_failed = true;
        hub.notes_.push_back(cat("Newton-CG: no preconditioner on the coarse basis (", b.message(),
                                 "): curvature pairs instead"));
      }
    }
    if (s.coarse.ready())
      return s.coarse.apply(hub.coarse_.basis, r, hub.options_.objective.classes);
  }
  if (s.use_diagonal && s.diagonal.size() == r.size()) {
    // H's diagonal; 1 where it is 0 (lambda = 0 and a column no agent's rows touch: r is 0
    // there too).
    const Eigen::ArrayXd d =
        s.diagonal.array() / static_cast<double>(hub.total_samples_) + hub.options_.objective.lambda;
    return newton::apply_pairs(s.pairs_s, s.pairs_y, r, (d > 0.0).select(d, 1.0).matrix());
  }
  return newton::apply_pairs(s.pairs_s, s.pairs_y, r);
}

}  // namespace dsaga
