// The hub's state machine (hub.hpp; ALGORITHM.md section 3).
#include "dsaga/hub.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>

#include "dsaga/rng.hpp"
#include "dsaga/support.hpp"
#include "hub_mode.hpp"
#include "strings.hpp"

namespace dsaga {

namespace {

// Upper bound on n_k from a Join: far beyond any device, small enough that N stays exact in a
// double and sums cannot overflow.
constexpr std::uint64_t kMaxSamples = std::uint64_t(1) << 40;

bool valid_agent_id(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.';
  });
}

// Rejects a message: the reason goes back to the sender as msg::Error and to the caller as the
// Status (which the service logs). The hub's state is not touched.
Status reject(const PeerId& to, msg::ErrorCode code, std::string reason,
              std::vector<Outgoing>& out) {
  out.push_back(Outgoing{{to}, msg::Error{code, reason}});
  return Status::error(std::move(reason));
}

}  // namespace

const char* to_string(Aggregation aggregation) {
  switch (aggregation) {
    case Aggregation::mean: return "mean";
    case Aggregation::async: return "async";
    case Aggregation::two_level: return "two-level";
    case Aggregation::automatic: return "auto";
    case Aggregation::newton_cg: return "newton-cg";
  }
  return "unknown";
}

Result<Aggregation> parse_aggregation(const std::string& text) {
  for (auto a : {Aggregation::automatic, Aggregation::two_level, Aggregation::newton_cg,
                 Aggregation::mean, Aggregation::async})
    if (text == to_string(a)) return a;
  return Result<Aggregation>::failure(
      cat("'", text, "' is not an aggregation (auto, two-level, newton-cg, mean, async)"));
}

const char* to_string(Preconditioner preconditioner) {
  switch (preconditioner) {
    case Preconditioner::automatic: return "auto";
    case Preconditioner::gram: return "gram";
    case Preconditioner::pairs: return "pairs";
    case Preconditioner::hessian: return "hessian";
    case Preconditioner::diagonal: return "diagonal";
  }
  return "unknown";
}

Result<Preconditioner> parse_preconditioner(const std::string& text) {
  for (auto p : {Preconditioner::automatic, Preconditioner::hessian, Preconditioner::gram,
                 Preconditioner::diagonal, Preconditioner::pairs})
    if (text == to_string(p)) return p;
  return Result<Preconditioner>::failure(
      cat("'", text, "' is not a preconditioner (auto, hessian, gram, diagonal, pairs)"));
}

const char* to_string(Outcome outcome) {
  switch (outcome) {
    case Outcome::running: return "running";
    case Outcome::target_reached: return "target reached";
    case Outcome::round_cap: return "round cap";
    case Outcome::below_f_star: return "below F*";
    case Outcome::diverged: return "diverged";
    case Outcome::stopped: return "stopped";
  }
  return "unknown";
}

std::uint64_t agent_seed(std::uint64_t run_seed, const std::string& agent_id) {
  // FNV-1a over the id, then one SplitMix64 step mixing in the run seed: fixed arithmetic on
  // 64-bit unsigned integers, so the same on every platform.
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : agent_id) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  Rng mix(run_seed ^ h);
  return mix.next();
}

HubCore::HubCore(HubOptions options)
    : options_(std::move(options)),
      mode_(&mode_for(options_.effective_aggregation())),
      active_(options_.effective_aggregation()) {
  features_ = options_.features;
}

HubCore::AgentState* HubCore::agent_for_peer(const PeerId& peer) {
  const auto it = agent_of_peer_.find(peer);
  if (it == agent_of_peer_.end()) return nullptr;
  return &agents_.at(it->second);
}

std::vector<PeerId> HubCore::connected_peers() const {
  std::vector<PeerId> peers;
  for (const auto& [id, agent] : agents_)
    if (agent.connected) peers.push_back(agent.peer);
  return peers;
}

msg::Config HubCore::config_for(const AgentState& agent, bool build_table) const {
  msg::Config config;
  config.algorithm = options_.algorithm;
  config.total_samples = static_cast<std::uint64_t>(total_samples_);
  config.features = static_cast<std::uint32_t>(features_);
  config.classes = static_cast<std::uint32_t>(options_.objective.classes);
  config.loss = options_.objective.loss;
  config.lambda = options_.objective.lambda;
  config.eta = eta_;
  config.steps = local_steps_for(agent);
  config.seed = agent_seed(options_.seed, agent.agent_id);
  config.build_table = build_table;
  config.round = round_;
  config.restricted = restricted(agent);
  config.encoding = options_.compression;
  config.curvature = options_.compression;  // two-level may send floats instead of q8
  config.w = config.restricted ? support::gather(w_, agent.support, options_.objective.classes)
                               : to_std(w_);
  config.prox = options_.prox;
  config.refresh = options_.effective_table_refresh();
  mode_->add_to_config(*this, agent, config);
  return config;
}

msg::RoundStart HubCore::round_start() const {
  msg::RoundStart start;
  start.round = round_;
  start.w = to_std(broadcast_w());
  start.gbar = to_std(broadcast_gbar());
  mode_->add_to_start(*this, nullptr, start);
  return start;
}

