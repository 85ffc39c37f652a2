// Compact encodings of the per-round deltas an agent sends (Update.dw and Update.dS; issue 15),
// with error feedback, so that the table accounting stays exact:
//   - the agent rounds v + e (its delta plus what earlier rounds left out) to the nearest vector
//     the encoding represents exactly, sends that, and keeps the rest as its new residual e;
//   - the wire carries the rounded vector without loss (wire.cpp), so the hub receives bit for
//     bit what the agent accounted for: the hub's gbar is exactly the sum of what it received
//     over N, and the agent's true table sum is the hub's view plus the agent's residual;
//   - nothing is ever dropped, only delayed: sum of sent = sum of deltas - current residual, and
//     the residual is at most one rounding of the current delta, which vanishes as the deltas do.
// Encodings:
//   f64  the values as they are (8 bytes an entry): rounding is the identity, the residual 0;
//   f32  the nearest float (4 bytes an entry);
//   q8   blocks of kBlock entries, each entry an integer q in -127..127 times its block's
//        scale, the smallest bfloat16 at or above max|block| / 127 (1 byte an entry and 2 a
//        block: 8.25 bits before the wire's integer codes). With a floor (the caller's choice:
//        two-level's deltas, broadcast changes and basis where a round's bytes are mostly the
//        deltas, coarse::deltas_floored), a block's scale is at least the vector's floor: a power of
//        two chosen so that the vector's squared rounding error is at most kFloorErrorRatio
//        times what the blocks' own scales give. Where the blocks differ widely in size (a sparse
//        model's rare and common columns), the small ones then send a few small integers, mostly
//        0, instead of 7 bits of entries that hardly count, and the error feedback sends the
//        rest later; where they are alike the floor is under every block's scale and changes
//        nothing. The wire needs nothing new: a floored block is a block with a larger scale.
// Math only: no messages, no wire (messages.hpp carries the Encoding, wire.cpp the bytes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace dsaga::compress {

enum class Encoding : std::uint8_t { f64 = 0, f32 = 1, q8 = 2 };

const char* to_string(Encoding encoding);                    // "f64", "f32", "q8"
std::optional<Encoding> parse_encoding(std::string_view text);  // the inverse

inline constexpr std::size_t kBlock = 64;  // q8 entries per scale
inline constexpr int kLevels = 127;        // q8 integers are in -kLevels..kLevels
// The floor's bound on a vector's squared rounding error, against its blocks' own scales: twice
// the rms error. Measured in bench/RESULTS.md (issue 15): on S1 by label it takes 1.0 MB off
// 13.4 to 1e-6 in the same rounds; on B2 by label it would cost two rounds, which is why
// coarse::deltas_floored keeps it to rounds whose bytes are mostly the deltas.
inline constexpr double kFloorErrorRatio = 4.0;

inline std::size_t q8_blocks(std::size_t n) { return (n + kBlock - 1) / kBlock; }
// The wire sends a q8 vector's scales as bfloat16, 2 bytes each, from this many on (fewer pay
// less than the field costs) and as 4-byte floats below (wire.cpp).
inline constexpr std::size_t kHalfScalesFrom = 8;
inline std::size_t scale_bytes(std::size_t scales) {
  return (scales >= kHalfScalesFrom ? 2 : 4) * scales;
}

// True when s is a bfloat16: a float whose low 16 bits are zero (q8's scales; the wire sends
// their high 16 bits).
bool is_bf16(double s);

// Bytes of n entries' payload in `encoding` (the vectors alone, without FlatBuffers framing).
std::size_t payload_bytes(Encoding encoding, std::size_t n);

// v <- the vector nearest v + residual that `encoding` represents exactly (f32: each entry
// rounded to float; q8: each block to multiples of its scale, under the floor if `floor`);
// residual <- (v + residual) - v. Every value stays finite for finite input. f64 adds the
// residual in and zeroes it.
void round_with_feedback(Encoding encoding, double* v, double* residual, std::size_t n,
                         bool floor = false);

// v <- each entry rounded to the nearest float (saturated), no feedback: for the curvature
// payloads (two-level's basis, eigenvectors and coarse Hessians), which only shape the coarse
// step; the sender uses the rounded values itself wherever the receiver will.
void round_to_float(double* v, std::size_t n);

