// dsaga-hub: admits agents, runs the dSAGA rounds, aggregates updates, holds the model and the
// table average, writes metrics and the model. A thin main over the library: configuration
// (config.hpp), socket (transport.hpp), loop (service.hpp), state machine (hub.hpp).
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>

#include "daemon.hpp"
#include "dsaga/checkpoint.hpp"
#include "dsaga/config.hpp"
#include "dsaga/files.hpp"
#include "dsaga/local_method.hpp"
#include "dsaga/report.hpp"
#include "dsaga/service.hpp"
#include "dsaga/version.hpp"
#include "live_status.hpp"

int main(int argc, char** argv) try {
  using namespace dsaga;
  const std::string config_path = cli::find_config_arg(argc, argv);
  HubConfig c;
  if (!config_path.empty() && !cli::wants_help(argc, argv)) {
    auto loaded = load_hub_config(config_path);
    if (!loaded) {
      std::fprintf(stderr, "dsaga-hub: %s\n", loaded.error().c_str());
      return 2;
    }
    c = std::move(*loaded);
  }
  HubOptions& h = c.hub;
  std::string loss = to_string(h.objective.loss);
  std::string algorithm = to_string(h.algorithm);
  std::string aggregation = to_string(h.aggregation);
  std::string preconditioner = to_string(h.preconditioner);
  std::string compression = compress::to_string(h.compression);
  std::string unused_config;

  CLI::App app{
      "dsaga-hub " DSAGA_VERSION ": the hub of distributed SAGA. Admits edge agents, runs the "
      "init round and synchronous rounds (broadcast w and gbar, collect updates, aggregate), "
      "keeps the table average gbar == sum_k S_k / N, and writes metrics and the model.\n"
      "Options override the --config file (TOML; see config/hub.toml for every key)."};
  app.set_help_flag("-h,--help", "Print this help and exit");
  app.set_version_flag("--version", DSAGA_VERSION);
  app.add_option("-c,--config", unused_config, "TOML configuration file");
  app.add_option("--listen", c.listen, "Endpoint to bind (tcp://HOST:PORT, tcp://HOST:* for any free port)")
      ->capture_default_str();
  app.add_option("--endpoint-file", c.endpoint_file, "Write the bound endpoint to this file");
  app.add_option("--metrics", c.metrics, "Per-round metrics file (*.jsonl: JSON lines, else CSV)");
  app.add_option("--metrics-listen", c.metrics_listen,
                 "Serve live metrics (Prometheus) at http://ADDRESS/metrics: PORT (on 127.0.0.1), "
                 "HOST:PORT or [IPv6]:PORT");
  app.add_option("--model", c.model, "Write the trained model (text) here at the end");
  app.add_option("--checkpoint-dir", c.checkpoint_dir,
                 "Save the hub's state here every round; resume from the newest valid one");
  app.add_option("--checkpoint-retry", c.checkpoint_retry,
                 "Seconds a failed checkpoint save (disk full, read-only) is retried, with every "
                 "acknowledgement held, before the hub stops with an error (0 = retry forever)")
      ->capture_default_str();
  app.add_option("--key", c.key_file, "CurveZMQ: the hub's key file (dsaga-keygen hub)");
  app.add_option("--allowlist", c.allowlist_file,
                 "CurveZMQ: the agents admitted, one 'agent_id public_key' line each");
  app.add_flag("--allow-plaintext", c.transport.allow_plaintext,
               "Listen without encryption on a non-loopback address (trusted networks only)");
  std::string retire;
  app.add_option("--retire", retire,
                 "Operator command, with the hub stopped: remove AGENT (gone for good) from the "
                 "newest checkpoint in --checkpoint-dir, save it and exit");
  app.add_option("--log-level", c.log_level, "trace, debug, info, warn, error")->capture_default_str();
  app.add_flag("--progress,!--no-progress", c.progress, "A progress line per round on stderr")
      ->capture_default_str();
  app.add_option("--agents", h.expected_agents, "Agents to wait for before training starts")
      ->capture_default_str();
  app.add_option("--min-agents", h.min_agents,
                 "Start with this many after --admission-timeout (0 = wait for all)")
      ->capture_default_str();
  app.add_option("--admission-timeout", h.admission_timeout, "Seconds (with --min-agents)")
      ->capture_default_str();
  app.add_option("--loss", loss, "logistic, squared or multinomial")->capture_default_str();
  app.add_option("--classes", h.objective.classes, "Classes (multinomial)")->capture_default_str();
  app.add_option("--lambda", h.objective.lambda, "L2 regularisation")->capture_default_str();
  app.add_option("--features", h.features, "Model dimension d (0 = from the first agent)")
      ->capture_default_str();
  app.add_option("--algorithm", algorithm,
                 "dsaga, or a baseline through the same agents and wire: fedavg, scaffold, gd")
      ->capture_default_str();
  app.add_option("--eta", h.eta, "Local step size (0 = 1/(3 L_max); gd: 1/L_max)")->capture_default_str();
  app.add_option("--server-step", h.server_step, "Server step eta_g on the weighted mean of dw")
      ->capture_default_str();
  app.add_option("--aggregation", aggregation,
                 "auto (dsaga: two-level, switching by itself to newton-cg when the rounds show "
                 "flat curvature; the baselines: mean); two-level (dsaga: coarse Newton step "
                 "plus local runs, docs/ALGORITHM.md section 7); newton-cg (dsaga: distributed "
                 "Newton-CG, one exchange per CG step, section 7.3); mean (plain dSAGA and the "
                 "baselines: synchronous rounds, weighted mean of the steps); async (dsaga: "
                 "apply each update on arrival)")
      ->capture_default_str();
  app.add_option("--preconditioner", preconditioner,
                 "newton-cg: auto (the Gram bound where its one-time d x d upload is affordable, "
                 "d <= 1447; else curvature pairs); gram; pairs (no upload: the last round's CG "
                 "pairs)")
      ->capture_default_str();
  app.add_option("--compression", compression,
                 "how agents round the deltas they send, with error feedback (exact table "
                 "accounting): q8 (8 bits an entry and a float scale per 64), f32, f64 (as they "
                 "are); other than f64, two-level's basis, eigenvectors and coarse Hessians "
                 "travel as floats")
      ->capture_default_str();
  app.add_option("--coarse-rank", h.coarse_rank,
                 "two-level: dimension m of the coarse space (0 = chosen from the spectrum the "
                 "agents upload, or the whole space when d * C <= 256; >= d = the whole space)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--max-staleness", h.max_staleness,
                 "async: drop the dw of an update that started more than this many updates ago "
                 "(0 = twice the number of agents)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--table-refresh", h.table_refresh,
                 "mean/async dSAGA: fraction of each agent's table recomputed at the broadcast w "
                 "every round (0 = none; two-level rounds always refresh the whole table)")
      ->capture_default_str();
  app.add_option("--prox", h.prox,
                 "mu of the local proximal term mu/2 ||w - w_r||^2 (0 = none; see bench/RESULTS.md)")
      ->capture_default_str();
  app.add_option("--local-steps", h.local_steps, "Local steps T per round (0 = one local epoch)")
      ->capture_default_str();
  // Unsigned options: CLI11 would otherwise wrap a negative value around to a huge one.
  app.add_option("--seed", h.seed, "Run seed (each agent samples with a seed derived from it)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--max-rounds", h.max_rounds, "Round cap")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--f-star", h.f_star, "Optimal objective F* (for (F-F*)/F*), e.g. from dsaga-reference");
  app.add_option("--target", h.target, "Stop when (F-F*)/F* <= this (needs --f-star; 0 = never)")
      ->capture_default_str();
  app.add_option("--round-deadline", h.round_deadline,
                 "Seconds a round waits for updates (0 = wait for every agent)")
      ->capture_default_str();
  app.add_option("--min-participants", h.min_participants,
                 "Updates a round needs to close at its deadline")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  {
    auto parsed = parse_loss(loss);
    if (!parsed) {
      std::fprintf(stderr, "dsaga-hub: --loss: %s\n", parsed.error().c_str());
      return 2;
    }
    h.objective.loss = *parsed;
  }
  {
    auto parsed = parse_algorithm(algorithm);
    if (!parsed) {
      std::fprintf(stderr, "dsaga-hub: --algorithm: %s\n", parsed.error().c_str());
      return 2;
    }
    h.algorithm = *parsed;
  }
  {
    auto parsed = parse_aggregation(aggregation);
    if (!parsed) {
      std::fprintf(stderr, "dsaga-hub: --aggregation: %s\n", parsed.error().c_str());
      return 2;
    }
    h.aggregation = *parsed;
  }
  {
    auto parsed = parse_preconditioner(preconditioner);
    if (!parsed) {
      std::fprintf(stderr, "dsaga-hub: --preconditioner: %s\n", parsed.error().c_str());
      return 2;
    }
    h.preconditioner = *parsed;
  }
  {
    auto parsed = compress::parse_encoding(compression);
    if (!parsed) {
      std::fprintf(stderr, "dsaga-hub: --compression: '%s' is not an encoding (f64, f32, q8)\n",
                   compression.c_str());
      return 2;
    }
    h.compression = *parsed;
  }
  if (const Status s = validate(c); !s) {
    std::fprintf(stderr, "dsaga-hub: %s\n", s.message().c_str());
    return 2;
  }
  if (const Status s = load_security(c); !s) {
    std::fprintf(stderr, "dsaga-hub: %s\n", s.message().c_str());
    return 2;
  }
  if (!c.metrics_listen.empty() && !platform::has_http_support()) {
    std::fprintf(stderr, "dsaga-hub: --metrics-listen (hub.metrics_listen): built without HTTP "
                         "support (rebuild with cpp-httplib and -DDSAGA_WITH_HTTP=ON)\n");
    return 2;
  }
  const auto level = spdlog::level::from_str(c.log_level);
  spdlog::set_level(level);
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e hub %^%l%$: %v");

  // Bad local configuration is reported before the endpoint is taken (a busy port would hide it).
  if (!c.checkpoint_dir.empty()) {
    if (const Status s = prepare_checkpoint_dir(c.checkpoint_dir); !s) {
      spdlog::error("{}", s.message());
      return 1;
    }
  }
  TransportContext context;
  auto socket = ServerSocket::bind(context, c.listen, c.transport);
  if (!socket) {
    spdlog::error("{}", socket.error());
    return 1;
  }
  const std::string endpoint = (*socket)->endpoint();
  if (!c.endpoint_file.empty()) {
    if (const Status s = write_file_atomic(c.endpoint_file, endpoint + "\n"); !s) {
      spdlog::error("{}", s.message());
      return 1;
    }
  }
  std::unique_ptr<MetricsWriter> metrics;
  if (!c.metrics.empty()) {
    auto opened = MetricsWriter::open(c.metrics);
    if (!opened) {
      spdlog::error("{}", opened.error());
      return 1;
    }
    metrics = std::move(*opened);
  }
  cli::install_stop_signals();
  spdlog::info("listening on {} ({}); waiting for {} agents ({} loss, lambda {})", endpoint,
               c.transport.curve_secret_key.empty()
                   ? "plain text"
                   : "CurveZMQ, " + std::to_string(c.transport.curve_allowlist.size()) +
                         " agents allowlisted",
               h.expected_agents, to_string(h.objective.loss), h.objective.lambda);

  HubCore core(h);
  if (!c.checkpoint_dir.empty()) {
    // Resume from the newest checkpoint that verifies; say why any newer one was passed over.
    for (const std::string& path : list_checkpoints(c.checkpoint_dir)) {
      auto bytes = read_file_bytes(path, false);
      const Status s = bytes ? core.restore(*bytes) : bytes.status();
      if (s) {
        spdlog::info("resumed from {}: round {}, {} agents known (they rejoin)", path,
                     core.round(), core.agents());
        break;
      }
      spdlog::error("{}: not used: {}", path, s.message());
    }
  }
  if (!retire.empty()) {
    if (c.checkpoint_dir.empty() || core.phase() == HubCore::Phase::admitting) {
      spdlog::error("--retire needs --checkpoint-dir with a checkpoint of a started run");
      return 2;
    }
    auto done = core.retire(retire);
    if (!done) {
      spdlog::error("{}", done.error());
      return 1;
    }
    if (const Status s = save_checkpoint(c.checkpoint_dir, core.round(), core.snapshot(),
                                         c.checkpoint_keep + 1);
        !s) {
      spdlog::error("{}", s.message());
      return 1;
    }
    spdlog::info("{}", *done);
    return 0;
  }
  const double start = monotonic_seconds();
  LiveStatus live(c);
  if (const Status s = live.start(core, (*socket)->totals()); !s) {
    spdlog::error("{}", s.message());
    return 1;
  }
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
  Status metrics_status;
  service.on_report = [&](const RoundReport& r, const TrafficCounters& traffic) {
    if (r.round == 0)
      spdlog::info("training: N = {}, d = {}, eta = {:.6g}, {} agents", core.total_samples(),
                   core.features(), core.eta(), core.agents());
    if (metrics && metrics_status) metrics_status = metrics->write(r, traffic, monotonic_seconds() - start);
    if (c.progress)
      std::fprintf(stderr, "%s\n", progress_line(r, h.max_rounds, h.target, traffic).c_str());
    live.on_report(r);
  };
  service.on_tick = [&](const HubCore& hub, const TrafficCounters& traffic,
                        const HubLoopCounters& loop) { live.on_tick(hub, traffic, loop); };
  live.ready(core);
  const Status run = run_hub(core, **socket, service);
  live.stopping(core);
  if (!run) {
    spdlog::error("{}", run.message());
    return 1;
  }
  if (!metrics_status) spdlog::error("{}", metrics_status.message());
  if (core.finished())
    spdlog::info("finished after round {}: {}", core.round(), core.finish_reason());
  else
    spdlog::info("stopped at round {}; the agents wait for a hub{}", core.round(),
                 c.checkpoint_dir.empty() ? " (no --checkpoint-dir: a new hub starts over)"
                                          : "; a hub started with the same --checkpoint-dir resumes");
  if (!c.model.empty() && core.best_w().size() > 0) {
    if (const Status s = save_model(c.model, h.objective, core.features(), core.best_w(),
                                    core.best_round(), core.best_objective());
        !s) {
      spdlog::error("{}", s.message());
      return 1;
    }
    spdlog::info("model of round {} (F = {:.12g}) written to {}", core.best_round(),
                 core.best_objective(), c.model);
  }
  bool failed = !metrics_status;
  switch (core.outcome()) {
    case Outcome::diverged: failed = true; break;
    // A wrong F* ends training early but is the operator's input, reported in the log.
    case Outcome::running:
    case Outcome::target_reached:
    case Outcome::round_cap:
    case Outcome::below_f_star:
    case Outcome::stopped: break;
  }
  return failed ? 1 : 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "dsaga-hub: internal error: %s\n", e.what());
  return 70;
}
