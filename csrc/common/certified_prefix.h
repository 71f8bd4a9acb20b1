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
// Mirrors uwe_kernels/distributed/kmeans.py (_prefix_pick), which does the same
// across ranks. cuda/certified_draw.cuh runs the per-thread steps below on one block; CPU tests
// run the same steps through `certified_pick`, the block emulated thread by thread.
#pragma once

#include <cstdint>
#include <vector>

#include "common/d2_sampling.h"
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

// ---- The per-thread steps of the parallel draw. One block of `threads` threads; chunks of
// 2 * threads rows. The device runs them with one thread each and shared-memory scans; the host
// model below runs the same steps in a loop, so the CPU tests cover the device's arithmetic.

// Thread tid's run of consecutive chunks [*c0, *c1) out of nb.
UWE_HD inline void chunk_run(int64_t tid, int64_t threads, int64_t nb, int64_t* c0, int64_t* c1) {
  const int64_t per = (nb + threads - 1) / threads;
  *c0 = tid * per < nb ? tid * per : nb;
  *c1 = *c0 + per < nb ? *c0 + per : nb;
}

UWE_HD inline double run_sum(const double* sums, int64_t c0, int64_t c1) {
  double s = 0.0;
  for (int64_t c = c0; c < c1; ++c) s += sums[c];
  return s;
}

// One Hillis-Steele step of an inclusive scan: v[i] += v[i - offset] for every i >= offset, all
// reads before all writes (the device separates them with a barrier).
UWE_HD inline double scan_step_add(const double* v, int64_t i, int64_t offset) {
  return i >= offset ? v[i - offset] : 0.0;
}

// In a thread's run starting at prefix `start`: the chunk whose end prefix first exceeds target
// and the prefix before it (*chunk_start); -1 when none does.
UWE_HD inline int64_t chunk_in_run(const double* sums, int64_t c0, int64_t c1, double start, double target,
                                   double* chunk_start) {
  double s = start;
  for (int64_t c = c0; c < c1; ++c) {
    const double next = s + sums[c];
    if (next > target) {
      *chunk_start = s;
      return c;
    }
    s = next;
  }
  return -1;
}

// Thread tid's two rows 2 tid, 2 tid + 1 of the chunk: from the chunk's start prefix, the exclusive
// and inclusive scans of the row pairs at tid, and the first row's value, the prefixes before
// row 2 tid, at it, and at row 2 tid + 1.
struct PairPrefixes {
  double before, at0, at1;
};
UWE_HD inline PairPrefixes pair_prefixes(int64_t tid, double start, double pairs_before, double pairs_through,
                                         double v0) {
  return {tid > 0 ? start + pairs_before : start, start + (pairs_before + v0), start + pairs_through};
}

struct DrawResult {
  int64_t pick;  // -1: S is 0 (or NaN), draw uniformly
  bool exact;    // the sequential chain decided (a close call, or forced)
};

// The device's draw run on the host, step by step, the exact chain being the CPU's D2Sampler.
// sums [ceil(n / (2 threads))] holds the chunk sums (any order: here sequential), scan [threads]
// is workspace.
template <class Acc>
inline DrawResult certified_pick(const Acc* D, int64_t n, double r, int64_t threads, double* sums, double* scan,
                                 bool force_exact) {
  const int64_t chunk = 2 * threads;
  const int64_t nb = (n + chunk - 1) / chunk;
  for (int64_t b = 0; b < nb; ++b) {
    sums[b] = 0.0;
    for (int64_t i = b * chunk; i < n && i < (b + 1) * chunk; ++i) sums[b] += static_cast<double>(D[i]);
  }
  auto block_scan = [scan, threads]() {
    for (int64_t offset = 1; offset < threads; offset *= 2)
      for (int64_t i = threads - 1; i >= offset; --i) scan[i] += scan_step_add(scan, i, offset);
  };
  for (int64_t tid = 0; tid < threads; ++tid) {
    int64_t c0, c1;
    chunk_run(tid, threads, nb, &c0, &c1);
    scan[tid] = run_sum(sums, c0, c1);
  }
  block_scan();
  const double total = scan[threads - 1];
  if (!(total > 0.0)) return {-1, false};  // non-negative terms: 0 (or NaN) in every order
  const double target = r * total;
  const double margin = chain_error_bound(n, total);
  int64_t found = -1;
  for (int64_t owner = 0; owner < threads && !force_exact && found < 0; ++owner) {
    const double before_run = owner > 0 ? scan[owner - 1] : 0.0;
    if (!(before_run <= target && scan[owner] > target)) continue;
    int64_t c0, c1;
    chunk_run(owner, threads, nb, &c0, &c1);
    double start = 0.0;
    const int64_t c = chunk_in_run(sums, c0, c1, before_run, target, &start);
    if (c < 0) break;
    std::vector<double> v0s(threads);
    for (int64_t tid = 0; tid < threads; ++tid) {
      const int64_t i0 = c * chunk + 2 * tid;
      v0s[tid] = i0 < n ? static_cast<double>(D[i0]) : 0.0;
      scan[tid] = v0s[tid] + (i0 + 1 < n ? static_cast<double>(D[i0 + 1]) : 0.0);
    }
    block_scan();
    for (int64_t tid = 0; tid < threads && found < 0; ++tid) {
      const int64_t i0 = c * chunk + 2 * tid;
      const PairPrefixes q = pair_prefixes(tid, start, tid > 0 ? scan[tid - 1] : 0.0, scan[tid], v0s[tid]);
      if (i0 < n && q.at0 > target) found = certified(target, q.before, q.at0, margin) ? i0 : -2;
      else if (i0 + 1 < n && q.at1 > target) found = certified(target, q.at0, q.at1, margin) ? i0 + 1 : -2;
    }
    break;
  }
  if (found >= 0) return {found, false};
  return {D2Sampler()(D, nullptr, n, 0, r), true};  // total > 0 in every order: never the uniform branch
}

}  // namespace draw
}  // namespace uwe