// The wire forms, exact both ways for vectors that round_with_feedback produced.
// f32: true when every entry is exactly a float.
bool fits_f32(const double* v, std::size_t n);
// q8: writes q8_blocks(n) scales and n integers; false (and the outputs unspecified) when v is not
// exactly such a vector.
bool to_q8(const double* v, std::size_t n, float* scales, std::int8_t* q);
// v[i] = scales[i / kBlock] * q[i], exact in double.
void from_q8(const float* scales, const std::int8_t* q, std::size_t n, double* v);

// A q8 vector held as its integers and scales (the hub's broadcast deltas, hub.hpp): entry i is
// scales[s] * q[i], s the run i falls in. Runs are `runs[s]` consecutive entries each; no runs
// means blocks of kBlock (the last one shorter). A vector restricted to an agent's support keeps
// the scales of the whole vector's blocks it touches, each over the run of its entries there.
struct Q8 {
  std::vector<float> scales;
  std::vector<std::int8_t> q;
  std::vector<std::uint8_t> runs;
  // The runs follow from the receiver's support (gather, gather_rows: the receiver derives them
  // with gather_runs, gather_rows_runs), so the wire leaves them out; as received, `runs` is
  // then empty until the receiver supplies them.
  bool implied_runs = false;
  std::size_t size() const { return q.size(); }
  bool empty() const { return q.empty(); }
  // Bytes on the wire (payload alone).
  std::size_t bytes() const {
    return q.size() + scale_bytes(scales.size()) + (implied_runs ? 0 : runs.size());
  }
};
// out <- v rounded to nearest in blocks of kBlock (the rule of round_with_feedback, under the
// floor if `floor`), except that a block v already holds as q8 keeps its scale and values (a q8
// vector comes back unchanged: the hub's basis goes through here after round_to_q8; with
// `floor`, also one rounded under a floor); the caller keeps what was left out, as v - the
// decoded out.
void quantize(const double* v, std::size_t n, Q8& out, bool floor = false);
// v[i] += the entry i of x, for i < x.size(): the same sums on the hub and on every agent.
void add(const Q8& x, double* v);
// The same with the runs given apart (a received vector whose runs were implied; `runs` must
// agree with x: check(x, runs)).
void add(const Q8& x, const std::vector<std::uint8_t>& runs, double* v);
// The entries of `whole` (runs-free, of d*C entries) at the columns `columns` (ascending), each
// with its `classes` entries, as restricted vectors are laid out (support.hpp).
void gather(const Q8& whole, const std::vector<std::uint32_t>& columns, int classes, Q8& out);
// The rows `rows_kept` (ascending) of a column-major rows x cols matrix held whole in `whole`
// (runs-free), column by column: the matrix restricted to those rows, column-major.
void gather_rows(const Q8& whole, std::size_t rows, std::size_t cols,
                 const std::vector<std::uint32_t>& rows_kept, Q8& out);
// The runs gather and gather_rows give, from the columns or rows alone: what a receiver that
// knows its support derives instead of reading them off the wire (both set implied_runs).
void gather_runs(const std::vector<std::uint32_t>& columns, int classes,
                 std::vector<std::uint8_t>& runs);
void gather_rows_runs(std::size_t rows, std::size_t cols,
                      const std::vector<std::uint32_t>& rows_kept, std::vector<std::uint8_t>& runs);
// v <- the nearest vector q8 represents (blocks of kBlock, under the floor if `floor`), without
// feedback, and `out` (if given) <- it as integers and scales: for the curvature payloads, which
// only shape the coarse space (the sender uses the rounded values itself wherever the receiver
// will).
void round_to_q8(double* v, std::size_t n, Q8* out = nullptr, bool floor = false);
// Why x is not a consistent Q8 (scales and runs agree with the count, integers in -127..127,
// scales finite and >= 0), or an empty string.
std::string_view check(const Q8& x);
// The same for x with the runs given apart (x.runs is ignored).
std::string_view check(const Q8& x, const std::vector<std::uint8_t>& runs);

}  // namespace dsaga::compress
