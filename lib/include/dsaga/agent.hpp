// The agent's state machine: join, (re)build the table when the hub asks, and answer each
// RoundStart with T local SAGA steps and an Update (ALGORITHM.md section 3, step 2-3). Like the
// hub it knows nothing of sockets: the transport adapter feeds it decoded hub messages and sends
// what it appends to `out`.
//
// Memory: the SagaSolver (table n_k x C, d-sized vectors) is allocated once, when the first
// Config fixes N and eta; a steady-state round allocates only the outgoing message's vectors.
//
// Reliability: the last InitUpload/Update stays pending until the hub acknowledges its seq;
// after a reconnect the adapter sends `pending()` again (the hub applies a seq once).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dsaga/dataset.hpp"
#include "dsaga/messages.hpp"
#include "dsaga/objective.hpp"
#include "dsaga/saga.hpp"
#include "dsaga/status.hpp"

namespace dsaga {

struct AgentOptions {
  std::string agent_id;
  std::uint64_t incarnation = 0;  // random per process start (the daemon draws it)
};

class AgentCore {
 public:
  // `objective` gives the loss and C; lambda comes from the hub's Config. The Dataset must
  // outlive the agent.
  AgentCore(const Dataset& data, const Objective& objective, AgentOptions options);

  msg::Join join() const;
  Status on_message(const msg::Message& message, std::vector<msg::Message>& out);

  bool finished() const { return finished_; }
  const std::string& finish_reason() const { return finish_reason_; }
  // The last InitUpload or Update not yet acknowledged, to resend after a reconnect.
  const std::optional<msg::Message>& pending() const { return pending_; }
  std::uint64_t rounds_done() const { return rounds_done_; }
  const SagaSolver* solver() const { return solver_.get(); }

 private:
  const Dataset& data_;
  Objective objective_;
  AgentOptions options_;
  double lmax_ = 0.0;
  std::unique_ptr<SagaSolver> solver_;
  msg::Config config_;
  std::uint64_t seq_ = 0;
  std::uint64_t rounds_done_ = 0;
  std::optional<msg::Message> pending_;
  bool finished_ = false;
  std::string finish_reason_;
};

}  // namespace dsaga
