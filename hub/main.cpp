// dsaga-hub: admits agents, runs the dSAGA rounds, aggregates updates, holds the model and the
// table average, writes metrics and the model. A thin main over the library: configuration
// (config.hpp, its options in one table), socket (transport.hpp), loop (service.hpp), state
// machine (hub.hpp).
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "config_options.hpp"
#include "daemon.hpp"
#include "dsaga/checkpoint.hpp"
#include "dsaga/config.hpp"
#include "dsaga/files.hpp"
#include "dsaga/report.hpp"
#include "dsaga/service.hpp"
#include "dsaga/version.hpp"
#include "live_status.hpp"

namespace dsaga {
namespace {

// Exit statuses: 0 done (the run finished or was stopped cleanly, or --retire did its work).
constexpr int kFailed = 1;      // the run could not start, or ended in error
constexpr int kUsageError = 2;  // bad options or configuration: nothing was started

int usage_error(const std::string& what) {
  std::fprintf(stderr, "dsaga-hub: %s\n", what.c_str());
  return kUsageError;
}

int failed(const Status& status) {
  spdlog::error("{}", status.message());
  return kFailed;
}

// What the command line asks for.
struct Invocation {
  HubConfig config;    // the --config file's values, the options' over them
  std::string retire;  // --retire AGENT: the operator command instead of a run
};

// Reads the --config file, then the options over it (hub_options: every option once), and checks
// the result. Returns the exit status when the program ends here (--help, --version, an error).
std::optional<int> parse_command_line(int argc, char** argv, Invocation& run) {
  HubConfig& c = run.config;
  CLI::App app{
      "dsaga-hub " DSAGA_VERSION ": the hub of distributed SAGA. Admits edge agents, runs the "
      "init round and synchronous rounds (broadcast w and gbar, collect updates, aggregate), "
      "keeps the table average gbar == sum_k S_k / N, and writes metrics and the model.\n"
      "Options override the --config file (TOML; see config/hub.toml for every key)."};
  if (const Status s = cli::read_config_file(app, argc, argv, load_hub_config, c); !s)
    return usage_error(s.message());
  app.add_option("--retire", run.retire,
                 "Operator command, with the hub stopped: remove AGENT (gone for good) from the "
                 "newest checkpoint in --checkpoint-dir, save it and exit");
  const cli::ConfigOptions options(app, hub_options(c));
  if (const auto done = cli::parse(app, argc, argv)) return *done;
  if (const Status s = options.apply(); !s) return usage_error(s.message());
  if (const Status s = validate(c); !s) return usage_error(s.message());
  if (const Status s = load_security(c); !s) return usage_error(s.message());
  if (!c.metrics_listen.empty() && !platform::has_http_support())
    return usage_error("--metrics-listen (hub.metrics_listen): built without HTTP support "
                       "(rebuild with cpp-httplib and -DDSAGA_WITH_HTTP=ON)");
  return std::nullopt;
}

// What the run writes to, opened before it starts.
struct Outputs {
  std::unique_ptr<ServerSocket> socket;
  std::unique_ptr<MetricsWriter> metrics;  // null without --metrics
};

// The checkpoint directory, the endpoint (and its file) and the metrics file. Bad local
// configuration is reported before the endpoint is taken (a busy port would hide it).
Status open_outputs(const HubConfig& c, TransportContext& context, Outputs& out) {
  if (!c.checkpoint_dir.empty())
    if (const Status s = prepare_checkpoint_dir(c.checkpoint_dir); !s) return s;
  auto socket = ServerSocket::bind(context, c.listen, c.transport);
  if (!socket) return socket.status();
  out.socket = std::move(*socket);
  if (!c.endpoint_file.empty())
    if (const Status s = write_file_atomic(c.endpoint_file, out.socket->endpoint() + "\n"); !s)
      return s;
  if (!c.metrics.empty()) {
    auto opened = MetricsWriter::open(c.metrics);
    if (!opened) return opened.status();
    out.metrics = std::move(*opened);
  }
  return Status::ok();
}

// Resumes from the newest checkpoint that verifies; says why any newer one was passed over. A
// checkpoint of another format or problem stops the start instead: passing over it would start
// a fresh run whose checkpoints replace the old run's.
Status resume(HubCore& core, const std::string& checkpoint_dir) {
  for (const std::string& path : list_checkpoints(checkpoint_dir)) {
    auto bytes = read_file_bytes(path, false);
    const Status s = bytes ? core.restore(*bytes) : bytes.status();
    if (s) {
      spdlog::info("resumed from {}: round {}, {} agents known (they rejoin)", path, core.round(),
                   core.agents());
      return Status::ok();
    }
    if (s.code() == StatusCode::incompatible)
      return Status::error(path + ": " + s.message() +
                           ". Its run would be lost under a new one: move its checkpoints away "
                           "or use another --checkpoint-dir");
    spdlog::error("{}: not used: {}", path, s.message());
  }
  return Status::ok();
}

// --retire AGENT: removes it from the resumed state and saves that as a new checkpoint (one more
// kept, so the one it came from stays).
int retire(HubCore& core, const HubConfig& c, const std::string& agent) {
  if (c.checkpoint_dir.empty() || core.phase() == HubCore::Phase::admitting) {
    spdlog::error("--retire needs --checkpoint-dir with a checkpoint of a started run");
    return kUsageError;
  }
  auto done = core.retire(agent);
  if (!done) return failed(done.status());
  if (const Status s = save_checkpoint(c.checkpoint_dir, core.round(), core.snapshot(),
                                       c.checkpoint_keep + 1);
      !s)
    return failed(s);
  spdlog::info("{}", *done);
  return 0;
}

// Every closed round: the metrics file, the progress line and the live status.
class Reporter {
 public:
  Reporter(const HubConfig& c, const HubCore& core, MetricsWriter* metrics, LiveStatus& live,
           double start)
      : c_(c), core_(core), metrics_(metrics), live_(live), start_(start) {}

