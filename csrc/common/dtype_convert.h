// Element types of the pools and their conversion to the accumulator type, shared by the
// CPU and CUDA kernels. float16 and bfloat16 are handled as raw 16-bit patterns so the
// same code compiles on the host, on the device and without any half-precision headers.
#pragma once

#include <cstdint>
#include <cstring>

#ifndef UWE_HD
#ifdef __CUDACC__
#define UWE_HD __host__ __device__
#else
#define UWE_HD
#endif
#endif

namespace uwe {

// Codes the Python adapters pass for an array's element type.
enum DtypeCode : int { kFloat16 = 0, kBFloat16 = 1, kFloat32 = 2, kFloat64 = 3 };

UWE_HD inline int dtype_size(int code) { return code == kFloat64 ? 8 : code == kFloat32 ? 4 : 2; }

UWE_HD inline float float_from_bits(uint32_t u) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

// IEEE binary16 -> binary32, exact for every input (subnormals, inf, NaN included).
UWE_HD inline float half_bits_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0) {
    const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-8f;  // 2^-24
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 31) return float_from_bits(sign | 0x7f800000u | (mantissa << 13));
  return float_from_bits(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

// bfloat16 is the top half of a binary32: widening is a shift.
UWE_HD inline float bf16_bits_to_float(uint16_t h) { return float_from_bits(static_cast<uint32_t>(h) << 16); }

// One element at `p` (of type `code`) as Acc (float or double).
template <class Acc>
UWE_HD inline Acc load_as(const void* p, int code) {
  switch (code) {
    case kFloat16: return static_cast<Acc>(half_bits_to_float(*static_cast<const uint16_t*>(p)));
    case kBFloat16: return static_cast<Acc>(bf16_bits_to_float(*static_cast<const uint16_t*>(p)));
    case kFloat32: return static_cast<Acc>(*static_cast<const float*>(p));
    default: return static_cast<Acc>(*static_cast<const double*>(p));
  }
}

}  // namespace uwe
