// A C entry point over csrc/common/sketch_bound.h for python_tests/test_sketch.py, which
// compiles it on its own (no pybind11, no package build) and calls it through ctypes.
#include <cstdint>

#include "common/sketch_bound.h"

extern "C" {

// out[i] = 1 when row i keeps D[i] against the centre row c.
void sketch_keeps_rows(const float* z, const float* r, const float* slack, int64_t n, int64_t k, int64_t c,
                       float scale, float tau, const double* D, uint8_t* out) {
  const float centre_slack = slack[c] + tau;
  for (int64_t i = 0; i < n; ++i) {
    const float bound = uwe::sketch_bound(z + i * k, r[i], z + c * k, r[c], k);
    out[i] = uwe::sketch_keeps(bound, D[i], scale, slack[i], centre_slack) ? 1 : 0;
  }
}
}
