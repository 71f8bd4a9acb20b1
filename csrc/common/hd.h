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
