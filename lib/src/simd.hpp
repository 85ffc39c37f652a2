// The dense C = 1 kernels of the SAGA step (saga.cpp), and the one place that knows about
// instruction sets. Private to the library.
//
// Three builds of each kernel:
//  - portable: 16-byte vector-extension lanes (`Pair`), native on every SIMD target this library
//    meets (SSE2 on baseline x86-64, NEON on aarch64; scalar code where there is none), so the
//    default build is vectorised without -march;
//  - x86-64 with GCC or Clang only: 32-byte AVX2 lanes and 64-byte AVX-512F lanes, compiled with
//    per-function target attributes and chosen at run time (__builtin_cpu_supports), so a
//    packaged build without -march uses the widest the CPU has. No other file has an #if for it.
//
// All builds give bitwise the same results (tests/unit/simd_test.cpp). Every entry of the update
// is computed with the same operations in the same order whatever the lane width, and the dot
// product keeps the same eight partial sums (entry k goes to sum k % 8) combined in the same
// tree. The wide builds deliberately do not use FMA: a fused multiply-add rounds once instead of
// twice, which would make the iterates depend on the CPU the agent happens to run on (by about
// one ulp per step; harmless for convergence, but it would break the bitwise reproducibility
// saga.cpp promises).
//
// update_dot fuses a step's update with the next step's dot product (one pass over v instead of
// two); it gives bitwise what update() then dot() give.
//
// DSAGA_SIMD=portable or DSAGA_SIMD=avx2 in the environment caps the build (read once per
// process), e.g. to measure what each gains.
#pragma once

#include <cstdlib>
#include <cstring>

#include "dsaga/dataset.hpp"

#if defined(__GNUC__) && defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__GNUC__) && defined(__x86_64__)
#define DSAGA_SIMD_AVX2_DISPATCH 1
#include <immintrin.h>
#else
#define DSAGA_SIMD_AVX2_DISPATCH 0
#endif

namespace dsaga::simd {

inline void prefetch(const void* p) {
#if defined(__GNUC__)
  __builtin_prefetch(p);
#else
  (void)p;
#endif
}

// ---- portable kernels ----------------------------------------------------------------------

// aligned(8) and may_alias make `Pair` a legal unaligned view of a double array. Other
// compilers get plain loops that compute the same sums in the same order.
#if defined(__GNUC__)
#define DSAGA_PAIRS 1
typedef double Pair __attribute__((vector_size(2 * sizeof(double)), aligned(8), may_alias));
inline Pair& pair_at(double* p) { return *reinterpret_cast<Pair*>(p); }
inline const Pair& pair_at(const double* p) { return *reinterpret_cast<const Pair*>(p); }
// x[0], x[1] as doubles (exact). GCC 12's generic float->double vector conversion goes through
// scalar converts, hence SSE2's cvtps2pd where it exists.
inline Pair pair_at(const float* p) {
#if defined(__SSE2__)
  return Pair(_mm_cvtps_pd(_mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)))));
#else
  typedef float FloatPair __attribute__((vector_size(2 * sizeof(float)), aligned(4), may_alias));
  return __builtin_convertvector(*reinterpret_cast<const FloatPair*>(p), Pair);
#endif
}
#else
#define DSAGA_PAIRS 0
#endif

// The fixed tree that combines the eight partial sums, then the tail k..d-1.
template <class S>
double finish_dot(const double (&acc)[8], const S* x, const double* v, Index k, Index d) {
  double z = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; k < d; ++k) z += static_cast<double>(x[k]) * v[k];
  return z;
}

// <x, v> over d entries, accumulated in double in a fixed order: eight interleaved partial sums
// (partial sum l adds the entries k with k % 8 == l), combined in a fixed tree, then the tail.
// Requests the matching cache line of `next` (the next step's row, same length) as it goes, so
// the next row streams in while this one is processed.
template <class S>
double dot_portable(const S* __restrict x, const double* __restrict v, Index d, const S* next) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  Index k = 0;
#if DSAGA_PAIRS
  Pair p0 = {0, 0}, p1 = {0, 0}, p2 = {0, 0}, p3 = {0, 0};  // lanes k%8 = 0,1 | 2,3 | 4,5 | 6,7
  for (; k + 8 <= d; k += 8) {
    if (next) prefetch(next + k);
    p0 += pair_at(x + k) * pair_at(v + k);
    p1 += pair_at(x + k + 2) * pair_at(v + k + 2);
    p2 += pair_at(x + k + 4) * pair_at(v + k + 4);
    p3 += pair_at(x + k + 6) * pair_at(v + k + 6);
  }
  const Pair parts[4] = {p0, p1, p2, p3};
  for (int l = 0; l < 8; ++l) acc[l] = parts[l / 2][l % 2];
