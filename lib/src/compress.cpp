#include "dsaga/compress.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace dsaga::compress {

const char* to_string(Encoding encoding) {
  switch (encoding) {
    case Encoding::f64: return "f64";
    case Encoding::f32: return "f32";
    case Encoding::q8: return "q8";
  }
  return "?";
}

std::optional<Encoding> parse_encoding(std::string_view text) {
  for (Encoding e : {Encoding::f64, Encoding::f32, Encoding::q8})
    if (text == to_string(e)) return e;
  return std::nullopt;
}

bool is_bf16(double s) {
  const float f = static_cast<float>(s);
  if (static_cast<double>(f) != s) return false;
  std::uint32_t bits = 0;
  std::memcpy(&bits, &f, sizeof bits);
  return (bits & 0xFFFFu) == 0;
}

std::size_t payload_bytes(Encoding encoding, std::size_t n) {
  switch (encoding) {
    case Encoding::f64: return 8 * n;
    case Encoding::f32: return 4 * n;
    case Encoding::q8: return n + scale_bytes(q8_blocks(n));
  }
  return 8 * n;
}

namespace {

// The nearest float, saturated at the largest (the residual keeps what is over).
float to_float(double x) {
  return static_cast<float>(std::clamp(x, -static_cast<double>(FLT_MAX), static_cast<double>(FLT_MAX)));
}

// The scale of a q8 block whose largest magnitude is m: the smallest bfloat16 (a float whose low
// 16 bits are zero) at or above m / 127, saturated at the largest finite one; 0 when the block
// is zero or so small that its scale is not a normal float (it then sends zeros and its residual
// keeps the values). A scale rounded up keeps every integer within -127..127, and the largest
// at 126 or 127 (bfloat16's steps are under 1/127 of its value), which is what lets to_q8 read
// the scale back from the rounded values; the wire carries it in 2 bytes (Packed.scales16).
float q8_scale(double m) {
  const double s = m / kLevels;
  if (!(s >= static_cast<double>(FLT_MIN))) return 0.0f;
  float f = to_float(s);
  if (static_cast<double>(f) < s) f = std::nextafter(f, FLT_MAX);
  std::uint32_t bits = 0;
  std::memcpy(&bits, &f, sizeof bits);
  if ((bits & 0xFFFFu) != 0) bits = (bits & 0xFFFF0000u) + 0x10000u;
  if ((bits & 0x7F800000u) == 0x7F800000u) bits = 0x7F7F0000u;  // past the largest: saturate
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// The floor under a q8 vector's block steps (compress.hpp, kFloorErrorRatio): the largest power
// of two tau with sum_b n_b max(s_b, tau)^2 <= kFloorErrorRatio * sum_b n_b s_b^2, s_b the step
// of block b (q8_scale) and n_b its entries (rounding to a step s costs about s^2 / 12 an entry
// in squared error); 0 for a zero vector. The vector is v + r (r may be null).
double floor_step(const double* v, const double* r, std::size_t n) {
  // Each block's step and length, once (per thread, capacity kept: no allocation per round).
  thread_local std::vector<double> steps, lengths;
  steps.clear();
  lengths.clear();
  double own = 0.0;
  double largest = 0.0;
  for (std::size_t b = 0; b < n; b += kBlock) {
    const std::size_t len = std::min(kBlock, n - b);
    double m = 0.0;
    for (std::size_t i = b; i < b + len; ++i) m = std::max(m, std::abs(v[i] + (r ? r[i] : 0.0)));
    const double s = q8_scale(m);
    steps.push_back(s);
    lengths.push_back(static_cast<double>(len));
    own += static_cast<double>(len) * s * s;
    largest = std::max(largest, s);
  }
  if (!(largest > 0.0) || !std::isfinite(own)) return 0.0;
  const double allowed = kFloorErrorRatio * own;
  // Down from the largest step's power of two: the sum falls as tau does and is `own` once tau
  // is under every step, so the loop ends there at the latest.
  for (double tau = std::ldexp(1.0, std::ilogb(largest)); tau >= static_cast<double>(FLT_MIN);
       tau *= 0.5) {
    double sum = 0.0;
    for (std::size_t k = 0; k < steps.size(); ++k) {
      const double s = std::max(steps[k], tau);
      sum += lengths[k] * s * s;
    }
    if (sum <= allowed) return tau;
  }
  return 0.0;
}

// A block's step: q8_scale of its largest magnitude m, or the vector's floor tau where that is
// larger (a nonzero step only: a block too small for a normal float scale sends zeros).
float block_scale(double m, double tau) {
  const float s = q8_scale(m);
  return s != 0.0f && static_cast<double>(s) < tau ? static_cast<float>(tau) : s;
}

void round_block_q8(double* v, double* residual, std::size_t n, double tau) {
  double m = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    v[i] += residual[i];
    m = std::max(m, std::abs(v[i]));
  }
  const double s = block_scale(m, tau);
  for (std::size_t i = 0; i < n; ++i) {
    const double x = v[i];
    // + 0.0 turns -0 into +0: the integer on the wire has no sign of zero.
    const double q =
        s == 0.0 ? 0.0 : std::clamp(std::nearbyint(x / s), -double(kLevels), double(kLevels)) + 0.0;
    v[i] = s * q;            // exact: a 24-bit scale times a 7-bit integer
    residual[i] = x - v[i];  // exact (Sterbenz: v is 0 or within a factor 2 of x, also under
                             // the floor: q = 1 from |x| / s > 1/2 on)
  }
}

}  // namespace

