// The agents' round computations for dSAGA and the baselines (local_method.hpp).
#include "dsaga/local_method.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <type_traits>

#include "dsaga/rng.hpp"
#include "dsaga/saga.hpp"

namespace dsaga {

namespace {

// w[k*C + c] += coef[c] * x_ik for every stored entry of row i.
void add_row(const Dataset& data, Index i, const double* coef, int C, Eigen::VectorXd& w) {
  std::visit(
      [&](const auto& X) {
        using M = std::decay_t<decltype(X)>;
        if constexpr (std::is_base_of_v<Eigen::SparseMatrixBase<M>, M>) {
          for (typename M::InnerIterator it(X, i); it; ++it)
            for (int c = 0; c < C; ++c)
              w[static_cast<Index>(it.index()) * C + c] += coef[c] * static_cast<double>(it.value());
        } else {
          const auto row = X.row(i);
          if (C == 1) {
            w += coef[0] * row.transpose().template cast<double>();
          } else {
            for (Index k = 0; k < X.cols(); ++k)
              for (int c = 0; c < C; ++c) w[k * C + c] += coef[c] * static_cast<double>(row[k]);
          }
        }
      },
      data.X);
}

// sum_i a_i(w) x_i over the rows (the loss part of n * grad F_k), and the loss sum.
double loss_gradient_sum(const Dataset& data, const Objective& objective, const Eigen::VectorXd& w,
                         Eigen::VectorXd& out, Eigen::VectorXd& z, Eigen::VectorXd& a) {
  out.setZero();
  double loss = 0.0;
  for (Index i = 0; i < data.rows(); ++i) {
    margins(data, i, w, z.data());
    loss += sample_loss(objective, data.y[i], z.data());
    sample_derivative(objective, data.y[i], z.data(), a.data());
    add_row(data, i, a.data(), objective.classes, out);
  }
  return loss;
}

class DsagaMethod final : public LocalMethod {
 public:
  // The proximal term rides on the solver's own terms: with lambda' = lambda + mu and
  // gbar' = gbar - mu w_r the step's dense part gbar' + lambda' w equals
  // gbar + lambda w + mu (w - w_r). The table, S_k and dS are unaffected.
  DsagaMethod(const Dataset& data, const Objective& objective, const LocalMethodOptions& o)
      : solver_(data, with_prox(objective, o.prox), SagaOptions{o.eta, o.total_samples, o.seed}),
        prox_(o.prox),
        refresh_count_(o.refresh > 0 ? static_cast<Index>(std::ceil(
                                           std::min(1.0, o.refresh) * double(data.rows())))
                                     : 0),
        two_level_(o.two_level),
        data_(data),
        objective_(objective),
        shifted_(data.cols() * objective.classes) {}

  double init(const Eigen::VectorXd& w0, Eigen::VectorXd& table_sum) override {
    const double loss = solver_.init_table(w0);
    table_sum = solver_.table_sum();
    return loss;
  }
  std::uint64_t round(const Eigen::VectorXd& w, const Eigen::VectorXd& gbar, std::uint64_t steps,
                      Eigen::VectorXd& dw, Eigen::VectorXd& ds) override {
    if (prox_ > 0) {
      shifted_ = gbar - prox_ * w;
      solver_.set_state(w, shifted_);
    } else {
      solver_.set_state(w, gbar);
    }
    if (two_level_) {
      // First the local run with the table held as the hub counted it (every entry from the
      // last round's refresh, at w_{r-1}; gbar is their mean over all agents): SVRG anchored at
      // one point for every agent, so the runs' corrections cancel in the hub's mean. Refreshing
      // first (the table at w_r, gbar at w_{r-1} for the other agents) left each run a stale
      // part -H_{-k} (w_r - w_{r-1}) that did not cancel: F alternated between large and small
      // decreases (ALGORITHM.md section 7). Then the whole table at w_r, in the pass that sums
      // the loss and feeds the coarse payload; dS is that refresh's change.
      const Index held = solver_.run_held(static_cast<Index>(steps)).steps;
      dw = solver_.w() - w;
      if (prox_ > 0)
        solver_.set_state(w, shifted_);
      else
        solver_.set_state(w, gbar);
      loss_ = solver_.refresh_all(nullptr);
      ds = solver_.delta_sum();
      return static_cast<std::uint64_t>(data_.rows() + held);
    }
    Index done = refresh_count_ > 0 ? solver_.refresh(refresh_count_).steps : 0;
    done += solver_.run(static_cast<Index>(steps)).steps;
    dw = solver_.w() - w;
    ds = solver_.delta_sum();
    return static_cast<std::uint64_t>(done);
  }
  std::size_t state_bytes() const override {
    return solver_.state_bytes() +
           static_cast<std::size_t>(shifted_.size()) * sizeof(double);
  }
  double round_loss() const override {
    return two_level_ ? loss_ : std::numeric_limits<double>::quiet_NaN();
  }
  void set_step(double eta) override { solver_.set_step(eta); }
  bool coarse(coarse::AgentSpace& space, Eigen::VectorXd& g, Eigen::VectorXd& h) override {
    if (!two_level_ || space.empty()) return false;
    // The table holds a(w_r) for every row: the refresh set it and the held run kept it.
    space.gradient_hessian(data_, objective_, solver_.table().data(), g, h);
    return true;
  }

