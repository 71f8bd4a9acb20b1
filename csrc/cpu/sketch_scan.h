// The CPU pruning engine's sketch (common/sketch_bound.h) in SIMD form: the per-pick scan over
// the whole pool, the per-row test of a scattered row, and the labelled centres' sketch.
//
// Per-pick scan: z is repacked into blocks of 8 rows, transposed ([block][k][8]), so the
// bounds of 8 rows against a new centre are k vector multiply-adds with no horizontal sum, and
// the scan reads k + 2 floats of a row (z, r, slack) plus D in one forward stream. The skip
// test is sketch_keeps's, lane by lane; the proof allows any summation order of the bound.
// Labelled centres: their z is held transposed ([k][m]), so one row's bounds to all m centres
// are SIMD across centres.
#pragma once

#include <cfloat>
#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "common/sketch_bound.h"
#include "cpu/select_simd.h"

namespace uwe {
namespace pruned {

// A sketch of the pool (uwe_kernels/_sketch.py): z [n, k] row-major, r [n], slack [n], all
// float; z == nullptr: none.
struct SketchView {
  const float* z = nullptr;
  const float* r = nullptr;
  const float* slack = nullptr;
  int64_t k = 0;
  float scale = 0;
  float tau = 0;
};

using FV = cpu::Simd<float>::V;
using IV = cpu::Simd<float>::I;
constexpr int64_t kLanes = cpu::Simd<float>::L;

// Bit l set where lane l of a comparison result is true.
inline unsigned lane_bits(IV m) {
#if defined(__AVX__)
  return static_cast<unsigned>(_mm256_movemask_ps(reinterpret_cast<__m256>(m)));
#else
  unsigned out = 0;
  for (int l = 0; l < kLanes; ++l) out |= static_cast<unsigned>(m[l] != 0) << l;
  return out;
#endif
}

// Lanes whose bound does not prove the row keeps D: not (bound >= rhs and rhs finite), with
// rhs = (scale * D + centre_slack) + slack_x as in sketch_keeps.
inline unsigned lanes_not_kept(FV bound, FV scaled_d, FV centre_slack, FV slack_x) {
  const FV rhs = (scaled_d + centre_slack) + slack_x;
  const IV keep = (bound >= rhs) & (rhs <= FLT_MAX);
  return ~lane_bits(keep) & ((1u << kLanes) - 1);
}

// |z_x - z_c|^2 + (r_x - r_c)^2 of one row-major sketch row (a scattered row of a group).
inline float row_bound(const float* zx, float rx, const float* zc, float rc, int64_t k) {
  FV a{}, b{};
  int64_t t = 0;
  for (; t + 2 * kLanes <= k; t += 2 * kLanes) {
    const FV u = cpu::vload<FV>(zx + t) - cpu::vload<FV>(zc + t);
    const FV v = cpu::vload<FV>(zx + t + kLanes) - cpu::vload<FV>(zc + t + kLanes);
    a += u * u;
    b += v * v;
  }
  for (; t + kLanes <= k; t += kLanes) {
    const FV u = cpu::vload<FV>(zx + t) - cpu::vload<FV>(zc + t);
    a += u * u;
  }
  float s = cpu::hsum<float>(a + b) + sketch_bound_terms(zx, zc, t, k, 1);
  const float u = rx - rc;
  return s + u * u;
}

// The sketch of n rows of the pool (rows[p] at position p, or row p when rows is null) in
// blocks of kLanes positions, z transposed per block; pad lanes have slack = +inf (never kept:
// callers drop positions >= n).
class BlockedSketch {
 public:
  BlockedSketch() = default;
  BlockedSketch(const SketchView& s, const int64_t* rows, int64_t n) : k_(s.k) {
    reserve_blocks((n + kLanes - 1) / kLanes);
    for (int64_t p = 0; p < n; ++p) put(s, p, rows != nullptr ? rows[p] : p);
    count_ = n;
  }

  int64_t blocks() const { return blocks_; }

  // Row i at the next position (a block more when the last is full).
  void append(const SketchView& s, int64_t i) {
    if (count_ == blocks_ * kLanes) reserve_blocks(blocks_ + 1);
    put(s, count_++, i);
  }

  // Lanes of block b (rows kLanes b + l) that need a full distance to centre (zc, rc);
  // scaled_d: scale * D of those rows (as float).
  unsigned needs_distance(int64_t b, const float* zc, float rc, FV scaled_d, FV centre_slack) const {
    const float* z = z_.data() + b * k_ * kLanes;
    const FV u = cpu::vload<FV>(r_.data() + b * kLanes) - rc;
    FV a = u * u, c{};
    int64_t t = 0;
    for (; t + 2 <= k_; t += 2) {  // two chains: the scan is latency-bound at small k
      const FV v = cpu::vload<FV>(z + t * kLanes) - zc[t];
      const FV w = cpu::vload<FV>(z + (t + 1) * kLanes) - zc[t + 1];
      a += v * v;
      c += w * w;
    }
    if (t < k_) {
      const FV v = cpu::vload<FV>(z + t * kLanes) - zc[t];
      a += v * v;
    }
    return lanes_not_kept(a + c, scaled_d, centre_slack, cpu::vload<FV>(slack_.data() + b * kLanes));
  }

