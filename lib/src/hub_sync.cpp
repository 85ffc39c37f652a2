// Synchronous rounds (hub_mode.hpp), and the plain weighted mean of dSAGA and the baselines in
// them (Aggregation::mean; ALGORITHM.md section 3). A round opens with one RoundStart to every
// agent; each update is held until every agent's is in (or the round deadline passes with
// enough of them), then all are applied in agent-id order, so arrival order does not change the
// result; an update of a round already closed has its dS applied and its step dropped.
#include "sync_mode.hpp"

#include <algorithm>
#include <cmath>

#include "strings.hpp"

namespace dsaga {

// w <- w + eta_g * sum_k (n_k / N_r) dw_k.
class MeanMode final : public SyncMode {
 public:
  std::optional<Refusal> check_update(const HubCore& hub, const AgentState& agent,
                                      const msg::Update& update) const override {
    if (auto refusal = SyncMode::check_update(hub, agent, update)) return refusal;
    return no_coarse_payload(update);
  }

 private:
  void step(HubCore& hub, const Eigen::VectorXd& w_round, double n_round, double /*objective*/,
            RoundReport& /*report*/) const override {
    hub.w_ = w_round;
    for (const auto& [id, u] : hub.pending_)
      hub.w_ += (hub.options_.server_step * static_cast<double>(u.samples) / n_round) * view(u.dw);
  }
};

void SyncMode::start_training(HubCore& hub, double now, std::vector<Outgoing>& out) const {
  open_round(hub, now, out);
}

void SyncMode::resume_agent(HubCore& hub, AgentState& agent, std::vector<Outgoing>& out) const {
  // An agent whose update for the open round is held already has that round.
  if (hub.pending_.count(agent.agent_id) == 0)
    out.push_back(Outgoing{{agent.peer}, hub.broadcast_to(agent)});
}

std::optional<Refusal> SyncMode::check_update(const HubCore& hub, const AgentState&,
                                              const msg::Update& update) const {
  if (update.round > hub.round_)
    return Refusal{msg::ErrorCode::wrong_round, cat("the open round is ", hub.round_)};
  return std::nullopt;
}

Status SyncMode::take_update(HubCore& hub, AgentState& agent, const msg::Update& update,
                             double now, std::vector<Outgoing>& out) const {
  if (update.round < hub.round_) {
    hub.apply_late(agent, update, out);
    return Status::ok();
  }
  hub.pending_.emplace(agent.agent_id, update);
  if (hub.pending_.size() == hub.agents_.size()) close_round(hub, now, out);
  return Status::ok();
}

void SyncMode::on_tick(HubCore& hub, double now, std::vector<Outgoing>& out) const {
  if (hub.options_.round_deadline > 0 && now - hub.round_started_ >= hub.options_.round_deadline &&
      static_cast<int>(hub.pending_.size()) >= std::max(1, hub.options_.min_participants))
    close_round(hub, now, out);
}

void SyncMode::open_round(HubCore& hub, double now, std::vector<Outgoing>& out) const {
  hub.commit_ = true;  // a round boundary: the state to save
  ++hub.round_;
  hub.round_started_ = now;
  hub.pending_.clear();
  // The round's broadcast, kept for the whole round (late updates move gbar_ meanwhile).
  hub.round_gbar_ = hub.gbar_;
  hub.advance_broadcast();
  const msg::RoundStart whole = hub.round_start();
  hub.round_eta_ = whole.eta > 0 ? whole.eta : hub.eta_;
  // One message to every agent that takes the whole vectors, another to those of them that take
  // the changes, one each to the restricted ones.
  std::vector<PeerId> to, changes_to;
  for (auto& [id, agent] : hub.agents_) {
    if (!agent.connected || !agent.initialized) continue;
    if (hub.restricted(agent)) {
      out.push_back(Outgoing{{agent.peer}, hub.broadcast_to(agent)});
      continue;
    }
    (hub.takes_changes(agent) ? changes_to : to).push_back(agent.peer);
    agent.holds_round = hub.bw_.size() == hub.w_.size() ? hub.round_ : 0;
  }
  if (!to.empty()) out.push_back(Outgoing{std::move(to), whole});
  if (!changes_to.empty()) out.push_back(Outgoing{std::move(changes_to), hub.changes_start(nullptr)});
}

void SyncMode::close_round(HubCore& hub, double now, std::vector<Outgoing>& out) const {
  RoundReport report;
  report.round = hub.round_;
  report.agents = hub.agents();
  report.participants = static_cast<int>(hub.pending_.size());
  report.updates = report.participants;
  report.late_updates = hub.late_updates_;
  hub.late_updates_ = 0;
  report.seconds = now - hub.round_started_;
  report.mode = hub.active_;
  report.kind = hub.mode_->round_kind(hub);

  // gbar <- gbar + sum_k dS_k / N (S_k with it, exactly once), then the mode's step.
  double n_round = 0.0;
  for (const auto& [id, u] : hub.pending_) n_round += static_cast<double>(u.samples);
  const Eigen::VectorXd w_round = hub.w_;
  double loss = 0.0;
  ValidationCounts validation;
  for (const auto& [id, u] : hub.pending_) {
    validation.add(u.validation);
    AgentState& agent = hub.agents_.at(id);
    agent.last_seq = u.seq;
    if (!u.dS.empty()) {  // (a Newton answer leaves the tables alone)
      agent.table_sum += view(u.dS);
      hub.gbar_ += view(u.dS) / static_cast<double>(hub.total_samples_);
    }
    out.push_back(Outgoing{{agent.peer}, msg::Ack{u.round, u.seq}});
    loss += u.loss_sum;
    report.local_steps += u.steps;
  }
  // F(w_r) needs every agent's loss at w_r (a Newton product round measures none).
  const bool complete = hub.pending_.size() == hub.agents_.size() &&
                        report.kind != msg::RoundKind::product;
  if (complete) hub.record_objective(report, loss, hub.broadcast_w());  // where the agents were
  report.validation = summarize(validation, hub.options_.objective.loss);
  step(hub, w_round, n_round, complete ? report.objective : NAN, report);
  report.invariant_error = hub.check_invariant();
  hub.reports_.push_back(report);
  hub.pending_.clear();
  if (!hub.finish_if_done(report, complete, out)) open_round(hub, now, out);
}

std::optional<Refusal> no_coarse_payload(const msg::Update& update) {
  if (!update.coarse_g.empty() || !update.coarse_h.empty())
    return Refusal{msg::ErrorCode::dimension_mismatch,
                   "coarse_g and coarse_h must be empty: this hub runs no coarse space"};
  return std::nullopt;
}

double HubCore::Mode::default_step(const HubCore& hub, double lmax) const {
  // Gradient descent is stable up to 2/L; the stochastic methods take SAGA's 1/(3 L_max).
  return hub.options_.algorithm == msg::Algorithm::gd ? 1.0 / lmax : 1.0 / (3.0 * lmax);
}

const HubCore::Mode& mean_mode() {
  static const MeanMode mode;
  return mode;
}

const HubCore::Mode& mode_for(Aggregation aggregation) {
  switch (aggregation) {
    case Aggregation::async: return async_mode();
    case Aggregation::two_level: return two_level_mode();
    case Aggregation::newton_cg: return newton_mode();
    case Aggregation::mean:
    case Aggregation::automatic: break;  // resolved before (HubOptions::effective_aggregation)
  }
  return mean_mode();
}

}  // namespace dsaga
