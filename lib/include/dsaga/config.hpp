// Configuration of the two daemons: a TOML file (every key documented, with its default, in
// config/hub.toml and config/agent.toml) that the command line overrides. Parsing is strict: an
// unknown key, a wrong type or an out-of-range value is an error naming the file, line and key
// ("hub.toml:14:1: training.eta: expected a number, got a string"), so a typo never silently
// falls back to a default.
#pragma once

#include <string>
#include <string_view>

#include "dsaga/data_source.hpp"
#include "dsaga/hub.hpp"
#include "dsaga/objective.hpp"
#include "dsaga/options.hpp"
#include "dsaga/status.hpp"
#include "dsaga/transport.hpp"

namespace dsaga {

struct HubConfig {
  std::string listen = "tcp://127.0.0.1:5555";  // ROUTER endpoint; tcp://HOST:* = any free port
  std::string endpoint_file;  // write the bound endpoint here (for tcp://...:*); empty = no
  std::string metrics;        // per-round metrics: *.jsonl = JSON lines, else CSV; empty = none
  // The live metrics endpoint (Prometheus, GET /metrics over HTTP): "PORT" (on 127.0.0.1),
  // "HOST:PORT" or "[IPv6]:PORT"; empty = none. Needs a build with HTTP support.
  std::string metrics_listen;
  std::string model;          // the trained model (plain text) at the end; empty = none
  std::string checkpoint_dir; // save the hub's state here every round and resume from it
  int checkpoint_keep = 3;    // newest checkpoint files kept
  // A failed save holds every acknowledgement and is retried each tick; after this many seconds
  // of failures the hub stops with an error naming the directory and the OS error (0 = retry
  // forever).
  double checkpoint_retry = 60.0;
  std::string log_level = "info";
  bool progress = true;       // a progress line per round on stderr
  HubOptions hub;
  TransportOptions transport;
  // [security]: CurveZMQ. Required (or allow_plaintext) whenever `listen` is not loopback.
  std::string key_file;        // the hub's key pair (dsaga-keygen hub -> hub.key)
  std::string allowlist_file;  // "agent_id public_key" lines: the only agents admitted
};

struct AgentConfig {
  std::string hub = "tcp://127.0.0.1:5555";
  std::string id;  // empty = the host name
  std::string log_level = "info";
  double heartbeat = 2.0;     // seconds of silence before pinging the hub
  double hub_timeout = 10.0;  // seconds without an answer before reconnecting
  double give_up = 0.0;       // seconds without the hub before exiting with an error; 0 = never
  Objective objective;        // loss and classes (lambda comes from the hub)
  DataSpec data;
  ValidationSpec validation;  // [validation]: held-out rows, never trained on (data_source.hpp)
  TransportOptions transport;
  // [security]: CurveZMQ. Required (or allow_plaintext) whenever `hub` is not loopback.
  std::string key_file;      // this agent's key pair (dsaga-keygen agent-3 -> agent-3.key)
  std::string hub_key_file;  // the hub's public key (hub.pub): an impostor hub cannot answer
};

// Every option of the daemon, bound to the members of `config` (options.hpp): the rows the TOML
// reader, the command line and the example files' test share. The rows refer to `config`, which
// must outlive them; the values it holds when they are read are the defaults.
std::vector<OptionSpec> hub_options(HubConfig& config);
std::vector<OptionSpec> agent_options(AgentConfig& config);
// The agent's [problem] (loss, classes) and [data] rows, which every program that loads data
// shares (cli/data_options.hpp).
std::vector<OptionSpec> data_options(DataSpec& data, Objective& objective);

// `name` is the file name used in messages.
Result<HubConfig> parse_hub_config(std::string_view text, const std::string& name);
Result<AgentConfig> parse_agent_config(std::string_view text, const std::string& name);
Result<HubConfig> load_hub_config(const std::string& path);
Result<AgentConfig> load_agent_config(const std::string& path);

// Checks across fields, after the command line has overridden the file (e.g. target needs
// f_star, shard < shards). The error names the key.
Status validate(const HubConfig& config);
Status validate(const AgentConfig& config);

// Reads the key files named in [security] into config.transport (CurveZMQ keys, allowlist).
// Errors name the file and line. Nothing named: nothing loaded (the transport then refuses a
// non-loopback endpoint unless allow_plaintext).
Status load_security(HubConfig& config);
Status load_security(AgentConfig& config);

}  // namespace dsaga
