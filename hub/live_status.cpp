// The hub's live metrics and service-manager notifications (live_status.hpp).
#include "live_status.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "dsaga/version.hpp"

namespace dsaga {

namespace {

const char* phase_name(HubCore::Phase phase) {
  switch (phase) {
    case HubCore::Phase::admitting:
      return "admitting";
    case HubCore::Phase::initializing:
      return "initializing";
    case HubCore::Phase::training:
      return "training";
    case HubCore::Phase::finished:
      return "finished";
  }
  return "unknown";
}

}  // namespace

LiveStatus::LiveStatus(const HubConfig& config) : config_(config) {
  const HubOptions& h = config.hub;
  live_.version = DSAGA_VERSION;
  live_.algorithm = to_string(h.algorithm);
  live_.aggregation = to_string(h.effective_aggregation());
  live_.two_level = h.effective_aggregation() == Aggregation::two_level;
  live_.checkpoints_enabled = !config.checkpoint_dir.empty();
  live_.start_time_seconds =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Status LiveStatus::start(const HubCore& core, const TrafficCounters& traffic) {
  // A resumed hub shows its round and last F until the next round closes.
  const double f_star = config_.hub.f_star;
  live_.round = core.round();
  live_.objective = core.best_objective();
  if (std::isfinite(f_star) && f_star != 0)
    live_.suboptimality = (live_.objective - f_star) / std::abs(f_star);
  publish(core, traffic, HubLoopCounters{});
  if (config_.metrics_listen.empty()) return Status::ok();
  const auto address = parse_listen_address(config_.metrics_listen);
  if (!address) return Status::error("hub.metrics_listen: " + address.error());
  auto server = platform::MetricsHttpServer::start(
      *address, [this] { return format_prometheus(board_.read(), monotonic_seconds()); });
  if (!server) return server.status();
  server_ = std::move(*server);
  const bool v6 = address->host.find(':') != std::string::npos;
  spdlog::info("metrics at http://{}{}{}:{}/metrics", v6 ? "[" : "", address->host, v6 ? "]" : "",
               server_->port());
  return Status::ok();
}

void LiveStatus::ready(const HubCore& core) { notifier_.ready(status_line(core)); }

void LiveStatus::on_report(const RoundReport& r) {
  live_.round = r.round;
  live_.aggregation = to_string(r.mode);  // auto: two-level, then newton-cg once switched
  if (std::isfinite(r.objective)) {  // (a Newton-CG product round measures none)
    live_.objective = r.objective;
    live_.suboptimality = r.suboptimality;
  }
  live_.last_round_seconds = r.seconds;
  live_.late_updates_total += static_cast<std::uint64_t>(std::max(0, r.late_updates));
  live_.stale_dropped_total += static_cast<std::uint64_t>(std::max(0, r.stale_dropped));
  live_.reverts_total += r.reverted ? 1 : 0;
  live_.step_scale = r.step_scale;
  live_.gradient_norm = r.gradient_norm;
  if (r.validation.examples > 0) {
    live_.validation_round = static_cast<double>(r.round);
    live_.validation_examples = static_cast<double>(r.validation.examples);
    live_.validation_loss = r.validation.loss;
    live_.validation_accuracy = r.validation.accuracy;
    live_.validation_auc = r.validation.auc;
  }
}

void LiveStatus::on_checkpoint(const Status& saved) {
  if (saved) {
    ++live_.checkpoints_total;
    live_.last_checkpoint_time = monotonic_seconds();
  } else {
    ++live_.checkpoint_failures_total;
  }
}

void LiveStatus::on_tick(const HubCore& core, const TrafficCounters& traffic,
                         const HubLoopCounters& loop) {
  publish(core, traffic, loop);
  notifier_.watchdog(monotonic_seconds());
  notifier_.status_line(status_line(core));
}

void LiveStatus::stopping(const HubCore& core) {
  notifier_.stopping(core.finished() ? status_line(core)
                                     : "stopping at round " + std::to_string(core.round()));
}

void LiveStatus::publish(const HubCore& core, const TrafficCounters& traffic,
                         const HubLoopCounters& loop) {
  live_.phase = phase_name(core.phase());
  live_.agents_admitted = core.agents();
  live_.agents_connected = core.connected_agents();
  live_.bytes_in_total = traffic.bytes_in;
  live_.bytes_out_total = traffic.bytes_out;
  live_.messages_in_total = traffic.messages_in;
  live_.messages_out_total = traffic.messages_out;
  live_.joins_refused_total = loop.joins_refused;
  live_.messages_rejected_total = loop.messages_rejected;
  board_.publish(live_);
}

// What `systemctl status dsaga-hub` shows.
std::string LiveStatus::status_line(const HubCore& core) const {
  char buf[200];
  switch (core.phase()) {
    case HubCore::Phase::admitting:
      std::snprintf(buf, sizeof buf, "admitting: %d of %d agents", core.agents(),
                    core.options().expected_agents);
      break;
    case HubCore::Phase::initializing:
      std::snprintf(buf, sizeof buf, "initializing: %d agents", core.agents());
      break;
    case HubCore::Phase::training:
      std::snprintf(buf, sizeof buf,
                    "round %llu/%llu, F=%.10g, (F-F*)/F*=%.3g, %d/%d agents connected",
                    static_cast<unsigned long long>(live_.round),
                    static_cast<unsigned long long>(core.options().max_rounds), live_.objective,
                    live_.suboptimality, live_.agents_connected, live_.agents_admitted);
      break;
    case HubCore::Phase::finished:
      return "finished after round " + std::to_string(core.round()) + ": " + core.finish_reason();
  }
  return buf;
}

}  // namespace dsaga
