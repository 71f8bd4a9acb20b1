// The exact-prefix D^2 draw of k-means++ on the host: the first row whose float64 prefix sum
// D_0 + ... + D_i, summed sequentially in index order, exceeds r * sum(D) -- the sums of the
// definition, so every backend computing the same D picks the same row. The prefix at the start
// of every block of kPrefixBlock rows is kept, so the search rescans one block with exactly the
// same roundings. Uniform among untaken rows when sum(D) is 0 (or not a number).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/splitmix64.h"

namespace uwe {

class D2Sampler {
 public:
  static constexpr int64_t kPrefixBlock = 4096;

  // D [n] (taken rows hold 0), taken [n] flags, untaken their count, r the draw in [0, 1).
  template <class Acc>
  int64_t operator()(const Acc* D, const uint8_t* taken, int64_t n, int64_t untaken, double r) {
    const int64_t blocks = (n + kPrefixBlock - 1) / kPrefixBlock;
    starts_.resize(static_cast<size_t>(blocks + 1));
    double p = 0;
    for (int64_t b = 0; b < blocks; ++b) {
      starts_[b] = p;
      const int64_t end = std::min(n, (b + 1) * kPrefixBlock);
      for (int64_t i = b * kPrefixBlock; i < end; ++i) p += static_cast<double>(D[i]);
    }
    starts_[blocks] = p;
    if (!(p > 0.0)) return kth_untaken(taken, n, uniform_rank(r, untaken));
    const double target = r * p;
    // Prefixes never decrease: the first block whose end prefix exceeds target holds the row.
    const int64_t b = std::upper_bound(starts_.begin() + 1, starts_.end(), target) - starts_.begin() - 1;
    if (b < blocks) {
      double q = starts_[b];
      const int64_t end = std::min(n, (b + 1) * kPrefixBlock);
      for (int64_t i = b * kPrefixBlock; i < end; ++i) {
        q += static_cast<double>(D[i]);
        if (q > target) return i;
      }
    }
    for (int64_t i = n - 1; i >= 0; --i)  // rounding left no exceedance: the last row with D > 0
      if (D[i] > Acc(0)) return i;
    return -1;
  }

  // The k-th untaken row in index order (k from 0).
  static int64_t kth_untaken(const uint8_t* taken, int64_t n, int64_t k) {
    for (int64_t i = 0; i < n; ++i)
      if (!taken[i] && k-- == 0) return i;
    return -1;
  }

 private:
  std::vector<double> starts_;
};

}  // namespace uwe
