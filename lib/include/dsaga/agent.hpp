// The agent's state machine: join, (re)build the table when the hub asks, and answer each
// RoundStart with T local SAGA steps and an Update (ALGORITHM.md section 3, steps 2-3). Like the
// hub it knows nothing of sockets: the transport adapter feeds it decoded hub messages and sends
// what it appends to `out`.
//
// The round's computation is the hub's algorithm (local_method.hpp): dSAGA, or a baseline run
// through the same agent, wire and metrics.
//
// Memory: the local method's state (for dSAGA the table, n_k x C, and d-sized vectors) is
// allocated when the first Config fixes the algorithm, N, eta and the seed, and again only if a
// (restarted) hub changes them. A steady-state round (RoundStart in, Update out, Ack in) through
// on_message(message, Outbox&) allocates nothing once one round has been answered: the Update is
// built in storage the agent keeps (pending()) and copied into the Outbox's reused slot
// (tests/unit/agent_alloc_test.cpp; wire.hpp says how the bytes are encoded and decoded the same
// way). Two-level rounds are the exception: the coarse Hessian's scratch (O(n_k m + (mC)^2)) is
// allocated per round; Z_k = X_k U (n_k x m doubles) is allocated once per basis. So are
// Newton-CG rounds (newton.hpp): their dense passes allocate per block of rows (256 x C), and the
// curvature kept between them is n_k (softmax: n_k C) doubles.
//
// Reliability: the last InitUpload/Update stays pending until the hub acknowledges its seq;
// after a reconnect the adapter sends Join and then `pending()` again (the hub applies a seq
// once). A Config that rebuilds the table makes any pending Update obsolete: the new S_k
// replaces everything it carried.
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dsaga/coarse.hpp"
#include "dsaga/dataset.hpp"
#include "dsaga/local_method.hpp"
#include "dsaga/messages.hpp"
#include "dsaga/newton.hpp"
#include "dsaga/objective.hpp"
#include "dsaga/status.hpp"
#include "dsaga/validation.hpp"

namespace dsaga {

// The messages one AgentCore call produced, in order. Unlike a std::vector<msg::Message>, clear()
// keeps the messages' storage: a message pushed at a position that last held a message of the
// same kind is assigned in place, so its strings and vectors keep their capacity.
class Outbox {
 public:
  void clear() { size_ = 0; }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const msg::Message& operator[](std::size_t i) const { return items_[i]; }
  const msg::Message* begin() const { return items_.data(); }
  const msg::Message* end() const { return items_.data() + size_; }

  // Copies `message` into the next slot (allocation-free when the slot holds the same kind with
  // enough capacity).
  void push_back(const msg::Message& message);
  void push_back(msg::Message&& message);

 private:
  std::vector<msg::Message> items_;  // [0, size_) are the messages; the rest is spare storage
  std::size_t size_ = 0;
};

struct AgentOptions {
  std::string agent_id;
  std::uint64_t incarnation = 0;  // random per process start (the daemon draws it)
  // Held-out rows it never trains on (validation.hpp; same width, labels prepared for the same
  // loss), or nullptr. Must outlive the agent. Its Updates carry their counts at the point of
  // loss_sum every `eval_every`-th evaluation: synchronous rounds r with r % eval_every == 0
  // (the same rounds on every agent), and in async aggregation every eval_every-th RoundStart
  // that names an evaluation point. A sparse agent's Join support covers the validation rows'
  // columns too, so that a restricted w is exact wherever they read it.
  const Dataset* validation = nullptr;
  std::uint64_t eval_every = 1;
  // Set when the data's missing columns are zeros (LIBSVM): the data may then be narrower than
  // the model (the hub makes the model as wide as its widest agent), and this widens the
  // training data and the validation rows in place to the model's width (dataset.hpp widen),
  // once, when a Config names a wider model. Empty: the data must have the model's width.
  std::function<void(Index cols)> widen = nullptr;
  // The data's last column is the constant 1 of --bias (in a wider model, the model's last).
  bool bias = false;
};

class AgentCore {
 public:
  // `objective` gives the loss and C; lambda comes from the hub's Config. The Dataset must
  // outlive the agent and its labels must already be prepared for the loss (load_data does).
  AgentCore(const Dataset& data, const Objective& objective, AgentOptions options);

  msg::Join join() const;
  // Error statuses say what was wrong with the message (for the log); the state is unchanged.
  // The replies are appended to `out`. The Outbox form is the allocation-free one (see above).
  Status on_message(const msg::Message& message, Outbox& out);
  Status on_message(const msg::Message& message, std::vector<msg::Message>& out);