 private:
  static Objective with_prox(Objective objective, double prox) {
    objective.lambda += prox;
    return objective;
  }
  SagaSolver solver_;
  double prox_;
  Index refresh_count_;
  bool two_level_;
  const Dataset& data_;
  Objective objective_;  // the problem's (the coarse part reads only the loss)
  double loss_ = std::numeric_limits<double>::quiet_NaN();
  Eigen::VectorXd shifted_;
};

// FedAvg and SCAFFOLD share the local loop: T steps of w <- w - eta (g_j(w) + lambda w + corr),
// corr = 0 (FedAvg) or c - c_k (SCAFFOLD). O(d) per step: these baselines have no
// just-in-time sparse path.
class SgdMethod final : public LocalMethod {
 public:
  SgdMethod(const Dataset& data, const Objective& objective, const LocalMethodOptions& o)
      : data_(data),
        objective_(objective),
        scaffold_(o.algorithm == msg::Algorithm::scaffold),
        eta_(o.eta),
        prox_(o.prox),
        rng_(o.seed) {
    const Index dim = data.cols() * objective.classes;
    w_.resize(dim);
    corr_.resize(dim);
    control_.resize(dim);  // c_k (SCAFFOLD)
    scratch_.resize(dim);
    z_.resize(objective.classes);
    a_.resize(objective.classes);
  }

  double init(const Eigen::VectorXd& w0, Eigen::VectorXd& table_sum) override {
    const double n = static_cast<double>(data_.rows());
    const double loss = loss_gradient_sum(data_, objective_, w0, scratch_, z_, a_);
    if (scaffold_) {
      // c_k = grad F_k(w0), the full local gradient; S_k = n_k c_k.
      control_ = scratch_ / n + objective_.lambda * w0;
      table_sum = n * control_;
    } else {
      control_.setZero();
      table_sum = Eigen::VectorXd::Zero(w0.size());
    }
    return loss;
  }

  std::uint64_t round(const Eigen::VectorXd& w, const Eigen::VectorXd& gbar, std::uint64_t steps,
                      Eigen::VectorXd& dw, Eigen::VectorXd& ds) override {
    w_ = w;
    // corr = c - c_k (SCAFFOLD) - mu w_r (proximal term; with lambda + mu in the shrink).
    if (scaffold_) corr_ = gbar - control_;
    else corr_.setZero();
    if (prox_ > 0) corr_ -= prox_ * w;
    const bool corrected = scaffold_ || prox_ > 0;
    const int C = objective_.classes;
    const Index n = data_.rows();
    const double shrink = 1.0 - eta_ * (objective_.lambda + prox_);
    for (std::uint64_t t = 0; t < steps; ++t) {
      const Index j = static_cast<Index>(rng_.below(static_cast<std::uint64_t>(n)));
      margins(data_, j, w_, z_.data());
      sample_derivative(objective_, data_.y[j], z_.data(), a_.data());
      w_ *= shrink;
      if (corrected) w_.noalias() -= eta_ * corr_;
      a_ *= -eta_;
      add_row(data_, j, a_.data(), C, w_);
    }
    dw = w_ - w;
    if (scaffold_ && steps > 0) {
      // Option II: c_k+ = c_k - c + (w_r - w_k) / (T eta); dS = n_k (c_k+ - c_k).
      scratch_ = -gbar - dw / (static_cast<double>(steps) * eta_);
      control_ += scratch_;
      ds = static_cast<double>(n) * scratch_;
    } else {
      ds.setZero(w.size());
    }
    return steps;
  }

