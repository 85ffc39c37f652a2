// The hub's live metrics for scrapers (Prometheus text exposition format 0.0.4): a snapshot of
// plain numbers, the board that hands it from the service loop to the HTTP thread, and the
// formatting. No HTTP here: the daemon serves format_prometheus() (cli/metrics_http.hpp).
//
// Thread safety: the service loop is the only writer (publish); any thread may read. Neither
// side ever sees HubCore from another thread, only copies of this struct.
#pragma once

#include <cstdint>
#include <limits>
#include <mutex>
#include <string>

#include "dsaga/status.hpp"

namespace dsaga {

// Everything a scrape reports. NaN means "not known" and its sample is left out (a gauge that
// does not exist yet, e.g. the objective before the first round or the suboptimality without F*).
struct HubMetrics {
  static constexpr double kUnknown = std::numeric_limits<double>::quiet_NaN();
  // Build and run info (a constant "info" gauge with labels).
  std::string version;
  std::string algorithm;                 // dsaga, fedavg, ...
  std::string aggregation;               // the mode running: two-level, newton-cg, mean, async
  double start_time_seconds = kUnknown;  // Unix time the hub started
  // The service loop.
  std::string phase = "admitting";  // admitting, initializing, training, finished
  std::uint64_t round = 0;          // the last closed round
  double objective = kUnknown;      // F at that round's broadcast w
  double suboptimality = kUnknown;  // (F - F*) / F*, when F* is known
  double gradient_norm = kUnknown;  // ||grad F(w)||, when known (RoundReport::gradient_norm)
  double last_round_seconds = kUnknown;
  int agents_admitted = 0;
  int agents_connected = 0;
  std::uint64_t late_updates_total = 0;   // updates of an earlier round (their dw dropped)
  std::uint64_t stale_dropped_total = 0;  // async: updates whose dw was too stale
  std::uint64_t joins_refused_total = 0;
  std::uint64_t messages_rejected_total = 0;
  std::uint64_t bytes_in_total = 0;  // ZMTP bytes received / sent by the hub's socket
  std::uint64_t bytes_out_total = 0;
  std::uint64_t messages_in_total = 0;
  std::uint64_t messages_out_total = 0;
  // Checkpoints (enabled = --checkpoint-dir set). The age is taken at scrape time.
  bool checkpoints_enabled = false;
  double last_checkpoint_time = kUnknown;  // monotonic_seconds() of the last successful save
  std::uint64_t checkpoints_total = 0;
  std::uint64_t checkpoint_failures_total = 0;
  // Two-level dSAGA's guard: rounds sent back to the previous model, and the step scale the
  // last round set (1 = full). Only exported with two-level aggregation.
  bool two_level = false;
  std::uint64_t reverts_total = 0;
  double step_scale = kUnknown;
  // Held-out validation (validation.hpp) of the last round that had counts, and that round: a
  // round without counts (--eval-every) leaves them as they were.
  double validation_round = kUnknown;
  double validation_examples = kUnknown;
  double validation_loss = kUnknown;
  double validation_accuracy = kUnknown;
  double validation_auc = kUnknown;
};

// The exposition text: for each metric "# HELP", "# TYPE" and its samples, '\n'-terminated.
// Names start with dsaga_hub_; counters end in _total; units are in the names (_seconds,
// _bytes). `now` is monotonic_seconds() at the scrape (for the checkpoint age).
std::string format_prometheus(const HubMetrics& metrics, double now);

// The value of a metric, as Prometheus prints it: NaN, +Inf, -Inf or %.17g.
std::string prometheus_number(double value);
// A label value with \, " and newline escaped.
std::string prometheus_label_value(const std::string& value);

// The hand-over point: publish() copies a snapshot in under a mutex, read() copies it out.
// Both are short (no allocation beyond the strings' copies); the HTTP thread formats its copy
// outside the lock.
class MetricsBoard {
 public:
  void publish(const HubMetrics& metrics) {
    std::lock_guard<std::mutex> lock(mutex_);
    metrics_ = metrics;
  }
  HubMetrics read() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return metrics_;
  }

 private:
  mutable std::mutex mutex_;
  HubMetrics metrics_;
};

// Where the metrics endpoint listens: "PORT" (loopback, 127.0.0.1), "HOST:PORT" or
// "[IPv6]:PORT". PORT 0 asks for any free port. The error names what is wrong.
struct ListenAddress {
  std::string host;
  int port = 0;
};
Result<ListenAddress> parse_listen_address(const std::string& text);

}  // namespace dsaga