bool HubCore::restricted(const AgentState& agent) const {
  return options_.restrict_to_support && options_.algorithm == msg::Algorithm::dsaga &&
         mode_->knows_broadcast() && !agent.support.empty();
}

std::uint64_t HubCore::local_steps_for(const AgentState& agent) const {
  return mode_->local_steps(*this, options_.local_steps > 0
                                       ? static_cast<std::uint64_t>(options_.local_steps)
                                       : agent.samples);
}

msg::RoundStart HubCore::round_start_for(const AgentState& agent) const {
  if (!restricted(agent)) return round_start();
  const int C = options_.objective.classes;
  msg::RoundStart start;
  start.round = round_;
  start.w = support::gather(broadcast_w(), agent.support, C);
  start.gbar = support::gather(broadcast_gbar(), agent.support, C);
  mode_->add_to_start(*this, &agent, start);
  return start;
}

bool HubCore::compressed_broadcast() const {
  // Not over the whole space (U = I, d C <= 256): the vectors are a few kB against the coarse
  // Hessian's tens, and an exact Newton step needs the w it was computed at, which q8 changes
  // of a large step miss on badly scaled columns (a 64-entry block's scale is its largest).
  return options_.compression == msg::Encoding::q8 && mode_->knows_broadcast() &&
         mode_->round_kind(*this) == msg::RoundKind::run && !coarse_.basis.identity;
}

bool HubCore::broadcast_floored() const {
  // Two-level with a basis short of the whole space: the mean agent's four vectors of a round
  // against the coarse payload (coarse::deltas_floored, the rule each agent applies to its own).
  if (coarse_.basis.identity || coarse_.basis.u.cols() == 0 || agents_.empty())
    return false;
  const int C = options_.objective.classes;
  double entries = 0.0;
  for (const auto& [id, agent] : agents_)
    entries += 4.0 * static_cast<double>(restricted(agent) ? agent.support.size()
                                                             : static_cast<std::size_t>(features_)) *
               C;
  return coarse::deltas_floored(entries / static_cast<double>(agents_.size()),
                                coarse_.basis.u.cols(), C,
                                options_.objective.loss == Loss::multinomial);
}

void HubCore::advance_broadcast() {
  w_change_.q.clear();
  gbar_change_.q.clear();
  changes_from_zero_ = false;
  if (!compressed_broadcast()) {
    // No changes this round: every agent is sent the vectors.
    for (auto& [id, agent] : agents_) agent.holds_round = 0;
    bw_.resize(0);
    bg_.resize(0);
    return;
  }
  if (bw_.size() != w_.size() || bg_.size() != round_gbar_.size()) {
    // The first compressed round: the changes are on zeros, which any agent can take whatever
    // it holds (RoundStart.from_zero), and the error feedback starts from there.
    for (auto& [id, agent] : agents_) agent.holds_round = 0;
    bw_.setZero(w_.size());
    bg_.setZero(round_gbar_.size());
    changes_from_zero_ = true;
  }
  const bool floor = broadcast_floored();
  Eigen::VectorXd change = w_ - bw_;
  compress::quantize(change.data(), static_cast<std::size_t>(change.size()), w_change_, floor);
  compress::add(w_change_, bw_.data());
  change = round_gbar_ - bg_;
  compress::quantize(change.data(), static_cast<std::size_t>(change.size()), gbar_change_, floor);
  compress::add(gbar_change_, bg_.data());
}

bool HubCore::takes_changes(const AgentState& agent) const {
  return !w_change_.empty() &&
         (changes_from_zero_ || (agent.holds_round != 0 && agent.holds_round + 1 == round_));
}

msg::RoundStart HubCore::changes_start(const AgentState* agent) const {
  msg::RoundStart start;
  start.round = round_;
  start.base = changes_from_zero_ ? 0 : round_ - 1;
  start.from_zero = changes_from_zero_;
  if (agent != nullptr) {
    compress::gather(w_change_, agent->support, options_.objective.classes, start.w_delta);
    compress::gather(gbar_change_, agent->support, options_.objective.classes, start.gbar_delta);
  } else {
    start.w_delta = w_change_;
    start.gbar_delta = gbar_change_;
  }
  mode_->add_to_start(*this, agent, start);
  return start;
}

msg::RoundStart HubCore::broadcast_to(AgentState& agent) {
  const bool changes = takes_changes(agent);
  agent.holds_round = bw_.size() == w_.size() ? round_ : 0;
  if (!changes) return round_start_for(agent);
  return changes_start(restricted(agent) ? &agent : nullptr);
}

msg::Update HubCore::whole_update(const AgentState& agent, const msg::Update& update) const {
  const int C = options_.objective.classes;
  msg::Update whole = update;  // then dS and dw made whole
  Eigen::VectorXd full(w_.size());
  support::scatter(update.dS.data(), agent.support, C, 0.0, full);
  whole.dS = to_std(full);
  support::scatter(update.dw.data(), agent.support, C, 0.0, full);
  // Off the support the run followed the closed form from the round's broadcast; an update of
  // a closed round has its step dropped, so its dw stays zero there.
  if (update.round == round_ && phase_ == Phase::training && round_gbar_.size() == w_.size())
    support::off_support_run(broadcast_w(), broadcast_gbar(), agent.support, C,
                             support::LocalRun{round_eta_, options_.objective.lambda,
                                               options_.prox, local_steps_for(agent)},
                             full);
  whole.dw = to_std(full);
  return whole;
}