#else
  for (; k + 8 <= d; k += 8) {
    if (next) prefetch(next + k);
    for (int l = 0; l < 8; ++l) acc[l] += static_cast<double>(x[k + l]) * v[k + l];
  }
#endif
  if (next) prefetch(next + d - 1);
  return finish_dot(acc, x, v, k, d);
}

// One entry of the fused update (the scalar tail of both builds).
template <bool kShrink, class S>
inline void update_one(const S* x, Index k, double diff, double alpha, double c, double inv_N,
                       double* v, const double* g0, double* delta) {
  const double u = diff * static_cast<double>(x[k]);
  const double g = g0[k] + delta[k] * inv_N;
  const double vk = kShrink ? alpha * v[k] : v[k];
  v[k] = vk - c * (u + g);
  delta[k] += u;
}

// The fused dense update of one row for C = 1, in the scaled representation (see saga.cpp):
//   u = diff * x_k;  v_k <- alpha * v_k - c * (u + gbar0_k + delta_k / N);  delta_k += u.
// alpha == 1 (the scaled form, kShrink false) skips the multiply. Each entry's update is
// independent of the others, so the lanes do not change any result.
#if DSAGA_PAIRS
// Entries i, i + 1 of the update (update_one's operations on two lanes); returns the new v.
template <bool kShrink, class S>
inline Pair update_pair(const S* x, Index i, double diff, double alpha, double c, double inv_N,
                        double* v, const double* g0, double* delta) {
  const Pair u = diff * pair_at(x + i);
  const Pair dk = pair_at(delta + i);
  const Pair g = pair_at(g0 + i) + dk * inv_N;
  const Pair vk = kShrink ? alpha * pair_at(v + i) : pair_at(v + i);
  const Pair vn = vk - c * (u + g);
  pair_at(v + i) = vn;
  pair_at(delta + i) = dk + u;
  return vn;
}
#endif

template <bool kShrink, class S>
void update_portable(const S* __restrict x, Index d, double diff, double alpha, double c,
                     double inv_N, double* __restrict v, const double* __restrict g0,
                     double* __restrict delta) {
  Index k = 0;
#if DSAGA_PAIRS
  for (; k + 4 <= d; k += 4) {  // unrolled by hand: -O2 does not unroll
    update_pair<kShrink>(x, k, diff, alpha, c, inv_N, v, g0, delta);
    update_pair<kShrink>(x, k + 2, diff, alpha, c, inv_N, v, g0, delta);
  }
#endif
  for (; k < d; ++k) update_one<kShrink>(x, k, diff, alpha, c, inv_N, v, g0, delta);
}

// update() of x's row, then the next step's dot product <xn, v> on the updated v, in one pass:
// the same eight partial sums in the same order as dot(), so the result is bitwise dot(xn, v)
// taken after update(). Requests the lines of `far` (the row after xn) as it goes.
template <bool kShrink, class S>
double update_dot_portable(const S* __restrict x, Index d, double diff, double alpha, double c,
                           double inv_N, double* __restrict v, const double* __restrict g0,
                           double* __restrict delta, const S* __restrict xn, const S* far) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  Index k = 0;
#if DSAGA_PAIRS
  Pair p0 = {0, 0}, p1 = {0, 0}, p2 = {0, 0}, p3 = {0, 0};
  const auto two = [&](Index i) {
    return update_pair<kShrink>(x, i, diff, alpha, c, inv_N, v, g0, delta);
  };
  for (; k + 8 <= d; k += 8) {
    if (far) prefetch(far + k);
    p0 += pair_at(xn + k) * two(k);
    p1 += pair_at(xn + k + 2) * two(k + 2);
    p2 += pair_at(xn + k + 4) * two(k + 4);
    p3 += pair_at(xn + k + 6) * two(k + 6);
  }
  const Pair parts[4] = {p0, p1, p2, p3};
  for (int l = 0; l < 8; ++l) acc[l] = parts[l / 2][l % 2];
#else
  for (; k + 8 <= d; k += 8) {
    if (far) prefetch(far + k);
    for (int l = 0; l < 8; ++l) {
      update_one<kShrink>(x, k + l, diff, alpha, c, inv_N, v, g0, delta);
      acc[l] += static_cast<double>(xn[k + l]) * v[k + l];
    }
  }
