// Synchronous rounds, shared by the plain mean (hub_sync.cpp) and two-level dSAGA
// (hub_two_level.cpp): they differ only in the step a closed round takes.
#pragma once

#include "hub_mode.hpp"

namespace dsaga {

class SyncMode : public HubCore::Mode {
 public:
  void start_training(HubCore& hub, double now, std::vector<Outgoing>& out) const override;
  void resume_agent(HubCore& hub, AgentState& agent, std::vector<Outgoing>& out) const override;
  std::optional<Refusal> check_update(const HubCore& hub, const AgentState& agent,
                                      const msg::Update& update) const override;
  Status take_update(HubCore& hub, AgentState& agent, const msg::Update& update, double now,
                     std::vector<Outgoing>& out) const override;
  void on_tick(HubCore& hub, double now, std::vector<Outgoing>& out) const override;
  bool knows_broadcast() const override { return true; }

 protected:
  // Opens the next round: one RoundStart to every connected agent with a table.
  void open_round(HubCore& hub, double now, std::vector<Outgoing>& out) const;

 private:
  // Applies the held updates' table deltas, then the mode's step, reports, opens the next round.
  void close_round(HubCore& hub, double now, std::vector<Outgoing>& out) const;
  // The new w from the round's broadcast w_round and the held updates (hub.pending_, by agent
  // id); n_round = their samples; objective = F(w_round), NaN if an agent's loss is missing.
  virtual void step(HubCore& hub, const Eigen::VectorXd& w_round, double n_round,
                    double objective, RoundReport& report) const = 0;
};

}  // namespace dsaga
