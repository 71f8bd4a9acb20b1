// The k-means++ draw with its prefix sums formed in parallel, picks unchanged.
//
// The rule (API.md): target = r * S, pick the first i whose float64 prefix sum
// P_i = D_0 + ... + D_i, added left to right, exceeds target (S = P_{n-1}; the last positive
// row when none does; uniform when S = 0). That chain is n dependent additions. Here the
// prefix values are formed in any order instead: chunk sums (parallel), starts of chunks from
// those, then the prefix inside one chunk. Every such value is a float64 sum of the same
// non-negative terms as the sequential one, so both lie within Higham's gamma_n * S of the exact
// sum and within `chain_error_bound` of each other (the product r * S included). A pick i is
// accepted when the target lies more than twice that bound inside (P^_{i-1}, P^_i]: then the
// sequential chain picks i too. Otherwise (a close call: target on a chunk boundary, within
// rounding of a prefix value, or overflow) the exact sequential chain decides.
// Mirrors uwe_kernels/distributed.py (_chain_error_bound, _prefix_pick), which does the same
// across ranks. The device kernels use these functions; CPU tests run the whole draw through
// `certified_pick`.
#pragma once

#include <cstdint>

#include "common/hd.h"

namespace uwe {
namespace draw {

constexpr double kUnitRoundoff = 1.1102230246251565404e-16;  // 2^-53
constexpr double kMinSubnormal = 4.9406564584124654418e-324;

// |any-order float64 prefix - sequential float64 prefix| for n_terms non-negative terms with
// computed total `total`: Higham's gamma_n for each order, doubled to cover two orders and the
// rounding of r * total, plus slack for underflow. NaN or inf totals give a bound nothing passes.
UWE_HD inline double chain_error_bound(int64_t n_terms, double total) {
  const double g = static_cast<double>(n_terms + 4) * kUnitRoundoff;
  return 4.0 * g / (1.0 - g) * total + 4.0 * kMinSubnormal;
}

// True when approximate prefix values before = P^_{i-1} and after = P^_i certify that the
// sequential chain picks i for the approximate target. False on NaN.
UWE_HD inline bool certified(double target, double before, double after, double margin) {
  return after - target > 2.0 * margin && target - before > 2.0 * margin;
}

// Sum of load(begin) .. load(end - 1) in pairwise order (a different order from the chain on
// purpose: the CPU model must not agree with the sequential sum by construction).
template <class Load>
UWE_HD inline double chunk_sum(const Load& load, int64_t begin, int64_t end) {
  if (end - begin <= 8) {
    double s = 0.0;
    for (int64_t i = begin; i < end; ++i) s += static_cast<double>(load(i));
    return s;
  }
  const int64_t mid = begin + (end - begin) / 2;
  return chunk_sum(load, begin, mid) + chunk_sum(load, mid, end);
}

// First i in [begin, end) whose prefix start + load(begin) + ... + load(i) exceeds target, with
// the prefix before it and at it; -1 when none does.
template <class Load>
UWE_HD inline int64_t first_above(const Load& load, int64_t begin, int64_t end, double start, double target,
                                  double* before, double* after) {
  double q = start;
  for (int64_t i = begin; i < end; ++i) {
    const double next = q + static_cast<double>(load(i));
    if (next > target) {
      *before = q;
      *after = next;
      return i;
    }
    q = next;
  }
  return -1;
}

// The draw rule itself on one thread: the sequential float64 chain. -1 when S = 0 (the caller
// draws uniformly among untaken rows).
template <class Load>
UWE_HD inline int64_t sequential_pick(const Load& load, int64_t n, double r) {
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(load(i));
  if (s == 0.0) return -1;
  double before = 0.0, after = 0.0;
  const int64_t i = first_above(load, 0, n, 0.0, r * s, &before, &after);
  if (i >= 0) return i;
  for (int64_t j = n - 1; j >= 0; --j)
    if (static_cast<double>(load(j)) > 0.0) return j;
  return -1;
}

struct DrawResult {
  int64_t pick;  // -1: S = 0, draw uniformly
  bool exact;    // the sequential chain decided (a close call, or forced)
};

// The whole parallel draw, chunk by chunk, as the device runs it (the device forms chunk sums
// and starts with threads; any order is covered). `sums` holds ceil(n / chunk) doubles.
template <class Load>
UWE_HD inline DrawResult certified_pick(const Load& load, int64_t n, double r, int64_t chunk, double* sums,
                                        bool force_exact) {
  const int64_t nb = (n + chunk - 1) / chunk;
  for (int64_t b = 0; b < nb; ++b) sums[b] = chunk_sum(load, b * chunk, (b + 1) * chunk < n ? (b + 1) * chunk : n);
  const double total = chunk_sum([sums](int64_t b) { return sums[b]; }, 0, nb);
  if (total == 0.0) return {-1, false};
  const double target = r * total;
  const double margin = chain_error_bound(n, total);
  double start = 0.0;
  for (int64_t b = 0; b < nb && !force_exact; ++b) {
    if (start + sums[b] > target) {
      double before = 0.0, after = 0.0;
      const int64_t end = (b + 1) * chunk < n ? (b + 1) * chunk : n;
      const int64_t i = first_above(load, b * chunk, end, start, target, &before, &after);
      if (i >= 0 && certified(target, before, after, margin)) return {i, false};
      break;
    }
    start += sums[b];
  }
  return {sequential_pick(load, n, r), true};
}

}  // namespace draw
}  // namespace uwe
