// The daemons' option tables (options.hpp): one row per option, in the order of the annotated
// example files config/hub.toml and config/agent.toml. A new option is a member with its default
// (config.hpp, hub.hpp, ...), a row here, its line in the example file (config_test checks that
// file against the table) and, if its range is limited, a check in validate() (config.cpp).
#include "dsaga/compress.hpp"
#include "dsaga/config.hpp"
#include "dsaga/local_method.hpp"
#include "dsaga/options.hpp"

namespace dsaga {

namespace {

// training.compression: compress.hpp's parser returns no message; this is the one reported.
TextRef encoding_ref(compress::Encoding& encoding) {
  return {[&encoding] { return std::string(compress::to_string(encoding)); },
          [&encoding](const std::string& text) {
            const auto parsed = compress::parse_encoding(text);
            if (!parsed) return Status::error("'" + text + "' is not an encoding (f64, f32, q8)");
            encoding = *parsed;
            return Status::ok();
          }};
}

// data.storage: "auto", "dense" or "sparse" over the two flags of ReadOptions.
TextRef storage_ref(ReadOptions& read) {
  return {[&read] {
            return std::string(read.force_dense ? "dense" : read.force_sparse ? "sparse" : "auto");
          },
          [&read](const std::string& text) {
            if (text != "auto" && text != "dense" && text != "sparse")
              return Status::error("'" + text + "', expected auto, dense or sparse");
            read.force_dense = text == "dense";
            read.force_sparse = text == "sparse";
            return Status::ok();
          }};
}

// data.partition: its kind and, for "dirichlet:ALPHA", its concentration.
TextRef partition_ref(DataSpec& d) {
  return {[&d] { return partition_name(d.partition, d.dirichlet_alpha); },
          [&d](const std::string& text) {
            auto parsed = parse_partition(text, &d.dirichlet_alpha);
            if (!parsed) return Status::error(parsed.error());
            d.partition = *parsed;
            return Status::ok();
          }};
}

// data.precision: "f32" or "f64".
TextRef precision_ref(Precision& precision) {
  return {[&precision] { return std::string(precision == Precision::f32 ? "f32" : "f64"); },
          [&precision](const std::string& text) {
            if (text != "f32" && text != "f64")
              return Status::error("'" + text + "', expected f32 or f64");
            precision = text == "f32" ? Precision::f32 : Precision::f64;
            return Status::ok();
          }};
}

// [problem] loss and classes: the hub's, the agent's and every data tool's.
void add_problem_options(std::vector<OptionSpec>& rows, Objective& objective) {
  rows.insert(rows.end(), {
      {"problem", "loss", "--loss", "logistic, squared or multinomial",
       enum_ref(objective.loss, parse_loss, to_string)},
      {"problem", "classes", "--classes", "Classes (multinomial)", &objective.classes},
  });
}

// [transport]: the same keys for both daemons; file only.
void add_transport_options(std::vector<OptionSpec>& rows, TransportOptions& t) {
  const char* s = "transport";
  rows.insert(rows.end(), {
      {s, "max_message_mb", nullptr, nullptr, MebibyteRef{&t.max_message_bytes}},
      {s, "send_queue", nullptr, nullptr, &t.send_queue},
      {s, "receive_queue", nullptr, nullptr, &t.receive_queue},
      {s, "heartbeat_ms", nullptr, nullptr, &t.heartbeat_ms},
      {s, "heartbeat_timeout_ms", nullptr, nullptr, &t.heartbeat_timeout_ms},
      {s, "reconnect_ms", nullptr, nullptr, &t.reconnect_ms},
      {s, "reconnect_max_ms", nullptr, nullptr, &t.reconnect_max_ms},
      {s, "linger_ms", nullptr, nullptr, &t.linger_ms},
  });
}

}  // namespace

std::vector<OptionSpec> hub_options(HubConfig& c) {
  HubOptions& h = c.hub;
  std::vector<OptionSpec> rows = {
      {"hub", "listen", "--listen",
       "Endpoint to bind (tcp://HOST:PORT, tcp://HOST:* for any free port)", &c.listen},
      {"hub", "endpoint_file", "--endpoint-file", "Write the bound endpoint to this file",
       &c.endpoint_file},
      {"hub", "metrics", "--metrics", "Per-round metrics file (*.jsonl: JSON lines, else CSV)",
       &c.metrics},
      {"hub", "metrics_listen", "--metrics-listen",
       "Serve live metrics (Prometheus) at http://ADDRESS/metrics: PORT (on 127.0.0.1), "
       "HOST:PORT or [IPv6]:PORT",
       &c.metrics_listen},
      {"hub", "model", "--model", "Write the trained model (text) here at the end", &c.model},
      {"hub", "checkpoint_dir", "--checkpoint-dir",
       "Save the hub's state here every round; resume from the newest valid one",
       &c.checkpoint_dir},
      {"hub", "checkpoint_keep", nullptr, nullptr, &c.checkpoint_keep},
      {"hub", "checkpoint_retry", "--checkpoint-retry",
       "Seconds a failed checkpoint save (disk full, read-only) is retried, with every "
       "acknowledgement held, before the hub stops with an error (0 = retry forever)",
       &c.checkpoint_retry},
      {"hub", "log_level", "--log-level", "trace, debug, info, warn, error", &c.log_level},
      {"hub", "progress", "--progress,!--no-progress", "A progress line per round on stderr",
       &c.progress},
      {"hub", "agents", "--agents", "Agents to wait for before training starts",
       &h.expected_agents},
      {"hub", "min_agents", "--min-agents",
       "Start with this many after --admission-timeout (0 = wait for all)", &h.min_agents},
      {"hub", "admission_timeout", "--admission-timeout", "Seconds (with --min-agents)",
       &h.admission_timeout},
  };
  add_problem_options(rows, h.objective);
  rows.insert(rows.end(), {
      {"problem", "lambda", "--lambda", "L2 regularisation", &h.objective.lambda},
      {"problem", "features", "--features",
       "Model dimension d (0 = the widest agent's; a narrower LIBSVM agent reads the features it "
       "lacks as zeros)",
       &h.features},

      {"training", "algorithm", "--algorithm",
       "dsaga, or a baseline through the same agents and wire: fedavg, scaffold, gd",
       enum_ref(h.algorithm, parse_algorithm, to_string)},
      {"training", "eta", "--eta", "Local step size (0 = 1/(3 L_max); gd: 1/L_max)", &h.eta},
      {"training", "server_step", "--server-step", "Server step eta_g on the weighted mean of dw",
       &h.server_step},
      {"training", "aggregation", "--aggregation",
       "auto (dsaga: two-level, switching by itself to newton-cg when the rounds show flat "
       "curvature; the baselines: mean); two-level (dsaga: coarse Newton step plus local runs "
       "with momentum, docs/ALGORITHM.md section 7); newton-cg (dsaga: distributed Newton-CG, one "
       "exchange per CG step, section 7.2); mean (plain dSAGA and the baselines: synchronous rounds, weighted "
       "mean of the steps); async (dsaga: apply each update on arrival)",
       enum_ref(h.aggregation, parse_aggregation, to_string)},
      {"training", "preconditioner", "--preconditioner",
       "newton-cg: auto (the agents' Hessians at each new point, each Newton step solved and "
       "damped at the hub, no product rounds, "
       "where their upload (the distinct entries of a d*C x d*C matrix) is affordable, "
       "d*C <= 1447, and the loss is not squared; else "
       "the Gram bound where its one-time d x d upload is, d <= 1447; else that bound "
       "approximated on two-level's basis where auto switched from two-level; else diagonal); "
       "hessian, gram (each as auto where it is not affordable); diagonal (the diagonals of the "
       "agents' Hessians at each new point, d*C floats, under the last round's CG pairs); pairs "
       "(no upload: the last round's CG pairs)",
       enum_ref(h.preconditioner, parse_preconditioner, to_string)},
      {"training", "compression", "--compression",
       "how agents round the deltas they send, with error feedback (exact table accounting): "
       "q8 (8 bits an entry and a 16-bit scale per 64), f32, f64 (as they are); q8 also sends "
       "the broadcast as q8 changes (the hub's error feedback; not over the whole space, "
       "d * C <= 256, whose Newton steps need the exact w) and two-level's basis and "
       "eigenvectors as q8 where they outweigh a round's coarse payload (else as floats), "
       "and where a two-level round is mostly the deltas (a wide sparse model) rounds them, "
       "the changes and the basis under a floor (blocks far smaller than the vector's largest "
       "take a coarser step); "
       "other than f64, coarse Hessians (and with f32 the basis and eigenvectors) travel as "
       "floats",
       encoding_ref(h.compression)},
      {"training", "coarse_rank", "--coarse-rank",
       "two-level: dimension m of the coarse space (0 = chosen from the spectrum the agents "
       "upload, or the whole space when d * C <= 256; >= d = the whole space)",
       &h.coarse_rank, OptionCheck::non_negative},
      {"training", "max_staleness", "--max-staleness",
       "async: drop the dw of an update that started more than this many updates ago "
       "(0 = twice the number of agents)",
       &h.max_staleness},
      {"training", "prox", "--prox",
       "mu of the local proximal term mu/2 ||w - w_r||^2 (0 = none; see bench/RESULTS.md)",
       &h.prox},
      {"training", "table_refresh", "--table-refresh",
       "mean/async dSAGA: fraction of each agent's table recomputed at the broadcast w every "
       "round (0 = none; two-level rounds always refresh the whole table)",
       &h.table_refresh},
      {"training", "local_steps", "--local-steps", "Local steps T per round (0 = one local epoch)",
       &h.local_steps},
      {"training", "seed", "--seed", "Run seed (each agent samples with a seed derived from it)",
       &h.seed},
      {"training", "max_rounds", "--max-rounds", "Round cap", &h.max_rounds},
      {"training", "f_star", "--f-star",
       "Optimal objective F* (for (F-F*)/F*), e.g. from dsaga-reference", &h.f_star},
      {"training", "target", "--target", "Stop when (F-F*)/F* <= this (needs --f-star; 0 = never)",
       &h.target},
      {"training", "round_deadline", "--round-deadline",
       "Seconds a round waits for updates (0 = wait for every agent)", &h.round_deadline},
      {"training", "min_participants", "--min-participants",
       "Updates a round needs to close at its deadline", &h.min_participants},
      {"training", "invariant_tolerance", nullptr, nullptr, &h.invariant_tolerance},
      {"training", "max_update_norm", nullptr, nullptr, &h.max_update_norm},
  });
  add_transport_options(rows, c.transport);
  rows.insert(rows.end(), {
      {"security", "key", "--key", "CurveZMQ: the hub's key file (dsaga-keygen hub)", &c.key_file},
      {"security", "allowlist", "--allowlist",
       "CurveZMQ: the agents admitted, one 'agent_id public_key' line each", &c.allowlist_file},
      {"security", "allow_plaintext", "--allow-plaintext",
       "Listen without encryption on a non-loopback address (trusted networks only)",
       &c.transport.allow_plaintext},
  });
  return rows;
}

std::vector<OptionSpec> data_options(DataSpec& d, Objective& objective) {
  std::vector<OptionSpec> rows;
  add_problem_options(rows, objective);
  rows.insert(rows.end(), {
      {"data", "format", "--format", "auto, libsvm, csv, idx, fashion-mnist", &d.format},
      {"data", "path", "--data",
       "Data file (LIBSVM, CSV, IDX images) or the fashion-mnist directory", &d.path},
      {"data", "labels", "--labels", "IDX labels file", &d.labels_path},
      {"data", "split", "--split", "fashion-mnist: train or test", &d.split},
      {"data", "limit", "--limit", "Keep the first rows only (0 = all)", &d.limit},
      {"data", "scale", "--scale", "Multiply every feature (pixels/255: 0.00392156862745098)",
       &d.scale},
      {"data", "normalize", "--normalize,!--no-normalize",
       "Scale each row to unit L2 norm (after --scale)", &d.normalize_rows},
      {"data", "bias", "--bias,!--no-bias", "Append a constant 1 feature", &d.bias},
      {"data", "positive", "--positive", "Logistic: raw labels that become +1 (e.g. 0,2,4,6)",
       &d.positive},
      {"data", "first_class", "--first-class",
       "Multinomial: the label of the first class, 0 (labels 0..C-1) or 1 (1..C); the data "
       "set's convention, the same on every agent",
       &d.first_class, OptionCheck::zero_or_one},
      {"data", "shards", "--shards", "Split the data set into K shards...", &d.shards},
      {"data", "shard", "--shard", "...and keep this one (0..K-1)", &d.shard},
      {"data", "partition", "--partition",
       "iid, by-label or dirichlet:ALPHA (per label, shard shares ~ Dirichlet(ALPHA))",
       partition_ref(d)},
      {"data", "seed", "--data-seed", "Seed of the iid and dirichlet partitions", &d.seed},
      {"data", "precision", "--precision", "Feature storage: f32 or f64",
       precision_ref(d.read.precision)},
      {"data", "storage", "--storage", "auto, dense or sparse", storage_ref(d.read)},
      {"data", "features", "--features",
       "LIBSVM: the number of features; a file whose highest index is lower is padded with zero "
       "columns (a missing feature is zero), one with a higher index is refused. 0 = the highest "
       "index in the file; a narrower file than the model is widened when the hub names the "
       "model's width, so the shards of a natural split need not set it",
       &d.read.features, OptionCheck::non_negative},
      {"data", "zero_based", nullptr, nullptr, &d.read.zero_based},
      {"data", "csv_header", nullptr, nullptr, &d.read.csv_header},
  });
  return rows;
}

std::vector<OptionSpec> agent_options(AgentConfig& c) {
  std::vector<OptionSpec> rows = {
      {"agent", "hub", "--hub", "Hub endpoint (tcp://HOST:PORT)", &c.hub},
      {"agent", "id", "--id", "Agent id, unique per hub (default: the host name)", &c.id},
      {"agent", "log_level", "--log-level", "trace, debug, info, warn, error", &c.log_level},
      {"agent", "heartbeat", "--heartbeat", "Seconds of silence before pinging the hub",
       &c.heartbeat},
      {"agent", "hub_timeout", "--hub-timeout", "Seconds without an answer before reconnecting",
       &c.hub_timeout},
      {"agent", "give_up", "--give-up",
       "Exit with an error after the hub is away this long (0 = never)", &c.give_up},
  };
  const std::vector<OptionSpec> data = data_options(c.data, c.objective);
  rows.insert(rows.end(), data.begin(), data.end());
  ValidationSpec& v = c.validation;
  rows.insert(rows.end(), {
      {"validation", "path", "--validation",
       "Validation file, read with the data options above and cut into the same shards (idx: the "
       "images; fashion-mnist: the directory, its test split)",
       &v.path},
      {"validation", "labels", "--validation-labels", "idx: the validation labels file",
       &v.labels_path},
      {"validation", "holdout", "--holdout",
       "Hold out this fraction in (0, 1) of the loaded rows instead (0 = none)", &v.holdout},
      {"validation", "holdout_seed", "--holdout-seed", "Which rows --holdout takes",
       &v.holdout_seed},
      {"validation", "eval_every", "--eval-every",
       "Evaluate the validation rows every this many rounds", &v.eval_every},
  });
  add_transport_options(rows, c.transport);
  rows.insert(rows.end(), {
      {"security", "key", "--key", "CurveZMQ: this agent's key file (dsaga-keygen NAME)",
       &c.key_file},
      {"security", "hub_key", "--hub-key", "CurveZMQ: the hub's public key file (hub.pub)",
       &c.hub_key_file},
      {"security", "allow_plaintext", "--allow-plaintext",
       "Talk to a non-loopback hub without encryption (trusted networks only)",
       &c.transport.allow_plaintext},
  });
  return rows;
}

}  // namespace dsaga
