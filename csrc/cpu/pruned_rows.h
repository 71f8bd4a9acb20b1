// Rows for the pruned engine (cpu/pruned_engine.h): any embedding of the brute-force kernels --
// dense [n, d] pools of any strides, UWE (u_i * f_i), BADGE (a_i (outer) f_i, K*d columns never
// built) -- evaluated by the brute-force pass's own row distance functor (cpu/select_core.h), so
// every value the engine stores is bit-identical to the brute-force kernels'. The triangle
// inequality holds in the implicit K*d space too, so the engine's skip tests apply unchanged;
// only the error bound of a computed distance differs.
// Early exit: dense and UWE distances are row_sum's difference sums (monotone, exit at the
// bound); BADGE's expanded formula is not monotone in partial sums and runs in full.
// Error bounds: a difference sum of d terms with unit roundoff u is within (d + 3) u of the
// exact value, relatively; carried doubled with a floor for gradual underflow. BADGE: with
// m = K + d, |computed - exact| <= ~2 (m + 3) u (|x_i|^2 + |x_c|^2), independent of the distance;
// carried as slack(i) = eta p_i with eta = 4 (m + 16) u (p_i the computed |x_i|^2).
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "cpu/select_core.h"

namespace uwe {
namespace pruned {

template <class Acc>
inline double rel_error_bound(int64_t d) {
  return 2.0 * static_cast<double>(d + 16) * std::numeric_limits<Acc>::epsilon() * 0.5;
}
template <class Acc>
inline double abs_error_floor(int64_t d) {
  return 64.0 * static_cast<double>(d + 1) * static_cast<double>(std::numeric_limits<Acc>::min());
}

template <class AccT, class Dist>
class EmbRows {
 public:
  using Acc = AccT;

  // p: BADGE norms p_i (cpu::badge_norms), null otherwise; ws: scratch of every thread.
  EmbRows(const cpu::Emb& e, const Dist& dist, const Acc* p, cpu::Workspace<Acc>& ws)
      : e_(e), dist_(dist), p_(p), ws_(ws), badge_(e.kind == kBadge),
        zero_(static_cast<size_t>(e.width() + 1), Acc(0)) {
    const double u = 0.5 * static_cast<double>(std::numeric_limits<Acc>::epsilon());
    eta_ = badge_ ? 4.0 * static_cast<double>(e.width() + 16) * u : 0.0;
    rel_ = badge_ ? 0.0 : rel_error_bound<Acc>(e.d());
    abs_ = abs_error_floor<Acc>(e.width());
  }

  const cpu::Emb& emb() const { return e_; }
  const Acc* norms() const { return p_; }
  cpu::Workspace<Acc>& workspace() const { return ws_; }

  int64_t n() const { return e_.n(); }
  int64_t width() const { return e_.width(); }
  int64_t centre_size() const { return e_.width() + 1; }
  void load_centre(int64_t s, Acc* c) const { cpu::prepare_centre<Acc>(e_, s, p_, c); }

  // Squared distance of row i to centre c, or a partial sum >= bound; the scratch is the
  // calling OpenMP thread's.
  Acc dist(int64_t i, const Acc* c, Acc bound, int64_t& read) const {
    return dist_(i, c, ws_.buffer(cpu::thread_id()), bound, read);
  }
  // Distance to the zero centre: what the brute-force first pick maximises.
  Acc norm(int64_t i) const {
    int64_t read = 0;
    return dist(i, zero_.data(), std::numeric_limits<Acc>::infinity(), read);
  }
  double slack(int64_t i) const { return badge_ ? eta_ * static_cast<double>(p_[i]) : 0.0; }
  double rel() const { return rel_; }
  double abs() const { return abs_; }
  // Rows of a group are scattered over the pool: fetch the start of row i (at most `most`
  // bytes: early exit rarely reads more) and its weights.
  void prefetch(int64_t i, int64_t most = 1024) const {
    const char* f = e_.f.row(i);
    const int64_t bytes = e_.f.unit_cols() ? std::min<int64_t>(e_.d() * dtype_size(e_.f.dtype), most) : 64;
    for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(f + b, 0, 1);
    if (e_.kind != kDense) __builtin_prefetch(e_.w.row(i), 0, 1);
  }

 private:
  const cpu::Emb& e_;
  Dist dist_;
  const Acc* p_;
  cpu::Workspace<Acc>& ws_;
  bool badge_;
  std::vector<Acc> zero_;
  double eta_ = 0.0, rel_ = 0.0, abs_ = 0.0;
};

}  // namespace pruned
}  // namespace uwe
