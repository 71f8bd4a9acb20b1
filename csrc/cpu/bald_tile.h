// Kind "bald" on the CPU: the mutual information of one row's T stochastic passes (the
// quantities of row_bald in common/uncertainty.h), vectorised over the passes.
//
// Algorithm: the row's [K, T] block is converted into a class-major tile z[k * T + t] (a
// C-contiguous block reads straight through, a view element by element); then every step is
// elementwise over the T passes, so it vectorises without horizontal sums: each pass's max m_t,
// softmax sums s_t, w_t and log s_t; the probabilities p_kt = exp((z_kt - m_t) - log s_t);
// then pbar_k summed over the passes for every class at once. Every sum runs in index order
// (classes within a pass, passes within a class), so results do not depend on the memory layout.
// Complexity O(K T) per row, one read of the block; 2 K T + 4 T + K accumulators of scratch.
#pragma once

#include <cstdint>
#include <vector>

#include "common/uncertainty.h"
#include "cpu/embed_strided.h"

namespace uwe {

template <typename A>
class BaldTile {
 public:
  BaldTile(int K, int T) : K_(K), T_(T), buf_(2 * size_t(K) * T + 4 * size_t(T) + K) {}

  // Converts row (k, t) = row + k * step_k + t * step_t into the tile. Contig: the block is
  // C-contiguous (steps T and 1 items), which lets the compiler vectorise the loads.
  template <typename S, bool Contig>
  void fill(const char* row, int64_t step_k, int64_t step_t) {
    constexpr int64_t item = static_cast<int64_t>(sizeof(S));
    A* z = buf_.data();
    for (int k = 0; k < K_; ++k) {
      const char* src = row + k * (Contig ? T_ * item : step_k);
      for (int t = 0; t < T_; ++t) z[k * T_ + t] = load<A>(read_as<S>(src + t * (Contig ? item : step_t)));
    }
  }

  // u of the filled row; r reports finite (every score) and smallest, as row_bald's.
  A bald(bool from_logits, RowSummary<A>& r) {
    const int K = K_, T = T_;
    A* z = buf_.data();
    A* p = z + size_t(K) * T;  // p[k * T + t]
    A* m = p + size_t(K) * T;
    A* s = m + T;
    A* w = s + T;
    A* log_s = w + T;
    A* pbar = log_s + T;
    A lo = z[0], probe = 0;
    UWE_SIMD(reduction(min : lo) reduction(+ : probe))
    for (int i = 0; i < K * T; ++i) {
      lo = z[i] < lo ? z[i] : lo;
      probe += z[i] * A(0);  // NaN when any score is NaN or inf
    }
    r.best = r.second = A(0);
    r.argmax = 0;
    r.smallest = lo;
    r.finite = probe == A(0);
    A h_passes = 0;
    if (from_logits) {
      for (int t = 0; t < T; ++t) {
        m[t] = z[t];
        s[t] = w[t] = A(0);
      }
      for (int k = 1; k < K; ++k) {
        UWE_SIMD()
        for (int t = 0; t < T; ++t) m[t] = z[k * T + t] > m[t] ? z[k * T + t] : m[t];
      }
      for (int k = 0; k < K; ++k) {
        UWE_SIMD()
        for (int t = 0; t < T; ++t) {
          const A e = z[k * T + t] - m[t];
          const A x = exp_acc(e);
          s[t] += x;
          w[t] += x * e;
        }
      }
      for (int t = 0; t < T; ++t) {
        log_s[t] = log_acc(s[t]);
        h_passes += log_s[t] - w[t] / s[t];
      }
      for (int k = 0; k < K; ++k) {
        UWE_SIMD()
        for (int t = 0; t < T; ++t) p[k * T + t] = bald_prob<A>(z[k * T + t], m[t], log_s[t], true);
      }
    } else {
      for (int t = 0; t < T; ++t) {
        A h = 0;
        for (int k = 0; k < K; ++k) h -= z[k * T + t] > A(0) ? z[k * T + t] * log_acc(z[k * T + t]) : A(0);
        h_passes += h;
      }
      p = z;  // the probabilities as given
    }
    // pbar_k = sum_t p_kt in pass order, every class at once.
    for (int k = 0; k < K; ++k) pbar[k] = A(0);
    for (int t = 0; t < T; ++t) {
      UWE_SIMD()
      for (int k = 0; k < K; ++k) pbar[k] += p[k * T + t];
    }
    return bald_of<A>(h_passes, [pbar](int k) { return pbar[k]; }, K, T);
  }

 private:
  int K_, T_;
  std::vector<A> buf_;
};

}  // namespace uwe
