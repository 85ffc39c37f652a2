// The protocol between hub and agents as plain C++ values, independent of the wire encoding.
// `wire.hpp` turns them into verified FlatBuffers (lib/schema/dsaga.fbs) and back; the state
// machines (hub.hpp, agent.hpp) consume and produce only these types.
//
// Vectors are model-shaped: d*C doubles in the feature-major layout of objective.hpp.
//
// Flow (ALGORITHM.md section 3):
//   agent -> hub   Join        who I am, my n_k, d, C, loss, L_max
//   hub -> agent   Config      N, lambda, eta, T, seed, w0; whether to (re)build the table
//   agent -> hub   InitUpload  S_k at w0 and the local loss sum
//   hub -> agents  RoundStart  (r, w, gbar)
//   agent -> hub   Update      (r, seq, dw, dS, n_k, steps, loss sum and validation counts at w_r)
//   hub -> agent   Ack         (r, seq): applied (or already applied: acks are idempotent)
//   either         Leave, Error, Heartbeat
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "dsaga/compress.hpp"
#include "dsaga/objective.hpp"
#include "dsaga/validation.hpp"

namespace dsaga::msg {

// Bumped on any incompatible change of the schema or of the meaning of a field.
// 2: two-level dSAGA, 3: restricted vectors, 4: Newton-CG rounds (RoundStart.kind) and the
// Update's held-out validation counts, 5: compact encodings of Update.dw and Update.dS,
// 6: the broadcast as q8 changes (RoundStart.base), 7: compact setup (the support as a bitmap,
// zero vectors as their length, InitUpload's table sum rounded like dS), 8: q8 integers as
// range codes, 9: Newton-CG's Hessian upload (RoundStart.hessian, Update.hessian), 10: and its
// diagonal (RoundStart.diagonal, Update.diagonal), 11: the Hessian upload as the distinct
// entries of its class-pair blocks (coarse.hpp: blocks_size), 12: two-level's Update.coarse_h
// likewise, 13: two-level's local run before the refresh, with the table as the hub counted it
// (Update.dw's meaning; local_method.cpp), 14: q8 scales rounded up to bfloat16 and sent in
// 2 bytes (Packed.scales16), 15: the bfloat16 scales range-coded (Packed.scales16_range), and
// a restricted vector's runs left to the agent's support (Packed.runs_implied)
inline constexpr std::uint32_t kProtocolVersion = 15;

// How an agent rounds dw and dS before sending them, with error feedback (compress.hpp).
using compress::Encoding;

enum class Algorithm : std::uint8_t { dsaga = 0, fedavg = 1, scaffold = 2, gd = 3 };

enum class ErrorCode : std::uint16_t {
  none = 0,
  malformed = 1,           // failed verification or decoding
  unsupported_version = 2,
  dimension_mismatch = 3,  // d, C or a vector length disagrees with the hub's model
  not_admitted = 4,        // message from a peer that has not joined
  wrong_round = 5,         // update for a round that is not open
  replay = 6,              // sequence number already seen
  invalid_value = 7,       // NaN/Inf or a norm over the bound
  refused = 8,             // admission refused (full, unknown key, finished)
  internal = 9,
  stale_broadcast = 10,    // a RoundStart's changes are on a broadcast the agent does not hold
};

struct Join {
  std::string agent_id;
  std::uint64_t samples = 0;   // n_k
  std::uint32_t features = 0;  // d
  std::uint32_t classes = 1;   // C
  Loss loss = Loss::logistic;
  double lmax = 0.0;           // max_i L_i of the local data (lambda excluded: the hub adds it)
  std::string software_version;
  std::uint64_t incarnation = 0;  // random per agent process start: a restart vs a reconnect
  std::vector<std::uint32_t> support;  // columns its rows touch, ascending; empty = every column
  bool zero_padded = false;  // its missing columns are zeros (LIBSVM): may be narrower than d
  bool bias = false;         // its last column is --bias's constant 1 (the model's last column)
};

struct Config {
  Algorithm algorithm = Algorithm::dsaga;
  std::uint64_t total_samples = 0;  // N
  std::uint32_t features = 0;
  std::uint32_t classes = 1;
  Loss loss = Loss::logistic;
  double lambda = 0.0;
  double eta = 0.0;               // local step size
  std::uint64_t steps = 0;        // local steps per round (T) for this agent
  std::uint64_t seed = 0;         // this agent's sampling seed
  bool build_table = true;        // (re)build the table at w and send InitUpload
  std::uint64_t round = 0;
  std::vector<double> w;          // state at which to build the table
  double prox = 0.0;              // mu of the local proximal term mu/2 ||w - w_r||^2 (0: none)
  double refresh = 0.0;           // dSAGA: fraction of own table entries recomputed at w each round
  // Two-level dSAGA (coarse.hpp): the round refreshes the whole table at w, reports the coarse
  // gradient and Hessian, then runs its steps with the table held.
  bool two_level = false;
  std::uint32_t basis_rank = 0;   // eigenpairs to upload with the InitUpload (0: none)
  std::uint64_t basis_id = 0;     // the basis below; 0 = none yet
  bool basis_identity = false;    // U = I (the whole space)
  std::uint32_t basis_dim = 0;    // m
  std::vector<double> basis;      // U on the agent's support, column-major |support| x m
  // The same as q8 (compression q8: the hub rounded U so); when not empty it is what travels,
  // and a decoded Config holds both forms.
  compress::Q8 basis_q8;
  // The d*C vectors of this agent's messages travel restricted to its Join::support
  // (|support| * C entries; support.hpp), Config::w included.
  bool restricted = false;
  // How the agent's Update::dw and Update::dS travel: rounded by the agent with error feedback,
  // so they are exactly what the hub receives and accounts (compress.hpp).
  Encoding encoding = Encoding::f64;
  // How the agent's eigenvectors travel (InitUpload): q8, floats or doubles. The hub's choice
  // (coarse::curvature_as_q8): floats where q8 would not pay for itself.
  Encoding curvature = Encoding::f64;
};

struct InitUpload {
  std::uint64_t seq = 0;
  std::uint64_t samples = 0;
  std::vector<double> table_sum;  // S_k (in `encoding` below)
  double loss_sum = 0.0;          // sum of local losses at Config::w
  std::vector<double> eigenvalues;   // top Config::basis_rank of X_k^T X_k / n_k, descending
  double eigen_next = 0.0;           // the next one
  std::vector<double> eigenvectors;  // on the support, column-major |support| x q
  compress::Q8 eigenvectors_q8;      // the same as q8, like Config::basis_q8
  // How table_sum travels: rounded by the agent like Update::dS, with the same error feedback
  // (its residual goes out with the first dS), so it is exactly what the hub accounts.
  Encoding encoding = Encoding::f64;
};

// What a round asks of an agent (newton.hpp for the last two).
//   run       the algorithm's local run from (w, gbar): Update.dw, dS (and the coarse payload)
//   gradient  the loss sum and the gradient sum g_k at w, keeping the curvature there:
//             Update.product = g_k (and Update.gram = its Gram when RoundStart.gram, or
//             Update.hessian = its part of the Hessian at w when RoundStart.hessian, or
//             Update.diagonal = that part's diagonal when RoundStart.diagonal)
//   product   the data part of the Hessian at w times `direction`: Update.product = (H p)_k
// Newton rounds carry no gbar and their Updates no dw, dS: they leave the tables alone.
enum class RoundKind : std::uint8_t { run = 0, gradient = 1, product = 2 };
const char* to_string(RoundKind kind);

struct RoundStart {
  std::uint64_t round = 0;
  std::vector<double> w;
  std::vector<double> gbar;
  // Where the agent evaluates its loss sum for the Update; empty = at w. The asynchronous hub
  // sends a common point here so that F can be assembled while every agent starts elsewhere.
  std::vector<double> eval_w;
  double eta = 0.0;  // the round's local step; 0 = Config::eta
  RoundKind kind = RoundKind::run;
  bool gram = false;              // gradient: also upload the Gram X_k^T X_k (once)
  bool hessian = false;           // gradient: also upload the data part of the Hessian at w
  bool diagonal = false;          // gradient: also upload that part's diagonal
  std::vector<double> direction;  // product: p (d*C, or restricted like w)
  // The broadcast as changes (hub.hpp: HubOptions::compression): base > 0 says w and gbar are
  // empty and the agent adds w_delta and gbar_delta (as wide as w would be) to the w and gbar
  // of RoundStart `base`, which it holds. base = 0: w and gbar are the vectors.
  std::uint64_t base = 0;
  compress::Q8 w_delta, gbar_delta;
  // The changes are on zero vectors (base = 0): the first compressed round's, which an agent
  // takes whatever it holds.
  bool from_zero = false;
};

struct Update {
  std::uint64_t round = 0;
  std::uint64_t seq = 0;
  std::uint64_t samples = 0;
  std::uint64_t steps = 0;
  double loss_sum = 0.0;    // sum of local losses at the round's broadcast w
  std::vector<double> dw;   // w_k - w
  std::vector<double> dS;   // change of S_k during the round
  // How dw and dS travel. Their values are exactly representable in it (the agent rounded them,
  // compress.hpp); an encoder that finds one that is not sends both as f64, so the receiver
  // always decodes exactly these doubles.
  Encoding encoding = Encoding::f64;
  std::vector<double> coarse_g;  // two-level: Z_k^T a (m*C); empty otherwise
  std::vector<double> coarse_h;  // two-level: Z_k^T D Z_k as its class-pair blocks (blocks_size)
  // Newton rounds (RoundStart::kind gradient or product; dw and dS are then empty):
  std::vector<double> product;   // g_k or (H p)_k, d*C (restricted like dw)
  std::vector<float> gram;       // X_k^T X_k on the support, packed upper triangle; or empty
  // sum_i (x_i x_i^T) (x) A_i at w on the support x classes, as the distinct entries of its
  // class-pair blocks; or empty (coarse.hpp: blocks_size; newton.hpp: AgentCurvature)
  std::vector<float> hessian;
  // The diagonal of that sum on the support x classes; or empty
  // (newton.hpp: AgentCurvature::hessian_diagonal)
  std::vector<float> diagonal;
  // Counts on the agent's validation rows at the point of loss_sum (validation.hpp); empty when
  // it has none or skipped the pass this round (--eval-every). Every mode takes them.
  ValidationCounts validation;
};

struct Ack {
  std::uint64_t round = 0;
  std::uint64_t seq = 0;
};

struct Leave {
  std::string reason;
};

struct Error {
  ErrorCode code = ErrorCode::none;
  std::string text;
};

struct Heartbeat {
  std::uint64_t round = 0;
};

using Message =
    std::variant<Join, Config, InitUpload, RoundStart, Update, Ack, Leave, Error, Heartbeat>;

// Bytes of the vectors of messages by part of the protocol, as the wire sends them (in their
// encoding: packed, floats or doubles; wire::add_part_bytes). Framing, ids, scalars and the
// validation counts are the rest of a message.
struct PartBytes {
  std::uint64_t deltas = 0;     // Update dw, dS (the tables' accounting)
  std::uint64_t coarse = 0;     // Update coarse_g, coarse_h (two-level)
  std::uint64_t newton = 0;     // Update product, gram; RoundStart direction (Newton-CG)
  std::uint64_t broadcast = 0;  // RoundStart w, gbar, eval_w
  std::uint64_t setup = 0;      // Config w, basis; InitUpload table_sum, eigenpairs
  std::uint64_t total() const { return deltas + coarse + newton + broadcast + setup; }
};

const char* name_of(const Message& message);  // "Join", "Update", ...

}  // namespace dsaga::msg
