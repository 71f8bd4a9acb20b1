// Factored rows for the pruned engine: UWE (u_i * f_i) and BADGE (a_i (outer) f_i, K*d
// columns never built). The triangle inequality holds in the implicit K*d space, so the
// engine's skip tests apply unchanged; only the error bound of a computed distance differs.
//
// Distances are those of the brute-force kernels, computed by the same functions
// (cpu/select_core.h: RowDistance for UWE, BadgeDistance for BADGE, badge_norms,
// prepare_centre), so every value the engine stores is bit-identical to theirs.
// No early exit: UWE's full distance is the brute-force summation order, and BADGE's expanded
// formula |a|^2|f|^2 + |a_c|^2|f_c|^2 - 2 (a . a_c)(f . f_c) is not monotone in partial sums.
// Error bounds: UWE rows are the materialised (rounded) rows with the difference formula,
// so the relative bound of a dense pool of width d holds. BADGE: with n = K + d and unit
// roundoff u, the dot products, the rounded products and the final sum give
// |computed - exact| <= ~2 (n + 3) u (|x_i|^2 + |x_c|^2), independent of the distance; it is
// carried as slack(i) = eta p_i with eta = 4 (n + 16) u (twice the bound, p_i the computed
// |x_i|^2, itself within a factor 1 + (n + 1) u of the exact one).
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "cpu/pruned_distance.h"
#include "cpu/select_core.h"

namespace uwe {
namespace pruned {

constexpr int64_t kPrefetchBytes = 1024;

template <class AccT>
class FactoredRows {
 public:
  using Acc = AccT;

  explicit FactoredRows(const cpu::Emb& e)
      : e_(e), badge_(e.kind == cpu::kBadge), ws_(cpu::thread_count(), e.width() + 1),
        zero_(static_cast<size_t>(e.width() + 1), Acc(0)) {
    const double u = 0.5 * static_cast<double>(std::numeric_limits<Acc>::epsilon());
    if (badge_) {
      p_.resize(static_cast<size_t>(e.n()));
      cpu::badge_norms<Acc>(e_, p_.data(), ws_);
      eta_ = 4.0 * static_cast<double>(e.width() + 16) * u;
    }
    rel_ = badge_ ? 0.0 : rel_error_bound<Acc>(e.d());
    abs_ = abs_error_floor<Acc>(e.width());
  }

  const cpu::Emb& emb() const { return e_; }
  const Acc* norms() const { return p_.data(); }  // BADGE p_i (empty for UWE)
  cpu::Workspace<Acc>& workspace() const { return ws_; }

  int64_t n() const { return e_.n(); }
  int64_t width() const { return e_.width(); }
  int64_t centre_size() const { return e_.width() + 1; }
  void load_centre(int64_t s, Acc* c) const { cpu::prepare_centre<Acc>(e_, s, p_.data(), c); }

  // Full distance (the bound is not used, see above); the per-thread scratch is the one of
  // the calling OpenMP thread.
  Acc dist(int64_t i, const Acc* c, Acc, int64_t& read) const {
    Acc* buf = ws_.buffer(cpu::thread_id());
    read += e_.width();
    if (badge_) return cpu::BadgeDistance<Acc>{&e_, p_.data()}(i, c, buf);
    return cpu::RowDistance<Acc>{&e_}(i, c, buf);
  }
  // Distance to the zero centre: what the brute-force first pick maximises.
  Acc norm(int64_t i) const {
    int64_t read = 0;
    return dist(i, zero_.data(), Acc(0), read);
  }
  double slack(int64_t i) const { return badge_ ? eta_ * static_cast<double>(p_[i]) : 0.0; }
  double rel() const { return rel_; }
  double abs() const { return abs_; }
  // Rows of a group are scattered over the pool and read in full (no early exit): fetch the
  // whole feature row (up to kPrefetchBytes) and the weights.
  void prefetch(int64_t i) const {
    const char* f = e_.f.row(i);
    const int64_t bytes = std::min<int64_t>(e_.d() * e_.f.stride1, kPrefetchBytes);
    for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(f + b, 0, 1);
    __builtin_prefetch(e_.w.row(i), 0, 1);
  }

 private:
  const cpu::Emb& e_;
  bool badge_;
  mutable cpu::Workspace<Acc> ws_;
  std::vector<Acc> zero_;
  std::vector<Acc> p_;
  double eta_ = 0.0, rel_ = 0.0, abs_ = 0.0;
};

}  // namespace pruned
}  // namespace uwe
