// dsaga-agent: the edge agent. Loads its local data (a file, or a deterministic shard of a data
// set), keeps its SAGA table, joins the hub and answers every round with T local steps.
// A thin main over the library: configuration (config.hpp, its options in one table), data
// (data_source.hpp), socket (transport.hpp), loop (service.hpp), state machine (agent.hpp).
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
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

namespace dsaga {
namespace {

// Exit statuses: 0 done (training finished, or a signal stopped the agent).
constexpr int kFailed = 1;      // the data, the hub or the run failed
constexpr int kUsageError = 2;  // bad options or configuration: nothing was started

int usage_error(const std::string& what) {
  std::fprintf(stderr, "dsaga-agent: %s\n", what.c_str());
  return kUsageError;
}

int failed(const std::string& what) {
  spdlog::error("{}", what);
  return kFailed;
}

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

// Reads the --config file, then the options over it (agent_options: every option once), and
// checks the result. Returns the exit status when the program ends here (--help, --version, an
// error).
std::optional<int> parse_command_line(int argc, char** argv, AgentConfig& c) {
  CLI::App app{
      "dsaga-agent " DSAGA_VERSION ": an edge agent of distributed SAGA. Loads its local data, "
      "keeps the SAGA table of its own samples (fixed memory), joins the hub and answers each "
      "round with local variance-reduced steps. Reconnects by itself when the hub goes away.\n"
      "Options override the --config file (TOML; see config/agent.toml for every key)."};
  if (const Status s = cli::read_config_file(app, argc, argv, load_agent_config, c); !s)
    return usage_error(s.message());
  const cli::ConfigOptions options(
      app, agent_options(c),
      {{"data", cli::data_group(app)},
       {"validation", app.add_option_group("Validation", "Held-out rows it never trains on (one "
                                                         "of --validation, --holdout)")}});
  if (const auto done = cli::parse(app, argc, argv)) return *done;
  if (const Status s = options.apply(); !s) return usage_error(s.message());
  if (c.id.empty()) c.id = host_name();
  if (const Status s = validate(c); !s) return usage_error(s.message());
  if (const Status s = load_security(c); !s) return usage_error(s.message());
  return std::nullopt;
}

// The training rows and the held-out ones (a file of their own or a fraction of the loaded
// rows; none without either), which the agent never trains on.
struct LocalData {
  Dataset train;
  std::optional<Dataset> validation;
};

Result<LocalData> load_local_data(const AgentConfig& c) {
  const DataSpec& d = c.data;
  const ValidationSpec& v = c.validation;
  const double load_start = monotonic_seconds();
  auto dataset = load_data(d, c.objective);
  if (!dataset) return dataset.status();
  spdlog::info("loaded {}: {} samples x {} features ({}, {}) in {:.2f} s", dataset->source,
               dataset->rows(), dataset->cols(), dataset->is_sparse() ? "sparse" : "dense",
               dataset->precision() == Precision::f32 ? "f32" : "f64",
               monotonic_seconds() - load_start);
  LocalData data{std::move(*dataset), std::nullopt};
  if (!v.path.empty()) {
    auto loaded = load_validation(d, v, c.objective, data.train);
    if (!loaded) return loaded.status();
    data.validation = std::move(*loaded);
  } else if (v.holdout > 0) {
    auto split = hold_out(data.train, v.holdout, v.holdout_seed);
    if (!split) return split.status();
    data.train = std::move(split->train);
    data.validation = std::move(split->validation);
  }
  if (data.validation)
    spdlog::info("validation: {} rows of {}, evaluated every {} round(s)",
                 data.validation->rows(), data.validation->source, v.eval_every);
  return data;
}

// The service loop until training ends, a signal stops the agent or the hub stays away
// (give_up); the service manager hears of each step.
int serve(AgentCore& core, ClientSocket& socket, const AgentConfig& c, const Dataset& data) {
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
      notifier.ready("joined the hub at " + c.hub + ": " + std::to_string(data.rows()) +
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
          data.rows(), c.objective.classes, agent.state_bytes() / 1e6, data.bytes() / 1e6,
          resident_bytes() / 1e6, dsaga::dense_kernels());
      first = false;
    }
    spdlog::debug("round {} answered ({} rounds so far)", agent.last_round(), agent.rounds_done());
  };
  notifier.status_line("joining the hub at " + c.hub);
  const Status run = run_agent(core, socket, service);
  notifier.stopping(run ? "done after " + std::to_string(core.rounds_done()) + " rounds"
                        : run.message());
  if (!run) return failed(run.message());
  spdlog::info("done after {} rounds: {}; resident memory {:.1f} MB", core.rounds_done(),
               core.finish_reason().empty() ? "stopped" : core.finish_reason(),
               resident_bytes() / 1e6);
  return 0;
}

int run_agent_daemon(int argc, char** argv) {
  AgentConfig c;
  if (const auto done = parse_command_line(argc, argv, c)) return *done;
  spdlog::set_level(spdlog::level::from_str(c.log_level));
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e agent " + c.id + " %^%l%$: %v");

  auto data = load_local_data(c);
  if (!data) return failed(data.error());
  std::random_device entropy;
  AgentOptions options;
  options.agent_id = c.id;
  options.incarnation = (std::uint64_t(entropy()) << 32) ^ entropy();
  options.validation = data->validation ? &*data->validation : nullptr;
  options.eval_every = c.validation.eval_every;
  options.bias = c.data.bias;
  if (missing_features_are_zeros(c.data)) {
    // A LIBSVM shard narrower than the model (its highest feature index is lower than another
    // agent's) takes the model's width from the hub's Config.
    options.widen = [&local = *data, bias = c.data.bias](Index cols) {
      spdlog::info("the model has {} features, this data {}: the missing ones are zeros", cols,
                   local.train.cols());
      widen(local.train, cols, bias);
      if (local.validation) widen(*local.validation, cols, bias);
    };
  }
  AgentCore core(data->train, c.objective, options);

  TransportContext context;
  auto socket = ClientSocket::connect(context, c.hub, c.transport);
  if (!socket) return failed(socket.error());
  cli::install_stop_signals();
  spdlog::info("joining the hub at {}", c.hub);
  return serve(core, **socket, c, data->train);
}

}  // namespace
}  // namespace dsaga

int main(int argc, char** argv) try {
  return dsaga::run_agent_daemon(argc, argv);
} catch (const std::exception& e) {
  std::fprintf(stderr, "dsaga-agent: internal error: %s\n", e.what());
  return 70;
}
