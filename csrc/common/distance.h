// Per-row distance arithmetic and tie rules shared by the CPU and CUDA selection kernels.
//
// Squared distances accumulate in Acc (float for float16/bfloat16/float32 pools, double for
// float64). Dense and UWE rows use the exact difference formula sum_k (x_k - c_k)^2; BADGE
// rows (a (outer) f) use |a_i|^2|f_i|^2 + |a_c|^2|f_c|^2 - 2 (a_i . a_c)(f_i . f_c) with the
// products rounded on their own, so that identical rows give exactly 0.
// Ties: lowest index wins, for maxima and minima alike.
#pragma once

#include <cstdint>

#ifndef UWE_HD
#ifdef __CUDACC__
#define UWE_HD __host__ __device__
#else
#define UWE_HD
#endif
#endif

namespace uwe {

// (v, i) beats (best_v, best_i) for an argmax: larger value, or equal value and lower index.
template <class Acc>
UWE_HD inline bool argmax_better(Acc v, int64_t i, Acc best_v, int64_t best_i) {
  return v > best_v || (v == best_v && i < best_i);
}

// (v, i) beats (best_v, best_i) for an argmin: smaller value, or equal value and lower index.
template <class Acc>
UWE_HD inline bool argmin_better(Acc v, int64_t i, Acc best_v, int64_t best_i) {
  return v < best_v || (v == best_v && i < best_i);
}

// a * b rounded to Acc on its own: never fused into a following add, so p - q cancels
// exactly when p and q were computed from the same numbers.
UWE_HD inline float mul_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  float p = a * b;
  __asm__("" : "+m"(p));
  return p;
#endif
}

UWE_HD inline double mul_rn(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dmul_rn(a, b);
#else
  double p = a * b;
  __asm__("" : "+m"(p));
  return p;
#endif
}

// BADGE squared distance from the factors: p = mul_rn(|a|^2, |f|^2) of each row and the two
// cross dot products. Clamped at 0 (cancellation may leave a tiny negative).
template <class Acc>
UWE_HD inline Acc factored_sq_dist(Acc p_row, Acc p_centre, Acc aa, Acc ff) {
  const Acc q = mul_rn(aa, ff);
  const Acc r = (p_row + p_centre) - (q + q);
  return r > Acc(0) ? r : Acc(0);
}

// Squared distance of one row to a centre, term by term over k = begin, begin + step, ...
// (the per-lane form of the CUDA kernels; the CPU runs the same terms in SIMD lanes).
// x(k) and c(k) yield the row's and the centre's k-th value.
template <class Acc, class X, class C>
UWE_HD inline Acc sq_dist_terms(X x, C c, int64_t begin, int64_t end, int64_t step) {
  Acc s = 0;
  for (int64_t k = begin; k < end; k += step) {
    const Acc t = x(k) - c(k);
    s += t * t;
  }
  return s;
}

}  // namespace uwe
