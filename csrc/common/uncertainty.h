// Per-row uncertainty of class scores, shared by the CPU and CUDA kernels.
//
// Algorithm: pass 1 over the row's K scores finds the two largest values, the argmax
// (lowest class on ties), the smallest value and whether all are finite; pass 2 (logits,
// or entropy of probabilities) sums exp(z - max) and exp(z - max) * (z - max). No
// probability vector is stored: with e_c = exp(z_c - m), s = sum e_c,
//   entropy = log s - (sum e_c (z_c - m)) / s        (clamped at >= 0)
//   p_best = 1 / s, p_second = exp(z_2 - m) / s, so bvsb = exp(z_2 - m)
// For probabilities taken as given: entropy = -sum p log p (0 log 0 = 0), bvsb =
// p_2 / p_1 with 0 / 0 -> 1, margin = 1 - (p_1 - p_2), least_confidence = 1 - p_1.
// Complexity O(K) per row, two reads of the row (the second from cache). Kind bald
// (row_bald) reads a row's T passes [K, T]: O(K T), two reads.
// Accumulator A is float (float32 inputs) or double (any float64 input).
#pragma once

#include <cmath>

#include "common/abi.h"
#include "common/hd.h"

namespace uwe {

template <typename A>
struct RowSummary {
  A best;          // largest score
  A second;        // second largest (equal to best when the argmax is tied); bvsb / margin only
  A smallest;      // smallest score (negative probabilities are an input error)
  int argmax;      // lowest class index holding `best`
  bool finite;     // every score is finite
};

// exp(x) for the accumulator type. Callers pass x = z - max <= 0 (or garbage from a
// non-finite row, which is reported as an error and never used).
UWE_HD UWE_INLINE double exp_acc(double x) { return exp(x); }

UWE_HD UWE_INLINE float exp_acc(float x) {
#if defined(__CUDA_ARCH__)
  return expf(x);
#else
  // Cephes-style expf, branch-free so that softmax loops vectorise: x = n ln2 + r with
  // |r| <= ln2 / 2, a degree-6 polynomial for e^r, scaled by 2^n through the exponent
  // bits. About 1 ulp on [-87.3, 88]; 0 below -87.3 (where e^x is subnormal).
  const float lo = -87.3365447504019f;
  const float xc = x > lo ? x : lo;
  // Round to nearest with the 1.5 * 2^23 trick (vectorises, unlike nearbyint).
  const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = xc - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // 2^n through the exponent bits, masked to 0 below the range.
  const int keep = -static_cast<int>(x >= lo);
  const int bits = ((static_cast<int>(n) + 127) << 23) & keep;
  float scale;
  __builtin_memcpy(&scale, &bits, sizeof scale);
  return p * scale;
#endif
}

UWE_HD inline double log_acc(double x) { return log(x); }
UWE_HD inline float log_acc(float x) { return logf(x); }
UWE_HD inline double pow_acc(double x, double y) { return pow(x, y); }
UWE_HD inline float pow_acc(float x, float y) { return powf(x, y); }

// u ** tau with 0 ** 0 = 1 (tau = 0 gives the plain features) and exact powers 0 and 1.
template <typename A>
UWE_HD inline A weight_of(A u, A tau) {
  if (tau == A(0)) return A(1);
  if (tau == A(1)) return u;
  return pow_acc(u, tau);
}

// Min-max normalisation (normalize="minmax"): (u - lo) / span clipped to [0, 1]; span == 0
// (every pool row equally uncertain) gives 1; span < 0 means no normalisation. lo and span come
// from a pass over the scores before the feature pass (uwe_kernels/_normalize.py).
template <typename A>
UWE_HD inline A normalized(A u, A lo, A span) {
  if (span < A(0)) return u;
  if (span == A(0)) return A(1);
  const A v = (u - lo) / span;
  return v < A(0) ? A(0) : (v > A(1) ? A(1) : v);
}

// How a row's uncertainty becomes its weight: the optional min-max map, then the power tau.
template <typename A>
struct WeightRule {
  A tau;
  A lo;
  A span;  // < 0: no min-max map
};

// The rule from the bindings' doubles (tau, lo, span) in the accumulator type.
template <typename A>
inline WeightRule<A> rule_of(double tau, double lo, double span) {
  return WeightRule<A>{static_cast<A>(tau), static_cast<A>(lo), static_cast<A>(span)};
}

template <typename A>
UWE_HD inline A weight_by(const WeightRule<A>& rule, A u) {
  return weight_of<A>(normalized<A>(u, rule.lo, rule.span), rule.tau);
}

// Pass 1. `at(k)` returns score k in the accumulator type. Written as separate simple
// reductions (max / min / sum, then the argmax scan, then the runner-up) so that each
// loop vectorises on the host. `need_second` = false skips the runner-up (entropy,
// least confidence and BADGE do not use it); `second` is then -inf.
template <typename A, typename At>
UWE_HD inline RowSummary<A> summarize_row(const At& at, int K, bool need_second = true) {
  A best = at(0), lo = at(0), probe = 0;
  UWE_SIMD(reduction(max : best) reduction(min : lo) reduction(+ : probe))
  for (int k = 0; k < K; ++k) {
    const A z = at(k);
    best = z > best ? z : best;
    lo = z < lo ? z : lo;
    probe += z * A(0);  // NaN when any score is NaN or inf
  }
  int arg = 0;
  while (arg < K - 1 && !(at(arg) == best)) ++arg;
  A second = -INFINITY;
  UWE_SIMD(reduction(max : second))
  for (int k = 0; k < (need_second ? K : 0); ++k) {
    const A z = k == arg ? A(-INFINITY) : at(k);
    second = z > second ? z : second;
  }
  RowSummary<A> s;
  s.best = best;
  s.second = second;
  s.smallest = lo;
  s.argmax = arg;
  s.finite = probe == A(0);
  return s;
}

// Pass 2 for logits: (s, t) = (sum e_c, sum e_c (z_c - m)).
template <typename A, typename At>
UWE_HD inline void softmax_sums(const At& at, int K, A m, A& s_out, A& t_out) {
  A s = 0, t = 0;
  UWE_SIMD(reduction(+ : s, t))
  for (int k = 0; k < K; ++k) {
    const A e = at(k) - m;
    const A x = exp_acc(e);
    s += x;
    t += x * e;
  }
  s_out = s;
  t_out = t;
}

// -sum p log p over probabilities taken as given (0 log 0 = 0).
template <typename A, typename At>
UWE_HD inline A neg_plogp_sum(const At& at, int K) {
  A h = 0;
  for (int k = 0; k < K; ++k) {
    const A p = at(k);
    h -= p > A(0) ? p * log_acc(p) : A(0);
  }
  return h;
}

template <typename A>
UWE_HD inline A clamp_nonneg(A x) { return x > A(0) ? x : A(0); }

// Uncertainty of logits from the row summary and the softmax sums.
template <typename A>
UWE_HD inline A uncertainty_of_logits(int kind, const RowSummary<A>& r, A s, A t) {
  switch (kind) {
    case kEntropy:
      return clamp_nonneg(log_acc(s) - t / s);
    case kBvsb:
      return exp_acc(r.second - r.best);
    case kMargin:
      return A(1) - (A(1) - exp_acc(r.second - r.best)) / s;
    default:
      return A(1) - A(1) / s;
  }
}

// Uncertainty of probabilities taken as given; `entropy` is neg_plogp_sum for kEntropy.
template <typename A>
UWE_HD inline A uncertainty_of_probs(int kind, const RowSummary<A>& r, A entropy) {
  switch (kind) {
    case kEntropy:
      return clamp_nonneg(entropy);
    case kBvsb:
      return r.best > A(0) ? r.second / r.best : A(1);
    case kMargin:
      return A(1) - (r.best - r.second);
    default:
      return A(1) - r.best;
  }
}

// The whole row: summary (for checks and argmax) and uncertainty.
template <typename A, typename At>
UWE_HD inline A row_uncertainty(const At& at, int K, int kind, bool from_logits, RowSummary<A>& r) {
  r = summarize_row<A>(at, K, kind == kBvsb || kind == kMargin);
  if (from_logits) {
    A s, t;
    softmax_sums<A>(at, K, r.best, s, t);
    return uncertainty_of_logits<A>(kind, r, s, t);
  }
  return uncertainty_of_probs<A>(kind, r, kind == kEntropy ? neg_plogp_sum<A>(at, K) : A(0));
}

// Mutual information (kind "bald") of one row's T stochastic passes: u = H(mean_t p_t) -
// mean_t H(p_t). `pass_at(t)` returns a reader of pass t's K scores. Pass over t: each pass's
// summary (checks) and, for logits, softmax sums, so H(p_t) = log s_t - t_t / s_t with m_t
// and log s_t kept in scratch[2t], scratch[2t + 1] ([2T] values, no probability matrix).
// Pass over k: pbar_k = mean_t exp((z_kt - m_t) - log s_t) (or p_kt as given), summed over t
// in order, and H(pbar) = -sum pbar log pbar (bald_of). The difference cancels when the passes
// agree: rounding can leave a tiny negative, clamped to 0 (the exact value is >= 0, entropy
// being concave). `r` reports finite (every score) and smallest (for the negative-probability
// check). O(K T) per row, two reads of the [K, T] block. The CPU runs the same arithmetic
// vectorised over the passes (cpu/bald_tile.h).

// p_kt of pass t from its score z: softmaxed by the pass's max m and log-sum log_s, or as given.
template <typename A>
UWE_HD UWE_INLINE A bald_prob(A z, A m, A log_s, bool from_logits) {
  return from_logits ? exp_acc((z - m) - log_s) : z;
}

// u from sum_t H(p_t) and the per-class sums over the passes, pbar_sum(k) = sum_t p_kt.
template <typename A, typename SumAt>
UWE_HD inline A bald_of(A h_passes, const SumAt& pbar_sum, int K, int T) {
  const A inv_t = A(1) / A(T);
  A h_mean = 0;
  for (int k = 0; k < K; ++k) {
    const A pbar = pbar_sum(k) * inv_t;
    h_mean -= pbar > A(0) ? pbar * log_acc(pbar) : A(0);
  }
  return clamp_nonneg(h_mean - h_passes * inv_t);
}

// sum_t p_kt of class k, read pass by pass.
template <typename A, typename PassAt>
struct PassSums {
  const PassAt& pass_at;
  const A* scratch;
  int T;
  bool from_logits;
  UWE_HD A operator()(int k) const {
    A sum = 0;
    for (int t = 0; t < T; ++t) sum += bald_prob<A>(pass_at(t)(k), scratch[2 * t], scratch[2 * t + 1], from_logits);
    return sum;
  }
};

template <typename A, typename PassAt>
UWE_HD inline A row_bald(const PassAt& pass_at, int K, int T, bool from_logits, A* scratch, RowSummary<A>& r) {
  A h_passes = 0, smallest = INFINITY;
  bool finite = true;
  for (int t = 0; t < T; ++t) {
    const auto at = pass_at(t);
    const RowSummary<A> p = summarize_row<A>(at, K, false);
    finite = finite && p.finite;
    smallest = p.smallest < smallest ? p.smallest : smallest;
    if (from_logits) {
      A s, w;
      softmax_sums<A>(at, K, p.best, s, w);
      const A log_s = log_acc(s);
      scratch[2 * t] = p.best;
      scratch[2 * t + 1] = log_s;
      h_passes += log_s - w / s;
    } else {
      h_passes += neg_plogp_sum<A>(at, K);
    }
  }
  r.best = r.second = A(0);
  r.argmax = 0;
  r.smallest = smallest;
  r.finite = finite;
  return bald_of<A>(h_passes, PassSums<A, PassAt>{pass_at, scratch, T, from_logits}, K, T);
}

// BADGE weight of class k: p_k - [k == argmax]; `scale` is 1 / s for logits, 1 for probs.
template <typename A>
UWE_HD inline A badge_weight(A z, int k, const RowSummary<A>& r, bool from_logits, A inv_s) {
  const A p = from_logits ? exp_acc(z - r.best) * inv_s : z;
  return k == r.argmax ? p - A(1) : p;
}

}  // namespace uwe
