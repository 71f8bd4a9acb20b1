// Element types of the kernels' buffers and their conversion to and from the accumulator.
//
// float16 and bfloat16 are stored as raw 16-bit words (uwe::half_t, uwe::bf16_t) and
// converted in registers, never copied whole into a wider type. Host and device share the
// bit-exact conversions below; on the device the hardware instructions are used instead.
// Rounding to 16 bits is round-to-nearest-even, NaN stays NaN, overflow gives inf.
#pragma once

#include <cstdint>
#include <cstring>

#include "common/abi.h"
#include "common/hd.h"

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

namespace uwe {

struct half_t {
  uint16_t bits;
};
struct bf16_t {
  uint16_t bits;
};

UWE_HD UWE_INLINE float bits_to_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

UWE_HD UWE_INLINE uint32_t float_to_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

// IEEE binary16 -> binary32, exact; branch-free so that host loops vectorise.
UWE_HD UWE_INLINE float half_bits_to_float(uint16_t h) {
#if defined(__CUDA_ARCH__)
  return __half2float(__ushort_as_half(h));
#else
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t magnitude = static_cast<uint32_t>(h & 0x7fffu) << 13;
  const uint32_t exponent = magnitude & 0x0f800000u;
  // Normal numbers: rebias the exponent by 127 - 15.
  uint32_t bits = magnitude + 0x38000000u;
  // inf / NaN: push the exponent to all ones.
  bits = exponent == 0x0f800000u ? bits + 0x38000000u : bits;
  // Subnormals (and zero): scale the mantissa as a float, which renormalises it.
  const float sub = bits_to_float(magnitude + 0x38800000u) - bits_to_float(0x38800000u);
  bits = exponent == 0 ? float_to_bits(sub) : bits;
  return bits_to_float(bits | sign);
#endif
}

UWE_HD UWE_INLINE uint16_t float_to_half_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __half_as_ushort(__float2half_rn(f));
#else
  const uint32_t x = float_to_bits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
  if (ax >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to inf
  if (ax < 0x38800000u) {
    // Result is subnormal or zero: add a magic number whose ulp is the half subnormal ulp,
    // letting the float adder round to nearest even.
    const float r = bits_to_float(ax) + bits_to_float(0x3f000000u);
    return static_cast<uint16_t>(sign | (float_to_bits(r) - 0x3f000000u));
  }
  const uint32_t odd = (ax >> 13) & 1u;
  const uint32_t rounded = ax + 0xc8000fffu + odd;  // rebias (-112 << 23) and round half to even
  return static_cast<uint16_t>(sign | (rounded >> 13));
#endif
}

UWE_HD UWE_INLINE float bf16_bits_to_float(uint16_t b) { return bits_to_float(static_cast<uint32_t>(b) << 16); }

UWE_HD UWE_INLINE uint16_t float_to_bf16_bits(float f) {
  const uint32_t x = float_to_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x0040u);  // quiet NaN
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

// load<A>(T): element -> accumulator type A. store<T>(A): accumulator -> element.
template <typename A>
UWE_HD UWE_INLINE A load(float v) { return static_cast<A>(v); }
template <typename A>
UWE_HD UWE_INLINE A load(double v) { return static_cast<A>(v); }
template <typename A>
UWE_HD UWE_INLINE A load(half_t v) { return static_cast<A>(half_bits_to_float(v.bits)); }
template <typename A>
UWE_HD UWE_INLINE A load(bf16_t v) { return static_cast<A>(bf16_bits_to_float(v.bits)); }

template <typename T>
struct Store;
template <>
struct Store<float> {
  template <typename A>
  UWE_HD static UWE_INLINE float apply(A v) { return static_cast<float>(v); }
};
template <>
struct Store<double> {
  template <typename A>
  UWE_HD static UWE_INLINE double apply(A v) { return static_cast<double>(v); }
};
template <>
struct Store<half_t> {
  template <typename A>
  UWE_HD static UWE_INLINE half_t apply(A v) { return half_t{float_to_half_bits(static_cast<float>(v))}; }
};
template <>
struct Store<bf16_t> {
  template <typename A>
  UWE_HD static UWE_INLINE bf16_t apply(A v) { return bf16_t{float_to_bf16_bits(static_cast<float>(v))}; }
};

template <typename T, typename A>
UWE_HD UWE_INLINE T store(A v) { return Store<T>::apply(v); }

}  // namespace uwe
