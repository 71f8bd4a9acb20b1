// SIMD building blocks of the CPU selection kernels (GCC/Clang vector extensions, 32-byte
// vectors: AVX2 with -march=native, two SSE halves otherwise).
//
//  * row loading: any element type and stride -> a contiguous Acc row (F16C for float16,
//    a shift for bfloat16), or the row in place when it already is one;
//  * sq_dist / dot over a row: 4 independent accumulators, then a fixed-order horizontal sum,
//    so a value never depends on the thread that computed it;
//  * the register-blocked tile of the labelled-set pass: 4 rows x W centres (W = 16 floats or
//    8 doubles), centres packed transposed in panels [len][W].
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#if defined(__F16C__) || defined(__FMA__)
#include <immintrin.h>
#endif

#include "common/dtype_convert.h"
#include "common/matrix_spec.h"

namespace uwe {
namespace cpu {

template <class Acc>
struct Simd;

template <>
struct Simd<float> {
  typedef float V __attribute__((vector_size(32)));
  typedef int32_t I __attribute__((vector_size(32)));
  static constexpr int L = 8;
};

template <>
struct Simd<double> {
  typedef double V __attribute__((vector_size(32)));
  typedef int64_t I __attribute__((vector_size(32)));
  static constexpr int L = 4;
};

template <class V, class T>
inline V vload(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}

template <class V, class T>
inline void vstore(T* p, V v) {
  std::memcpy(p, &v, sizeof(V));
}

template <class Acc>
inline typename Simd<Acc>::V vbroadcast(Acc x) {
  return typename Simd<Acc>::V{} + x;
}

template <class Acc>
inline Acc hsum(typename Simd<Acc>::V v) {
  Acc s = v[0];
  for (int l = 1; l < Simd<Acc>::L; ++l) s += v[l];
  return s;
}

// ------------------------------------------------------------------ element sources
// A source reads L elements of one element type as an Acc vector (vec) or one element (one).
// AccSrc reads Acc rows; F16Src and BF16Src read float16/bfloat16 rows in place (float Acc).
typedef uint16_t U16x8 __attribute__((vector_size(16)));
typedef uint32_t U32x8 __attribute__((vector_size(32)));

template <class Acc>
struct AccSrc {
  using T = Acc;
  using A = Acc;
  static typename Simd<Acc>::V vec(const T* p) { return vload<typename Simd<Acc>::V>(p); }
  static Acc one(const T* p) { return *p; }
};
using F32Src = AccSrc<float>;

struct F16Src {
  using T = uint16_t;
  using A = float;
  static Simd<float>::V vec(const T* p) {
#if defined(__F16C__)
    const __m256 v = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return vload<Simd<float>::V>(&v);
#else
    Simd<float>::V v;
    for (int l = 0; l < 8; ++l) v[l] = half_bits_to_float(p[l]);
    return v;
#endif
  }
  static float one(const T* p) { return half_bits_to_float(*p); }
};

struct BF16Src {
  using T = uint16_t;
  using A = float;
  static Simd<float>::V vec(const T* p) {
    U16x8 h;
    std::memcpy(&h, p, sizeof h);
    const U32x8 w = __builtin_convertvector(h, U32x8) << 16;
    return vload<Simd<float>::V>(&w);
  }
  static float one(const T* p) { return bf16_bits_to_float(*p); }
};

// ------------------------------------------------------------------ the row sum
// a * b + c for scalars and vectors, fused (one rounding) where the target has FMA: written out
// rather than left to the compiler's contraction choices, which may differ between call sites
// and so between passes.
template <class T>
inline T fmadd(T a, T b, T c) {
#if defined(__FMA__)
  if constexpr (std::is_floating_point_v<T>)
    return std::fma(a, b, c);
  else if constexpr (sizeof(a[0]) == 4)
    return (T)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
  else
    return (T)_mm256_fmadd_pd((__m256d)a, (__m256d)b, (__m256d)c);
#else
  return a * b + c;
#endif
}

// acc plus one term: (x - c)^2 (Diff) or x * c, for scalars and vectors alike.
template <bool Diff, class T>
inline T add_term(T acc, T x, T c) {
  if (Diff) {
    const T t = x - c;
    return fmadd(t, t, acc);
  }
  return fmadd(x, c, acc);
}

// The one summation order of every CPU distance and dot product (per-pick pass, pruned
// engine, labelled-set tiles): term k goes to lane k % L of accumulator (k / L) % 4 while
// whole blocks of 4L remain, the leftover blocks of L to accumulator 0, then
// hsum((a0 + a1) + (a2 + a3)) lane by lane, then the scalar tail in order.
// Elements between early-exit checks (a check costs a horizontal sum); a multiple of 4L.
constexpr int64_t kCheckEvery = 128;

// sum over k < d of the terms of row x (read through Src) and centre c. Diff sums are
// monotone in their terms (round-to-nearest never decreases a sum of non-negative terms), so
// a partial sum reaching `bound` is returned at once: a lower bound of the full value, and
// "not below bound" is all a caller comparing with `bound` needs. `read` counts elements read.
template <class Src, bool Diff>
inline typename Src::A row_sum(const typename Src::T* x, const typename Src::A* c, int64_t d,
                               typename Src::A bound, int64_t& read) {
  using Acc = typename Src::A;
  using V = typename Simd<Acc>::V;
  constexpr int64_t L = Simd<Acc>::L;
  V a0{}, a1{}, a2{}, a3{};
  const int64_t full = d / (4 * L) * (4 * L);
  int64_t k = 0;
  while (k < full) {  // segments of kCheckEvery elements, a check between two
    const int64_t end = std::min(full, k + kCheckEvery);
    for (; k < end; k += 4 * L) {
      a0 = add_term<Diff>(a0, Src::vec(x + k), vload<V>(c + k));
      a1 = add_term<Diff>(a1, Src::vec(x + k + L), vload<V>(c + k + L));
      a2 = add_term<Diff>(a2, Src::vec(x + k + 2 * L), vload<V>(c + k + 2 * L));
      a3 = add_term<Diff>(a3, Src::vec(x + k + 3 * L), vload<V>(c + k + 3 * L));
    }
    if (Diff && k < d) {
      const Acc partial = hsum<Acc>((a0 + a1) + (a2 + a3));
      if (partial >= bound) {
        read += k;
        return partial;
      }
    }
  }
  for (; k + L <= d; k += L) a0 = add_term<Diff>(a0, Src::vec(x + k), vload<V>(c + k));
  Acc s = hsum<Acc>((a0 + a1) + (a2 + a3));
  for (; k < d; ++k) s = add_term<Diff>(s, Src::one(x + k), c[k]);
  read += d;
  return s;
}

// |x - c|^2 and x . c over contiguous Acc rows, full values.
template <class Acc>
inline Acc sq_dist(const Acc* x, const Acc* c, int64_t d) {
  int64_t read = 0;
  return row_sum<AccSrc<Acc>, true>(x, c, d, std::numeric_limits<Acc>::infinity(), read);
}

template <class Acc>
inline Acc dot(const Acc* x, const Acc* c, int64_t d) {
  int64_t read = 0;
  return row_sum<AccSrc<Acc>, false>(x, c, d, Acc(0), read);
}

// ------------------------------------------------------------------ strided matrices
// A matrix spec (common/matrix_spec.h) with the CPU kernels' row readers.
struct Matrix : MatrixSpec {
  Matrix() = default;
  Matrix(const MatrixSpec& m) : MatrixSpec(m) {}  // NOLINT: a spec is a matrix

