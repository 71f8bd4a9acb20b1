// Contiguous float16 <-> float32 span conversion for the CPU kernels' hot loops: F16C
// instructions (8 lanes) when the build targets them, the bit-exact scalar conversions of
// common/dtype.h otherwise. Compilers do not vectorise half conversions on their own.
#pragma once

#include <cstdint>

#include "common/dtype.h"

#if defined(__F16C__) && defined(__AVX__)
#include <immintrin.h>
#endif

namespace uwe {

inline void halves_to_floats(const half_t* src, float* dst, int64_t len) {
  int64_t j = 0;
#if defined(__F16C__) && defined(__AVX__)
  for (; j + 8 <= len; j += 8)
    _mm256_storeu_ps(dst + j, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + j))));
#endif
  for (; j < len; ++j) dst[j] = half_bits_to_float(src[j].bits);
}

inline void floats_to_halves(const float* src, half_t* dst, int64_t len) {
  int64_t j = 0;
#if defined(__F16C__) && defined(__AVX__)
  for (; j + 8 <= len; j += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + j),
                     _mm256_cvtps_ph(_mm256_loadu_ps(src + j), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#endif
  for (; j < len; ++j) dst[j].bits = float_to_half_bits(src[j]);
}

}  // namespace uwe
