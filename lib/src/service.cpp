// Event loops of the hub and the agent (service.hpp).
#include "dsaga/service.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <thread>
#include <vector>

namespace dsaga {

namespace {

int to_ms(double seconds) {
  if (!(seconds > 0)) return 0;
  return static_cast<int>(std::min(seconds * 1000.0, 3600.0 * 1000.0));
}

}  // namespace

double monotonic_seconds() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

std::string peer_name(const PeerId& peer) {
  static const char* hex = "0123456789abcdef";
  std::string s;
  s.reserve(peer.size() * 2);
  for (unsigned char c : peer) {
    s.push_back(hex[c >> 4]);
    s.push_back(hex[c & 15]);
  }
  return s;
}

namespace {

// Encodes each outgoing message once and sends it to every recipient. A failed send (peer gone,
// queue full) is logged; the protocol recovers (the agent's retry and the hub's deadline).
// `sent` (optional) adds each message's vector bytes by part, once per recipient.
void send_all(ServerSocket& socket, std::vector<Outgoing>& out, std::vector<std::uint8_t>& buffer,
              msg::PartBytes* sent = nullptr) {
  for (const Outgoing& o : out) {
    if (o.to.empty()) continue;
    wire::encode(o.message, buffer);
    if (sent != nullptr) wire::add_part_bytes(buffer, o.to.size(), *sent);
    for (const PeerId& peer : o.to) {
      if (!socket.send(peer, buffer.data(), buffer.size()))
        spdlog::debug("hub: {} to peer {} not sent (peer gone or queue full)",
                      msg::name_of(o.message), peer_name(peer));
    }
  }
  out.clear();
}

// The checkpoint discipline: nothing is sent while the committed state is not saved, because
// what goes out acknowledges updates as applied. A failed save holds every outgoing message and
// is retried each tick; after options.checkpoint_retry_seconds of failures the hub stops.
class Committer {
 public:
  explicit Committer(const HubServiceOptions& options) : options_(options) {}

  // Saves if the core committed (or an earlier save failed), then sends `out` and what was held,
  // or holds them. An error once saves have failed for too long.
  Status commit_and_send(HubCore& core, ServerSocket& socket, std::vector<Outgoing>& out,
                         std::vector<std::uint8_t>& buffer, double now, msg::PartBytes& sent) {
    if (core.take_commit() && options_.checkpoint) unsaved_ = true;
    if (unsaved_) {
      if (const Status s = options_.checkpoint(core); !s) {
        if (failing_since_ < 0) {
          failing_since_ = now;
          spdlog::error("hub: checkpoint of round {} not saved: {}; acknowledgements are held "
                        "and the save retried (for at most {:.0f} s)",
                        core.round(), s.message(), options_.checkpoint_retry_seconds);
        }
        held_.insert(held_.end(), std::make_move_iterator(out.begin()),
                     std::make_move_iterator(out.end()));
        out.clear();
        if (options_.checkpoint_retry_seconds > 0 &&
            now - failing_since_ >= options_.checkpoint_retry_seconds)
          return Status::error("the checkpoint could not be saved for " +
                               std::to_string(static_cast<long>(now - failing_since_)) +
                               " s (" + s.message() +
                               "): stopping rather than acknowledging updates it cannot keep");
        return Status::ok();
      }
      if (failing_since_ >= 0)
        spdlog::info("hub: checkpoint saved again after {:.1f} s; sending what was held",
                     now - failing_since_);
      unsaved_ = false;
      failing_since_ = -1.0;
    }
    if (!held_.empty()) {
      held_.insert(held_.end(), std::make_move_iterator(out.begin()),
                   std::make_move_iterator(out.end()));
      out.swap(held_);
      held_.clear();
    }
    send_all(socket, out, buffer, &sent);
    return Status::ok();
  }
  bool holding() const { return unsaved_; }

