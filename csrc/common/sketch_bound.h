// Projection (sketch) bound of a squared distance, and the conservative skip test, shared by
// the CPU and CUDA selection engines (uwe_kernels/_sketch.py builds the sketch and holds the
// same test for numba; docs/internals.md, "Sketch bounds", has the proof).
//
// Per row x the sketch stores z_x = P^T (x - mu) (k floats), r_x = |(I - P P^T)(x - mu)| and
// slack_x (float, rounded up), which pays for the rounding of z and r. For every centre c:
//   |x - c|^2 >= |z_x - z_c|^2 + (r_x - r_c)^2,
// and a row whose computed bound reaches scale * D + slack_c + tau + slack_x keeps D: the
// brute-force distance, computed in any order, with or without FMA, cannot go below D.
// All arithmetic here is float (wider is also safe); D may be float or double.
#pragma once

#include <cfloat>
#include <cstdint>

#include "common/hd.h"

namespace uwe {

// sum over j = begin, begin + step, ... < end of (zx[j] - zc[j])^2: a lane's share of the
// bound (the CUDA form; the CPU runs all j in SIMD lanes).
UWE_HD inline float sketch_bound_terms(const float* zx, const float* zc, int64_t begin, int64_t end,
                                       int64_t step) {
  float s = 0.0f;
  for (int64_t j = begin; j < end; j += step) {
    const float t = zx[j] - zc[j];
    s += t * t;
  }
  return s;
}

// |z_x - z_c|^2 + (r_x - r_c)^2 over a sketch of width k.
UWE_HD inline float sketch_bound(const float* zx, float rx, const float* zc, float rc, int64_t k) {
  const float t = rx - rc;
  return sketch_bound_terms(zx, zc, 0, k, 1) + t * t;
}

// True when the row provably keeps its minimum distance D against the centre: no full
// distance needed. centre_slack = slack_c + tau, added once per centre. D = inf (nothing
// known yet) or any right-hand side that overflows never skips; a NaN bound never skips.
template <class Acc>
UWE_HD inline bool sketch_keeps(float bound, Acc D, float scale, float slack_x, float centre_slack) {
  const float rhs = (scale * static_cast<float>(D) + centre_slack) + slack_x;
  return bound >= rhs && rhs <= FLT_MAX;
}

}  // namespace uwe