Status HubCore::on_message(const PeerId& from, const msg::Message& message, double now,
                           std::vector<Outgoing>& out) {
  if (round_started_ < 0) round_started_ = now;  // resumed: the open round's clock starts now
  if (const auto* join = std::get_if<msg::Join>(&message)) return on_join(from, *join, now, out);

  AgentState* agent = agent_for_peer(from);
  if (agent == nullptr) {
    return reject(from, msg::ErrorCode::not_admitted,
                  cat(msg::name_of(message), " from a peer that has not joined"), out);
  }
  agent->connected = true;
  if (const auto* init = std::get_if<msg::InitUpload>(&message))
    return on_init(*agent, *init, now, out);
  if (const auto* update = std::get_if<msg::Update>(&message))
    return on_update(*agent, *update, now, out);
  if (std::holds_alternative<msg::Heartbeat>(message)) {
    out.push_back(Outgoing{{from}, msg::Heartbeat{round_}});
    return Status::ok();
  }
  if (const auto* leave = std::get_if<msg::Leave>(&message)) {
    // Its table stays counted: its samples are still part of the problem (hub.hpp).
    agent->connected = false;
    agent_of_peer_.erase(from);
    const std::string why = cat("agent '", agent->agent_id, "' left: ", leave->reason);
    if (phase_ == Phase::training) mode_->on_agent_lost(*this, now, out);
    return Status::error(why);
  }
  if (const auto* error = std::get_if<msg::Error>(&message)) {
    const std::string text = cat("agent '", agent->agent_id, "' reported error ",
                                 static_cast<int>(error->code), ": ", error->text);
    // An agent whose local iterate is no longer finite: the run has diverged, and waiting for
    // its update would wait forever.
    if (error->code == msg::ErrorCode::invalid_value && phase_ == Phase::training)
      finish(Outcome::diverged, cat("training diverged: ", text, " (try a smaller eta or server_step)"), out);
    // A RoundStart's changes on a broadcast the agent does not hold (one was lost on the way):
    // it is sent the open round's vectors, unless its update for the round is already in.
    if (error->code == msg::ErrorCode::stale_broadcast) {
      agent->holds_round = 0;
      if (phase_ == Phase::training && agent->initialized && mode_->knows_broadcast() &&
          mode_->round_kind(*this) == msg::RoundKind::run && pending_.count(agent->agent_id) == 0) {
        out.push_back(Outgoing{{agent->peer}, broadcast_to(*agent)});
        return Status::error(cat(text, "; sent it round ", round_, "'s vectors"));
      }
    }
    return Status::error(text);
  }
  return reject(from, msg::ErrorCode::malformed,
                cat("agents do not send ", msg::name_of(message)), out);
}

namespace {

// The checks of a Join that need no state beyond the options (its width: check_width): a
// refusal's code and reason, or nothing.
std::optional<Refusal> check_join(const HubOptions& options, const msg::Join& join) {
  if (!valid_agent_id(join.agent_id))
    return Refusal{msg::ErrorCode::refused, "the id must be 1 to 64 characters of [A-Za-z0-9._-]"};
  if (join.loss != options.objective.loss)
    return Refusal{msg::ErrorCode::dimension_mismatch,
                   cat("loss ", to_string(join.loss), ", this hub trains ",
                       to_string(options.objective.loss))};
  if (static_cast<int>(join.classes) != options.objective.classes)
    return Refusal{msg::ErrorCode::dimension_mismatch,
                   cat(join.classes, " classes, this hub trains ", options.objective.classes)};
  const Index d = static_cast<Index>(join.features);
  if (d <= 0) return Refusal{msg::ErrorCode::dimension_mismatch, "0 features"};
  if (d > kMaxColumns)
    return Refusal{msg::ErrorCode::invalid_value,
                   cat(d, " features: no data set has more than ", kMaxColumns)};
  if (join.samples == 0 || join.samples > kMaxSamples)
    return Refusal{msg::ErrorCode::invalid_value, cat(join.samples, " samples")};
  if (!std::isfinite(join.lmax) || join.lmax < 0)
    return Refusal{msg::ErrorCode::invalid_value, cat("L_max ", join.lmax)};
  if (join.support.size() > static_cast<std::size_t>(d))
    return Refusal{msg::ErrorCode::invalid_value,
                   cat("its support lists ", join.support.size(), " columns of ", d)};
  for (std::size_t i = 0; i < join.support.size(); ++i)
    if (join.support[i] >= static_cast<std::uint64_t>(d) ||
        (i > 0 && join.support[i] <= join.support[i - 1]))
      return Refusal{msg::ErrorCode::invalid_value,
                     cat("support[", i, "] = ", join.support[i],
                         ": the support must be strictly ascending columns below ", d)};
  return std::nullopt;
}

// An agent's support in the model's columns: the same list when its data has the model's
// width; for narrower data (widened by the agent: dataset.hpp widen) every column of its own
// when the list is empty, and the bias column, its last, moved to the model's last.
std::vector<std::uint32_t> model_support(const std::vector<std::uint32_t>& own, Index width,
                                         bool bias, Index model) {
  if (width >= model) return own;
  std::vector<std::uint32_t> s = own;
  if (s.empty()) {
    s.resize(static_cast<std::size_t>(width));
    std::iota(s.begin(), s.end(), 0u);
  }
  if (bias && !s.empty() && s.back() == static_cast<std::uint32_t>(width - 1))
    s.back() = static_cast<std::uint32_t>(model - 1);
  return s;
}

constexpr const char* kOnlyLibsvmNarrower =
    "only LIBSVM data (a missing feature is a zero) may be narrower than the model";

}  // namespace