  bool unit_cols() const { return cols <= 1 || stride1 == dtype_size(dtype); }

  // The row as Acc values in place (no copy), or nullptr when it must be converted.
  template <class Acc>
  const Acc* in_place(int64_t i) const {
    const bool same = (sizeof(Acc) == 4 && dtype == kFloat32) || (sizeof(Acc) == 8 && dtype == kFloat64);
    const char* p = row(i);
    if (!same || !unit_cols() || reinterpret_cast<uintptr_t>(p) % sizeof(Acc) != 0) return nullptr;
    return reinterpret_cast<const Acc*>(p);
  }

  // Row i converted into out[0, cols).
  template <class Acc>
  void load_row(int64_t i, Acc* out) const {
    const char* p = row(i);
    const int64_t d = cols;
    if (!unit_cols()) {
      for (int64_t k = 0; k < d; ++k) out[k] = load_as<Acc>(p + k * stride1, dtype);
      return;
    }
    switch (dtype) {
      case kFloat32:
        if (sizeof(Acc) == 4) {
          std::memcpy(out, p, d * sizeof(float));
        } else {
          const float* x = reinterpret_cast<const float*>(p);
          for (int64_t k = 0; k < d; ++k) out[k] = static_cast<Acc>(x[k]);
        }
        return;
      case kFloat64:
        if (sizeof(Acc) == 8) {
          std::memcpy(out, p, d * sizeof(double));
        } else {
          const double* x = reinterpret_cast<const double*>(p);
          for (int64_t k = 0; k < d; ++k) out[k] = static_cast<Acc>(x[k]);
        }
        return;
      case kFloat16:
        convert_halves<F16Src>(reinterpret_cast<const uint16_t*>(p), out, d);
        return;
      default:
        convert_halves<BF16Src>(reinterpret_cast<const uint16_t*>(p), out, d);
        return;
    }
  }

