// The hub's aggregation modes (hub.hpp: Aggregation), one unit each behind this interface:
//   hub_sync.cpp       synchronous rounds, and in them the plain weighted mean (MeanMode)
//   hub_two_level.cpp  two-level dSAGA: synchronous rounds with the coarse Newton step
//   hub_async.cpp      asynchronous aggregation: every update applied on arrival
//   hub_newton.cpp     distributed Newton-CG: synchronous rounds, each a gradient or a Hessian
//                      product exchange (auto switches two-level to it once, by itself)
// HubCore (hub.cpp) keeps what every mode shares: admission, the init round, the checks of a
// message and the exactly-once table accounting, checkpoints and reports. A mode decides what
// training looks like from there: when an accepted update's step is applied, what the step is,
// what an agent that comes back is sent. Modes are stateless: the state they work on is the
// hub's, so one checkpoint holds it all.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "dsaga/hub.hpp"

namespace dsaga {

// A message's vector as an Eigen vector without a copy, and back (the hub's units all need them).
inline Eigen::Map<const Eigen::VectorXd> view(const std::vector<double>& v) {
  return Eigen::Map<const Eigen::VectorXd>(v.data(), static_cast<Eigen::Index>(v.size()));
}
inline std::vector<double> to_std(const Eigen::VectorXd& v) {
  return std::vector<double>(v.data(), v.data() + v.size());
}

// Why a mode refuses an update: the code for the msg::Error back, the reason for the log.
struct Refusal {
  msg::ErrorCode code = msg::ErrorCode::wrong_round;
  std::string why;
};

class HubCore::Mode {
 public:
  using AgentState = HubCore::AgentState;
  virtual ~Mode() = default;

  // The local step when the options leave it to the hub, from the global L_max (lambda and the
  // proximal term included).
  virtual double default_step(const HubCore& hub, double lmax) const;
  // The mode's fields in an agent's Config and in a RoundStart.
  virtual void add_to_config(const HubCore&, const AgentState&, msg::Config&) const {}
  // `agent` is the one a restricted RoundStart is for (nullptr: the whole one, to every agent
  // whose vectors are not restricted).
  virtual void add_to_start(const HubCore&, const AgentState* /*agent*/, msg::RoundStart&) const {}
  // What the open round asks of the agents (Newton-CG: a gradient or a product exchange).
  virtual msg::RoundKind round_kind(const HubCore&) const { return msg::RoundKind::run; }
  // The local steps per round of an agent whose Config says `steps`.
  virtual std::uint64_t local_steps(const HubCore&, std::uint64_t steps) const { return steps; }
  // Whether the mode keeps the round's broadcast (round_gbar_, round_eta_) for the closed form
  // of a restricted agent's run (support.hpp): synchronous rounds do, async does not.
  virtual bool knows_broadcast() const { return false; }
  // An InitUpload's payload beyond the table sum, while the hub initialises.
  virtual Status take_init(HubCore&, AgentState&, const msg::InitUpload&) const {
    return Status::ok();
  }
  // The init round is complete (gbar formed, F(w0) reported): training opens.
  virtual void start_training(HubCore& hub, double now, std::vector<Outgoing>& out) const = 0;
  // An agent that joined again or rebuilt its table during training: what it needs to go on.
  virtual void resume_agent(HubCore& hub, AgentState& agent,
                            std::vector<Outgoing>& out) const = 0;
  // The mode's checks of an update whose seq is the next one (its round, its payload); the
  // state is not touched.
  virtual std::optional<Refusal> check_update(const HubCore& hub, const AgentState& agent,
                                              const msg::Update& update) const = 0;
  // An update of a training hub that passed every check: applied now or held (its Ack leaves
  // once it is applied).
  virtual Status take_update(HubCore& hub, AgentState& agent, const msg::Update& update,
                             double now, std::vector<Outgoing>& out) const = 0;
  // Time passes; an agent left or its connection dropped.
  virtual void on_tick(HubCore& hub, double now, std::vector<Outgoing>& out) const = 0;
  virtual void on_agent_lost(HubCore&, double, std::vector<Outgoing>&) const {}
};

// The mode an Aggregation (after `automatic` is resolved) stands for.
const HubCore::Mode& mode_for(Aggregation aggregation);

// The units' instances.
const HubCore::Mode& mean_mode();
const HubCore::Mode& two_level_mode();
const HubCore::Mode& async_mode();
const HubCore::Mode& newton_mode();

// auto: the hub goes over to Newton-CG from its current w, for the reason given (logged). The
// next round opened is Newton-CG's first gradient round.
void switch_to_newton(HubCore& hub, const std::string& why);
// auto, when training is about to start (eta and every agent known): Newton-CG from the start
// where the local runs could not move the flattest directions and the Gram is affordable
// (hub_newton.cpp).
void choose_start_mode(HubCore& hub);

// Checks shared by the modes without a coarse space: an update must not carry one.
std::optional<Refusal> no_coarse_payload(const msg::Update& update);

}  // namespace dsaga