std::optional<Refusal> HubCore::check_width(const msg::Join& join) const {
  const Index d = static_cast<Index>(join.features);
  const auto refusal = [](const std::string& why) {
    return Refusal{msg::ErrorCode::dimension_mismatch, why};
  };
  if (features_ != 0) {  // --features, or fixed when training started
    const char* whence = options_.features != 0 ? " (--features)" : "";
    if (d > features_)
      return refusal(cat(d, " features, the model has ", features_, whence,
                         "; an agent's data may be narrower than the model, not wider"));
    if (d < features_ && !join.zero_padded)
      return refusal(cat(d, " features, the model has ", features_, whence, "; ",
                         kOnlyLibsvmNarrower));
  }
  for (const auto& [id, other] : agents_) {
    if (id == join.agent_id || other.width == 0) continue;
    if (other.bias != join.bias)
      return refusal(cat(join.bias ? "its data has a --bias column, agent '"
                                   : "its data has no --bias column, agent '",
                         id, join.bias ? "' has none" : "' has one",
                         ": every agent's data must have the same columns"));
    if (features_ != 0) continue;
    // The model will be as wide as the widest agent: only zero-padded data may be narrower.
    if (d < other.width && !join.zero_padded)
      return refusal(cat(d, " features, agent '", id, "' has ", other.width, "; ",
                         kOnlyLibsvmNarrower));
    if (d > other.width && !other.zero_padded)
      return refusal(cat(d, " features, agent '", id, "' has ", other.width,
                         " and its data (not LIBSVM) cannot take a wider model"));
  }
  return std::nullopt;
}

Status HubCore::on_join(const PeerId& from, const msg::Join& join, double now,
                        std::vector<Outgoing>& out) {
  const auto refuse = [&](msg::ErrorCode code, const std::string& why) {
    // While admitting, a refusal may leave the hub short of the agents it waits for: say so.
    const std::string waiting =
        phase_ == Phase::admitting
            ? cat(" (the hub has ", agents(), " of the ", options_.expected_agents,
                  " agents it waits for)")
            : std::string();
    return reject(from, code, cat("Join of agent '", join.agent_id, "' refused: ", why, waiting),
                  out);
  };
  if (auto refusal = check_join(options_, join)) return refuse(refusal->code, refusal->why);
  if (auto refusal = check_width(join)) return refuse(refusal->code, refusal->why);
  const Index d = static_cast<Index>(join.features);

  auto it = agents_.find(join.agent_id);
  if (it != agents_.end()) {
    // A known agent on a new connection: a reconnect (same incarnation, its table intact) or a
    // restarted process (new incarnation, its table gone: it must rebuild it).
    AgentState& agent = it->second;
    if (phase_ != Phase::admitting && join.samples != agent.samples)
      return refuse(msg::ErrorCode::dimension_mismatch,
                    cat(join.samples, " samples, it had ", agent.samples,
                        " when training started (N is fixed during training)"));
    const bool restarted = join.incarnation != agent.incarnation;
    if (agent.peer != from) agent_of_peer_.erase(agent.peer);
    agent.peer = from;
    agent.connected = true;
    agent_of_peer_[from] = agent.agent_id;
    agent.holds_round = 0;  // it is sent a Config: the next broadcast is whole
    if (restarted) {
      agent.incarnation = join.incarnation;
      agent.last_seq = 0;
      // An update held from the dead process is superseded by the table it will rebuild (its
      // InitUpload replaces S_k wholesale); applying it at round close would also mark seq
      // numbers of the old process as applied and make the new process's InitUpload look like
      // a duplicate.
      pending_.erase(agent.agent_id);
    }
    agent.width = d;
    agent.zero_padded = join.zero_padded;
    agent.bias = join.bias;
    if (phase_ == Phase::admitting) {
      agent.samples = join.samples;
      agent.lmax = join.lmax;
      agent.support = join.support;
    } else if (model_support(join.support, d, join.bias, features_) != agent.support) {
      return refuse(msg::ErrorCode::dimension_mismatch,
                    "its support changed since training started (the coarse basis it holds is "
                    "restricted to the old one)");
    } else if (phase_ == Phase::finished) {
      out.push_back(Outgoing{{from}, msg::Leave{finish_reason_}});
    } else {
      // Its S_k stays counted until a new InitUpload replaces it (on_init).
      const bool rebuild = restarted || !agent.initialized;
      out.push_back(Outgoing{{from}, config_for(agent, rebuild)});
      if (!rebuild && phase_ == Phase::training) mode_->resume_agent(*this, agent, out);
    }
    return Status::ok();
  }

  if (phase_ != Phase::admitting)
    return refuse(msg::ErrorCode::refused,
                  "training has started; a new agent would change N and the objective");
  if (static_cast<int>(agents_.size()) >= options_.expected_agents)
    return refuse(msg::ErrorCode::refused,
                  cat("the hub expects ", options_.expected_agents, " agents and has them"));
  if (agent_of_peer_.count(from) != 0)
    return refuse(msg::ErrorCode::refused, "this connection already joined as another agent");

  AgentState agent;
  agent.agent_id = join.agent_id;
  agent.peer = from;
  agent.samples = join.samples;
  agent.lmax = join.lmax;
  agent.incarnation = join.incarnation;
  agent.support = join.support;
  agent.width = d;
  agent.zero_padded = join.zero_padded;
  agent.bias = join.bias;
  agents_.emplace(join.agent_id, std::move(agent));
  agent_of_peer_[from] = join.agent_id;
  if (admission_started_ < 0) admission_started_ = now;
  if (static_cast<int>(agents_.size()) == options_.expected_agents)
    start_initialization(now, out);
  return Status::ok();
}