  template <class Src, class Acc>
  static void convert_halves(const uint16_t* x, Acc* out, int64_t d) {
    int64_t k = 0;
    if (sizeof(Acc) == 4) {
      for (; k + 8 <= d; k += 8) vstore(reinterpret_cast<float*>(out) + k, Src::vec(x + k));
    }
    for (; k < d; ++k) out[k] = static_cast<Acc>(Src::one(x + k));
  }
};

// ------------------------------------------------------------------ tile microkernel
// out[r][h] = row_sum of row r against centre h, for 4 rows (leading dimension ldx) and 2
// centres (leading dimension ldc), all Acc: the labelled-set pass's register tile. Each
// accumulator of row_sum is formed on its own (one phase per accumulator, the same terms in the
// same order), so every value is bit-identical to row_sum's.
template <class Acc, bool Diff>
inline void tile_4x2(const Acc* x, int64_t ldx, const Acc* c, int64_t ldc, int64_t d, Acc out[4][2]) {
  using V = typename Simd<Acc>::V;
  constexpr int64_t L = Simd<Acc>::L;
  const int64_t full = d / (4 * L) * (4 * L);
  const int64_t blocks_end = full + (d - full) / L * L;
  V part[4][4][2];
  for (int64_t j = 0; j < 4; ++j) {
    V s[4][2] = {};
    const int64_t end = j == 0 ? blocks_end : full;
    for (int64_t k = j * L; k < end; k += (k < full ? 4 * L : L)) {
      const V c0 = vload<V>(c + k), c1 = vload<V>(c + ldc + k);
      for (int r = 0; r < 4; ++r) {
        const V xr = vload<V>(x + r * ldx + k);
        s[r][0] = add_term<Diff>(s[r][0], xr, c0);
        s[r][1] = add_term<Diff>(s[r][1], xr, c1);
      }
    }
    for (int r = 0; r < 4; ++r) part[j][r][0] = s[r][0], part[j][r][1] = s[r][1];
  }
  for (int r = 0; r < 4; ++r)
    for (int h = 0; h < 2; ++h) {
      Acc v = hsum<Acc>((part[0][r][h] + part[1][r][h]) + (part[2][r][h] + part[3][r][h]));
      for (int64_t k = blocks_end; k < d; ++k) v = add_term<Diff>(v, x[r * ldx + k], c[h * ldc + k]);
      out[r][h] = v;
    }
}

// Vector form of mul_rn (common/distance.h): the product is rounded before it is used.
template <class V>
inline V vmul_rn(V a, V b) {
  V p = a * b;
  __asm__("" : "+m"(p));
  return p;
}

}  // namespace cpu
}  // namespace uwe
