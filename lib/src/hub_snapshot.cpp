// HubCore::snapshot / restore (hub.hpp): the hub's committed state as a small binary file.
//
// Layout, all little-endian: "DSGACKPT", format version (u32), payload size (u64), CRC-32 of
// the payload (u32), then the payload: fields in a fixed order, vectors as (u64 size, doubles),
// strings as (u64 size, bytes). Every read is bounds-checked against the payload size, so a
// truncated or corrupt file is an error, never a crash or a huge allocation.
#include <zlib.h>

#include <cstring>
#include <limits>

#include "dsaga/hub.hpp"
#include "hub_mode.hpp"
#include "strings.hpp"

namespace dsaga {

namespace {

constexpr char kMagic[8] = {'D', 'S', 'G', 'A', 'C', 'K', 'P', 'T'};
// 2: aggregation, max_staleness, version; 3: table_refresh; 4: two-level (coarse_rank, the
// coarse state, the agents' supports); 5: the round's broadcast; 6: the outcome; 7: Newton-CG and
// auto's switch; 8: the compressed broadcast (bw_, bg_); 9: whether U travels as q8; 11: Newton-CG's
// Hessians (use_hessian, the sum, g_outer, mu, predicted); 12: their diagonals (use_diagonal, the
// sum)
constexpr std::uint32_t kFormat = 12;
constexpr std::size_t kHeader = 8 + 4 + 8 + 4;

class Writer {
 public:
  template <class T>
  void put(T v) {
    static_assert(std::is_trivially_copyable_v<T>);
    unsigned char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    // The project's targets are all little-endian (x86_64, aarch64, armhf); a big-endian host
    // would need a byte swap here and in Reader::get.
    out_.append(reinterpret_cast<const char*>(b), sizeof(T));
  }
  void put(const std::string& s) {
    put<std::uint64_t>(s.size());
    out_ += s;
  }
  void put(const Eigen::VectorXd& v) {
    put<std::uint64_t>(static_cast<std::uint64_t>(v.size()));
    out_.append(reinterpret_cast<const char*>(v.data()), static_cast<std::size_t>(v.size()) * 8);
  }
  void put(const Eigen::MatrixXd& m) {
    put<std::uint64_t>(static_cast<std::uint64_t>(m.cols()));
    put<std::uint64_t>(static_cast<std::uint64_t>(m.rows()));
    out_.append(reinterpret_cast<const char*>(m.data()), static_cast<std::size_t>(m.size()) * 8);
  }
  void put(const std::vector<std::uint32_t>& v) {
    put<std::uint64_t>(v.size());
    out_.append(reinterpret_cast<const char*>(v.data()), v.size() * 4);
  }
  void put(const std::vector<double>& v) {
    put<std::uint64_t>(v.size());
    out_.append(reinterpret_cast<const char*>(v.data()), v.size() * 8);
  }
  std::string& bytes() { return out_; }

 private:
  std::string out_;
};

class Reader {
 public:
  Reader(const char* data, std::size_t size) : p_(data), end_(data + size) {}
  template <class T>
  bool get(T& v) {
    if (static_cast<std::size_t>(end_ - p_) < sizeof(T)) return false;
    std::memcpy(&v, p_, sizeof(T));
    p_ += sizeof(T);
    return true;
  }
  bool get(std::string& s) {
    std::uint64_t n = 0;
    if (!get(n) || n > static_cast<std::uint64_t>(end_ - p_)) return false;
    s.assign(p_, static_cast<std::size_t>(n));
    p_ += n;
    return true;
  }
  bool get(Eigen::VectorXd& v) {
    std::uint64_t n = 0;
    if (!get(n) || n > static_cast<std::uint64_t>(end_ - p_) / 8) return false;
    v.resize(static_cast<Eigen::Index>(n));
    // memcpy's pointers must not be null even for 0 bytes, and an empty vector's data() is.
    if (n > 0) std::memcpy(v.data(), p_, static_cast<std::size_t>(n) * 8);
    p_ += n * 8;
    return true;
  }
  bool get(Eigen::MatrixXd& m) {
    std::uint64_t cols = 0, rows = 0;
    if (!get(cols) || !get(rows)) return false;
    const std::uint64_t left = static_cast<std::uint64_t>(end_ - p_) / 8;
    if (rows > left || (rows > 0 && cols > left / rows)) return false;
    m.resize(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols));
    if (rows * cols > 0) std::memcpy(m.data(), p_, static_cast<std::size_t>(rows * cols) * 8);
    p_ += rows * cols * 8;
    return true;
  }
  bool get(std::vector<std::uint32_t>& v) {
    std::uint64_t n = 0;
    if (!get(n) || n > static_cast<std::uint64_t>(end_ - p_) / 4) return false;
    v.resize(static_cast<std::size_t>(n));
    if (n > 0) std::memcpy(v.data(), p_, static_cast<std::size_t>(n) * 4);
    p_ += n * 4;
    return true;
  }
  bool get(std::vector<double>& v) {
    std::uint64_t n = 0;
    if (!get(n) || n > static_cast<std::uint64_t>(end_ - p_) / 8) return false;
    v.resize(static_cast<std::size_t>(n));
    if (n > 0) std::memcpy(v.data(), p_, static_cast<std::size_t>(n) * 8);
    p_ += n * 8;
    return true;
  }
  bool done() const { return p_ == end_; }

