// The agent's state machine (agent.hpp; ALGORITHM.md section 3, steps 2-3).
#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>
#include <utility>

#include "dsaga/agent.hpp"
#include "dsaga/support.hpp"
#include "dsaga/version.hpp"
#include "strings.hpp"

namespace dsaga {

namespace {

// Far more local steps than any round needs; a bound so a corrupt Config cannot pin the device.
constexpr std::uint64_t kMaxSteps = std::uint64_t(1) << 40;

bool all_finite(const Eigen::VectorXd& v) { return v.allFinite(); }

// The message's `T` alternative: the one it holds (storage kept), or a fresh one.
template <class T>
T& slot(msg::Message& m) {
  if (T* held = std::get_if<T>(&m)) return *held;
  return m.emplace<T>();
}

void assign(const Eigen::VectorXd& v, std::vector<double>& out) {
  out.assign(v.data(), v.data() + v.size());  // reuses out's capacity
}

}  // namespace

void Outbox::push_back(const msg::Message& message) {
  // Variant copy-assignment of the same alternative assigns the members: vectors keep capacity.
  if (size_ < items_.size()) {
    items_[size_] = message;
  } else {
    items_.push_back(message);
  }
  ++size_;
}

void Outbox::push_back(msg::Message&& message) {
  if (size_ < items_.size()) {
    items_[size_] = std::move(message);
  } else {
    items_.push_back(std::move(message));
  }
  ++size_;
}

AgentCore::AgentCore(const Dataset& data, const Objective& objective, AgentOptions options)
    : data_(data), objective_(objective), options_(std::move(options)) {
  Objective no_lambda = objective_;
  no_lambda.lambda = 0.0;
  lmax_ = max_smoothness(data_, no_lambda);
  find_support();
}

void AgentCore::find_support() {
  support_ = coarse::support_of(data_);
  if (options_.validation != nullptr && data_.is_sparse()) {
    // The validation rows read w on their columns too: the hub must send those exactly.
    const std::vector<std::uint32_t> more = coarse::support_of(*options_.validation);
    std::vector<std::uint32_t> both;
    std::set_union(support_.begin(), support_.end(), more.begin(), more.end(),
                   std::back_inserter(both));
    support_ = std::move(both);
  }
}

msg::Join AgentCore::join() const {
  msg::Join join;
  join.agent_id = options_.agent_id;
  join.samples = static_cast<std::uint64_t>(data_.rows());
  join.features = static_cast<std::uint32_t>(data_.cols());
  join.classes = static_cast<std::uint32_t>(objective_.classes);
  join.loss = objective_.loss;
  join.lmax = lmax_;
  join.software_version = DSAGA_VERSION;
  join.incarnation = options_.incarnation;
  // Dense data touches every column: the empty list says so in no bytes.
  if (static_cast<Index>(support_.size()) != data_.cols()) join.support = support_;
  join.zero_padded = static_cast<bool>(options_.widen);
  join.bias = options_.bias;
  return join;
}

Status AgentCore::on_message(const msg::Message& message, std::vector<msg::Message>& out) {
  scratch_.clear();
  const Status status = on_message(message, scratch_);
  out.insert(out.end(), scratch_.begin(), scratch_.end());
  return status;
}

Status AgentCore::on_message(const msg::Message& message, Outbox& out) {
  if (const auto* config = std::get_if<msg::Config>(&message)) return on_config(*config, out);
  if (const auto* start = std::get_if<msg::RoundStart>(&message)) return on_round(*start, out);
  if (const auto* ack = std::get_if<msg::Ack>(&message)) {
    if (has_pending_) {
      const std::uint64_t seq = std::visit(
          [](const auto& m) -> std::uint64_t {
            using T = std::decay_t<decltype(m)>;
            if constexpr (std::is_same_v<T, msg::InitUpload> || std::is_same_v<T, msg::Update>)
              return m.seq;
            else
              return 0;
          },
          pending_);
      if (ack->seq >= seq) has_pending_ = false;
    }
    return Status::ok();
  }
  if (const auto* leave = std::get_if<msg::Leave>(&message)) {
    finished_ = true;
    finish_reason_ = leave->reason;
    return Status::ok();
  }
  if (const auto* error = std::get_if<msg::Error>(&message)) {
    if (error->code == msg::ErrorCode::not_admitted) {
      // The hub does not know this connection (it restarted, or we reconnected): join again,
      // and send again what it has not acknowledged (a hub resumed from a checkpoint needs it).
      out.push_back(join());
      if (has_pending_) out.push_back(pending_);
      return Status::error(cat("hub: ", error->text, "; joining again"));
    }
    if (error->code == msg::ErrorCode::refused ||
        error->code == msg::ErrorCode::unsupported_version ||
        (error->code == msg::ErrorCode::dimension_mismatch && !config_)) {
      finished_ = true;
      failed_ = true;
      finish_reason_ = cat("the hub refused this agent: ", error->text);
      return Status::error(finish_reason_);
    }
    return Status::error(cat("hub reported: ", error->text));
  }
  if (std::holds_alternative<msg::Heartbeat>(message)) return Status::ok();
  return Status::error(cat("the hub does not send ", msg::name_of(message)));
}

Index AgentCore::width_for(const msg::Config& config) const {
  const Index model = static_cast<Index>(config.features);
  return options_.widen && model > data_.cols() && model <= kMaxColumns ? model : data_.cols();
}

// The checks of a Config against this agent's data and the bounds, before anything changes.
Status AgentCore::check_config(const msg::Config& config) const {
  // A LIBSVM agent narrower than the model widens to it (after these checks): its support keeps
  // its size (the new columns are zeros; the bias column moves last).
  const Index d = width_for(config);
  const auto bad = [&](const std::string& why) {
    return Status::error(cat("Config from the hub rejected: ", why));
  };
  if (config.loss != objective_.loss)
    return bad(cat("loss ", to_string(config.loss), ", this agent's data is for ",
                   to_string(objective_.loss)));
  if (static_cast<int>(config.classes) != objective_.classes)
    return bad(cat(config.classes, " classes, this agent has ", objective_.classes));
  if (static_cast<Index>(config.features) != d)
    return bad(cat(config.features, " features, this agent's data has ", d,
                   options_.widen ? "" : " (only LIBSVM data, whose missing features are zeros, "
                                         "may be narrower than the model)"));
  if (config.total_samples < static_cast<std::uint64_t>(data_.rows()))
    return bad(
        cat("N = ", config.total_samples, " is less than this agent's ", data_.rows(), " samples"));
  if (!(config.eta > 0) || !std::isfinite(config.eta)) return bad(cat("eta = ", config.eta));
  if (!(config.lambda >= 0) || !std::isfinite(config.lambda))
    return bad(cat("lambda = ", config.lambda));
  // Two-level rounds over the whole space (U = I) take no local steps.
  if ((config.steps == 0 && !(config.two_level && config.basis_identity)) ||
      config.steps > kMaxSteps)
    return bad(cat("steps = ", config.steps));
  if (config.two_level && config.algorithm != msg::Algorithm::dsaga)
    return bad("two-level rounds are for dsaga only");
  if (config.basis_rank > 4096) return bad(cat("basis_rank = ", config.basis_rank));
  // The coarse Hessian is (m C)^2 doubles: a basis past the bound is refused, not allocated.
  const Index coarse_dim =
      (config.basis_identity ? d : static_cast<Index>(config.basis_dim)) * objective_.classes;
  if (config.basis_id != 0 && coarse_dim > coarse::kMaxCoarseDim)
    return bad(cat("a coarse space of ", coarse_dim, " dimensions (the most is ",
                   coarse::kMaxCoarseDim, ")"));
  // (A basis in q8 whose runs this agent derives has its values in basis_q8 alone.)
  const std::size_t basis_values =
      config.basis_q8.implied_runs ? config.basis_q8.size() : config.basis.size();
  if (config.basis_q8.implied_runs && (!config.restricted || config.basis_id == 0 ||
                                       config.basis_identity))
    return bad("the basis leaves its runs to the support, but the vectors are not restricted "
               "or there is no basis");
  if (config.basis_id != 0 && !config.basis_identity &&
      (config.basis_dim == 0 || static_cast<Index>(config.basis_dim) > d ||
       basis_values != support_.size() * config.basis_dim))
    return bad(cat("the basis has ", basis_values, " values for ", config.basis_dim,
                   " columns on a support of ", support_.size()));
  if (!(config.prox >= 0) || !std::isfinite(config.prox)) return bad(cat("prox = ", config.prox));
  if (!(config.refresh >= 0 && config.refresh <= 1)) return bad(cat("refresh = ", config.refresh));
  const Index wire = (config.restricted ? static_cast<Index>(support_.size()) : d) *
                     objective_.classes;
  if (static_cast<Index>(config.w.size()) != wire)
    return bad(cat("w has ", config.w.size(), " entries, expected ", wire,
                   config.restricted ? " (restricted to this agent's support)" : ""));
  if (config.algorithm != msg::Algorithm::dsaga && config.algorithm != msg::Algorithm::fedavg &&
      config.algorithm != msg::Algorithm::scaffold && config.algorithm != msg::Algorithm::gd)
    return bad(cat("unknown algorithm ", static_cast<int>(config.algorithm)));
  return Status::ok();
}

Status AgentCore::on_config(const msg::Config& config, Outbox& out) {
  if (const Status s = check_config(config); !s) return s;
  if (width_for(config) > data_.cols()) {
    options_.widen(width_for(config));
    find_support();
    method_.reset();  // a solver of the narrower data has nothing to keep
  }
  // The runs of restricted q8 vectors, which the hub leaves to this agent (compress.hpp,
  // Packed.runs_implied): the broadcast changes', and the basis's, checked before it is taken.
  if (config.restricted) compress::gather_runs(support_, objective_.classes, support_runs_);
  else support_runs_.clear();
  if (config.basis_q8.implied_runs) {
    compress::gather_rows_runs(static_cast<std::size_t>(data_.cols()), config.basis_dim, support_,
                               basis_runs_);
    if (const std::string_view why = compress::check(config.basis_q8, basis_runs_); !why.empty())
      return Status::error(cat("Config from the hub rejected: the basis's q8 on this agent's "
                               "support: ", why));
  }
  held_round_ = 0;  // the hub sends the next broadcast whole
  const Index d = data_.cols();
  const Index wire = (config.restricted ? static_cast<Index>(support_.size()) : d) *
                     objective_.classes;

  const bool same_solver =
      method_ && config_ && config_->algorithm == config.algorithm && config_->eta == config.eta &&
      config_->total_samples == config.total_samples && config_->seed == config.seed &&
      config_->lambda == config.lambda && config_->prox == config.prox &&
      config_->refresh == config.refresh && config_->two_level == config.two_level;
  config_ = config;
  objective_.lambda = config.lambda;
  if (!same_solver) {
    // The only allocation of the method's state: once per (algorithm, N, eta, seed, lambda).
    method_.reset();
    method_ = make_local_method(
        data_, objective_,
        LocalMethodOptions{config.algorithm, config.eta, static_cast<Index>(config.total_samples),
                           config.seed, config.prox, config.refresh, config.two_level});
    step_ = config.eta;
    basis_id_ = 0;  // a new method: the coarse space is taken again below
    floor_ = false;
    const Index dim = d * objective_.classes;
    w_round_.resize(dim);
    eval_w_.resize(dim);
    gbar_round_.resize(dim);
    dw_.resize(dim);
    ds_.resize(dim);
    table_sum_.resize(dim);
  }
  if (residual_dw_.size() != static_cast<std::size_t>(wire)) {
    residual_dw_.assign(wire, 0.0);
    residual_ds_.assign(wire, 0.0);
  }
  if (const Status s = take_basis(config); !s) return s;
  if (config.build_table || !same_solver) {
    // A new table (possibly for a restarted hub whose rounds count from 1 again): any round
    // may come next.
    answered_round_.reset();
    return build_table(out);
  }
  return Status::ok();
}

Index AgentCore::wire_width() const {
  return (config_ && config_->restricted ? static_cast<Index>(support_.size()) : data_.cols()) *
         objective_.classes;
}

void AgentCore::to_wire(const Eigen::VectorXd& v, std::vector<double>& out) const {
  if (config_ && config_->restricted)
    support::gather(v, support_, objective_.classes, out);  // reuses out's capacity
  else
    assign(v, out);
}

void AgentCore::from_wire(const std::vector<double>& in, Eigen::VectorXd& full) const {
  if (config_ && config_->restricted)
    support::scatter(in.data(), support_, objective_.classes, 0.0, full);
  else
    full = Eigen::Map<const Eigen::VectorXd>(in.data(), full.size());  // sized: no allocation
}

Status AgentCore::take_basis(const msg::Config& config) {
  if (!config.two_level || config.basis_id == 0 || config.basis_id == basis_id_)
    return Status::ok();
  Eigen::MatrixXd u;
  if (config.basis_q8.implied_runs) {  // on_config checked them against basis_runs_
    u.setZero(static_cast<Index>(support_.size()), config.basis_dim);
    compress::add(config.basis_q8, basis_runs_, u.data());
  } else if (!config.basis_identity) {
    u = Eigen::Map<const Eigen::MatrixXd>(config.basis.data(),
                                          static_cast<Index>(support_.size()), config.basis_dim);
  }
  space_.set(data_, support_, u, config.basis_identity);
  basis_id_ = config.basis_id;
  // q8's floor on this agent's deltas where they are most of a round's bytes (coarse.hpp): the
  // four vectors of a round on the wire's width against the coarse payload.
  const Index wire = (config.restricted ? static_cast<Index>(support_.size()) : data_.cols()) *
                     objective_.classes;
  floor_ = !config.basis_identity &&
           coarse::deltas_floored(4.0 * static_cast<double>(wire), config.basis_dim,
                                  objective_.classes, objective_.loss == Loss::multinomial);
  return Status::ok();
}

Status AgentCore::build_table(Outbox& out) {
  from_wire(config_->w, w_round_);
  const double loss = method_->init(w_round_, table_sum_);
  msg::InitUpload& init = slot<msg::InitUpload>(pending_);
  init.loss_sum = loss;
  init.seq = ++seq_;
  init.samples = static_cast<std::uint64_t>(data_.rows());
  to_wire(table_sum_, init.table_sum);
  // The hub takes S_k as sent: rounded to the encoding like a dS, its rounding becomes what is
  // owed on S_k and goes out with the first dS (error feedback from a zero residual). Nothing
  // is owed on w.
  std::fill(residual_dw_.begin(), residual_dw_.end(), 0.0);
  std::fill(residual_ds_.begin(), residual_ds_.end(), 0.0);
  init.encoding = config_->encoding;
  compress::round_with_feedback(init.encoding, init.table_sum.data(), residual_ds_.data(),
                                init.table_sum.size());
  init.eigenvalues.clear();
  init.eigenvectors.clear();
  init.eigenvectors_q8.q.clear();
  init.eigen_next = 0.0;
  if (config_->two_level && config_->basis_rank > 0) {
    // Two-level setup: the top eigenpairs of this agent's Gram, on its support (coarse.hpp).
    const coarse::Eigenpairs pairs = coarse::top_gram_eigenpairs(
        data_, support_, static_cast<int>(config_->basis_rank), config_->seed);
    assign(pairs.values, init.eigenvalues);
    init.eigen_next = pairs.next;
    init.eigenvectors.assign(pairs.vectors.data(), pairs.vectors.data() + pairs.vectors.size());
    // They only shape the coarse space: q8 or floats, as the hub chose.
    if (config_->curvature == msg::Encoding::q8)
      compress::round_to_q8(init.eigenvectors.data(), init.eigenvectors.size(),
                            &init.eigenvectors_q8);
    else if (config_->curvature != msg::Encoding::f64)
      compress::round_to_float(init.eigenvectors.data(), init.eigenvectors.size());
  }
  has_pending_ = true;
  out.push_back(pending_);
  return Status::ok();
}

Status AgentCore::on_round(const msg::RoundStart& start, Outbox& out) {
  if (!method_) return Status::error("RoundStart before any Config: ignored");
  if (answered_round_ && start.round <= *answered_round_)
    return Status::ok();  // a repeat of a round already answered (after a reconnect)
  if (start.kind != msg::RoundKind::run) return on_newton_round(start, out);
  const Index dim = w_round_.size();
  if (!start.eval_w.empty() && (config_->restricted || static_cast<Index>(start.eval_w.size()) != dim))
    return Status::error(cat("RoundStart ", start.round, " rejected: eval_w has ",
                             start.eval_w.size(), " entries, expected ", config_->restricted ? 0 : dim));
  if (!(start.eta >= 0) || !std::isfinite(start.eta))
    return Status::error(cat("RoundStart ", start.round, " rejected: eta = ", start.eta));
  if (const Status s = take_broadcast(start, out); !s) return s;
  const double step = start.eta > 0 ? start.eta : config_->eta;
  if (step != step_) {
    method_->set_step(step);
    step_ = step;
  }

  // F(w_r) is assembled by the hub from every agent's loss at the broadcast w, or at the
  // common evaluation point an asynchronous hub names (each agent then starts elsewhere). A
  // two-level round sums it in its own refresh pass.
  if (!start.eval_w.empty())
    eval_w_ = Eigen::Map<const Eigen::VectorXd>(start.eval_w.data(), dim);  // sized: no allocation
  const std::uint64_t steps = method_->round(w_round_, gbar_round_, config_->steps, dw_, ds_);
  double loss = start.eval_w.empty() ? method_->round_loss()
                                     : std::numeric_limits<double>::quiet_NaN();
  if (std::isnan(loss))
    loss = loss_sum(data_, objective_, start.eval_w.empty() ? w_round_ : eval_w_);
  answered_round_ = start.round;
  ++rounds_done_;
  if (!all_finite(dw_) || !all_finite(ds_) || !std::isfinite(loss)) {
    // A still unacknowledged earlier message stays pending.
    out.push_back(msg::Error{msg::ErrorCode::invalid_value,
                             cat("local iterate is not finite after round ", start.round)});
    return Status::error(cat("round ", start.round, ": the local iterate is not finite"));
  }
  // Built in place in pending_ (the previous round's Update, acknowledged or superseded), so
  // dw and dS are assigned into vectors of the right capacity: no allocation.
  msg::Update& update = slot<msg::Update>(pending_);
  update.round = start.round;
  update.seq = ++seq_;
  update.samples = static_cast<std::uint64_t>(data_.rows());
  update.steps = steps;
  update.loss_sum = loss;
  to_wire(dw_, update.dw);
  to_wire(ds_, update.dS);
  // Rounded to the hub's encoding with error feedback: exactly what the hub will account.
  update.encoding = config_->encoding;
  compress::round_with_feedback(update.encoding, update.dw.data(), residual_dw_.data(),
                                update.dw.size(), floor_);
  compress::round_with_feedback(update.encoding, update.dS.data(), residual_ds_.data(),
                                update.dS.size(), floor_);
  if (method_->coarse(space_, coarse_g_, coarse_h_)) {
    assign(coarse_g_, update.coarse_g);
    assign(coarse_h_, update.coarse_h);
    // The coarse Hessian only preconditions the coarse step (the gradient stays f64).
    if (update.encoding != msg::Encoding::f64)
      compress::round_to_float(update.coarse_h.data(), update.coarse_h.size());
  } else {
    update.coarse_g.clear();
    update.coarse_h.clear();
  }
  // (The slot may hold a Newton round's answer: a hub started afresh in another mode.)
  update.product.clear();
  update.gram.clear();
  update.hessian.clear();
  update.diagonal.clear();
  // Held-out counts at the point of loss_sum (agent.hpp: AgentOptions::validation). Only an
  // asynchronous hub names evaluation points; once one has, the other points are not common to
  // the agents and their counts would be dropped.
  const bool eval_point = !start.eval_w.empty();
  if (eval_point) ++eval_requests_;
  const std::uint64_t every = std::max<std::uint64_t>(1, options_.eval_every);
  const bool evaluate =
      options_.validation != nullptr &&
      (eval_requests_ > 0 ? eval_point && (eval_requests_ - 1) % every == 0
                          : start.round % every == 0);
  if (evaluate)
    count_validation(*options_.validation, objective_, eval_point ? eval_w_ : w_round_,
                     update.validation);
  else
    update.validation.clear();
  has_pending_ = true;
  out.push_back(pending_);
  return Status::ok();
}

Status AgentCore::take_broadcast(const msg::RoundStart& start, Outbox& out) {
  const Index wire = wire_width();
  if (start.base == 0 && !start.from_zero) {
    if (static_cast<Index>(start.w.size()) != wire || static_cast<Index>(start.gbar.size()) != wire)
      return Status::error(cat("RoundStart ", start.round, " rejected: w has ", start.w.size(),
                               " and gbar ", start.gbar.size(), " entries, expected ", wire));
    // Restricted: what the run does off the support is the hub's to compute (support.hpp);
    // zeros there keep this agent's part of it inert.
    from_wire(start.w, w_round_);
    from_wire(start.gbar, gbar_round_);
    held_round_ = start.round;
    return Status::ok();
  }
  if (static_cast<Index>(start.w_delta.size()) != wire ||
      static_cast<Index>(start.gbar_delta.size()) != wire)
    return Status::error(cat("RoundStart ", start.round, " rejected: its changes have ",
                             start.w_delta.size(), " and ", start.gbar_delta.size(),
                             " entries, expected ", wire));
  // Restricted changes leave their runs to this agent's support (Packed.runs_implied).
  for (const compress::Q8* x : {&start.w_delta, &start.gbar_delta}) {
    if (!x->implied_runs) continue;
    const std::string_view why =
        config_->restricted ? compress::check(*x, support_runs_)
                            : std::string_view("the vectors are not restricted");
    if (!why.empty())
      return Status::error(cat("RoundStart ", start.round, " rejected: its changes leave their "
                               "runs to this agent's support, and ", why));
  }
  if (start.from_zero) {
    // The first compressed round: changes on zeros, whatever this agent held.
    w_round_.setZero();
    gbar_round_.setZero();
  } else if (start.base != held_round_) {
    const std::string why =
        cat("RoundStart ", start.round, " holds changes on round ", start.base,
            "'s broadcast and this agent holds ",
            held_round_ == 0 ? std::string("none") : cat("round ", held_round_, "'s"));
    held_round_ = 0;
    out.push_back(msg::Error{msg::ErrorCode::stale_broadcast, why});
    return Status::error(why + ": asked the hub for the vectors");
  }
  // The hub adds the same changes to the same doubles (hub.cpp: advance_broadcast): both sides
  // hold the same broadcast, bit for bit.
  const int C = objective_.classes;
  const auto add = [&](const compress::Q8& x, Eigen::VectorXd& full) {
    if (!config_->restricted) return compress::add(x, full.data());
    change_.assign(x.size(), 0.0);
    compress::add(x, x.implied_runs ? support_runs_ : x.runs, change_.data());
    for (std::size_t k = 0; k < change_.size(); ++k)
      full[static_cast<Index>(support_[k / C]) * C + static_cast<Index>(k % C)] += change_[k];
  };
  add(start.w_delta, w_round_);
  add(start.gbar_delta, gbar_round_);
  held_round_ = start.round;
  return Status::ok();
}

Status AgentCore::on_newton_round(const msg::RoundStart& start, Outbox& out) {
  const Index wire = wire_width();
  const bool product = start.kind == msg::RoundKind::product;
  const std::size_t direction = product ? static_cast<std::size_t>(wire) : 0;
  if (static_cast<Index>(start.w.size()) != wire || !start.gbar.empty() ||
      start.direction.size() != direction || !start.eval_w.empty())
    return Status::error(cat("RoundStart ", start.round, " (", to_string(start.kind),
                             ") rejected: w, gbar, direction and eval_w have ", start.w.size(),
                             ", ", start.gbar.size(), ", ", start.direction.size(), " and ",
                             start.eval_w.size(), " entries, expected ", wire, ", 0, ", direction,
                             " and 0"));
  if ((start.gram || start.hessian || start.diagonal) && product)
    return Status::error(cat("RoundStart ", start.round,
                             " rejected: a Gram, a Hessian or its diagonal is asked with a product"));
  // The Gram is |support|^2 / 2 floats, the Hessian (|support| C)^2 / 2: refused past the bound
  // the hub keeps (newton.hpp).
  if (start.gram && static_cast<Index>(support_.size()) > newton::max_gram_columns())
    return Status::error(cat("RoundStart ", start.round, " rejected: a Gram of ", support_.size(),
                             " columns (the most is ", newton::max_gram_columns(), ")"));
  const Index hessian_columns = static_cast<Index>(support_.size()) * objective_.classes;
  if (start.hessian && hessian_columns > newton::max_gram_columns())
    return Status::error(cat("RoundStart ", start.round, " rejected: a Hessian of ",
                             hessian_columns, " columns (the most is ",
                             newton::max_gram_columns(), ")"));
  from_wire(start.w, w_round_);
  held_round_ = 0;  // (no gbar)
  double loss = 0.0;
  std::uint64_t passes = 0;
  // A product needs the curvature at w: an agent that restarted since the gradient round (or
  // missed it) takes it again first.
  if (!product || !curvature_.at(w_round_)) {
    loss = curvature_.gradient(data_, objective_, w_round_, product_);
    ++passes;
  }
  if (product) {
    direction_.resize(w_round_.size());
    from_wire(start.direction, direction_);
    curvature_.product(data_, objective_, direction_, product_);
    ++passes;
  }
  answered_round_ = start.round;
  ++rounds_done_;
  if (!all_finite(product_) || !std::isfinite(loss)) {
    out.push_back(msg::Error{msg::ErrorCode::invalid_value,
                             cat("the ", to_string(start.kind), " of round ", start.round,
                                 " is not finite")});
    return Status::error(cat("round ", start.round, ": the ", to_string(start.kind),
                             " is not finite"));
  }
  msg::Update& update = slot<msg::Update>(pending_);
  update.round = start.round;
  update.seq = ++seq_;
  update.samples = static_cast<std::uint64_t>(data_.rows());
  update.steps = passes * static_cast<std::uint64_t>(data_.rows());  // per-sample evaluations
  update.loss_sum = product ? 0.0 : loss;
  update.dw.clear();
  update.dS.clear();
  update.encoding = msg::Encoding::f64;
  update.coarse_g.clear();
  update.coarse_h.clear();
  to_wire(product_, update.product);
  if (start.gram)
    newton::gram_upper(data_, support_, update.gram);
  else
    update.gram.clear();
  if (start.hessian)
    curvature_.hessian_upload(data_, objective_, support_, update.hessian);
  else
    update.hessian.clear();
  if (start.diagonal)
    curvature_.hessian_diagonal(data_, objective_, support_, update.diagonal);
  else
    update.diagonal.clear();
  // (A float overflow is not sent: the hub would refuse it.)
  if (std::any_of(update.diagonal.begin(), update.diagonal.end(),
                  [](float v) { return !std::isfinite(v); })) {
    out.push_back(msg::Error{msg::ErrorCode::invalid_value,
                             cat("the Hessian's diagonal of round ", start.round,
                                 " is not finite in float32")});
    return Status::error(cat("round ", start.round,
                             ": the Hessian's diagonal is not finite in float32"));
  }
  // Held-out counts at a gradient round's w (agent.hpp: AgentOptions::validation); a product
  // round measures nothing.
  if (!product && options_.validation != nullptr &&
      start.round % std::max<std::uint64_t>(1, options_.eval_every) == 0)
    count_validation(*options_.validation, objective_, w_round_, update.validation);
  else
    update.validation.clear();
  has_pending_ = true;
  out.push_back(pending_);
  return Status::ok();
}

}  // namespace dsaga