 private:
  void reserve_blocks(int64_t blocks) {
    blocks_ = blocks;
    z_.resize(static_cast<size_t>(blocks_ * k_ * kLanes), 0.0f);
    r_.resize(static_cast<size_t>(blocks_ * kLanes), 0.0f);
    slack_.resize(static_cast<size_t>(blocks_ * kLanes), std::numeric_limits<float>::infinity());
  }
  void put(const SketchView& s, int64_t p, int64_t i) {
    float* dst = z_.data() + (p / kLanes) * k_ * kLanes + p % kLanes;
    for (int64_t t = 0; t < k_; ++t) dst[t * kLanes] = s.z[i * k_ + t];
    r_[p] = s.r[i];
    slack_[p] = s.slack[i];
  }

  int64_t k_ = 0;
  int64_t blocks_ = 0;
  int64_t count_ = 0;
  std::vector<float> z_, r_, slack_;
};

// scale * D of the rows at positions [first, first + kLanes) as floats (rows[p], or row p
// when rows is null; positions >= n get +inf: never kept).
template <class Acc>
inline FV scaled_lanes(const Acc* D, const int64_t* rows, int64_t first, int64_t n, float scale) {
  if constexpr (sizeof(Acc) == sizeof(float)) {
    if (rows == nullptr && first + kLanes <= n) return cpu::vload<FV>(D + first) * scale;
  }
  FV out;
  for (int l = 0; l < kLanes; ++l) {
    const int64_t p = first + l;
    out[l] = p < n ? scale * static_cast<float>(D[rows != nullptr ? rows[p] : p]) : std::numeric_limits<float>::infinity();
  }
  return out;
}

// The sketch of m centres, transposed ([k][capacity], m rounded up to kLanes read) for bounds
// of one row against all of them; centre_slack = slack_c + tau (pads: +inf, never kept).
class CentreSketch {
 public:
  CentreSketch(const SketchView& s, const std::vector<int64_t>& centres) : k_(s.k) {
    grow(static_cast<int64_t>(centres.size()));
    for (const int64_t c : centres) append(s, c);
  }

  // Centre c as the next one (the capacity doubles when full).
  void append(const SketchView& s, int64_t c) {
    if (m_ == cap_) grow(std::max<int64_t>(kLanes, 2 * cap_));
    for (int64_t t = 0; t < k_; ++t) z_[t * cap_ + m_] = s.z[c * k_ + t];
    r_[m_] = s.r[c];
    slack_[m_] = s.slack[c] + s.tau;
    ++m_;
  }

  int64_t size() const { return m_; }
  int64_t padded() const { return (m_ + kLanes - 1) / kLanes * kLanes; }
  float slack(int64_t j) const { return slack_[j]; }  // slack_c + tau

  // out[j] = bound of row (zx, rx) against centre j, for j < padded(); returns the centre of
  // smallest bound (lowest on ties).
  int64_t bounds(const float* zx, float rx, float* out) const {
    using IV = cpu::Simd<float>::I;
    const int64_t mp = padded(), cap = cap_;
    const FV inf = FV{} + std::numeric_limits<float>::infinity();
    FV low = inf;  // per lane: the smallest bound so far and its centre (earliest on ties)
    IV low_j{}, lane{};
    for (int l = 0; l < kLanes; ++l) lane[l] = l;
    for (int64_t j = 0; j < mp; j += kLanes) {
      const FV u = cpu::vload<FV>(r_.data() + j) - rx;
      FV a = u * u, c{};
      int64_t t = 0;
      for (; t + 2 <= k_; t += 2) {
        const FV v = cpu::vload<FV>(z_.data() + t * cap + j) - zx[t];
        const FV w = cpu::vload<FV>(z_.data() + (t + 1) * cap + j) - zx[t + 1];
        a += v * v;
        c += w * w;
      }
      if (t < k_) {
        const FV v = cpu::vload<FV>(z_.data() + t * cap + j) - zx[t];
        a += v * v;
      }
      const FV b = a + c;
      cpu::vstore(out + j, b);
      const IV at = lane + static_cast<int32_t>(j);
      const IV lower = (b < low) & (at < static_cast<int32_t>(m_));  // pads never count
      low = lower ? b : low;
      low_j = lower ? at : low_j;
    }
    int64_t best = 0;
    float best_b = std::numeric_limits<float>::infinity();
    for (int l = 0; l < kLanes; ++l)
      if (low[l] < best_b || (low[l] == best_b && low[l] < inf[l] && low_j[l] < best)) best_b = low[l], best = low_j[l];
    return best;
  }

  // Centres j in [j0, j0 + kLanes) whose bound (from `bounds`) does not prove the row keeps
  // D, given scaled_d = scale * D and the row's slack.
  unsigned needs_distance(const float* bound, int64_t j0, float scaled_d, float slack_x) const {
    return lanes_not_kept(cpu::vload<FV>(bound + j0), FV{} + scaled_d, cpu::vload<FV>(slack_.data() + j0),
                          FV{} + slack_x);
  }

 private:
  void grow(int64_t capacity) {
    capacity = (capacity + kLanes - 1) / kLanes * kLanes;
    std::vector<float> z(static_cast<size_t>(k_ * capacity), 0.0f);
    for (int64_t t = 0; t < k_; ++t) std::copy(z_.data() + t * cap_, z_.data() + t * cap_ + m_, z.data() + t * capacity);
    z_.swap(z);
    r_.resize(static_cast<size_t>(capacity), 0.0f);
    slack_.resize(static_cast<size_t>(capacity), std::numeric_limits<float>::infinity());
    cap_ = capacity;
  }

  int64_t k_ = 0, m_ = 0, cap_ = 0;
  std::vector<float> z_, r_, slack_;
};

}  // namespace pruned
}  // namespace uwe
