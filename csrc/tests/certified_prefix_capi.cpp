// C entry points over csrc/common/certified_prefix.h for python_tests/test_certified_prefix.py,
// which compiles this file on its own (no pybind11, no package build) and calls it through ctypes.
#include <cstdint>
#include <vector>

#include "common/certified_prefix.h"

namespace {

template <class Acc>
void draw_all(const Acc* D, int64_t n, const double* r, int64_t draws, int64_t threads, int force_exact,
              int64_t* picks, uint8_t* exact) {
  std::vector<double> sums((n + 2 * threads - 1) / (2 * threads) + 1), scan(threads);
  for (int64_t t = 0; t < draws; ++t) {
    const uwe::draw::DrawResult out = uwe::draw::certified_pick(D, n, r[t], threads, sums.data(), scan.data(),
                                                                     force_exact != 0);
    picks[t] = out.pick;
    exact[t] = out.exact ? 1 : 0;
  }
}

}  // namespace

extern "C" {

// picks[t], exact[t] for draw r[t] over D [n] (float64 accumulators), a block of `threads`.
void certified_draws_f64(const double* D, int64_t n, const double* r, int64_t draws, int64_t threads, int force_exact,
                         int64_t* picks, uint8_t* exact) {
  draw_all(D, n, r, draws, threads, force_exact, picks, exact);
}

// The same over float32 D (the float accumulators of half and single precision pools).
void certified_draws_f32(const float* D, int64_t n, const double* r, int64_t draws, int64_t threads, int force_exact,
                         int64_t* picks, uint8_t* exact) {
  draw_all(D, n, r, draws, threads, force_exact, picks, exact);
}

double chain_error_bound(int64_t n_terms, double total) { return uwe::draw::chain_error_bound(n_terms, total); }
}