void round_with_feedback(Encoding encoding, double* v, double* residual, std::size_t n,
                         bool floor) {
  switch (encoding) {
    case Encoding::f64:
      for (std::size_t i = 0; i < n; ++i) {
        v[i] += residual[i];
        residual[i] = 0.0;
      }
      return;
    case Encoding::f32:
      for (std::size_t i = 0; i < n; ++i) {
        const double x = v[i] + residual[i];
        v[i] = to_float(x);
        residual[i] = x - v[i];
      }
      return;
    case Encoding::q8: {
      const double tau = floor ? floor_step(v, residual, n) : 0.0;
      for (std::size_t b = 0; b < n; b += kBlock)
        round_block_q8(v + b, residual + b, std::min(kBlock, n - b), tau);
      return;
    }
  }
}

void round_to_float(double* v, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) v[i] = to_float(v[i]);
}

bool fits_f32(const double* v, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    if (static_cast<double>(static_cast<float>(v[i])) != v[i]) return false;
  return true;
}

namespace {
// The scale of a block of len entries with largest magnitude m that is already a q8 block, in
// *s; false when no such scale reproduces every entry. round_block_q8 put its largest entry at
// 127 or 126 times a bfloat16 scale (q8_scale: m over one of the two is that scale exactly), or,
// under a floor (`floored`: the wire's reading of a rounded delta), at fewer steps of a power of
// two between m / 127 and m. Any scale that reproduces the entries will do (the values are the
// same); of the powers of two the largest, whose integers are the smallest.
bool exact_scale(const double* v, std::size_t len, double m, double* s, bool floored) {
  const auto fits = [&](double t) {
    if (!(std::isfinite(t) && is_bf16(t))) return false;
    for (std::size_t i = 0; i < len; ++i) {
      const double k = std::nearbyint(v[i] / t);
      if (!(std::abs(k) <= kLevels) || t * k != v[i]) return false;
    }
    return true;
  };
  if (m == 0.0) {
    *s = 0.0;
    return true;
  }
  for (const int top : {kLevels, kLevels - 1})
    if (fits(m / top)) {
      *s = m / top;
      return true;
    }
  if (!floored || !std::isfinite(m)) return false;
  // ldexp(1, ilogb(m)), the largest power of two at or below m (log2 rounds DBL_MAX up to 1024).
  for (double p = std::ldexp(1.0, std::ilogb(m)); p * kLevels > m; p *= 0.5)
    if (fits(p)) {
      *s = p;
      return true;
    }
  return false;
}
}  // namespace

bool to_q8(const double* v, std::size_t n, float* scales, std::int8_t* q) {
  for (std::size_t b = 0, block = 0; b < n; b += kBlock, ++block) {
    const std::size_t len = std::min(kBlock, n - b);
    double m = 0.0;
    for (std::size_t i = 0; i < len; ++i) m = std::max(m, std::abs(v[b + i]));
    double s = 0.0;
    if (!exact_scale(v + b, len, m, &s, true)) return false;
    scales[block] = static_cast<float>(s);
    for (std::size_t i = 0; i < len; ++i)
      q[b + i] = static_cast<std::int8_t>(s == 0.0 ? 0.0 : std::nearbyint(v[b + i] / s));
  }
  return true;
}

void from_q8(const float* scales, const std::int8_t* q, std::size_t n, double* v) {
  for (std::size_t i = 0; i < n; ++i)
    v[i] = static_cast<double>(scales[i / kBlock]) * static_cast<double>(q[i]);
}

void quantize(const double* v, std::size_t n, Q8& out, bool floor) {
  const double tau = floor ? floor_step(v, nullptr, n) : 0.0;
  out.runs.clear();
  out.q.resize(n);
  out.scales.resize(q8_blocks(n));
  for (std::size_t b = 0, block = 0; b < n; b += kBlock, ++block) {
    const std::size_t len = std::min(kBlock, n - b);
    double m = 0.0;
    for (std::size_t i = 0; i < len; ++i) m = std::max(m, std::abs(v[b + i]));
    // A block that is q8 already keeps its scale: rounding it again to q8_scale of its largest
    // entry, which may sit at 126 steps, could pick a smaller scale and move its values (the
    // hub sends its rounded basis this way: the agents must get the same values).
    double exact = 0.0;
    const float s =
        exact_scale(v + b, len, m, &exact, floor) ? static_cast<float>(exact)
                                                  : block_scale(m, tau);
    out.scales[block] = s;
    for (std::size_t i = 0; i < len; ++i) {
      const double k = s == 0.0f ? 0.0
                                 : std::clamp(std::nearbyint(v[b + i] / static_cast<double>(s)),
                                              -double(kLevels), double(kLevels));
      out.q[b + i] = static_cast<std::int8_t>(k);
    }
  }
}

