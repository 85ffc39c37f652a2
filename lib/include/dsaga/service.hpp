// The event loops that put the state machines on the wire: bytes in -> wire::decode (verified
// message) -> HubCore / AgentCore -> wire::encode -> bytes out. They own no math and no
// sockets: the caller opens the sockets (transport.hpp) and builds the cores, so the same loops
// run over inproc:// in tests and tcp:// in the daemons.
//
// Both loops are single-threaded and never block longer than their tick/heartbeat interval
// outside the core's own work (an agent's local round).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "dsaga/agent.hpp"
#include "dsaga/hub.hpp"
#include "dsaga/status.hpp"
#include "dsaga/transport.hpp"
#include "dsaga/wire.hpp"

namespace dsaga {

// Seconds on a monotonic clock (steady_clock), the time base the cores are fed.
double monotonic_seconds();

// What the hub's loop itself turns away, cumulative since run_hub started (for metrics).
struct HubLoopCounters {
  std::uint64_t joins_refused = 0;      // Joins refused: protocol version, key identity, the core
  std::uint64_t messages_rejected = 0;  // other messages rejected: malformed or by the core
};

struct HubServiceOptions {
  wire::Limits limits;
  double tick_seconds = 0.05;  // longest wait for a message before time-driven work (deadlines)
  // After training ends, keep answering reconnecting agents (Leave) this long.
  double linger_seconds = 0.5;
  // The same for a hub that starts already finished (restored from a checkpoint saved at the
  // end): its agents may not have heard the end and reconnect only after their hub timeout.
  double finished_linger_seconds = 15.0;
  // Called for every closed round, with the socket totals at that moment.
  std::function<void(const RoundReport&, const TrafficCounters&)> on_report;
  // Polled every tick; true makes run_hub return without ending training. E.g. a signal flag.
  std::function<bool()> stop_requested;
  // Called on the loop's thread after every tick's reports (at least every tick_seconds while
  // the core is not busy) and once when training ends: publish a metrics snapshot, ping a
  // watchdog. It must not block.
  std::function<void(const HubCore&, const TrafficCounters&, const HubLoopCounters&)> on_tick;
  // Called at every commit point (HubCore::take_commit), before the messages that acknowledge
  // the committed updates are sent: save HubCore::snapshot() here. A failed save (disk full,
  // read-only) is logged and nothing is sent, acknowledgements included, until a retry (every
  // tick, with the newest state) succeeds: a crash meanwhile loses nothing acknowledged.
  std::function<Status(const HubCore&)> checkpoint;
  // After this many seconds of failed saves run_hub stops with an error (0 = retry forever).
  double checkpoint_retry_seconds = 60.0;
};

// Runs until the core finishes (target, round cap, divergence) or stop_requested() turns true
// (a shutdown: training is not finished, the agents wait for the next hub). An error Status
// for a failed socket or checkpoint_retry_seconds of failed saves; rejected messages are logged
// (spdlog) and answered with msg::Error.
Status run_hub(HubCore& core, ServerSocket& socket, const HubServiceOptions& options);

struct AgentServiceOptions {
  wire::Limits limits;
  double heartbeat_seconds = 2.0;    // ping the hub after this much silence while waiting
  double hub_timeout_seconds = 10.0; // no answer this long: reconnect and join again
  double give_up_seconds = 0.0;      // hub silent this long in all: fail (0 = never give up)
  std::function<bool()> stop_requested;
  // Called after each answered round (progress, resident memory, ...).
  std::function<void(const AgentCore&)> on_round;
  // Called on the loop's thread after every message or wait (at least every heartbeat_seconds
  // outside a local round): readiness once configured, watchdog pings. It must not block.
  std::function<void(const AgentCore&)> on_tick;
};

// Joins, then answers the hub until told to leave. Error Status when the hub refused the agent,
// the hub stayed unreachable for give_up_seconds, or the socket failed.
Status run_agent(AgentCore& core, ClientSocket& socket, const AgentServiceOptions& options);

// Printable form of an opaque peer id (hex), for logs.
std::string peer_name(const PeerId& peer);

}  // namespace dsaga
