// The dense C = 1 kernels of the SAGA step (saga.cpp), and the one place that knows about
// instruction sets. Private to the library.
//
// Two builds of each kernel:
//  - portable: 16-byte vector-extension lanes (`Pair`), native on every SIMD target this library
//    meets (SSE2 on baseline x86-64, NEON on aarch64; scalar code where there is none), so the
//    default build is vectorised without -march;
//  - x86-64 with GCC or Clang only: 32-byte AVX2 lanes, compiled with a per-function target
//    attribute and chosen at run time (__builtin_cpu_supports), so a packaged build without
//    -march uses AVX2 where the CPU has it. No other file has an #if for it.
//
// Both builds give bitwise the same results. Every entry of the update is computed with the same
// operations in the same order whatever the lane width, and the dot product keeps the same eight
// partial sums (entry k goes to sum k % 8) combined in the same tree. The AVX2 build deliberately
// does not enable FMA: a fused multiply-add rounds once instead of twice, which would make the
// iterates depend on the CPU the agent happens to run on (by about one ulp per step; harmless for
// convergence, but it would break the bitwise reproducibility saga.cpp promises within a build).
//
// DSAGA_SIMD=portable in the environment disables the AVX2 build (read once per process), e.g.
// to measure what it gains.
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
template <bool kShrink, class S>
void update_portable(const S* __restrict x, Index d, double diff, double alpha, double c,
                     double inv_N, double* __restrict v, const double* __restrict g0,
                     double* __restrict delta) {
  Index k = 0;
#if DSAGA_PAIRS
  const auto two = [&](Index i) {
    const Pair u = diff * pair_at(x + i);
    const Pair dk = pair_at(delta + i);
    const Pair g = pair_at(g0 + i) + dk * inv_N;
    const Pair vk = kShrink ? alpha * pair_at(v + i) : pair_at(v + i);
    pair_at(v + i) = vk - c * (u + g);
    pair_at(delta + i) = dk + u;
  };
  for (; k + 4 <= d; k += 4) {  // unrolled by hand: -O2 does not unroll
    two(k);
    two(k + 2);
  }
#endif
  for (; k < d; ++k) update_one<kShrink>(x, k, diff, alpha, c, inv_N, v, g0, delta);
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

// Entries i..i+3 of update_portable, with the same operations in the same order (no FMA).
template <bool kShrink, class S>
__attribute__((target("avx2"))) inline void update4(const S* x, Index i, __m256d diff,
                                                    __m256d alpha, __m256d c, __m256d inv_N,
                                                    double* v, const double* g0, double* delta) {
  const __m256d u = _mm256_mul_pd(diff, load4(x + i));
  const __m256d dk = _mm256_loadu_pd(delta + i);
  const __m256d g = _mm256_add_pd(_mm256_loadu_pd(g0 + i), _mm256_mul_pd(dk, inv_N));
  __m256d vk = _mm256_loadu_pd(v + i);
  if (kShrink) vk = _mm256_mul_pd(alpha, vk);
  _mm256_storeu_pd(v + i, _mm256_sub_pd(vk, _mm256_mul_pd(c, _mm256_add_pd(u, g))));
  _mm256_storeu_pd(delta + i, _mm256_add_pd(dk, u));
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

#undef DSAGA_AVX2
#endif

// ---- dispatch ------------------------------------------------------------------------------

// True when the AVX2 kernels run: x86-64, a CPU with AVX2, and not DSAGA_SIMD=portable.
inline bool wide() {
#if DSAGA_SIMD_AVX2_DISPATCH
  static const bool avx2 = [] {
    const char* choice = std::getenv("DSAGA_SIMD");
    if (choice != nullptr && std::strcmp(choice, "portable") == 0) return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
  }();
  return avx2;
#else
  return false;
#endif
}

// `use_wide` is wide(), read once per run() by the caller.
template <class S>
inline double dot(bool use_wide, const S* x, const double* v, Index d, const S* next) {
#if DSAGA_SIMD_AVX2_DISPATCH
  if (use_wide) return dot_avx2(x, v, d, next);
#endif
  (void)use_wide;
  return dot_portable(x, v, d, next);
}

template <bool kShrink, class S>
inline void update(bool use_wide, const S* x, Index d, double diff, double alpha, double c,
                   double inv_N, double* v, const double* g0, double* delta) {
#if DSAGA_SIMD_AVX2_DISPATCH
  if (use_wide) return update_avx2<kShrink>(x, d, diff, alpha, c, inv_N, v, g0, delta);
#endif
  (void)use_wide;
  update_portable<kShrink>(x, d, diff, alpha, c, inv_N, v, g0, delta);
}

}  // namespace dsaga::simd
