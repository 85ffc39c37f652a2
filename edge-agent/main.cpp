// dsaga-agent: the edge agent. Loads its local data (a file, or a deterministic shard of a data
// set), keeps its SAGA table, joins the hub and answers every round with T local steps.
// A thin main over the library: configuration (config.hpp), data (data_source.hpp), socket
// (transport.hpp), loop (service.hpp), state machine (agent.hpp).
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <random>
#include <string>

#include "data_options.hpp"
#include "daemon.hpp"
#include "dsaga/config.hpp"
#include "dsaga/saga.hpp"
#include "dsaga/service.hpp"
#include "dsaga/version.hpp"
#include "service_notify.hpp"

namespace {

// Resident memory in bytes (Linux /proc), 0 if unknown.
std::size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t pages = 0, resident = 0;
  if (!(statm >> pages >> resident)) return 0;
  return resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

std::string host_name() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof buf - 1) != 0) return "agent";
  std::string id;
  for (char ch : std::string(buf))
    id += (std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.') ? ch : '-';
  return id.empty() ? "agent" : id.substr(0, 64);
}

}  // namespace

int main(int argc, char** argv) try {
  using namespace dsaga;
  const std::string config_path = cli::find_config_arg(argc, argv);
  AgentConfig c;
  if (!config_path.empty() && !cli::wants_help(argc, argv)) {
    auto loaded = load_agent_config(config_path);
    if (!loaded) {
      std::fprintf(stderr, "dsaga-agent: %s\n", loaded.error().c_str());
      return 2;
    }
    c = std::move(*loaded);
  }
  DataSpec& d = c.data;
  std::string unused_config;

  CLI::App app{
      "dsaga-agent " DSAGA_VERSION ": an edge agent of distributed SAGA. Loads its local data, "
      "keeps the SAGA table of its own samples (fixed memory), joins the hub and answers each "
      "round with local variance-reduced steps. Reconnects by itself when the hub goes away.\n"
      "Options override the --config file (TOML; see config/agent.toml for every key)."};
  app.set_help_flag("-h,--help", "Print this help and exit");
  app.set_version_flag("--version", DSAGA_VERSION);
  app.add_option("-c,--config", unused_config, "TOML configuration file");
  app.add_option("--hub", c.hub, "Hub endpoint (tcp://HOST:PORT)")->capture_default_str();
  app.add_option("--id", c.id, "Agent id, unique per hub (default: the host name)");
  app.add_option("--log-level", c.log_level, "trace, debug, info, warn, error")->capture_default_str();
  app.add_option("--heartbeat", c.heartbeat, "Seconds of silence before pinging the hub")
      ->capture_default_str();
  app.add_option("--hub-timeout", c.hub_timeout, "Seconds without an answer before reconnecting")
      ->capture_default_str();
  app.add_option("--give-up", c.give_up, "Exit with an error after the hub is away this long (0 = never)")
      ->capture_default_str();
  app.add_option("--key", c.key_file, "CurveZMQ: this agent's key file (dsaga-keygen NAME)");
  app.add_option("--hub-key", c.hub_key_file, "CurveZMQ: the hub's public key file (hub.pub)");
  app.add_flag("--allow-plaintext", c.transport.allow_plaintext,
               "Talk to a non-loopback hub without encryption (trusted networks only)");
  cli::DataOptions data_options(app, d, c.objective);
  ValidationSpec& v = c.validation;
  auto* held = app.add_option_group("Validation", "Held-out rows it never trains on (one of "
                                                  "--validation, --holdout)");
  held->add_option("--validation", v.path,
                   "Validation file, read with the data options above and cut into the same "
                   "shards (idx: the images; fashion-mnist: the directory, its test split)");
  held->add_option("--validation-labels", v.labels_path, "idx: the validation labels file");
  held->add_option("--holdout", v.holdout,
                   "Hold out this fraction in (0, 1) of the loaded rows instead (0 = none)")
      ->capture_default_str();
  held->add_option("--holdout-seed", v.holdout_seed, "Which rows --holdout takes")
      ->capture_default_str();
  held->add_option("--eval-every", v.eval_every,
                   "Evaluate the validation rows every this many rounds")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  const auto usage_error = [](const std::string& what) {
    std::fprintf(stderr, "dsaga-agent: %s\n", what.c_str());
    return 2;
  };
  if (const Status s = data_options.apply(); !s) return usage_error(s.message());
  if (c.id.empty()) c.id = host_name();
  if (const Status s = validate(c); !s) return usage_error(s.message());
  if (const Status s = load_security(c); !s) return usage_error(s.message());

  spdlog::set_level(spdlog::level::from_str(c.log_level));
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e agent " + c.id + " %^%l%$: %v");

  const double load_start = monotonic_seconds();
  auto dataset = load_data(d, c.objective);
  if (!dataset) {
    spdlog::error("{}", dataset.error());
    return 1;
  }
  spdlog::info("loaded {}: {} samples x {} features ({}, {}) in {:.2f} s", dataset->source,
               dataset->rows(), dataset->cols(), dataset->is_sparse() ? "sparse" : "dense",
               dataset->precision() == Precision::f32 ? "f32" : "f64",
               monotonic_seconds() - load_start);

  // Held-out rows: a file of their own or a fraction of the loaded ones (never trained on).
  std::optional<Dataset> validation;
  if (!v.path.empty()) {
    auto loaded = load_validation(d, v, c.objective, *dataset);
    if (!loaded) {
      spdlog::error("{}", loaded.error());
      return 1;
    }
    validation = std::move(*loaded);
  } else if (v.holdout > 0) {
    auto split = hold_out(*dataset, v.holdout, v.holdout_seed);
    if (!split) {
      spdlog::error("{}", split.error());
      return 1;
    }
    dataset = std::move(split->train);
    validation = std::move(split->validation);
  }
  if (validation)
    spdlog::info("validation: {} rows of {}, evaluated every {} round(s)", validation->rows(),
                 validation->source, v.eval_every);

  std::random_device entropy;
  AgentOptions options;
  options.agent_id = c.id;
  options.incarnation = (std::uint64_t(entropy()) << 32) ^ entropy();
  options.validation = validation ? &*validation : nullptr;
  options.eval_every = v.eval_every;
  AgentCore core(*dataset, c.objective, options);

  TransportContext context;
  auto socket = ClientSocket::connect(context, c.hub, c.transport);
  if (!socket) {
    spdlog::error("{}", socket.error());
    return 1;
  }
  cli::install_stop_signals();
  spdlog::info("joining the hub at {}", c.hub);

  AgentServiceOptions service;
  service.limits.max_message_bytes = c.transport.max_message_bytes;
  service.heartbeat_seconds = c.heartbeat;
  service.hub_timeout_seconds = c.hub_timeout;
  service.give_up_seconds = c.give_up;
  service.stop_requested = [] { return cli::stop_flag().load(); };
  cli::ServiceNotifier notifier;
  // Ready (Type=notify units) once the hub has admitted and configured this agent.
  service.on_tick = [&](const AgentCore& agent) {
    if (!notifier.is_ready() && agent.state_bytes() > 0)
      notifier.ready("joined the hub at " + c.hub + ": " + std::to_string(dataset->rows()) +
                     " samples");
    notifier.watchdog(monotonic_seconds());
  };
  bool first = true;
  service.on_round = [&](const AgentCore& agent) {
    notifier.status_line("round " + std::to_string(agent.last_round()) + " answered (" +
                         std::to_string(agent.rounds_done()) + " rounds so far)");
    if (first && agent.state_bytes() > 0) {
      spdlog::info(
          "table: {} x {} scalars; solver state {:.1f} MB; data {:.1f} MB; resident {:.1f} MB; "
          "kernels {}",
          dataset->rows(), c.objective.classes, agent.state_bytes() / 1e6, dataset->bytes() / 1e6,
          resident_bytes() / 1e6, dsaga::dense_kernels());
      first = false;
    }
    spdlog::debug("round {} answered ({} rounds so far)", agent.last_round(), agent.rounds_done());
  };
  notifier.status_line("joining the hub at " + c.hub);
  const Status run = run_agent(core, **socket, service);
  notifier.stopping(run ? "done after " + std::to_string(core.rounds_done()) + " rounds"
                        : run.message());
  if (!run) {
    spdlog::error("{}", run.message());
    return 1;
  }
  spdlog::info("done after {} rounds: {}; resident memory {:.1f} MB", core.rounds_done(),
               core.finish_reason().empty() ? "stopped" : core.finish_reason(),
               resident_bytes() / 1e6);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "dsaga-agent: internal error: %s\n", e.what());
  return 70;
}