void HubCore::start_initialization(double /*now*/, std::vector<Outgoing>& out) {
  // The model's width: --features, else the widest agent's; a narrower (LIBSVM) agent widens
  // its data to it when its Config comes, and its support is then in the model's columns.
  if (features_ == 0)
    for (const auto& [id, agent] : agents_) features_ = std::max(features_, agent.width);
  int narrower = 0;
  for (auto& [id, agent] : agents_) {
    agent.support = model_support(agent.support, agent.width, agent.bias, features_);
    if (agent.width < features_) ++narrower;
  }
  if (narrower > 0)
    notes_.push_back(cat("the model has ", features_, " features (",
                         options_.features != 0 ? "--features" : "the widest agent's", "); ",
                         narrower, " narrower agent", narrower > 1 ? "s read" : " reads",
                         " the missing features as zeros"));
  total_samples_ = 0;
  double lmax = 0.0;
  for (const auto& [id, agent] : agents_) {
    total_samples_ += static_cast<Index>(agent.samples);
    lmax = std::max(lmax, agent.lmax);
  }
  // Every agent steps with the same eta, from the global L_max (ALGORITHM.md section 2).
  // The proximal term adds mu to every local step's curvature.
  lmax += options_.objective.lambda + options_.prox;
  eta_ = options_.eta > 0 ? options_.eta : (lmax > 0 ? mode_->default_step(*this, lmax) : 1.0);
  const Index dim = features_ * options_.objective.classes;
  w_ = Eigen::VectorXd::Zero(dim);
  gbar_ = Eigen::VectorXd::Zero(dim);
  best_w_ = w_;
  phase_ = Phase::initializing;
  coarse_ = CoarseState{};
  choose_start_mode(*this);  // auto: two-level, or Newton-CG from the start
  for (auto& [id, agent] : agents_) {
    agent.table_sum = Eigen::VectorXd::Zero(dim);
    agent.initialized = false;
    agent.eigen = coarse::AgentBasis{};
    if (agent.connected) out.push_back(Outgoing{{agent.peer}, config_for(agent, true)});
  }
}

Status HubCore::on_init(AgentState& agent, const msg::InitUpload& init, double now,
                        std::vector<Outgoing>& out) {
  const auto fail = [&](msg::ErrorCode code, const std::string& why) {
    return reject(agent.peer, code, cat("InitUpload of agent '", agent.agent_id, "': ", why), out);
  };
  if (phase_ != Phase::initializing && phase_ != Phase::training)
    return fail(msg::ErrorCode::wrong_round, "no table is being built now");
  if (init.seq <= agent.last_seq) {  // already applied: acknowledge again, apply nothing
    out.push_back(Outgoing{{agent.peer}, msg::Ack{round_, init.seq}});
    return Status::ok();
  }
  if (init.samples != agent.samples)
    return fail(msg::ErrorCode::dimension_mismatch,
                cat(init.samples, " samples, it joined with ", agent.samples));
  const Index width = restricted(agent) ? static_cast<Index>(agent.support.size()) *
                                              options_.objective.classes
                                        : w_.size();
  if (static_cast<Index>(init.table_sum.size()) != width)
    return fail(msg::ErrorCode::dimension_mismatch,
                cat("table_sum has ", init.table_sum.size(), " entries, expected ", width,
                    restricted(agent) ? " (restricted to its support)" : ""));
  if (!std::isfinite(init.loss_sum))
    return fail(msg::ErrorCode::invalid_value, "loss_sum is not finite");
  if (const Status s = mode_->take_init(*this, agent, init); !s)
    return fail(msg::ErrorCode::dimension_mismatch, s.message());

  Eigen::VectorXd fresh(w_.size());
  if (restricted(agent))
    support::scatter(init.table_sum.data(), agent.support, options_.objective.classes, 0.0, fresh);
  else
    fresh = view(init.table_sum);
  if (phase_ == Phase::training) {
    // A rebuilt table replaces the old one in gbar exactly once: gbar += (S_new - S_old) / N.
    // An update of the open round from the old table is void: S_new supersedes its dS.
    gbar_ += (fresh - agent.table_sum) / static_cast<double>(total_samples_);
    pending_.erase(agent.agent_id);
    commit_ = true;
  }
  agent.table_sum = fresh;
  agent.initialized = true;
  agent.init_loss = init.loss_sum;
  agent.last_seq = init.seq;
  out.push_back(Outgoing{{agent.peer}, msg::Ack{round_, init.seq}});

  if (phase_ == Phase::training) {
    mode_->resume_agent(*this, agent, out);
    return Status::ok();
  }
  const bool all = std::all_of(agents_.begin(), agents_.end(),
                               [](const auto& kv) { return kv.second.initialized; });
  if (!all) return Status::ok();

  // Init round complete: gbar = (1/N) sum_k S_k, summed in agent-id order.
  gbar_.setZero();
  double loss = 0.0;
  for (const auto& [id, a] : agents_) {
    gbar_ += a.table_sum;
    loss += a.init_loss;
  }
  gbar_ /= static_cast<double>(total_samples_);
  RoundReport report;
  report.round = 0;
  report.agents = agents();
  report.participants = agents();
  record_objective(report, loss, w_);  // round_ is 0 here
  report.invariant_error = check_invariant();
  reports_.push_back(report);
  phase_ = Phase::training;
  mode_->start_training(*this, now, out);
  return Status::ok();
}

