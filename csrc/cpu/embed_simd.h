// Explicit SIMD for the CPU kernels' hot loops, each with a portable fallback:
// float16 <-> float32 span conversion (F16C; compilers do not vectorise half conversions
// on their own) and float32 row scaling with streaming stores (AVX), which write outputs
// larger than the caches without first reading each destination line.
#pragma once

#include <cstdint>

#include "common/dtype.h"

#if defined(__AVX__)
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

// dst[j] = w * src[j] for j < d with non-temporal stores; returns sum(src * 0), NaN when
// the row holds NaN or inf, and sets top = max |src[j]| (NaN ignored). Call stream_fence()
// before other threads read dst.
inline float scale_stream_f32(const float* src, int64_t d, float w, float* dst, float& top) {
  float probe = 0, big = 0;
  int64_t j = 0;
  const auto scalar = [&](int64_t k) {
    const float x = src[k];
    probe += x * 0.0f;
    const float ax = x < 0 ? -x : x;
    big = ax > big ? ax : big;
    dst[k] = w * x;
  };
#if defined(__AVX__)
  for (; j < d && (reinterpret_cast<uintptr_t>(dst + j) & 31u); ++j) scalar(j);
  const __m256 vw = _mm256_set1_ps(w), zero = _mm256_setzero_ps(), sign = _mm256_set1_ps(-0.0f);
  __m256 vp = _mm256_setzero_ps(), vt = _mm256_setzero_ps();
  for (; j + 8 <= d; j += 8) {
    const __m256 x = _mm256_loadu_ps(src + j);
    vp = _mm256_add_ps(vp, _mm256_mul_ps(x, zero));
    vt = _mm256_max_ps(vt, _mm256_andnot_ps(sign, x));
    _mm256_stream_ps(dst + j, _mm256_mul_ps(vw, x));
  }
  alignas(32) float lanes[8], tops[8];
  _mm256_store_ps(lanes, vp);
  _mm256_store_ps(tops, vt);
  for (int l = 0; l < 8; ++l) {
    probe += lanes[l];
    big = tops[l] > big ? tops[l] : big;
  }
#endif
  for (; j < d; ++j) scalar(j);
  top = big;
  return probe;
}

inline void stream_fence() {
#if defined(__AVX__)
  _mm_sfence();
#endif
}

}  // namespace uwe