 private:
  const HubServiceOptions& options_;
  bool unsaved_ = false;
  double failing_since_ = -1.0;
  std::vector<Outgoing> held_;
};


}  // namespace

Status run_hub(HubCore& core, ServerSocket& socket, const HubServiceOptions& options) {
  std::vector<Outgoing> out;
  std::vector<std::uint8_t> payload, buffer;
  PeerId from;
  std::string user_id;  // the agent id its CurveZMQ key is allowlisted for ("" without CURVE)
  const int tick_ms = std::max(1, to_ms(options.tick_seconds));
  const bool finished_at_start = core.finished();
  Committer committer(options);
  HubLoopCounters counters;
  msg::PartBytes received, sent;  // vector bytes by part, for the reports (RoundReport::parts_*)
  const auto tick = [&] {
    if (options.on_tick) options.on_tick(core, socket.totals(), counters);
  };
  const auto pump_reports = [&] {
    for (const std::string& note : core.take_notes()) spdlog::info("hub: {}", note);
    for (RoundReport& report : core.take_reports()) {
      report.parts_up = received;
      report.parts_down = sent;
      if (report.invariant_error > core.options().invariant_tolerance)
        spdlog::error("round {}: invariant violated: ||gbar - sum_k S_k / N|| = {:.3e} > {:.1e}",
                      report.round, report.invariant_error, core.options().invariant_tolerance);
      if (options.on_report) options.on_report(report, socket.totals());
    }
  };

  while (!core.finished()) {
    if (options.stop_requested && options.stop_requested()) {
      // A shutdown, not the end of training: the agents keep their state and wait for the
      // next hub, which resumes from the checkpoint. Nothing uncommitted is acknowledged.
      spdlog::info("hub: stopping at round {} (training not finished)", core.round());
      return Status::ok();
    }
    auto got = socket.receive(from, payload, tick_ms, &user_id);
    if (!got) return got.status();
    const double now = monotonic_seconds();
    if (*got) {
      auto message = wire::decode(payload.data(), payload.size(), options.limits);
      if (message) wire::add_part_bytes(payload, 1, received);
      const auto* join = message ? std::get_if<msg::Join>(&*message) : nullptr;
      if (!message) {
        if (const auto version = wire::foreign_version(payload.data(), payload.size())) {
          // An agent of another protocol version: refused in words its own version decodes.
          const std::string why =
              "this hub speaks dsaga protocol " + std::to_string(msg::kProtocolVersion) +
              " and the agent " + std::to_string(*version) +
              ": run hub and agents of the same dsaga release";
          spdlog::warn("hub: peer {} refused: {}", peer_name(from), why);
          wire::encode_version_refusal(why, *version, buffer);
          socket.send(from, buffer.data(), buffer.size());
          ++counters.joins_refused;
        } else {
          ++counters.messages_rejected;
          spdlog::warn("hub: message from peer {} rejected: {}", peer_name(from), message.error());
          out.push_back(Outgoing{{from}, msg::Error{msg::ErrorCode::malformed, message.error()}});
        }
      } else if (join != nullptr && !user_id.empty() && join->agent_id != user_id) {
        // A valid key may only speak for the agent it is allowlisted as; later messages on the
        // same connection come from the same key, so checking the Join is enough.
        const std::string why = "Join as '" + join->agent_id + "' with the key allowlisted for '" +
                                user_id + "': refused";
        spdlog::warn("hub: peer {}: {}", peer_name(from), why);
        out.push_back(Outgoing{{from}, msg::Error{msg::ErrorCode::refused, why}});
        ++counters.joins_refused;
      } else {
        const Status status = core.on_message(from, *message, now, out);
        if (!status) {
          spdlog::warn("hub: {}", status.message());
          ++(join != nullptr ? counters.joins_refused : counters.messages_rejected);
        }
      }
    }
    core.on_tick(now, out);
    // Metrics first, then the checkpoint, then the messages: a crash anywhere in between
    // replays the round (its metrics line may then appear twice) but never loses its line.
    pump_reports();
    tick();
    // Saved before the acknowledgements go out.
    if (const Status s = committer.commit_and_send(core, socket, out, buffer, now, sent); !s)
      return s;
  }
  pump_reports();
  tick();
  // The end of training is committed too: retried until saved or the bound runs out.
  for (;;) {
    if (const Status s = committer.commit_and_send(core, socket, out, buffer, monotonic_seconds(), sent);
        !s)
      return s;
    if (!committer.holding()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(tick_ms));
  }

  // Agents that reconnect right now (or whose Leave was lost) hear that training is over.
  const double until =
      monotonic_seconds() + (finished_at_start
                                 ? std::max(options.linger_seconds, options.finished_linger_seconds)
                                 : options.linger_seconds);
  while (monotonic_seconds() < until) {
    auto got = socket.receive(from, payload, tick_ms);
    if (!got) break;
    if (!*got) continue;
    auto message = wire::decode(payload.data(), payload.size(), options.limits);
    if (message) core.on_message(from, *message, monotonic_seconds(), out);
    send_all(socket, out, buffer);
  }
  return Status::ok();
}

namespace {

bool send_message(ClientSocket& socket, const msg::Message& message,
                  std::vector<std::uint8_t>& buffer) {
  wire::encode(message, buffer);
  if (socket.send(buffer.data(), buffer.size())) return true;
  spdlog::warn("agent: {} not sent (queue full); it is sent again after the next reconnect",
               msg::name_of(message));
  return false;
}

}  // namespace

Status run_agent(AgentCore& core, ClientSocket& socket, const AgentServiceOptions& options) {
  // Reused from message to message: a steady-state round allocates nothing here but in libzmq
  // (agent.hpp, wire.hpp; tests/unit/agent_alloc_test.cpp).
  Outbox out;
  wire::Decoder decoder(options.limits);
  std::vector<std::uint8_t> payload, buffer;
  const int wait_ms = std::max(1, to_ms(options.heartbeat_seconds));
  const auto join_and_resend = [&] {
    send_message(socket, core.join(), buffer);
    if (core.pending()) send_message(socket, *core.pending(), buffer);
  };

  join_and_resend();
  double last_heard = monotonic_seconds();   // last message from the hub (or end of our work)
  double last_contact = last_heard;          // last message from the hub, for give_up
  double last_ping = last_heard;
  while (!core.finished()) {
    if (options.stop_requested && options.stop_requested()) {
      send_message(socket, msg::Leave{"agent stopped by the operator"}, buffer);
      return Status::ok();
    }
    auto got = socket.receive(payload, wait_ms);
    if (!got) return got.status();
    double now = monotonic_seconds();
    if (*got) {
      last_contact = now;
      const Status decoded = decoder.decode(payload.data(), payload.size());
      if (const auto version =
              decoded ? std::nullopt : wire::foreign_version(payload.data(), payload.size()))
        return Status::error("the hub speaks dsaga protocol " + std::to_string(*version) +
                             " and this agent " + std::to_string(msg::kProtocolVersion) +
                             ": run hub and agents of the same dsaga release");
      if (!decoded) {
        spdlog::warn("agent: message from the hub rejected: {}", decoded.message());
        last_heard = now;
        continue;
      }
      const std::uint64_t before = core.rounds_done();
      out.clear();
      const Status status = core.on_message(decoder.message(), out);
      if (!status) spdlog::warn("agent: {}", status.message());
      for (const msg::Message& m : out) send_message(socket, m, buffer);
      if (core.rounds_done() != before && options.on_round) options.on_round(core);
      if (options.on_tick) options.on_tick(core);
      // Our own work is not the hub's silence.
      last_heard = last_ping = monotonic_seconds();
      continue;
    }
    if (options.on_tick) options.on_tick(core);
    const double silent = now - last_heard;
    if (options.give_up_seconds > 0 && now - last_contact >= options.give_up_seconds)
      return Status::error("the hub has not answered for " +
                           std::to_string(static_cast<long>(now - last_contact)) + " s; giving up");
    if (silent >= options.hub_timeout_seconds) {
      // Lazy Pirate: a fresh socket (new identity), join again, resend what is unacknowledged.
      spdlog::warn("agent: no answer from the hub for {:.0f} s; reconnecting", silent);
      const Status status = socket.reconnect();
      if (!status) return status;
      join_and_resend();
      last_heard = last_ping = monotonic_seconds();
    } else if (now - last_ping >= options.heartbeat_seconds) {
      send_message(socket, msg::Heartbeat{core.last_round()}, buffer);
      last_ping = now;
    }
  }
  if (core.failed()) return Status::error(core.finish_reason());
  return Status::ok();
}

}  // namespace dsaga