Status HubCore::on_update(AgentState& agent, const msg::Update& update, double now,
                          std::vector<Outgoing>& out) {
  const auto fail = [&](msg::ErrorCode code, const std::string& why) {
    return reject(agent.peer, code,
                  cat("Update of agent '", agent.agent_id, "' for round ", update.round, ": ", why),
                  out);
  };
  // (a) Where the update stands in the agent's sequence: applied already, held, a replay, or
  // new. last_seq counts *applied* updates only. An update held for the open round is not in it
  // (nor in a checkpoint saved mid-round, which does not hold pending_): a hub resumed from such
  // a checkpoint takes the agent's resend as new instead of acknowledging an update it never
  // applied, which would lose its dS and leave the round waiting for it forever.
  if (phase_ != Phase::training && phase_ != Phase::finished)
    return fail(msg::ErrorCode::wrong_round, "training has not started");
  if (update.seq <= agent.last_seq) {  // applied already: acknowledge again, apply nothing
    out.push_back(Outgoing{{agent.peer}, msg::Ack{update.round, update.seq}});
    return Status::ok();
  }
  if (const auto held = pending_.find(agent.agent_id);
      held != pending_.end() && held->second.seq == update.seq)
    return Status::ok();  // a retry of the held update: acknowledged when the round closes
  if (update.round == round_ && pending_.count(agent.agent_id) != 0)  // (synchronous modes)
    return fail(msg::ErrorCode::replay, "a second update for the same round");
  if (!agent.initialized)
    return fail(msg::ErrorCode::wrong_round, "its table is being rebuilt");
  // (b) A seq gap: an update of this agent was lost, and its table is rebuilt.
  if (update.seq != agent.last_seq + 1) return rebuild_after_lost_update(agent, update, out);
  // (c) The payload's checks, which change nothing.
  std::optional<msg::Update> widened;
  if (const auto refusal = check_update_payload(agent, update, widened))
    return fail(refusal->code, refusal->why);
  const msg::Update& whole = widened ? *widened : update;

  // (d) Accepted. S_k and gbar take dS together, so the invariant holds between any two
  // messages: when the round closes (in agent-id order, so the result does not depend on
  // arrival order), or now for a late update whose round has closed. The Ack goes out only once
  // the update is applied (and, with checkpoints, saved): until then the agent keeps it and
  // sends it again to a restarted hub, so a crash between receipt and commit loses nothing.
  if (phase_ == Phase::finished) {
    apply_late(agent, whole, out);
    return Status::ok();
  }
  return mode_->take_update(*this, agent, whole, now, out);
}

Status HubCore::rebuild_after_lost_update(AgentState& agent, const msg::Update& update,
                                          std::vector<Outgoing>& out) {
  // A message of this agent never arrived (a connection dropped with it queued): the hub's S_k
  // no longer matches the agent's table. Nothing of this update is applied; the agent rebuilds
  // its table at the current w and its InitUpload replaces S_k wholesale, so the invariant holds
  // again without ever counting a delta twice.
  const std::string why = cat("Update of agent '", agent.agent_id, "' has seq ", update.seq,
                              ", expected ", agent.last_seq + 1,
                              ": an update was lost; rebuilding its table");
  agent.last_seq = update.seq;
  agent.initialized = false;
  agent.holds_round = 0;  // it is sent a Config: the next broadcast is whole
  pending_.erase(agent.agent_id);
  out.push_back(Outgoing{{agent.peer}, config_for(agent, true)});
  return Status::error(why);
}

