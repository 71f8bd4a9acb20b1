// Row arithmetic of the pruned selection kernels: element loading for every pool dtype and one
// squared-distance routine with an exact early exit.
//
// sq_dist(x, c, d, bound) = sum_k (x_k - c_k)^2 accumulated in Acc over 2 SIMD vectors of
// lanes plus a scalar tail, reduced in a fixed order. Every partial result is a lower bound of
// the final one (adding non-negative terms with round-to-nearest never decreases a sum), so the
// routine may stop as soon as a checkpoint reaches `bound`: the caller learns "not below bound"
// without reading the rest of the row. A full evaluation is bit-identical on every call.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>

#include "common/dtype.h"

#if defined(__F16C__)
#include <immintrin.h>
#endif

namespace uwe {
namespace pruned {

// Element types and their conversions are the shared ones (common/dtype.h).
using Half = uwe::half_t;
using BFloat16 = uwe::bf16_t;
using PoolDtype = uwe::DType;
using uwe::kBFloat16;
using uwe::kFloat16;
using uwe::kFloat32;
using uwe::kFloat64;

template <class Acc>
inline Acc to_acc(Half v) {
  return static_cast<Acc>(half_bits_to_float(v.bits));
}
template <class Acc>
inline Acc to_acc(BFloat16 v) {
  return static_cast<Acc>(bf16_bits_to_float(v.bits));
}
template <class Acc>
inline Acc to_acc(float v) {
  return static_cast<Acc>(v);
}
template <class Acc>
inline Acc to_acc(double v) {
  return static_cast<Acc>(v);
}

template <class Acc>
struct Vec;
template <>
struct Vec<float> {
  typedef float V __attribute__((vector_size(32)));
  static constexpr int L = 8;
};
template <>
struct Vec<double> {
  typedef double V __attribute__((vector_size(32)));
  static constexpr int L = 4;
};

// L consecutive elements of type T as one Acc vector.
template <class T, class Acc>
inline typename Vec<Acc>::V load_vec(const T* p) {
  typename Vec<Acc>::V v;
  for (int k = 0; k < Vec<Acc>::L; ++k) v[k] = to_acc<Acc>(p[k]);
  return v;
}
template <>
inline Vec<float>::V load_vec<float, float>(const float* p) {
  Vec<float>::V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <>
inline Vec<double>::V load_vec<double, double>(const double* p) {
  Vec<double>::V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <>
inline Vec<float>::V load_vec<BFloat16, float>(const BFloat16* p) {
  typedef uint16_t U16 __attribute__((vector_size(16)));
  typedef uint32_t U32 __attribute__((vector_size(32)));
  U16 h;
  std::memcpy(&h, p, sizeof h);
  const U32 w = __builtin_convertvector(h, U32) << 16;
  Vec<float>::V v;
  std::memcpy(&v, &w, sizeof v);
  return v;
}
#if defined(__F16C__) && defined(__AVX__)
template <>
inline Vec<float>::V load_vec<Half, float>(const Half* p) {
  const __m256 w = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  Vec<float>::V v;
  std::memcpy(&v, &w, sizeof v);
  return v;
}
#endif

template <class Acc>
inline Acc reduce_lanes(typename Vec<Acc>::V a0, typename Vec<Acc>::V a1, Acc tail) {
  const typename Vec<Acc>::V s = a0 + a1;
  Acc r = 0;
  for (int k = 0; k < Vec<Acc>::L; ++k) r += s[k];
  return r + tail;
}

// Elements between early-exit checkpoints: a check costs a horizontal sum.
constexpr int64_t kCheckEvery = 128;

// Squared distance from row x (T, contiguous) to centre c (Acc, contiguous); may return a
// partial sum >= bound instead of the full one (pass +inf for the full value). `read` grows by
// the number of elements read. Not inlined, so every call site runs the same instructions
// and a full evaluation is bit-identical everywhere.
template <class T, class Acc>
__attribute__((noinline)) Acc sq_dist(const T* x, const Acc* c, int64_t d, Acc bound, int64_t& read) {
  using V = typename Vec<Acc>::V;
  constexpr int64_t L = Vec<Acc>::L;
  constexpr int64_t step = 2 * L;
  V a0 = {}, a1 = {};
  const int64_t full = d - d % step;
  int64_t k = 0;
  int64_t next_check = kCheckEvery;
  for (; k < full; k += step) {
    V c0, c1;
    std::memcpy(&c0, c + k, sizeof c0);
    std::memcpy(&c1, c + k + L, sizeof c1);
    const V t0 = load_vec<T, Acc>(x + k) - c0;
    const V t1 = load_vec<T, Acc>(x + k + L) - c1;
    a0 += t0 * t0;
    a1 += t1 * t1;
    if (k + step >= next_check && k + step < d) {
      const Acc partial = reduce_lanes<Acc>(a0, a1, Acc(0));
      if (partial >= bound) {
        read += k + step;
        return partial;
      }
      next_check += kCheckEvery;
    }
  }
  Acc tail = 0;
  for (; k < d; ++k) {
    const Acc t = to_acc<Acc>(x[k]) - c[k];
    tail += t * t;
  }
  read += d;
  return reduce_lanes<Acc>(a0, a1, tail);
}

// Squared norm of row x, the same summation shape (used for the max-norm first pick).
template <class T, class Acc>
Acc sq_norm(const T* x, int64_t d) {
  using V = typename Vec<Acc>::V;
  constexpr int64_t L = Vec<Acc>::L;
  V a0 = {}, a1 = {};
  const int64_t full = d - d % (2 * L);
  int64_t k = 0;
  for (; k < full; k += 2 * L) {
    const V t0 = load_vec<T, Acc>(x + k);
    const V t1 = load_vec<T, Acc>(x + k + L);
    a0 += t0 * t0;
    a1 += t1 * t1;
  }
  Acc tail = 0;
  for (; k < d; ++k) {
    const Acc t = to_acc<Acc>(x[k]);
    tail += t * t;
  }
  return reduce_lanes<Acc>(a0, a1, tail);
}

// Relative error bound of a computed squared distance (exact inputs, d terms, unit roundoff u):
// |computed - exact| <= (d + 3) u exact. Doubled, plus a floor for the gradual-underflow range.
template <class Acc>
inline double rel_error_bound(int64_t d) {
  return 2.0 * static_cast<double>(d + 16) * std::numeric_limits<Acc>::epsilon() * 0.5;
}
template <class Acc>
inline double abs_error_floor(int64_t d) {
  return 64.0 * static_cast<double>(d + 1) * static_cast<double>(std::numeric_limits<Acc>::min());
}

// Dense [n, d] pool rows of type T (unit inner stride, any row stride) for the engine:
// difference formula with early exit, relative error bound, no per-row slack.
template <class T, class AccT>
struct DenseRows {
  using Acc = AccT;
  const char* base;
  int64_t rows, d, row_stride;

  const T* row(int64_t i) const { return reinterpret_cast<const T*>(base + i * row_stride); }
  int64_t n() const { return rows; }
  int64_t width() const { return d; }
  int64_t centre_size() const { return d; }
  void load_centre(int64_t s, Acc* c) const {
    for (int64_t k = 0; k < d; ++k) c[k] = to_acc<Acc>(row(s)[k]);
  }
  Acc dist(int64_t i, const Acc* c, Acc bound, int64_t& read) const { return sq_dist<T, Acc>(row(i), c, d, bound, read); }
  Acc norm(int64_t i) const { return sq_norm<T, Acc>(row(i), d); }
  double slack(int64_t) const { return 0.0; }
  double rel() const { return rel_error_bound<Acc>(d); }
  double abs() const { return abs_error_floor<Acc>(d); }
  // The first kPrefetchBytes of row i towards the cache (early exit rarely reads more).
  void prefetch(int64_t i) const {
    constexpr int64_t kPrefetchBytes = 1024;
    const char* p = reinterpret_cast<const char*>(row(i));
    const int64_t bytes = std::min<int64_t>(d * static_cast<int64_t>(sizeof(T)), kPrefetchBytes);
    for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(p + b, 0, 1);
  }
};

}  // namespace pruned
}  // namespace uwe