#endif
  if (far) prefetch(far + d - 1);
  for (Index t = k; t < d; ++t) update_one<kShrink>(x, t, diff, alpha, c, inv_N, v, g0, delta);
  return finish_dot(acc, xn, v, k, d);
}

// ---- AVX2 kernels (x86-64, chosen at run time) -----------------------------------------------
#if DSAGA_SIMD_AVX2_DISPATCH
#define DSAGA_AVX2 __attribute__((target("avx2"), noinline))

// Four entries as doubles (float: exact widening).
__attribute__((target("avx2"))) inline __m256d load4(const double* p) { return _mm256_loadu_pd(p); }
__attribute__((target("avx2"))) inline __m256d load4(const float* p) {
  return _mm256_cvtps_pd(_mm_loadu_ps(p));
}

template <class S>
DSAGA_AVX2 double dot_avx2(const S* __restrict x, const double* __restrict v, Index d,
                           const S* next) {
  Index k = 0;
  __m256d q0 = _mm256_setzero_pd(), q1 = _mm256_setzero_pd();  // lanes k%8 = 0..3 | 4..7
  for (; k + 8 <= d; k += 8) {
    if (next) prefetch(next + k);
    q0 = _mm256_add_pd(q0, _mm256_mul_pd(load4(x + k), load4(v + k)));
    q1 = _mm256_add_pd(q1, _mm256_mul_pd(load4(x + k + 4), load4(v + k + 4)));
  }
  if (next) prefetch(next + d - 1);
  double acc[8];
  _mm256_storeu_pd(acc, q0);
  _mm256_storeu_pd(acc + 4, q1);
  return finish_dot(acc, x, v, k, d);
}

// Entries i..i+3 of update_portable, with the same operations in the same order (no FMA);
// returns the new v_i..v_i+3.
template <bool kShrink, class S>
__attribute__((target("avx2"))) inline __m256d update4(const S* x, Index i, __m256d diff,
                                                    __m256d alpha, __m256d c, __m256d inv_N,
                                                    double* v, const double* g0, double* delta) {
  const __m256d u = _mm256_mul_pd(diff, load4(x + i));
  const __m256d dk = _mm256_loadu_pd(delta + i);
  const __m256d g = _mm256_add_pd(_mm256_loadu_pd(g0 + i), _mm256_mul_pd(dk, inv_N));
  __m256d vk = _mm256_loadu_pd(v + i);
  if (kShrink) vk = _mm256_mul_pd(alpha, vk);
  const __m256d vn = _mm256_sub_pd(vk, _mm256_mul_pd(c, _mm256_add_pd(u, g)));
  _mm256_storeu_pd(v + i, vn);
  _mm256_storeu_pd(delta + i, _mm256_add_pd(dk, u));
  return vn;
}

template <bool kShrink, class S>
DSAGA_AVX2 void update_avx2(const S* __restrict x, Index d, double diff, double alpha, double c,
                            double inv_N, double* __restrict v, const double* __restrict g0,
                            double* __restrict delta) {
  const __m256d vdiff = _mm256_set1_pd(diff), valpha = _mm256_set1_pd(alpha),
                vc = _mm256_set1_pd(c), vinv_N = _mm256_set1_pd(inv_N);
  Index k = 0;
  for (; k + 8 <= d; k += 8) {
    update4<kShrink>(x, k, vdiff, valpha, vc, vinv_N, v, g0, delta);
    update4<kShrink>(x, k + 4, vdiff, valpha, vc, vinv_N, v, g0, delta);
  }
  for (; k + 4 <= d; k += 4) update4<kShrink>(x, k, vdiff, valpha, vc, vinv_N, v, g0, delta);
  for (; k < d; ++k) update_one<kShrink>(x, k, diff, alpha, c, inv_N, v, g0, delta);
}

// update_avx2, then <xn, v> on the updated entries, in one pass (see update_dot_portable).

