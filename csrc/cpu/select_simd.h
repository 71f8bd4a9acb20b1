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

#include <cstdint>
#include <cstring>
#include <limits>

#if defined(__F16C__)
#include <immintrin.h>
#endif

#include "common/dtype_convert.h"

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
// A source reads 8 (float) elements of one element type as a float vector; F64Src reads
// 4 doubles. Used by the streaming kernels to read float16/bfloat16 rows in place.
typedef uint16_t U16x8 __attribute__((vector_size(16)));
typedef uint32_t U32x8 __attribute__((vector_size(32)));

struct F32Src {
  using T = float;
  static Simd<float>::V load8(const T* p) { return vload<Simd<float>::V>(p); }
  static float load1(const T* p) { return *p; }
};

struct F16Src {
  using T = uint16_t;
  static Simd<float>::V load8(const T* p) {
#if defined(__F16C__)
    const __m256 v = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return vload<Simd<float>::V>(&v);
#else
    Simd<float>::V v;
    for (int l = 0; l < 8; ++l) v[l] = half_bits_to_float(p[l]);
    return v;
#endif
  }
  static float load1(const T* p) { return half_bits_to_float(*p); }
};

struct BF16Src {
  using T = uint16_t;
  static Simd<float>::V load8(const T* p) {
    U16x8 h;
    std::memcpy(&h, p, sizeof h);
    const U32x8 w = __builtin_convertvector(h, U32x8) << 16;
    return vload<Simd<float>::V>(&w);
  }
  static float load1(const T* p) { return bf16_bits_to_float(*p); }
};

// |x - c|^2 for a row read through Src (float accumulation).
template <class Src>
inline float sq_dist_src(const typename Src::T* x, const float* c, int64_t d) {
  using V = Simd<float>::V;
  V a0{}, a1{}, a2{}, a3{};
  int64_t k = 0;
  for (; k + 32 <= d; k += 32) {
    V t0 = Src::load8(x + k) - vload<V>(c + k);
    V t1 = Src::load8(x + k + 8) - vload<V>(c + k + 8);
    V t2 = Src::load8(x + k + 16) - vload<V>(c + k + 16);
    V t3 = Src::load8(x + k + 24) - vload<V>(c + k + 24);
    a0 += t0 * t0;
    a1 += t1 * t1;
    a2 += t2 * t2;
    a3 += t3 * t3;
  }
  for (; k + 8 <= d; k += 8) {
    V t0 = Src::load8(x + k) - vload<V>(c + k);
    a0 += t0 * t0;
  }
  float s = hsum<float>((a0 + a1) + (a2 + a3));
  for (; k < d; ++k) {
    const float t = Src::load1(x + k) - c[k];
    s += t * t;
  }
  return s;
}

// |x - c|^2 and x . c over contiguous Acc rows.
template <class Acc>
inline Acc sq_dist(const Acc* x, const Acc* c, int64_t d) {
  using V = typename Simd<Acc>::V;
  constexpr int L = Simd<Acc>::L;
  V a0{}, a1{}, a2{}, a3{};
  int64_t k = 0;
  for (; k + 4 * L <= d; k += 4 * L) {
    V t0 = vload<V>(x + k) - vload<V>(c + k);
    V t1 = vload<V>(x + k + L) - vload<V>(c + k + L);
    V t2 = vload<V>(x + k + 2 * L) - vload<V>(c + k + 2 * L);
    V t3 = vload<V>(x + k + 3 * L) - vload<V>(c + k + 3 * L);
    a0 += t0 * t0;
    a1 += t1 * t1;
    a2 += t2 * t2;
    a3 += t3 * t3;
  }
  for (; k + L <= d; k += L) {
    V t0 = vload<V>(x + k) - vload<V>(c + k);
    a0 += t0 * t0;
  }
  Acc s = hsum<Acc>((a0 + a1) + (a2 + a3));
  for (; k < d; ++k) {
    const Acc t = x[k] - c[k];
    s += t * t;
  }
  return s;
}

