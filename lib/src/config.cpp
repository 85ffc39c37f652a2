// TOML configuration of the daemons (config.hpp), read with toml++.
#include "dsaga/config.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <sstream>

#include "dsaga/files.hpp"
#include "dsaga/io.hpp"
#include "dsaga/keys.hpp"
#include "dsaga/local_method.hpp"
#include "dsaga/metrics.hpp"
#include "dsaga/options.hpp"
#include "strings.hpp"

namespace dsaga {

namespace {

// One [section] of the file: typed getters that remember which keys were read, so that every
// key left over is reported as unknown (with its line) instead of being ignored.
class Section {
 public:
  Section(const toml::table& root, std::string name, const std::string& file, Status& status)
      : name_(std::move(name)), file_(file), status_(status) {
    if (const toml::node* node = root.get(name_)) {
      table_ = node->as_table();
      if (table_ == nullptr) fail(*node, "expected a table [" + name_ + "]");
    }
  }

  template <class T>
  void get(const char* key, T& value) {
    const toml::node* node = find(key);
    if (node == nullptr) return;
    if constexpr (std::is_same_v<T, bool>) {
      if (auto v = node->value_exact<bool>()) value = *v;
      else fail(*node, cat(name_, ".", key, ": expected true or false"));
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (auto v = node->value_exact<std::string>()) value = *v;
      else fail(*node, cat(name_, ".", key, ": expected a string"));
    } else if constexpr (std::is_floating_point_v<T>) {
      if (auto v = node->value<double>()) value = static_cast<T>(*v);  // integers are fine too
      else fail(*node, cat(name_, ".", key, ": expected a number"));
    } else {
      static_assert(std::is_integral_v<T>);
      const auto v = node->value_exact<std::int64_t>();
      if (!v) {
        fail(*node, cat(name_, ".", key, ": expected an integer"));
      } else if (*v < static_cast<std::int64_t>(std::numeric_limits<T>::min()) ||
                 (*v > 0 && static_cast<std::uint64_t>(*v) >
                                static_cast<std::uint64_t>(std::numeric_limits<T>::max()))) {
        fail(*node, cat(name_, ".", key, ": ", *v, " is out of range"));
      } else {
        value = static_cast<T>(*v);
      }
    }
  }

  void get_numbers(const char* key, std::vector<double>& values) {
    const toml::node* node = find(key);
    if (node == nullptr) return;
    const toml::array* array = node->as_array();
    if (array == nullptr) return fail(*node, cat(name_, ".", key, ": expected an array of numbers"));
    values.clear();
    for (const toml::node& item : *array) {
      auto v = item.value<double>();
      if (!v) return fail(item, cat(name_, ".", key, ": expected an array of numbers"));
      values.push_back(*v);
    }
  }

  // Call after every get: reports the first key that was not read.
  void finish() {
    if (table_ == nullptr || !status_) return;
    for (const auto& [key, node] : *table_) {
      if (read_.count(std::string(key.str())) == 0) {
        const auto& begin = key.source().begin;
        status_ = Status::error(cat(file_, ":", begin.line, ":", begin.column, ": unknown key '",
                                    name_, ".", key.str(), "'"));
        return;
      }
    }
  }

  const toml::node* find(const char* key) {
    read_.insert(key);
    if (table_ == nullptr || !status_) return nullptr;
    return table_->get(key);
  }

  void fail(const toml::node& node, const std::string& what) {
    if (!status_) return;  // keep the first error
    const auto& begin = node.source().begin;
    status_ = Status::error(cat(file_, ":", begin.line, ":", begin.column, ": ", what));
  }