void add(const Q8& x, double* v) { add(x, x.runs, v); }

void add(const Q8& x, const std::vector<std::uint8_t>& runs, double* v) {
  const std::size_t n = x.q.size();
  if (runs.empty()) {
    for (std::size_t i = 0; i < n; ++i)
      v[i] += static_cast<double>(x.scales[i / kBlock]) * static_cast<double>(x.q[i]);
    return;
  }
  std::size_t i = 0;
  for (std::size_t s = 0; s < runs.size(); ++s) {
    const double scale = static_cast<double>(x.scales[s]);
    for (std::size_t end = i + runs[s]; i < end; ++i) v[i] += scale * static_cast<double>(x.q[i]);
  }
}

namespace {
// Visits the entries of a restricted vector in order, as indices i of the whole one (ascending):
// gather's and gather_rows' one order, which also gives their runs.
template <class Take>
void restricted_columns(const std::vector<std::uint32_t>& columns, int classes, Take take) {
  const std::size_t C = static_cast<std::size_t>(classes);
  for (const std::uint32_t col : columns)
    for (std::size_t c = 0; c < C; ++c) take(static_cast<std::size_t>(col) * C + c);
}
template <class Take>
void restricted_rows(std::size_t rows, std::size_t cols, const std::vector<std::uint32_t>& kept,
                     Take take) {
  for (std::size_t j = 0; j < cols; ++j)
    for (const std::uint32_t r : kept) take(j * rows + r);
}
// Counts entry i (indices ascending across calls) into `runs`, opening a run where a new block
// starts; true when it opened one.
struct Runs {
  std::vector<std::uint8_t>& runs;
  std::size_t last_block = SIZE_MAX;
  bool take(std::size_t i) {
    const std::size_t block = i / kBlock;
    const bool opened = block != last_block;
    if (opened) {
      runs.push_back(0);
      last_block = block;
    }
    ++runs.back();  // at most kBlock entries of one block: fits a byte
    return opened;
  }
};
// Appends entry i of `whole` to `out`, with its block's scale where a run opens.
struct Gatherer {
  const Q8& whole;
  Q8& out;
  Runs runs{out.runs};
  void operator()(std::size_t i) {
    if (runs.take(i)) out.scales.push_back(whole.scales[i / kBlock]);
    out.q.push_back(whole.q[i]);
  }
};
void start(Q8& out, std::size_t n) {
  out.q.clear();
  out.scales.clear();
  out.runs.clear();
  out.q.reserve(n);
  out.implied_runs = true;
}
}  // namespace

void gather(const Q8& whole, const std::vector<std::uint32_t>& columns, int classes, Q8& out) {
  start(out, columns.size() * static_cast<std::size_t>(classes));
  restricted_columns(columns, classes, Gatherer{whole, out});
}

void gather_rows(const Q8& whole, std::size_t rows, std::size_t cols,
                 const std::vector<std::uint32_t>& rows_kept, Q8& out) {
  start(out, rows_kept.size() * cols);
  restricted_rows(rows, cols, rows_kept, Gatherer{whole, out});
}

void gather_runs(const std::vector<std::uint32_t>& columns, int classes,
                 std::vector<std::uint8_t>& runs) {
  runs.clear();
  Runs r{runs};
  restricted_columns(columns, classes, [&](std::size_t i) { r.take(i); });
}

void gather_rows_runs(std::size_t rows, std::size_t cols,
                      const std::vector<std::uint32_t>& rows_kept, std::vector<std::uint8_t>& runs) {
  runs.clear();
  Runs r{runs};
  restricted_rows(rows, cols, rows_kept, [&](std::size_t i) { r.take(i); });
}

void round_to_q8(double* v, std::size_t n, Q8* out, bool floor) {
  Q8 local;
  Q8& x = out != nullptr ? *out : local;
  quantize(v, n, x, floor);
  std::fill(v, v + n, 0.0);
  add(x, v);
}

std::string_view check(const Q8& x) { return check(x, x.runs); }

std::string_view check(const Q8& x, const std::vector<std::uint8_t>& runs) {
  const std::size_t n = x.q.size();
  if (runs.empty()) {
    if (x.scales.size() != q8_blocks(n)) return "the scales do not number one per block of 64";
  } else {
    if (runs.size() != x.scales.size()) return "runs and scales differ in number";
    std::size_t sum = 0;
    for (const std::uint8_t r : runs) {
      if (r == 0 || r > kBlock) return "a run is empty or longer than a block";
      sum += r;
    }
    if (sum != n) return "the runs do not add up to the count";
  }
  for (const float s : x.scales)
    if (!(s >= 0.0f) || !std::isfinite(s)) return "a scale is negative or not finite";
  for (const std::int8_t q : x.q)
    if (q < -kLevels) return "an integer is -128";
  return {};
}

}  // namespace dsaga::compress