template <bool kShrink, class S>
DSAGA_AVX2 double update_dot_avx2(const S* __restrict x, Index d, double diff, double alpha,
                                  double c, double inv_N, double* __restrict v,
                                  const double* __restrict g0, double* __restrict delta,
                                  const S* __restrict xn, const S* far) {
  const __m256d vdiff = _mm256_set1_pd(diff), valpha = _mm256_set1_pd(alpha),
                vc = _mm256_set1_pd(c), vinv_N = _mm256_set1_pd(inv_N);
  __m256d q0 = _mm256_setzero_pd(), q1 = _mm256_setzero_pd();
  Index k = 0;
  for (; k + 8 <= d; k += 8) {
    if (far) prefetch(far + k);
    const __m256d a = update4<kShrink>(x, k, vdiff, valpha, vc, vinv_N, v, g0, delta);
    const __m256d b = update4<kShrink>(x, k + 4, vdiff, valpha, vc, vinv_N, v, g0, delta);
    q0 = _mm256_add_pd(q0, _mm256_mul_pd(load4(xn + k), a));
    q1 = _mm256_add_pd(q1, _mm256_mul_pd(load4(xn + k + 4), b));
  }
  if (far) prefetch(far + d - 1);
  for (Index t = k; t < d; ++t) update_one<kShrink>(x, t, diff, alpha, c, inv_N, v, g0, delta);
  double acc[8];
  _mm256_storeu_pd(acc, q0);
  _mm256_storeu_pd(acc + 4, q1);
  return finish_dot(acc, xn, v, k, d);
}

#undef DSAGA_AVX2

// ---- AVX-512 kernels (x86-64, chosen at run time) --------------------------------------------
// Eight lanes: the dot product's single accumulator holds exactly the eight partial sums k % 8 of
// the other builds, and each entry of the update takes the same operations (no FMA).
#define DSAGA_AVX512 __attribute__((target("avx512f"), noinline))

__attribute__((target("avx512f"))) inline __m512d load8(const double* p) {
  return _mm512_loadu_pd(p);
}
// (The all-lanes mask form: GCC 12 warns that the unmasked form's undefined source may be used.)
__attribute__((target("avx512f"))) inline __m512d load8(const float* p) {
  return _mm512_maskz_cvtps_pd(__mmask8(0xff), _mm256_loadu_ps(p));
}

template <class S>
DSAGA_AVX512 double dot_avx512(const S* __restrict x, const double* __restrict v, Index d,
                               const S* next) {
  Index k = 0;
  __m512d q = _mm512_setzero_pd();  // lane l = partial sum l (entries k % 8 == l)
  for (; k + 8 <= d; k += 8) {
    if (next) prefetch(next + k);
    q = _mm512_add_pd(q, _mm512_mul_pd(load8(x + k), load8(v + k)));
  }
  if (next) prefetch(next + d - 1);
  double acc[8];
  _mm512_storeu_pd(acc, q);
  return finish_dot(acc, x, v, k, d);
}

template <bool kShrink, class S>
__attribute__((target("avx512f"))) inline __m512d update8(const S* x, Index i, __m512d diff,
                                                       __m512d alpha, __m512d c, __m512d inv_N,
                                                       double* v, const double* g0,
                                                       double* delta) {
  const __m512d u = _mm512_mul_pd(diff, load8(x + i));
  const __m512d dk = _mm512_loadu_pd(delta + i);
  const __m512d g = _mm512_add_pd(_mm512_loadu_pd(g0 + i), _mm512_mul_pd(dk, inv_N));
  __m512d vk = _mm512_loadu_pd(v + i);
  if (kShrink) vk = _mm512_mul_pd(alpha, vk);
  const __m512d vn = _mm512_sub_pd(vk, _mm512_mul_pd(c, _mm512_add_pd(u, g)));
  _mm512_storeu_pd(v + i, vn);
  _mm512_storeu_pd(delta + i, _mm512_add_pd(dk, u));
  return vn;
}

template <bool kShrink, class S>
DSAGA_AVX512 void update_avx512(const S* __restrict x, Index d, double diff, double alpha,
                                double c, double inv_N, double* __restrict v,
                                const double* __restrict g0, double* __restrict delta) {
  const __m512d vdiff = _mm512_set1_pd(diff), valpha = _mm512_set1_pd(alpha),
                vc = _mm512_set1_pd(c), vinv_N = _mm512_set1_pd(inv_N);
  Index k = 0;
  for (; k + 16 <= d; k += 16) {
    update8<kShrink>(x, k, vdiff, valpha, vc, vinv_N, v, g0, delta);
    update8<kShrink>(x, k + 8, vdiff, valpha, vc, vinv_N, v, g0, delta);
  }
  for (; k + 8 <= d; k += 8) update8<kShrink>(x, k, vdiff, valpha, vc, vinv_N, v, g0, delta);
  for (; k < d; ++k) update_one<kShrink>(x, k, diff, alpha, c, inv_N, v, g0, delta);
}