 private:
  const char* p_;
  const char* end_;
};

}  // namespace

std::string HubCore::snapshot() const {
  Writer w;
  // What the state is only valid for: a resumed hub with other options refuses it.
  w.put<std::uint8_t>(static_cast<std::uint8_t>(options_.algorithm));
  w.put<std::uint8_t>(static_cast<std::uint8_t>(options_.objective.loss));
  w.put<std::int32_t>(options_.objective.classes);
  w.put<double>(options_.objective.lambda);
  w.put<std::int32_t>(options_.expected_agents);
  w.put<std::uint64_t>(options_.seed);
  w.put<double>(options_.server_step);
  w.put<double>(options_.prox);
  w.put<std::uint8_t>(static_cast<std::uint8_t>(options_.aggregation));
  w.put<std::uint64_t>(options_.max_staleness);
  w.put<double>(options_.table_refresh);
  w.put<std::int32_t>(options_.coarse_rank);
  // The state.
  w.put<std::uint8_t>(static_cast<std::uint8_t>(phase_));
  w.put(finish_reason_);
  w.put<std::uint8_t>(static_cast<std::uint8_t>(outcome_));
  w.put<std::uint64_t>(round_);
  w.put<std::int64_t>(total_samples_);
  w.put<std::int64_t>(features_);
  w.put<double>(eta_);
  w.put(w_);
  w.put(gbar_);
  w.put(best_w_);
  w.put<double>(best_objective_);
  w.put<std::uint64_t>(best_round_);
  w.put<std::uint64_t>(version_);
  w.put(round_gbar_);
  w.put<double>(round_eta_);
  w.put(bw_);
  w.put(bg_);
  // two-level: the basis, the local step the rule allowed, the guard's state.
  w.put<std::uint64_t>(coarse_.basis_id);
  w.put<std::uint8_t>(coarse_.basis.identity ? 1 : 0);
  w.put<std::uint8_t>(coarse_.basis_q8 ? 1 : 0);
  w.put(coarse_.basis.u);
  w.put(coarse_.basis.curvature);
  w.put<double>(coarse_.basis.fine_curvature);
  w.put<double>(coarse_.eta0);
  w.put<std::uint64_t>(coarse_.max_steps);
  w.put<double>(coarse_.gamma);
  w.put<double>(coarse_.f_prev);
  w.put<double>(coarse_.f_prev2);
  w.put(coarse_.w_prev);
  w.put<std::uint64_t>(coarse_.reverts);
  w.put<double>(coarse_.step_quadratic);
  // auto's switch and Newton-CG (the factor is rebuilt from the Gram).
  w.put<std::uint8_t>(static_cast<std::uint8_t>(active_));
  w.put(f_history_);
  w.put<std::uint8_t>(static_cast<std::uint8_t>(newton_.stage));
  w.put<std::uint8_t>(newton_.use_gram ? 1 : 0);
  w.put<std::uint8_t>(newton_.gram_asked ? 1 : 0);
  w.put(newton_.gram);
  w.put(newton_.cg.x);
  w.put(newton_.cg.r);
  w.put(newton_.cg.p);
  w.put<double>(newton_.cg.rz);
  w.put<double>(newton_.cg.tol);
  w.put<std::uint64_t>(newton_.cg.steps);
  w.put(newton_.w_outer);
  w.put<double>(newton_.f_outer);
  w.put(newton_.step);
  w.put<double>(newton_.t);
  w.put<std::uint8_t>(newton_.use_hessian ? 1 : 0);
  w.put(newton_.hessian);
  w.put(newton_.g_outer);
  w.put<double>(newton_.mu);
  w.put<double>(newton_.predicted);
  w.put<std::uint8_t>(newton_.use_diagonal ? 1 : 0);
  w.put(newton_.diagonal);
  w.put<std::uint64_t>(newton_.outer);
  w.put(newton_.pairs_s);
  w.put(newton_.pairs_y);
  w.put(newton_.next_s);
  w.put(newton_.next_y);
  w.put<std::uint64_t>(agents_.size());
  for (const auto& [id, a] : agents_) {
    w.put(a.agent_id);
    w.put<std::uint64_t>(a.samples);
    w.put<double>(a.lmax);
    w.put<std::uint64_t>(a.incarnation);
    w.put<std::uint64_t>(a.last_seq);
    w.put<std::uint8_t>(a.initialized ? 1 : 0);
    w.put<double>(a.init_loss);
    w.put(a.table_sum);
    w.put(a.support);
  }
  const std::string& payload = w.bytes();
  Writer file;
  file.bytes().append(kMagic, 8);
  file.put<std::uint32_t>(kFormat);
  file.put<std::uint64_t>(payload.size());
  file.put<std::uint32_t>(static_cast<std::uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(payload.data()), static_cast<uInt>(payload.size()))));
  file.bytes() += payload;
  return std::move(file.bytes());
}

