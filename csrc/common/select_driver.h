// The one pick loop of the compiled selection kernels (CPU brute force, CPU pruned, CUDA host):
// first-pick rules, the k-means++ draw counter and Ctrl-C / progress checkpoints, over a small
// state interface each path supplies:
//   bool add_labelled(Checkpoint&)   D from the labelled rows; false when there are none
//   void pick_row(t, i)              pick t is row i (a given first pick)
//   void pick_max_norm(t)            pick t is the row of largest norm (lowest index on ties)
//   void pick_farthest(t)            pick t is the untaken row of largest D (lowest index on ties)
//   void pick_d2(t, seed, draw)      pick t is the D^2 draw with SplitMix64 draw `draw`: the first
//                                    row whose float64 prefix of D exceeds r * sum(D), uniform
//                                    among untaken rows when sum(D) = 0 (common/d2_sampling.h)
//   void add_centre(t)               pick t becomes a centre: D = min(D, distance to it)
//   int64_t n()                      rows in the pool
// Each pick_* records the pick (and, for k-center, sqrt(D) at pick time: inf for a first pick).
// A state may queue its work (CUDA) instead of doing it at once: the loop never reads a pick.
#pragma once

#include <cstdint>

#include "common/abi.h"
#include "common/checkpoint.h"
#include "common/splitmix64.h"

namespace uwe {

template <class State>
void kcenter_greedy_loop(State& s, int64_t budget, int64_t first, Checkpoint& checkpoint) {
  if (budget <= 0) return;
  const bool labelled = s.add_labelled(checkpoint);
  for (int64_t t = 0; t < budget; ++t) {
    if (t > 0 || labelled)
      s.pick_farthest(t);
    else if (first >= 0)
      s.pick_row(t, first);
    else
      s.pick_max_norm(t);
    if (t + 1 < budget) s.add_centre(t);
    checkpoint.poll(t + 1);
  }
}

template <class State>
void kmeans_pp_loop(State& s, int64_t budget, uint64_t seed, int64_t first, Checkpoint& checkpoint) {
  if (budget <= 0) return;
  const bool labelled = s.add_labelled(checkpoint);
  uint64_t draw = 0;
  for (int64_t t = 0; t < budget; ++t) {
    if (t > 0 || labelled)
      s.pick_d2(t, seed, draw++);
    else if (first == kFirstMaxNorm)
      s.pick_max_norm(t);
    else if (first == kFirstRandom)
      s.pick_row(t, uniform_rank(splitmix64_uniform(seed, draw++), s.n()));
    else
      s.pick_row(t, first);
    if (t + 1 < budget) s.add_centre(t);
    checkpoint.poll(t + 1);
  }
}

}  // namespace uwe
