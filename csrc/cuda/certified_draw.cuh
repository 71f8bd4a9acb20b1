// The k-means++ draw on the device without the n-long sequential chain (common/certified_prefix.h
// says why the picks are unchanged):
//   chunk_sums_kernel  grid-wide: one block per chunk of kDrawChunk rows, its float64 sum;
//   certified_block_pick  one block of kDrawThreads: the chunk sums scanned in parallel, the chunk
//          holding the target found, its prefix values scanned in parallel, and the pick accepted
//          when the target lies certainly inside its interval. Returns -1 on a close call (the
//          caller then runs the exact chain), -2 when sum(D) is 0 or NaN (the caller draws uniformly).
// Every prefix value formed here is a float64 sum of exactly the terms D_0 .. D_i in some order,
// which is all the bound needs. Cost per pick: one read of D plus O(n / kDrawChunk) on one block.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "common/certified_prefix.h"

namespace uwe {
namespace cuda {

constexpr int kDrawChunk = 2048;
constexpr int kDrawThreads = 1024;
constexpr int kChunkSumThreads = 256;

// sums[b] = D[b * kDrawChunk] + ... (float64, any order) for every chunk b.
template <class Acc>
__global__ void chunk_sums_kernel(const Acc* D, int64_t n, double* sums) {
  __shared__ double part[kChunkSumThreads];
  const int64_t b0 = static_cast<int64_t>(blockIdx.x) * kDrawChunk;
  const int64_t end = b0 + kDrawChunk < n ? b0 + kDrawChunk : n;
  double s = 0.0;
  for (int64_t i = b0 + threadIdx.x; i < end; i += kChunkSumThreads) s += static_cast<double>(D[i]);
  part[threadIdx.x] = s;
  __syncthreads();
  for (int half = kChunkSumThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) part[threadIdx.x] += part[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) sums[blockIdx.x] = part[0];
}

// In-place inclusive scan of scan[0 .. kDrawThreads) (Hillis-Steele); all threads call it.
__device__ inline void block_inclusive_scan(double* scan) {
  for (int offset = 1; offset < kDrawThreads; offset *= 2) {
    const double add = draw::scan_step_add(scan, threadIdx.x, offset);
    __syncthreads();
    scan[threadIdx.x] += add;
    __syncthreads();
  }
}

// The certified pick for draw r over D [n] with chunk sums `sums` [nb]: the steps of
// draw::certified_pick, one thread each. Called by all kDrawThreads threads of one block; every
// thread gets the same result.
template <class Acc>
__device__ int64_t certified_block_pick(const Acc* D, int64_t n, const double* sums, int64_t nb, double r) {
  static_assert(kDrawChunk == 2 * kDrawThreads, "two rows per thread");
  __shared__ double scan[kDrawThreads];
  __shared__ int owner_s;
  __shared__ unsigned long long first_s;
  __shared__ int64_t chunk_s, pick_s;
  __shared__ double start_s;
  const int tid = threadIdx.x;
  int64_t c0, c1;
  draw::chunk_run(tid, kDrawThreads, nb, &c0, &c1);
  scan[tid] = draw::run_sum(sums, c0, c1);
  if (tid == 0) {
    owner_s = kDrawThreads;
    first_s = ~0ull;
    chunk_s = -1;
    pick_s = -1;
  }
  __syncthreads();
  block_inclusive_scan(scan);
  const double total = scan[kDrawThreads - 1];
  if (!(total > 0.0)) return -2;
  const double target = r * total;
  const double margin = draw::chain_error_bound(n, total);
  const double before_run = tid > 0 ? scan[tid - 1] : 0.0;
  if (before_run <= target && scan[tid] > target) atomicMin(&owner_s, tid);
  __syncthreads();
  if (tid == owner_s) {
    double start = 0.0;
    chunk_s = draw::chunk_in_run(sums, c0, c1, before_run, target, &start);
    start_s = start;
  }
  __syncthreads();
  const int64_t chunk = chunk_s;
  if (chunk < 0) return -1;  // rounding put the target between runs: a close call
  const int64_t i0 = chunk * kDrawChunk + 2 * tid;
  const double v0 = i0 < n ? static_cast<double>(D[i0]) : 0.0;
  const double pair = v0 + (i0 + 1 < n ? static_cast<double>(D[i0 + 1]) : 0.0);
  __syncthreads();  // every thread has read scan (before_run) above
  scan[tid] = pair;
  __syncthreads();
  block_inclusive_scan(scan);
  const draw::PairPrefixes q = draw::pair_prefixes(tid, start_s, tid > 0 ? scan[tid - 1] : 0.0, scan[tid], v0);
  int64_t mine = -1;
  if (i0 < n && q.at0 > target) mine = i0;
  else if (i0 + 1 < n && q.at1 > target) mine = i0 + 1;
  if (mine >= 0) atomicMin(&first_s, static_cast<unsigned long long>(mine));
  __syncthreads();
  if (mine >= 0 && static_cast<unsigned long long>(mine) == first_s) {
    const bool sure = mine == i0 ? draw::certified(target, q.before, q.at0, margin)
                                 : draw::certified(target, q.at0, q.at1, margin);
    pick_s = sure ? mine : -1;
  }
  __syncthreads();
  return pick_s;
}

}  // namespace cuda
}  // namespace uwe