  void on_report(const RoundReport& r, const TrafficCounters& traffic) {
    if (r.round == 0)
      spdlog::info("training: N = {}, d = {}, eta = {:.6g}, {} agents", core_.total_samples(),
                   core_.features(), core_.eta(), core_.agents());
    if (metrics_ && metrics_status_)
      metrics_status_ = metrics_->write(r, traffic, monotonic_seconds() - start_);
    if (c_.progress)
      std::fprintf(stderr, "%s\n",
                   progress_line(r, c_.hub.max_rounds, c_.hub.target, traffic).c_str());
    live_.on_report(r);
  }

  // The first failed write to the metrics file (the run goes on without it).
  const Status& metrics_status() const { return metrics_status_; }

 private:
  const HubConfig& c_;
  const HubCore& core_;
  MetricsWriter* metrics_;
  LiveStatus& live_;
  double start_;
  Status metrics_status_;
};

// After the loop: how training ended, the model, and the exit status.
int finish(const HubCore& core, const HubConfig& c, const Status& metrics) {
  if (core.finished())
    spdlog::info("finished after round {}: {}", core.round(), core.finish_reason());
  else
    spdlog::info("stopped at round {}; the agents wait for a hub{}", core.round(),
                 c.checkpoint_dir.empty() ? " (no --checkpoint-dir: a new hub starts over)"
                                          : "; a hub started with the same --checkpoint-dir resumes");
  if (!c.model.empty() && core.best_w().size() > 0) {
    if (const Status s = save_model(c.model, c.hub.objective, core.features(), core.best_w(),
                                    core.best_round(), core.best_objective());
        !s)
      return failed(s);
    spdlog::info("model of round {} (F = {:.12g}) written to {}", core.best_round(),
                 core.best_objective(), c.model);
  }
  bool ok = metrics.is_ok();
  switch (core.outcome()) {
    case Outcome::diverged: ok = false; break;
    // A wrong F* ends training early but is the operator's input, reported in the log.
    case Outcome::running:
    case Outcome::target_reached:
    case Outcome::round_cap:
    case Outcome::below_f_star:
    case Outcome::stopped: break;
  }
  return ok ? 0 : kFailed;
}

// The service loop over the core until training ends or a signal stops it. Returns the exit
// status, after logging how the run ended and writing the model.
int train(HubCore& core, const HubConfig& c, Outputs& out) {
  const double start = monotonic_seconds();  // the metrics' elapsed time
  LiveStatus live(c);
  if (const Status s = live.start(core, out.socket->totals()); !s) return failed(s);
  Reporter reporter(c, core, out.metrics.get(), live, start);
  HubServiceOptions service;
  service.limits.max_message_bytes = c.transport.max_message_bytes;
  service.stop_requested = [] { return cli::stop_flag().load(); };
  service.checkpoint_retry_seconds = c.checkpoint_retry;
  if (!c.checkpoint_dir.empty())
    service.checkpoint = [&](const HubCore& hub) {
      const Status s =
          save_checkpoint(c.checkpoint_dir, hub.round(), hub.snapshot(), c.checkpoint_keep);
      live.on_checkpoint(s);
      return s;
    };
  service.on_report = [&](const RoundReport& r, const TrafficCounters& traffic) {
    reporter.on_report(r, traffic);
  };
  service.on_tick = [&](const HubCore& hub, const TrafficCounters& traffic,
                        const HubLoopCounters& loop) { live.on_tick(hub, traffic, loop); };
  live.ready(core);
  const Status run = run_hub(core, *out.socket, service);
  live.stopping(core);
  if (!run) return failed(run);
  const Status& metrics = reporter.metrics_status();
  if (!metrics) spdlog::error("{}", metrics.message());
  return finish(core, c, metrics);
}

int run_hub_daemon(int argc, char** argv) {
  Invocation run;
  if (const auto done = parse_command_line(argc, argv, run)) return *done;
  const HubConfig& c = run.config;
  spdlog::set_level(spdlog::level::from_str(c.log_level));
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e hub %^%l%$: %v");

  TransportContext context;
  Outputs out;
  if (const Status s = open_outputs(c, context, out); !s) return failed(s);
  cli::install_stop_signals();
  spdlog::info("listening on {} ({}); waiting for {} agents ({} loss, lambda {})",
               out.socket->endpoint(),
               c.transport.curve_secret_key.empty()
                   ? "plain text"
                   : "CurveZMQ, " + std::to_string(c.transport.curve_allowlist.size()) +
                         " agents allowlisted",
               c.hub.expected_agents, to_string(c.hub.objective.loss), c.hub.objective.lambda);

  HubCore core(c.hub);
  if (!c.checkpoint_dir.empty())
    if (const Status s = resume(core, c.checkpoint_dir); !s) return failed(s);
  if (!run.retire.empty()) return retire(core, c, run.retire);
  return train(core, c, out);
}

}  // namespace
}  // namespace dsaga

int main(int argc, char** argv) try {
  return dsaga::run_hub_daemon(argc, argv);
} catch (const std::exception& e) {
  std::fprintf(stderr, "dsaga-hub: internal error: %s\n", e.what());
  return 70;
}