  std::size_t state_bytes() const override {
    return static_cast<std::size_t>(w_.size()) * 4 * sizeof(double);
  }
  void set_step(double eta) override { eta_ = eta; }

 private:
  const Dataset& data_;
  Objective objective_;
  bool scaffold_;
  double eta_;
  double prox_;
  Rng rng_;
  Eigen::VectorXd w_, corr_, control_, scratch_, z_, a_;
};

class GdMethod final : public LocalMethod {
 public:
  GdMethod(const Dataset& data, const Objective& objective, const LocalMethodOptions& o)
      : data_(data), objective_(objective), eta_(o.eta) {
    gradient_.resize(data.cols() * objective.classes);
    z_.resize(objective.classes);
    a_.resize(objective.classes);
  }
  double init(const Eigen::VectorXd& w0, Eigen::VectorXd& table_sum) override {
    table_sum = Eigen::VectorXd::Zero(w0.size());
    return loss_sum(data_, objective_, w0);
  }
  std::uint64_t round(const Eigen::VectorXd& w, const Eigen::VectorXd&, std::uint64_t,
                      Eigen::VectorXd& dw, Eigen::VectorXd& ds) override {
    loss_gradient_sum(data_, objective_, w, gradient_, z_, a_);
    // The weighted mean over agents of -eta (G_k / n_k + lambda w) is -eta grad F(w).
    dw = -eta_ * (gradient_ / static_cast<double>(data_.rows()) + objective_.lambda * w);
    ds.setZero(w.size());
    return static_cast<std::uint64_t>(data_.rows());
  }
  std::size_t state_bytes() const override {
    return static_cast<std::size_t>(gradient_.size()) * sizeof(double);
  }
  void set_step(double eta) override { eta_ = eta; }

 private:
  const Dataset& data_;
  Objective objective_;
  double eta_;
  Eigen::VectorXd gradient_, z_, a_;
};

}  // namespace

double LocalMethod::round_loss() const { return std::numeric_limits<double>::quiet_NaN(); }

bool LocalMethod::coarse(coarse::AgentSpace&, Eigen::VectorXd&, Eigen::VectorXd&) {
  return false;
}

std::unique_ptr<LocalMethod> make_local_method(const Dataset& data, const Objective& objective,
                                               const LocalMethodOptions& options) {
  switch (options.algorithm) {
    case msg::Algorithm::dsaga:
      return std::make_unique<DsagaMethod>(data, objective, options);
    case msg::Algorithm::fedavg:
    case msg::Algorithm::scaffold:
      return std::make_unique<SgdMethod>(data, objective, options);
    case msg::Algorithm::gd:
      return std::make_unique<GdMethod>(data, objective, options);
  }
  return nullptr;
}

const char* to_string(msg::Algorithm algorithm) {
  switch (algorithm) {
    case msg::Algorithm::dsaga: return "dsaga";
    case msg::Algorithm::fedavg: return "fedavg";
    case msg::Algorithm::scaffold: return "scaffold";
    case msg::Algorithm::gd: return "gd";
  }
  return "unknown";
}

Result<msg::Algorithm> parse_algorithm(const std::string& name) {
  for (auto a : {msg::Algorithm::dsaga, msg::Algorithm::fedavg, msg::Algorithm::scaffold,
                 msg::Algorithm::gd})
    if (name == to_string(a)) return a;
  return Result<msg::Algorithm>::failure("unknown algorithm '" + name +
                                         "' (known: dsaga, fedavg, scaffold, gd)");
}

}  // namespace dsaga