std::optional<Refusal> HubCore::check_update_payload(const AgentState& agent,
                                                     const msg::Update& update,
                                                     std::optional<msg::Update>& widened) const {
  // A Newton answer to a hub whose rounds are local runs (plain, two-level, async) has no step.
  if (!update.product.empty() && mode_->round_kind(*this) == msg::RoundKind::run)
    return Refusal{msg::ErrorCode::wrong_round,
                   cat("it carries a Newton-CG `product`, and round ", round_, " is a ",
                       to_string(active_), " round")};
  if (auto refusal = mode_->check_update(*this, agent, update)) return refusal;
  if (update.samples != agent.samples)
    return Refusal{msg::ErrorCode::dimension_mismatch,
                   cat(update.samples, " samples, it joined with ", agent.samples)};
  const bool narrow = restricted(agent);
  const Index width =
      narrow ? static_cast<Index>(agent.support.size()) * options_.objective.classes : w_.size();
  // A Newton-CG answer (newton.hpp) carries `product` (and the Gram, the Hessian or its diagonal
  // when asked) instead of dw and dS.
  const bool newton = !update.product.empty();
  const std::size_t gram_columns =
      agent.support.empty() ? static_cast<std::size_t>(features_) : agent.support.size();
  // The Hessian and its diagonal are on the Gram's columns (the support the agent declared, else
  // every one) times the classes, whether or not its vectors travel restricted.
  const std::size_t diagonal_size =
      gram_columns * static_cast<std::size_t>(options_.objective.classes);
  const std::size_t hessian_size = coarse::blocks_size(
      gram_columns, options_.objective.classes, options_.objective.loss == Loss::multinomial);
  if (newton && (!update.dw.empty() || !update.dS.empty() || !update.coarse_g.empty() ||
                 !update.coarse_h.empty() || static_cast<Index>(update.product.size()) != width ||
                 (!update.gram.empty() &&
                  update.gram.size() != coarse::packed_size(gram_columns)) ||
                 (!update.hessian.empty() && update.hessian.size() != hessian_size) ||
                 (!update.diagonal.empty() && update.diagonal.size() != diagonal_size)))
    return Refusal{
        msg::ErrorCode::dimension_mismatch,
        cat("a Newton answer with product, dw, dS, coarse_g, coarse_h, gram, hessian and "
            "diagonal of ",
            update.product.size(), ", ", update.dw.size(), ", ", update.dS.size(), ", ",
            update.coarse_g.size(), ", ", update.coarse_h.size(), ", ", update.gram.size(), ", ",
            update.hessian.size(), " and ", update.diagonal.size(), " entries; expected ", width,
            ", 0, 0, 0, 0, 0 or ", coarse::packed_size(gram_columns), ", 0 or ", hessian_size,
            " and 0 or ", diagonal_size, narrow ? " (restricted to its support)" : "")};
  if (!newton && (static_cast<Index>(update.dw.size()) != width ||
                  static_cast<Index>(update.dS.size()) != width || !update.gram.empty() ||
                  !update.hessian.empty() || !update.diagonal.empty()))
    return Refusal{
        msg::ErrorCode::dimension_mismatch,
        cat("dw has ", update.dw.size(), " and dS ", update.dS.size(), " entries, expected ",
            width, narrow ? " (restricted to its support)" : "",
            update.gram.empty() && update.hessian.empty() && update.diagonal.empty()
                ? ""
                : "; a Gram, a Hessian or its diagonal comes only with a Newton gradient")};
  if (!std::isfinite(update.loss_sum))
    return Refusal{msg::ErrorCode::invalid_value, "loss_sum is not finite"};
  if (const Status s = check_counts(update.validation, "validation: "); !s)
    return Refusal{msg::ErrorCode::invalid_value, s.message()};
  // The modes see whole vectors, and the bound applies to them: a restricted agent's update is
  // widened here (its dw off the support comes from the round's broadcast), once its shape is
  // known to be right.
  if (narrow && newton) {
    widened = update;
    Eigen::VectorXd full(w_.size());
    support::scatter(update.product.data(), agent.support, options_.objective.classes, 0.0, full);
    widened->product = to_std(full);
  } else if (narrow) {
    widened = whole_update(agent, update);
  }
  const msg::Update& whole = widened ? *widened : update;
  if (options_.max_update_norm > 0) {
    const double dw_norm = view(whole.dw).norm();
    const double ds_norm = view(whole.dS).norm() / static_cast<double>(agent.samples);
    if (dw_norm > options_.max_update_norm || ds_norm > options_.max_update_norm)
      return Refusal{msg::ErrorCode::invalid_value,
                     cat("||dw|| = ", dw_norm, ", ||dS||/n_k = ", ds_norm, ", over the bound ",
                         options_.max_update_norm)};
  }
  return std::nullopt;
}

void HubCore::apply_late(AgentState& agent, const msg::Update& update,
                         std::vector<Outgoing>& out) {
  agent.last_seq = update.seq;
  if (!update.dS.empty()) {  // (a Newton answer leaves the tables alone)
    agent.table_sum += view(update.dS);
    gbar_ += view(update.dS) / static_cast<double>(total_samples_);
  }
  ++late_updates_;
  out.push_back(Outgoing{{agent.peer}, msg::Ack{update.round, update.seq}});
  commit_ = true;
}

void HubCore::record_objective(RoundReport& report, double loss_sum, const Eigen::VectorXd& w) {
  report.objective = combine_objective(loss_sum, total_samples_, options_.objective.lambda, w);
  if (std::isfinite(options_.f_star) && options_.f_star != 0)
    report.suboptimality = (report.objective - options_.f_star) / std::abs(options_.f_star);
  best_w_ = w;
  best_objective_ = report.objective;
  best_round_ = round_;
}