// update_avx512, then <xn, v> on the updated entries, in one pass (see update_dot_portable).
template <bool kShrink, class S>
DSAGA_AVX512 double update_dot_avx512(const S* __restrict x, Index d, double diff, double alpha,
                                      double c, double inv_N, double* __restrict v,
                                      const double* __restrict g0, double* __restrict delta,
                                      const S* __restrict xn, const S* far) {
  const __m512d vdiff = _mm512_set1_pd(diff), valpha = _mm512_set1_pd(alpha),
                vc = _mm512_set1_pd(c), vinv_N = _mm512_set1_pd(inv_N);
  __m512d q = _mm512_setzero_pd();
  Index k = 0;
  for (; k + 8 <= d; k += 8) {
    if (far) prefetch(far + k);
    const __m512d vn = update8<kShrink>(x, k, vdiff, valpha, vc, vinv_N, v, g0, delta);
    q = _mm512_add_pd(q, _mm512_mul_pd(load8(xn + k), vn));
  }
  if (far) prefetch(far + d - 1);
  for (Index t = k; t < d; ++t) update_one<kShrink>(x, t, diff, alpha, c, inv_N, v, g0, delta);
  double acc[8];
  _mm512_storeu_pd(acc, q);
  return finish_dot(acc, xn, v, k, d);
}

#undef DSAGA_AVX512
#endif

// ---- dispatch ------------------------------------------------------------------------------

// Which build of the kernels runs. All give the same results bit for bit.
enum class Isa { portable, avx2, avx512 };

inline const char* name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "portable";
  }
}

// Whether this CPU runs a build (portable: always).
inline bool supported(Isa isa) {
#if DSAGA_SIMD_AVX2_DISPATCH
  __builtin_cpu_init();
  if (isa == Isa::avx512) return __builtin_cpu_supports("avx512f") != 0;
  if (isa == Isa::avx2) return __builtin_cpu_supports("avx2") != 0;
  return true;
#else
  return isa == Isa::portable;
#endif
}

// The widest build this CPU runs, read once per process: AVX-512F, then AVX2, else portable.
// DSAGA_SIMD=portable or DSAGA_SIMD=avx2 in the environment caps it.
inline Isa isa() {
  static const Isa chosen = [] {
    const char* cap = std::getenv("DSAGA_SIMD");
    if (cap != nullptr && std::strcmp(cap, "portable") == 0) return Isa::portable;
    const bool no512 = cap != nullptr && std::strcmp(cap, "avx2") == 0;
    if (!no512 && supported(Isa::avx512)) return Isa::avx512;
    if (supported(Isa::avx2)) return Isa::avx2;
    return Isa::portable;
  }();
  return chosen;
}

// `use` is isa(), read once per run() by the caller, or any build supported() (tests).
template <class S>
inline double dot(Isa use, const S* x, const double* v, Index d, const S* next) {
#if DSAGA_SIMD_AVX2_DISPATCH
  if (use == Isa::avx512) return dot_avx512(x, v, d, next);
  if (use == Isa::avx2) return dot_avx2(x, v, d, next);
#endif
  (void)use;
  return dot_portable(x, v, d, next);
}

template <bool kShrink, class S>
inline void update(Isa use, const S* x, Index d, double diff, double alpha, double c,
                   double inv_N, double* v, const double* g0, double* delta) {
#if DSAGA_SIMD_AVX2_DISPATCH
  if (use == Isa::avx512) return update_avx512<kShrink>(x, d, diff, alpha, c, inv_N, v, g0, delta);
  if (use == Isa::avx2) return update_avx2<kShrink>(x, d, diff, alpha, c, inv_N, v, g0, delta);
#endif
  (void)use;
  update_portable<kShrink>(x, d, diff, alpha, c, inv_N, v, g0, delta);
}

// update(), then dot(xn, v) on the result (bitwise the same as calling the two in turn), in one
// pass over v; requests `far`'s lines (may be null) as it goes.
template <bool kShrink, class S>
inline double update_dot(Isa use, const S* x, Index d, double diff, double alpha, double c,
                         double inv_N, double* v, const double* g0, double* delta, const S* xn,
                         const S* far) {
#if DSAGA_SIMD_AVX2_DISPATCH
  if (use == Isa::avx512) {
    return update_dot_avx512<kShrink>(x, d, diff, alpha, c, inv_N, v, g0, delta, xn, far);
  }
  if (use == Isa::avx2) {
    return update_dot_avx2<kShrink>(x, d, diff, alpha, c, inv_N, v, g0, delta, xn, far);
  }
#endif
  (void)use;
  return update_dot_portable<kShrink>(x, d, diff, alpha, c, inv_N, v, g0, delta, xn, far);
}

}  // namespace dsaga::simd
