// The hub's asynchronous aggregation (hub.hpp: Aggregation::async): each update is applied the
// moment it arrives and only its sender is answered; a reporting "round" is as many applied
// updates as there are agents, with F measured at a common point (RoundStart.eval_w).
#include <algorithm>

#include "hub_mode.hpp"
#include "strings.hpp"

namespace dsaga {

// Each update applied on arrival, its sender answered alone (the functions below).
class AsyncMode final : public HubCore::Mode {
 public:
  void start_training(HubCore& hub, double now, std::vector<Outgoing>& out) const override {
    hub.version_ = 1;
    hub.open_async_round(now);
    for (auto& [id, a] : hub.agents_)
      if (a.connected) hub.send_async_start(a, out);
  }
  void resume_agent(HubCore& hub, AgentState& agent, std::vector<Outgoing>& out) const override {
    // A start at an unchanged version is one the agent already has and ignores.
    hub.send_async_start(agent, out);
  }
  std::optional<Refusal> check_update(const HubCore& hub, const AgentState&,
                                      const msg::Update& update) const override {
    if (update.round > hub.version_)
      return Refusal{msg::ErrorCode::wrong_round, cat("the model's version is ", hub.version_)};
    return no_coarse_payload(update);
  }
  Status take_update(HubCore& hub, AgentState& agent, const msg::Update& update, double now,
                     std::vector<Outgoing>& out) const override {
    agent.last_seq = update.seq;
    return hub.apply_async(agent, update, now, out);
  }
  void on_tick(HubCore& hub, double now, std::vector<Outgoing>& out) const override {
    hub.maybe_close_async_round(now, out);
  }
  void on_agent_lost(HubCore& hub, double now, std::vector<Outgoing>& out) const override {
    hub.maybe_close_async_round(now, out);  // its loss may be all the round waits for
  }
};

const HubCore::Mode& async_mode() {
  static const AsyncMode mode;
  return mode;
}

std::uint64_t HubCore::staleness_bound() const {
  return options_.max_staleness > 0 ? options_.max_staleness
                                    : 2 * static_cast<std::uint64_t>(agents_.size());
}

void HubCore::send_async_start(AgentState& agent, std::vector<Outgoing>& out) {
  if (!agent.connected || !agent.initialized) return;
  msg::RoundStart start;
  start.round = version_;
  start.w = to_std(w_);
  start.gbar = to_std(gbar_);
  // Until the agent has reported its loss at this round's evaluation point, it is asked for it.
  if (eval_reported_.count(agent.agent_id) == 0) {
    start.eval_w = to_std(eval_w_);
    agent.eval_round = round_;
    agent.eval_version = version_;
  } else {
    agent.eval_round = 0;
  }
  out.push_back(Outgoing{{agent.peer}, std::move(start)});
}

Status HubCore::apply_async(AgentState& agent, const msg::Update& update, double now,
                            std::vector<Outgoing>& out) {
  // The update is applied now (and, with checkpoints, saved before its Ack leaves). Its dS
  // always counts; its dw only if the model it started from is recent enough.
  const std::uint64_t staleness = version_ - update.round;
  const bool use_dw = staleness <= staleness_bound();
  if (use_dw)
    w_ += (options_.server_step * static_cast<double>(update.samples) /
           static_cast<double>(total_samples_)) * view(update.dw);
  agent.table_sum += view(update.dS);
  gbar_ += view(update.dS) / static_cast<double>(total_samples_);
  ++version_;
  ++round_updates_;
  if (!use_dw) ++round_stale_;
  round_steps_ += update.steps;
  // Its loss sum is at this round's evaluation point only if the start it answers said so.
  if (agent.eval_round == round_ && agent.eval_version == update.round &&
      eval_reported_.count(agent.agent_id) == 0) {
    eval_loss_ += update.loss_sum;
    eval_validation_.add(update.validation);
    eval_reported_.emplace(agent.agent_id, true);
  }
  agent.eval_round = 0;
  out.push_back(Outgoing{{agent.peer}, msg::Ack{update.round, update.seq}});
  commit_ = true;
  maybe_close_async_round(now, out);
  if (phase_ == Phase::training) send_async_start(agent, out);
  if (!use_dw)
    return Status::error(cat("Update of agent '", agent.agent_id, "' started ", staleness,
                             " updates ago (bound ", staleness_bound(),
                             "): its dw is dropped, its table delta applied"));
  return Status::ok();
}

void HubCore::open_async_round(double now) {
  ++round_;
  round_started_ = now;
  round_updates_ = 0;
  round_stale_ = 0;
  round_steps_ = 0;
  eval_w_ = w_;
  eval_loss_ = 0.0;
  eval_validation_.clear();
  eval_reported_.clear();
  commit_ = true;
}

void HubCore::maybe_close_async_round(double now, std::vector<Outgoing>& out) {
  if (phase_ != Phase::training) return;
  const bool evaluated = eval_reported_.size() == agents_.size();
  bool missing_gone = true;  // every agent still owing its loss has disconnected
  for (const auto& [id, a] : agents_)
    if (eval_reported_.count(id) == 0 && a.connected) missing_gone = false;
  const bool timed_out = options_.round_deadline > 0 &&
                         now - round_started_ >= options_.round_deadline &&
                         round_updates_ >= std::max(1, options_.min_participants);
  const bool enough = round_updates_ >= agents();
  if (!((enough && (evaluated || missing_gone)) || timed_out)) return;

  RoundReport report;
  report.round = round_;
  report.agents = agents();
  report.participants = static_cast<int>(eval_reported_.size());
  report.updates = round_updates_;
  report.stale_dropped = round_stale_;
  report.local_steps = round_steps_;
  report.seconds = now - round_started_;
  if (evaluated) record_objective(report, eval_loss_, eval_w_);
  report.validation = summarize(eval_validation_, options_.objective.loss);
  report.invariant_error = check_invariant();
  reports_.push_back(report);
  if (!finish_if_done(report, evaluated, out)) open_async_round(now);
}

}  // namespace dsaga