bool HubCore::finish_if_done(const RoundReport& report, bool evaluated,
                             std::vector<Outgoing>& out) {
  // F below F* by more than rounding: the F* given is not this problem's optimum, and a target
  // measured from it would stop training at a meaningless point.
  if (std::isfinite(report.suboptimality) && report.suboptimality < -1e-9) {
    finish(Outcome::below_f_star,
           cat("F = ", report.objective, " at round ", round_, " is below the given F* = ",
               options_.f_star, ": that is not this problem's optimum (check --f-star against "
               "--lambda, the loss and the agents' data options)"),
           out);
  } else if (std::isfinite(report.suboptimality) && report.suboptimality <= options_.target) {
    finish(Outcome::target_reached,
           cat("target relative suboptimality ", options_.target, " reached at round ", round_),
           out);
  } else if (round_ >= options_.max_rounds) {
    finish(Outcome::round_cap, cat("round cap ", options_.max_rounds, " reached"), out);
  } else if (evaluated && !std::isfinite(report.objective)) {
    finish(Outcome::diverged,
           "the objective is not finite: training diverged (try a smaller eta or server_step)",
           out);
  } else {
    return false;
  }
  return true;
}

void HubCore::finish(Outcome outcome, const std::string& reason, std::vector<Outgoing>& out) {
  commit_ = true;
  phase_ = Phase::finished;
  outcome_ = outcome;
  finish_reason_ = reason;
  out.push_back(Outgoing{connected_peers(), msg::Leave{reason}});
}

void HubCore::stop(const std::string& reason, std::vector<Outgoing>& out) {
  if (phase_ != Phase::finished) finish(Outcome::stopped, reason, out);
}

Result<std::string> HubCore::retire(const std::string& agent_id) {
  const auto it = agents_.find(agent_id);
  if (it == agents_.end())
    return Result<std::string>::failure(cat("no agent '", agent_id, "' is known to this hub"));
  if (phase_ == Phase::admitting)
    return Result<std::string>::failure("training has not started: nothing to retire");
  if (agents_.size() == 1)
    return Result<std::string>::failure(cat("'", agent_id, "' is the last agent"));
  const Index before = total_samples_;
  const std::uint64_t n_k = it->second.samples;
  agent_of_peer_.erase(it->second.peer);
  pending_.erase(agent_id);
  eval_reported_.erase(agent_id);
  agents_.erase(it);
  total_samples_ -= static_cast<Index>(n_k);
  gbar_.setZero();
  for (const auto& [id, a] : agents_) gbar_ += a.table_sum;
  gbar_ /= static_cast<double>(total_samples_);
  // Newton-CG's factors, kept off the checkpoint, are of the old N: built again from the
  // checkpointed sums on demand, as a restored hub builds them.
  newton_.factor = newton::GramPreconditioner{};
  newton_.model = newton::HessianModel{};
  // The remaining agents must step with the new N (gbar's scale): their Config changes, so
  // they rebuild their solver; a fresh table at the current w keeps everything consistent.
  for (auto& [id, a] : agents_) a.initialized = false;
  options_.expected_agents = static_cast<int>(agents_.size());
  best_objective_ = std::numeric_limits<double>::quiet_NaN();
  commit_ = true;
  return cat("retired agent '", agent_id, "' (", n_k, " samples): N goes from ", before, " to ",
             total_samples_, "; the objective is now the mean loss over the remaining samples, "
             "so F and F* change (compute a new F* for relative suboptimality); the other agents "
             "rebuild their tables when they next join");
}

void HubCore::on_tick(double now, std::vector<Outgoing>& out) {
  if (round_started_ < 0) round_started_ = now;
  if (phase_ == Phase::admitting) {
    const int have = agents();
    if (options_.min_agents > 0 && options_.admission_timeout > 0 && admission_started_ >= 0 &&
        now - admission_started_ >= options_.admission_timeout && have >= options_.min_agents)
      start_initialization(now, out);
    return;
  }
  if (phase_ == Phase::training) mode_->on_tick(*this, now, out);
}

void HubCore::on_disconnect(const PeerId& peer, double now, std::vector<Outgoing>& out) {
  if (AgentState* agent = agent_for_peer(peer)) {
    agent->connected = false;
    agent->holds_round = 0;  // what was queued to it may be lost
  }
  if (phase_ == Phase::training) mode_->on_agent_lost(*this, now, out);
}

int HubCore::connected_agents() const {
  int n = 0;
  for (const auto& [id, agent] : agents_) n += agent.connected ? 1 : 0;
  return n;
}

double HubCore::check_invariant() const {
  if (total_samples_ == 0 || gbar_.size() == 0) return 0.0;
  Eigen::VectorXd sum = Eigen::VectorXd::Zero(gbar_.size());
  for (const auto& [id, agent] : agents_)
    if (agent.table_sum.size() == sum.size()) sum += agent.table_sum;
  sum /= static_cast<double>(total_samples_);
  const double scale = std::max(1.0, gbar_.lpNorm<Eigen::Infinity>());
  return (gbar_ - sum).lpNorm<Eigen::Infinity>() / scale;
}

std::vector<RoundReport> HubCore::take_reports() {
  std::vector<RoundReport> reports;
  reports.swap(reports_);
  return reports;
}

}  // namespace dsaga