 private:
  std::string name_;
  const std::string& file_;
  Status& status_;
  const toml::table* table_ = nullptr;
  std::set<std::string> read_;
};

Result<toml::table> parse_toml(std::string_view text, const std::string& name) {
  try {
    return toml::parse(text, name);
  } catch (const toml::parse_error& e) {
    const auto& begin = e.source().begin;
    return Result<toml::table>::failure(
        cat(name, ":", begin.line, ":", begin.column, ": ", e.description()));
  }
}

Status check_sections(const toml::table& root, const std::string& name,
                      const std::vector<std::string>& known) {
  for (const auto& [key, node] : root) {
    if (std::find(known.begin(), known.end(), key.str()) == known.end()) {
      const auto& begin = key.source().begin;
      std::string list;
      for (const std::string& k : known) list += cat(list.empty() ? "" : ", ", "[", k, "]");
      return Status::error(cat(name, ":", begin.line, ":", begin.column, ": unknown section or key '",
                               key.str(), "' (sections: ", list, ")"));
    }
  }
  return Status::ok();
}

// One row of an option table (options.hpp) from its section: std::visit over its member.
struct ReadOption {
  Section& s;
  const OptionSpec& o;
  template <class T>
  void operator()(T* member) const {
    s.get(o.key, *member);
    if constexpr (std::is_integral_v<T>) {
      if (o.check != OptionCheck::zero_or_one) return;
      if (const toml::node* node = s.find(o.key); node && *member != 0 && *member != 1)
        s.fail(*node, cat(o.section, ".", o.key, ": ", *member, ", expected 0 or 1"));
    }
  }
  void operator()(std::vector<double>* member) const { s.get_numbers(o.key, *member); }
  void operator()(const TextRef& ref) const {
    std::string text = ref.get();
    s.get(o.key, text);
    if (const toml::node* node = s.find(o.key))
      if (const Status set = ref.set(text); !set)
        s.fail(*node, cat(o.section, ".", o.key, ": ", set.message()));
  }
  void operator()(const MebibyteRef& ref) const {
    double mb = static_cast<double>(*ref.bytes) / (1 << 20);
    s.get(o.key, mb);
    if (mb > 0 && mb < 4096) *ref.bytes = static_cast<std::size_t>(mb * (1 << 20));
  }
};

// Every row of `options` from the file's tables. A section or key no row names is an error.
Status read_options(const toml::table& root, const std::string& name,
                    const std::vector<OptionSpec>& options) {
  const std::vector<std::string> sections = option_sections(options);
  Status status = check_sections(root, name, sections);
  for (const std::string& section : sections) {
    if (!status) break;
    Section s(root, section, name, status);
    for (const OptionSpec& o : options)
      if (section == o.section) std::visit(ReadOption{s, o}, o.value);
    s.finish();
  }
  return status;
}

}  // namespace

Result<HubConfig> parse_hub_config(std::string_view text, const std::string& name) {
  auto root = parse_toml(text, name);
  if (!root) return root.status();
  HubConfig c;
  if (Status s = read_options(*root, name, hub_options(c)); !s) return s;
  return c;
}

Result<AgentConfig> parse_agent_config(std::string_view text, const std::string& name) {
  auto root = parse_toml(text, name);
  if (!root) return root.status();
  AgentConfig c;
  if (Status s = read_options(*root, name, agent_options(c)); !s) return s;
  return c;
}

Result<HubConfig> load_hub_config(const std::string& path) {
  auto text = read_file_bytes(path, false);
  if (!text) return text.status();
  return parse_hub_config(*text, path);
}

Result<AgentConfig> load_agent_config(const std::string& path) {
  auto text = read_file_bytes(path, false);
  if (!text) return text.status();
  return parse_agent_config(*text, path);
}

namespace {
Status check_transport(const TransportOptions& t) {
  if (t.max_message_bytes < 1024) return Status::error("transport.max_message_mb is too small");
  if (t.send_queue < 0 || t.receive_queue < 0)
    return Status::error("transport.send_queue and receive_queue must be >= 0");
  if (t.heartbeat_ms < 0 || t.heartbeat_timeout_ms < 0 || t.linger_ms < 0 ||
      t.reconnect_ms < 0 || t.reconnect_max_ms < 0)
    return Status::error("transport: times must be >= 0");
  return Status::ok();
}
bool finite_nonneg(double v) { return std::isfinite(v) && v >= 0; }
}  // namespace

namespace {
Status check_log_level(const std::string& level, const char* key) {
  for (const char* known : {"trace", "debug", "info", "warn", "error", "critical", "off"})
    if (level == known) return Status::ok();
  return Status::error(cat(key, ": '", level, "', expected trace, debug, info, warn, error, critical or off"));
}
}  // namespace

Status validate(const HubConfig& c) {
  const HubOptions& h = c.hub;
  if (Status s = check_log_level(c.log_level, "hub.log_level"); !s) return s;
  if (c.listen.empty()) return Status::error("hub.listen: empty endpoint");
  if (!c.metrics_listen.empty())
    if (const auto address = parse_listen_address(c.metrics_listen); !address)
      return Status::error("hub.metrics_listen: " + address.error());
  if (c.checkpoint_keep < 1 || c.checkpoint_keep > 1000)
    return Status::error("hub.checkpoint_keep: expected 1 to 1000");
  if (!finite_nonneg(c.checkpoint_retry))
    return Status::error("hub.checkpoint_retry: must be >= 0 seconds (0 = retry forever)");
  if (h.expected_agents < 1 || h.expected_agents > 100000)
    return Status::error(cat("hub.agents: ", h.expected_agents, ", expected 1 to 100000"));
  if (h.min_agents < 0 || h.min_agents > h.expected_agents)
    return Status::error(cat("hub.min_agents: ", h.min_agents, ", expected 0 to hub.agents"));
  if (h.min_agents > 0 && !(h.admission_timeout > 0))
    return Status::error("hub.min_agents needs hub.admission_timeout > 0");
  if (!finite_nonneg(h.admission_timeout)) return Status::error("hub.admission_timeout: must be >= 0");
  if (h.objective.loss == Loss::multinomial ? h.objective.classes < 2 : h.objective.classes != 1)
    return Status::error(cat("problem.classes: ", h.objective.classes, " does not fit loss ",
                             to_string(h.objective.loss), " (1 for logistic and squared, >= 2 for multinomial)"));
  if (h.objective.classes > 100000) return Status::error("problem.classes: too many");
  if (!finite_nonneg(h.objective.lambda)) return Status::error("problem.lambda: must be >= 0");
  if (h.features < 0) return Status::error("problem.features: must be >= 0");
  if (!finite_nonneg(h.eta)) return Status::error("training.eta: must be >= 0 (0 = 1/(3 L_max))");
  if (!(h.server_step > 0) || !std::isfinite(h.server_step))
    return Status::error("training.server_step: must be > 0");
  if (h.local_steps < 0) return Status::error("training.local_steps: must be >= 0");
  if ((h.aggregation == Aggregation::async || h.aggregation == Aggregation::two_level ||
       h.aggregation == Aggregation::newton_cg) &&
      h.algorithm != msg::Algorithm::dsaga)
    return Status::error(cat("training.aggregation: ", to_string(h.aggregation), " is for dsaga; ",
                             to_string(h.algorithm),
                             " aggregates in synchronous rounds (aggregation = \"mean\" or \"auto\")"));
  if (h.coarse_rank < 0) return Status::error("training.coarse_rank: must be >= 0 (0 = automatic)");
  if (h.effective_aggregation() == Aggregation::two_level && h.table_refresh != 0)
    return Status::error("training.table_refresh: two-level rounds refresh the whole table; "
                         "table_refresh is for aggregation = \"mean\" or \"async\"");
  if (!finite_nonneg(h.prox)) return Status::error("training.prox: must be >= 0 (0 = none)");
  if (!(h.table_refresh >= 0 && h.table_refresh <= 1))
    return Status::error("training.table_refresh: must be in [0, 1] (0 = plain dSAGA)");
  if (h.max_rounds < 1) return Status::error("training.max_rounds: must be >= 1");
  if (!finite_nonneg(h.target)) return Status::error("training.target: must be >= 0");
  if (h.target > 0 && !std::isfinite(h.f_star))
    return Status::error("training.target needs training.f_star (the optimum, e.g. from dsaga-reference)");
  if (!finite_nonneg(h.round_deadline)) return Status::error("training.round_deadline: must be >= 0");
  if (h.min_participants < 1 || h.min_participants > h.expected_agents)
    return Status::error("training.min_participants: expected 1 to hub.agents");
  if (!(h.invariant_tolerance > 0)) return Status::error("training.invariant_tolerance: must be > 0");
  if (!finite_nonneg(h.max_update_norm))
    return Status::error("training.max_update_norm: must be >= 0 (0 = no bound)");
  return check_transport(c.transport);
}

Status validate(const AgentConfig& c) {
  if (Status s = check_log_level(c.log_level, "agent.log_level"); !s) return s;
  if (c.hub.empty()) return Status::error("agent.hub: empty endpoint");
  if (c.id.size() > 64) return Status::error("agent.id: longer than 64 characters");
  for (char ch : c.id)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_' && ch != '.')
      return Status::error("agent.id: '" + c.id + "' may hold only [A-Za-z0-9._-]");
  if (!(c.heartbeat > 0) || !(c.hub_timeout > c.heartbeat))
    return Status::error("agent.heartbeat and agent.hub_timeout: need 0 < heartbeat < hub_timeout");
  if (!finite_nonneg(c.give_up)) return Status::error("agent.give_up: must be >= 0");
  const Objective& o = c.objective;
  if (o.loss == Loss::multinomial ? o.classes < 2 : o.classes != 1)
    return Status::error(cat("problem.classes: ", o.classes, " does not fit loss ", to_string(o.loss)));
  if (c.data.shards < 1) return Status::error("data.shards: must be >= 1");
  if (c.data.shard < 0 || c.data.shard >= c.data.shards)
    return Status::error(cat("data.shard: ", c.data.shard, ", expected 0 to ", c.data.shards - 1));
  if (!(c.data.scale > 0) || !std::isfinite(c.data.scale))
    return Status::error("data.scale: must be > 0");
  if (c.data.limit < 0) return Status::error("data.limit: must be >= 0");
  const ValidationSpec& v = c.validation;
  if (v.holdout != 0 && !(v.holdout > 0 && v.holdout < 1))
    return Status::error(cat("validation.holdout: ", v.holdout, " is not a fraction in (0, 1) "
                             "(0 = none)"));
  if (!v.path.empty() && v.holdout > 0)
    return Status::error("validation.path and validation.holdout: give one, a file or a fraction");
  if (!v.labels_path.empty() && v.path.empty())
    return Status::error("validation.labels needs validation.path (the IDX images file)");
  if (v.eval_every < 1) return Status::error("validation.eval_every: must be >= 1");
  return check_transport(c.transport);
}

Status load_security(HubConfig& c) {
  if (c.key_file.empty() != c.allowlist_file.empty())
    return Status::error("security.key and security.allowlist go together (CurveZMQ on the hub)");
  if (c.key_file.empty()) return Status::ok();
  auto keys = load_key_file(c.key_file, /*require_secret=*/true);
  if (!keys) return keys.status();
  auto allowlist = load_allowlist(c.allowlist_file);
  if (!allowlist) return allowlist.status();
  c.transport.curve_secret_key = keys->secret_key;
  c.transport.curve_public_key = keys->public_key;
  c.transport.curve_allowlist = std::move(*allowlist);
  return Status::ok();
}

Status load_security(AgentConfig& c) {
  if (c.key_file.empty() != c.hub_key_file.empty())
    return Status::error("security.key and security.hub_key go together (CurveZMQ on the agent)");
  if (c.key_file.empty()) return Status::ok();
  auto keys = load_key_file(c.key_file, /*require_secret=*/true);
  if (!keys) return keys.status();
  auto hub = load_key_file(c.hub_key_file);
  if (!hub) return hub.status();
  c.transport.curve_secret_key = keys->secret_key;
  c.transport.curve_public_key = keys->public_key;
  c.transport.curve_server_key = hub->public_key;
  return Status::ok();
}

}  // namespace dsaga