Status HubCore::restore(const std::string& bytes) {
  if (bytes.size() < kHeader || std::memcmp(bytes.data(), kMagic, 8) != 0)
    return Status::error("not a dsaga hub checkpoint (bad magic)");
  Reader header(bytes.data() + 8, kHeader - 8);
  std::uint32_t format = 0, crc = 0;
  std::uint64_t size = 0;
  header.get(format);
  header.get(size);
  header.get(crc);
  if (format != kFormat)
    return Status::error(cat("checkpoint format ", format, ", this build reads ", kFormat),
                         StatusCode::incompatible);
  if (size != bytes.size() - kHeader)
    return Status::error(cat("checkpoint truncated: payload of ", bytes.size() - kHeader,
                             " bytes, the header says ", size));
  const char* payload = bytes.data() + kHeader;
  if (crc32(0L, reinterpret_cast<const Bytef*>(payload), static_cast<uInt>(size)) != crc)
    return Status::error("checkpoint corrupt: checksum mismatch");

  Reader r(payload, static_cast<std::size_t>(size));
  std::uint8_t algorithm = 0, loss = 0, phase = 0, outcome = 0;
  std::int32_t classes = 0, expected = 0;
  double lambda = 0, server_step = 0, prox = 0;
  std::uint64_t seed = 0, max_staleness = 0;
  std::uint8_t aggregation = 0;
  double table_refresh = 0;
  std::int32_t coarse_rank = 0;
  bool ok = r.get(algorithm) && r.get(loss) && r.get(classes) && r.get(lambda) &&
            r.get(expected) && r.get(seed) && r.get(server_step) && r.get(prox) &&
            r.get(aggregation) && r.get(max_staleness) && r.get(table_refresh) &&
            r.get(coarse_rank);
  if (!ok) return Status::error("checkpoint corrupt: short options");
  if (algorithm != static_cast<std::uint8_t>(options_.algorithm) ||
      loss != static_cast<std::uint8_t>(options_.objective.loss) ||
      classes != options_.objective.classes || lambda != options_.objective.lambda ||
      seed != options_.seed ||
      server_step != options_.server_step || prox != options_.prox ||
      aggregation != static_cast<std::uint8_t>(options_.aggregation) ||
      max_staleness != options_.max_staleness || table_refresh != options_.table_refresh ||
      coarse_rank != options_.coarse_rank)
    return Status::error(
        "the checkpoint was written for another problem or schedule (algorithm, loss, classes, "
        "lambda, seed, server_step, prox, aggregation, max_staleness, table_refresh or "
        "coarse_rank differ): start with the same options or without the checkpoint",
        StatusCode::incompatible);

  // Read into a fresh core's fields, then swap: a failure leaves this hub untouched.
  HubCore next(options_);
  std::uint64_t agent_count = 0;
  ok = r.get(phase) && r.get(next.finish_reason_) && r.get(outcome) && r.get(next.round_) &&
       r.get(next.total_samples_) && r.get(next.features_) && r.get(next.eta_) && r.get(next.w_) &&
       r.get(next.gbar_) && r.get(next.best_w_) && r.get(next.best_objective_) &&
       r.get(next.best_round_) && r.get(next.version_) && r.get(next.round_gbar_) &&
       r.get(next.round_eta_) && r.get(next.bw_) && r.get(next.bg_);
  std::uint8_t identity = 0;
  std::uint8_t basis_q8 = 0;
  ok = ok && r.get(next.coarse_.basis_id) && r.get(identity) && r.get(basis_q8) &&
       r.get(next.coarse_.basis.u) &&
       r.get(next.coarse_.basis.curvature) && r.get(next.coarse_.basis.fine_curvature) &&
       r.get(next.coarse_.eta0) && r.get(next.coarse_.max_steps) && r.get(next.coarse_.gamma) && r.get(next.coarse_.f_prev) &&
       r.get(next.coarse_.f_prev2) && r.get(next.coarse_.w_prev) && r.get(next.coarse_.reverts) &&
       r.get(next.coarse_.step_quadratic);
  std::uint8_t active = 0, stage = 0, use_gram = 0, gram_asked = 0, use_hessian = 0,
               use_diagonal = 0;
  HubCore::NewtonState& nt = next.newton_;
  ok = ok && r.get(active) && r.get(next.f_history_) && r.get(stage) && r.get(use_gram) &&
       r.get(gram_asked) && r.get(nt.gram) && r.get(nt.cg.x) && r.get(nt.cg.r) &&
       r.get(nt.cg.p) && r.get(nt.cg.rz) && r.get(nt.cg.tol) && r.get(nt.cg.steps) &&
       r.get(nt.w_outer) && r.get(nt.f_outer) && r.get(nt.step) && r.get(nt.t) &&
       r.get(use_hessian) && r.get(nt.hessian) && r.get(nt.g_outer) && r.get(nt.mu) &&
       r.get(nt.predicted) && r.get(use_diagonal) && r.get(nt.diagonal) &&
       r.get(nt.outer) && r.get(nt.pairs_s) && r.get(nt.pairs_y) && r.get(nt.next_s) &&
       r.get(nt.next_y) && r.get(agent_count);
  next.coarse_.basis.identity = identity != 0;
  next.coarse_.basis_q8 = basis_q8 != 0;
  if (ok) {
    // The mode running: the one the options name, or Newton-CG after auto's switch.
    const bool switched = options_.aggregation == Aggregation::automatic &&
                          active == static_cast<std::uint8_t>(Aggregation::newton_cg) &&
                          options_.algorithm == msg::Algorithm::dsaga;
    if (active != static_cast<std::uint8_t>(options_.effective_aggregation()) && !switched)
      return Status::error(cat("checkpoint corrupt: mode ", int(active), " for aggregation ",
                               to_string(options_.aggregation)));
    next.active_ = static_cast<Aggregation>(active);
    next.mode_ = &mode_for(next.active_);
    nt.stage = static_cast<msg::RoundKind>(stage);
    nt.use_gram = use_gram != 0;
    nt.gram_asked = gram_asked != 0;
    nt.use_hessian = use_hessian != 0;
    nt.use_diagonal = use_diagonal != 0;
    ok = stage == static_cast<std::uint8_t>(msg::RoundKind::gradient) ||
         stage == static_cast<std::uint8_t>(msg::RoundKind::product);
  }
  if (!ok || phase > static_cast<std::uint8_t>(Phase::finished) ||
      outcome > static_cast<std::uint8_t>(Outcome::stopped) ||
      (phase == static_cast<std::uint8_t>(Phase::finished)) !=
          (outcome != static_cast<std::uint8_t>(Outcome::running)))
    return Status::error("checkpoint corrupt: short or invalid state");
  const Index dim = next.w_.size();
  if (next.gbar_.size() != dim || next.best_w_.size() != dim || next.features_ <= 0 ||
      (next.round_gbar_.size() != 0 && next.round_gbar_.size() != dim) ||
      (next.bw_.size() != 0 && next.bw_.size() != dim) || next.bg_.size() != next.bw_.size() ||
      dim != next.features_ * options_.objective.classes || next.total_samples_ <= 0 ||
      agent_count > 100000 || expected < 1 ||
      (next.coarse_.basis.u.size() != 0 && next.coarse_.basis.u.rows() != next.features_) ||
      (next.coarse_.w_prev.size() != 0 && next.coarse_.w_prev.size() != dim) ||
      !(next.coarse_.gamma > 0 && next.coarse_.gamma <= 1))
    return Status::error("checkpoint corrupt: inconsistent dimensions");
  const auto sized = [dim](const Eigen::VectorXd& v) { return v.size() == 0 || v.size() == dim; };
  const auto pairs = [dim](const Eigen::MatrixXd& m) {
    return m.size() == 0 || (m.rows() == dim && m.cols() <= newton::kPairs);
  };
  if (!sized(nt.cg.x) || !sized(nt.cg.r) || !sized(nt.cg.p) || !sized(nt.w_outer) ||
      !sized(nt.step) || !pairs(nt.pairs_s) || !pairs(nt.next_s) ||
      nt.pairs_y.rows() != nt.pairs_s.rows() || nt.pairs_y.cols() != nt.pairs_s.cols() ||
      nt.next_y.rows() != nt.next_s.rows() || nt.next_y.cols() != nt.next_s.cols() ||
      (nt.gram.size() != 0 && static_cast<std::size_t>(nt.gram.size()) !=
                                  coarse::packed_size(static_cast<std::size_t>(next.features_))) ||
      (nt.hessian.size() != 0 &&
       static_cast<std::size_t>(nt.hessian.size()) != coarse::packed_size(static_cast<std::size_t>(dim))) ||
      !sized(nt.g_outer) || !sized(nt.diagonal) || !(nt.diagonal.array() >= 0.0).all() ||
      !(nt.mu >= 0.0) || !std::isfinite(nt.mu) ||
      (nt.stage == msg::RoundKind::product &&
       (nt.cg.p.size() != dim || nt.cg.x.size() != dim || nt.cg.r.size() != dim ||
        nt.w_outer.size() != dim)) ||
      next.f_history_.size() > 64)
    return Status::error("checkpoint corrupt: inconsistent Newton-CG state");
  for (std::uint64_t i = 0; i < agent_count; ++i) {
    AgentState a;
    std::uint8_t initialized = 0;
    if (!(r.get(a.agent_id) && r.get(a.samples) && r.get(a.lmax) && r.get(a.incarnation) &&
          r.get(a.last_seq) && r.get(initialized) && r.get(a.init_loss) && r.get(a.table_sum) &&
          r.get(a.support)) ||
        a.table_sum.size() != dim || a.support.size() > static_cast<std::size_t>(next.features_))
      return Status::error(cat("checkpoint corrupt: agent ", i));
    a.initialized = initialized != 0;
    a.connected = false;  // until it joins again; its peer id is gone with the old process
    a.peer.clear();
    next.agents_.emplace(a.agent_id, std::move(a));
  }
  if (!r.done()) return Status::error("checkpoint corrupt: trailing bytes");
  next.phase_ = static_cast<Phase>(phase);
  next.outcome_ = static_cast<Outcome>(outcome);
  // The agents the run was admitted with (fewer after an operator retired some).
  next.options_.expected_agents = expected;
  // async: the open round's evaluation starts again at the restored w (the losses gathered
  // before the crash were at a point the new agents' starts no longer refer to).
  next.eval_w_ = next.w_;
  // The old process's clock means nothing here: the first message or tick restarts it.
  next.round_started_ = -1.0;
  if (!(next.check_invariant() <= options_.invariant_tolerance))
    return Status::error(cat("checkpoint rejected: its gbar breaks the invariant by ",
                             next.check_invariant()));
  *this = std::move(next);
  return Status::ok();
}

}  // namespace dsaga