  bool finished() const { return finished_; }
  // True when the hub refused this agent (the daemon exits non-zero).
  bool failed() const { return failed_; }
  const std::string& finish_reason() const { return finish_reason_; }
  // The last InitUpload or Update not yet acknowledged, to resend after a reconnect; nullptr when
  // everything was acknowledged. Valid until the next on_message().
  const msg::Message* pending() const { return has_pending_ ? &pending_ : nullptr; }
  std::uint64_t rounds_done() const { return rounds_done_; }
  std::uint64_t last_round() const { return answered_round_.value_or(0); }
  // Bytes of the local method's state (0 before the first Config).
  std::size_t state_bytes() const { return method_ ? method_->state_bytes() : 0; }
  const AgentOptions& options() const { return options_; }

 private:
  Status on_config(const msg::Config& config, Outbox& out);
  Status check_config(const msg::Config& config) const;  // before on_config changes anything
  // The data's width once `config` is taken: the model's when the data widens to it.
  Index width_for(const msg::Config& config) const;
  void find_support();  // support_ from the data (and the validation rows)
  Status on_round(const msg::RoundStart& start, Outbox& out);
  // Newton-CG rounds (newton.hpp): the gradient and curvature at w, or a Hessian product.
  Status on_newton_round(const msg::RoundStart& start, Outbox& out);
  // w_round_ and gbar_round_ from a run round's RoundStart: its vectors, or its changes added to
  // the broadcast held (a stale_broadcast Error to the hub when that is not the one they are on).
  Status take_broadcast(const msg::RoundStart& start, Outbox& out);
  Status build_table(Outbox& out);
  // Two-level dSAGA: takes the coarse basis a Config carries (Z_k = X_k U).
  Status take_basis(const msg::Config& config);
  // The vectors' wire form: restricted to the support when the Config says so (support.hpp).
  Index wire_width() const;
  void to_wire(const Eigen::VectorXd& v, std::vector<double>& out) const;
  void from_wire(const std::vector<double>& in, Eigen::VectorXd& full) const;

  const Dataset& data_;
  Objective objective_;
  AgentOptions options_;
  double lmax_ = 0.0;  // max_i beta * ||x_i||^2 (the hub adds lambda)
  std::unique_ptr<LocalMethod> method_;
  std::vector<std::uint32_t> support_;  // columns the rows touch (every column when dense)
  coarse::AgentSpace space_;            // two-level: Z_k for the basis basis_id_
  std::uint64_t basis_id_ = 0;
  bool floor_ = false;                  // q8 deltas under compress.hpp's floor (take_basis)
  // The runs of restricted q8 vectors that the hub leaves to this agent (Packed.runs_implied):
  // the broadcast changes' and the basis's (on_config).
  std::vector<std::uint8_t> support_runs_, basis_runs_;
  double step_ = 0.0;                   // the local step the method runs with
  std::optional<msg::Config> config_;
  Eigen::VectorXd w_round_, gbar_round_;  // the broadcast state, reused every round
  // The round whose broadcast w_round_ and gbar_round_ hold, on which a RoundStart's changes
  // (RoundStart.base) can be added; 0: none (a Config or a Newton round came since).
  std::uint64_t held_round_ = 0;
  std::vector<double> change_;  // a RoundStart's changes, decoded (wire-shaped)
  Eigen::VectorXd eval_w_;  // where an asynchronous hub asks for the loss (RoundStart.eval_w)
  Eigen::VectorXd dw_, ds_, table_sum_, coarse_g_, coarse_h_;
  // What rounding dw and dS to Config::encoding has left out so far, wire-shaped (compress.hpp):
  // added to the next round's. Zero after each InitUpload, which gives the hub S_k exactly.
  std::vector<double> residual_dw_, residual_ds_;
  newton::AgentCurvature curvature_;  // Newton-CG: the curvature at the last gradient's w
  Eigen::VectorXd direction_, product_;
  std::uint64_t eval_requests_ = 0;  // async: RoundStarts that named an evaluation point
  std::uint64_t seq_ = 0;
  std::uint64_t rounds_done_ = 0;
  std::optional<std::uint64_t> answered_round_;  // the newest round answered with an Update
  // The pending InitUpload/Update when has_pending_; kept after the Ack so that the next
  // round's Update is assigned into the same vectors.
  msg::Message pending_;
  bool has_pending_ = false;
  Outbox scratch_;  // for the std::vector form of on_message
  bool finished_ = false;
  bool failed_ = false;
  std::string finish_reason_;
};

}  // namespace dsaga
