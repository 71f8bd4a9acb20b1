// UWE_HD marks functions compiled for both host and device (used as `UWE_HD inline`): __host__ __device__ under
// nvcc, nothing for the host compiler. Every per-row formula lives in such functions so
// the CPU tests exercise exactly the arithmetic the GPU runs.
#pragma once

#ifndef UWE_HD
#if defined(__CUDACC__)
#define UWE_HD __host__ __device__
#else
#define UWE_HD
#endif
#endif

// UWE_INLINE: force inlining of tiny helpers called in vectorised loops (a call that is
// not inlined stops the host vectoriser).
#ifndef UWE_INLINE
#if defined(__CUDACC__)
#define UWE_INLINE __forceinline__
#elif defined(__GNUC__)
#define UWE_INLINE inline __attribute__((always_inline))
#else
#define UWE_INLINE inline
#endif
#endif

// UWE_SIMD(clauses): `#pragma omp simd clauses` in host builds with OpenMP, nothing
// elsewhere. Float reductions need it to vectorise without -ffast-math.
#ifndef UWE_SIMD
#define UWE_PRAGMA_STR(x) #x
#if defined(_OPENMP) && !defined(__CUDACC__)
#define UWE_SIMD(clauses) _Pragma(UWE_PRAGMA_STR(omp simd clauses))
#else
#define UWE_SIMD(clauses)
#endif
#endif