template <class Acc>
inline Acc dot(const Acc* x, const Acc* c, int64_t d) {
  using V = typename Simd<Acc>::V;
  constexpr int L = Simd<Acc>::L;
  V a0{}, a1{}, a2{}, a3{};
  int64_t k = 0;
  for (; k + 4 * L <= d; k += 4 * L) {
    a0 += vload<V>(x + k) * vload<V>(c + k);
    a1 += vload<V>(x + k + L) * vload<V>(c + k + L);
    a2 += vload<V>(x + k + 2 * L) * vload<V>(c + k + 2 * L);
    a3 += vload<V>(x + k + 3 * L) * vload<V>(c + k + 3 * L);
  }
  for (; k + L <= d; k += L) a0 += vload<V>(x + k) * vload<V>(c + k);
  Acc s = hsum<Acc>((a0 + a1) + (a2 + a3));
  for (; k < d; ++k) s += x[k] * c[k];
  return s;
}

// ------------------------------------------------------------------ strided matrices
// A 2-D array as numpy hands it over: byte strides (any sign, zero allowed), element code.
struct Matrix {
  const char* base = nullptr;
  int64_t rows = 0, cols = 0;
  int64_t stride0 = 0, stride1 = 0;  // bytes
  int dtype = kFloat32;

  const char* row(int64_t i) const { return base + i * stride0; }
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
      for (; k + 8 <= d; k += 8) vstore(reinterpret_cast<float*>(out) + k, Src::load8(x + k));
    }
    for (; k < d; ++k) out[k] = static_cast<Acc>(Src::load1(x + k));
  }
};

// ------------------------------------------------------------------ tile microkernel
// acc[r][h] (lanes = centres h*L .. h*L+L-1 of the panel) over k in [0, len):
//   Diff: sum_k (x[r][k] - c[k])^2     Dot: sum_k x[r][k] * c[k]
// x: 4 rows with leading dimension ldx; panel: [len][2L] (centres transposed).
template <class Acc, bool Diff>
inline void tile_4x2(const Acc* x, int64_t ldx, const Acc* panel, int64_t len,
                     typename Simd<Acc>::V acc[4][2]) {
  using V = typename Simd<Acc>::V;
  constexpr int L = Simd<Acc>::L;
  V s00{}, s01{}, s10{}, s11{}, s20{}, s21{}, s30{}, s31{};
  const Acc* x0 = x;
  const Acc* x1 = x + ldx;
  const Acc* x2 = x + 2 * ldx;
  const Acc* x3 = x + 3 * ldx;
  for (int64_t k = 0; k < len; ++k) {
    const V c0 = vload<V>(panel + k * 2 * L);
    const V c1 = vload<V>(panel + k * 2 * L + L);
    const V b0 = vbroadcast<Acc>(x0[k]);
    const V b1 = vbroadcast<Acc>(x1[k]);
    const V b2 = vbroadcast<Acc>(x2[k]);
    const V b3 = vbroadcast<Acc>(x3[k]);
    if (Diff) {
      V t;
      t = b0 - c0; s00 += t * t;
      t = b0 - c1; s01 += t * t;
      t = b1 - c0; s10 += t * t;
      t = b1 - c1; s11 += t * t;
      t = b2 - c0; s20 += t * t;
      t = b2 - c1; s21 += t * t;
      t = b3 - c0; s30 += t * t;
      t = b3 - c1; s31 += t * t;
    } else {
      s00 += b0 * c0; s01 += b0 * c1;
      s10 += b1 * c0; s11 += b1 * c1;
      s20 += b2 * c0; s21 += b2 * c1;
      s30 += b3 * c0; s31 += b3 * c1;
    }
  }
  acc[0][0] = s00; acc[0][1] = s01;
  acc[1][0] = s10; acc[1][1] = s11;
  acc[2][0] = s20; acc[2][1] = s21;
  acc[3][0] = s30; acc[3][1] = s31;
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
