// The hub's metrics in the Prometheus text exposition format 0.0.4 (metrics.hpp).
#include "dsaga/metrics.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "strings.hpp"

namespace dsaga {

std::string prometheus_number(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", value);
  return buf;
}

std::string prometheus_label_value(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

namespace {

// One metric family: its HELP and TYPE lines, then samples. HELP text escapes \ and newline.
class Exposition {
 public:
  void family(const char* name, const char* type, const char* help) {
    name_ = name;
    text_ += cat("# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
  }
  // A sample of the current family; `labels` is empty or `key="value",...`.
  void sample(const std::string& labels, const std::string& value) {
    text_ += name_;
    if (!labels.empty()) text_ += cat("{", labels, "}");
    text_ += cat(" ", value, "\n");
  }
  void sample(double value) { sample("", prometheus_number(value)); }
  void sample_count(std::uint64_t value) { sample("", std::to_string(value)); }

  void gauge(const char* name, const char* help, double value) {
    family(name, "gauge", help);
    sample(value);
  }
  // A gauge known only sometimes: nothing at all while unknown.
  void gauge_if_known(const char* name, const char* help, double value) {
    if (!std::isnan(value)) gauge(name, help, value);
  }
  void counter(const char* name, const char* help, std::uint64_t value) {
    family(name, "counter", help);
    sample_count(value);
  }
  std::string take() { return std::move(text_); }

 private:
  std::string text_;
  std::string name_;
};

std::string label(const char* key, const std::string& value) {
  return cat(key, "=\"", prometheus_label_value(value), "\"");
}

}  // namespace

std::string format_prometheus(const HubMetrics& m, double now) {
  Exposition e;
  e.family("dsaga_hub_build_info", "gauge",
           "Constant 1, labelled with the dsaga version and the hub's algorithm and aggregation");
  e.sample(cat(label("version", m.version), ",", label("algorithm", m.algorithm), ",",
               label("aggregation", m.aggregation)),
           "1");
  e.gauge_if_known("dsaga_hub_start_time_seconds", "Unix time the hub started",
                   m.start_time_seconds);
  e.family("dsaga_hub_phase", "gauge", "1 for the hub's current phase, 0 for the others");
  for (const char* phase : {"admitting", "initializing", "training", "finished"})
    e.sample(label("phase", phase), m.phase == phase ? "1" : "0");
  e.gauge("dsaga_hub_round", "The last closed round", static_cast<double>(m.round));
  e.gauge_if_known("dsaga_hub_objective", "F(w) at the last closed round's broadcast w",
                   m.objective);
  e.gauge_if_known("dsaga_hub_suboptimality",
                   "Relative suboptimality (F - F*) / F* at the last closed round (needs F*)",
                   m.suboptimality);
  e.gauge_if_known("dsaga_hub_gradient_norm", "||grad F(w)|| at the last closed round",
                   m.gradient_norm);
  e.gauge_if_known("dsaga_hub_validation_round",
                   "The last round whose held-out validation counts are below", m.validation_round);
  e.gauge_if_known("dsaga_hub_validation_examples", "Validation rows the agents evaluated",
                   m.validation_examples);
  e.gauge_if_known("dsaga_hub_validation_loss", "Mean loss on the validation rows",
                   m.validation_loss);
  e.gauge_if_known("dsaga_hub_validation_accuracy", "Accuracy on the validation rows",
                   m.validation_accuracy);
  e.gauge_if_known("dsaga_hub_validation_auc",
                   "Area under the ROC curve on the validation rows (binary; 256 score bins)",
                   m.validation_auc);
  e.gauge_if_known("dsaga_hub_last_round_duration_seconds", "Wall time of the last closed round",
                   m.last_round_seconds);
  e.gauge("dsaga_hub_agents_admitted", "Agents admitted to training",
          static_cast<double>(m.agents_admitted));
  e.gauge("dsaga_hub_agents_connected",
          "Admitted agents on a live connection (after a restart: those that joined again)",
          static_cast<double>(m.agents_connected));
  e.counter("dsaga_hub_late_updates_total",
            "Updates that arrived after their round closed (table delta applied, step dropped)",
            m.late_updates_total);
  e.counter("dsaga_hub_stale_updates_dropped_total",
            "Asynchronous updates whose step was dropped as too stale", m.stale_dropped_total);
  e.counter("dsaga_hub_joins_refused_total",
            "Joins refused (protocol version, key identity, problem mismatch, full, ...)",
            m.joins_refused_total);
  e.counter("dsaga_hub_messages_rejected_total",
            "Other messages rejected (malformed, wrong round, not admitted, ...)",
            m.messages_rejected_total);
  e.family("dsaga_hub_transport_bytes_total", "counter",
           "Bytes through the hub's socket (ZMTP framing included), by direction");
  e.sample(label("direction", "in"), std::to_string(m.bytes_in_total));
  e.sample(label("direction", "out"), std::to_string(m.bytes_out_total));
  e.family("dsaga_hub_transport_messages_total", "counter",
           "Messages through the hub's socket, by direction");
  e.sample(label("direction", "in"), std::to_string(m.messages_in_total));
  e.sample(label("direction", "out"), std::to_string(m.messages_out_total));
  if (m.checkpoints_enabled) {
    e.counter("dsaga_hub_checkpoints_total", "Checkpoints saved", m.checkpoints_total);
    e.counter("dsaga_hub_checkpoint_failures_total", "Checkpoint saves that failed",
              m.checkpoint_failures_total);
    if (!std::isnan(m.last_checkpoint_time))
      e.gauge("dsaga_hub_checkpoint_age_seconds", "Seconds since the last checkpoint was saved",
              std::max(0.0, now - m.last_checkpoint_time));
  }
  if (m.two_level) {
    e.counter("dsaga_hub_two_level_reverts_total",
              "Two-level rounds the guard sent back to the previous model", m.reverts_total);
    e.gauge_if_known("dsaga_hub_two_level_step_scale",
                     "Two-level guard's scale of the local and coarse steps (1 = full)",
                     m.step_scale);
  }
  return e.take();
}

Result<ListenAddress> parse_listen_address(const std::string& text) {
  const auto bad = [&](const std::string& why) {
    return Result<ListenAddress>::failure(
        cat("'", text, "': ", why, " (expected PORT, HOST:PORT or [IPv6]:PORT)"));
  };
  ListenAddress a;
  std::string port;
  if (text.empty()) return bad("empty");
  if (text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return bad("unterminated [IPv6] address or no port");
    a.host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else if (const auto colon = text.rfind(':'); colon != std::string::npos) {
    if (text.find(':') != colon) return bad("an IPv6 address needs brackets");
    a.host = text.substr(0, colon);
    port = text.substr(colon + 1);
  } else {
    a.host = "127.0.0.1";  // a bare port stays on this machine
    port = text;
  }
  if (a.host.empty()) return bad("empty host");
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos)
    return bad("the port is not a number");
  a.port = std::atoi(port.c_str());
  if (a.port > 65535) return bad("the port is above 65535");
  return a;
}

}  // namespace dsaga
