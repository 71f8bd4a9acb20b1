// SplitMix64 (Steele, Lea and Flood 2014), the one random stream of every backend: draw t of
// the stream started at state `seed` is a pure function of (seed, t), so any thread count,
// any device and the Python reference (uwe_kernels/rng.py) produce the same numbers.
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

UWE_HD inline uint64_t splitmix64(uint64_t seed, uint64_t t) {
  uint64_t z = seed + (t + 1) * 0x9E3779B97F4A7C15ull;  // wraps mod 2^64
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// r_t in [0, 1): the top 53 bits of draw t.
UWE_HD inline double splitmix64_uniform(uint64_t seed, uint64_t t) {
  return static_cast<double>(splitmix64(seed, t) >> 11) * 0x1.0p-53;
}

// floor(r * m) clamped to m - 1: the uniform choice among m items with draw r.
UWE_HD inline int64_t uniform_rank(double r, int64_t m) {
  const int64_t k = static_cast<int64_t>(r * static_cast<double>(m));
  return k < m - 1 ? k : m - 1;
}

}  // namespace uwe
