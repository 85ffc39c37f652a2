// What the hub tells the world while it runs, besides its log and metrics file: the live metrics
// (a HubMetrics snapshot on a MetricsBoard, served at /metrics by cli/metrics_http.hpp when
// --metrics-listen is set) and the service manager's READY=1, STATUS= and WATCHDOG=1
// (cli/service_notify.hpp). Every call comes from the service loop's thread; the HTTP threads
// see only the board, never the core.
#pragma once

#include <memory>

#include "dsaga/config.hpp"
#include "dsaga/hub.hpp"
#include "dsaga/metrics.hpp"
#include "dsaga/service.hpp"
#include "dsaga/status.hpp"
#include "metrics_http.hpp"
#include "service_notify.hpp"

namespace dsaga {

class LiveStatus {
 public:
  explicit LiveStatus(const HubConfig& config);
  // Once the checkpoint is read: publishes the (restored) state and starts the endpoint, if one
  // is configured. The error names the address and why it cannot be served.
  Status start(const HubCore& core, const TrafficCounters& traffic);
  // READY=1: listening, the checkpoint read, the metrics served.
  void ready(const HubCore& core);
  void on_report(const RoundReport& report);
  void on_checkpoint(const Status& saved);
  // Every tick: a fresh snapshot, the watchdog, the STATUS= line.
  void on_tick(const HubCore& core, const TrafficCounters& traffic, const HubLoopCounters& loop);
  void stopping(const HubCore& core);

 private:
  void publish(const HubCore& core, const TrafficCounters& traffic, const HubLoopCounters& loop);
  std::string status_line(const HubCore& core) const;

  const HubConfig& config_;
  HubMetrics live_;
  MetricsBoard board_;
  cli::ServiceNotifier notifier_;
  std::unique_ptr<platform::MetricsHttpServer> server_;  // last: stopped before the board goes
};

}  // namespace dsaga
