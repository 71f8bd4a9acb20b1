// Pruned k-center greedy and k-means++ of the CPU module: exactly the picks of the plain
// per-pick pass, with far fewer rows read on clustered pools (see cpu/pruned_engine.h). Any
// embedding of the brute-force kernels (dense pools of any strides, UWE, BADGE), evaluated by
// their own row distance (cpu/pruned_rows.h), through the same pick loop
// (common/select_driver.h): labelled rows become centres from the brute-force labelled pass, so
// D starts bit-identical; each k-center pick is the argmax of D found from the group maxima;
// each k-means++ pick is the exact-prefix D^2 draw (common/d2_sampling.h).
// Complexity: O(n) per pick for the k-means++ prefix, otherwise that of the engine.
// Accumulators: float for float16/bfloat16/float32 pools, double for float64 (or when asked).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "common/checkpoint.h"
#include "common/d2_sampling.h"
#include "common/matrix_spec.h"
#include "common/select_driver.h"
#include "common/splitmix64.h"
#include "cpu/pruned_engine.h"
#include "cpu/pruned_rows.h"

namespace py = pybind11;

namespace uwe {
namespace {

using pruned::EmbRows;
using pruned::Engine;

std::vector<uint8_t> mask_vector(const py::array_t<bool, py::array::forcecast>& mask, int64_t n) {
  if (mask.ndim() != 1 || mask.shape(0) != n)
    throw py::value_error("pruned selection: labelled_mask must have shape [n]");
  std::vector<uint8_t> out(n);
  auto m = mask.unchecked<1>();
  for (int64_t i = 0; i < n; ++i) out[i] = m(i) ? 1 : 0;
  return out;
}

py::dict stats_dict(const pruned::Stats& s, int64_t n, int64_t budget, bool plain_at_end) {
  py::dict out;
  out["n"] = n;
  out["budget"] = budget;
  out["centres"] = s.centres;
  out["rows_touched"] = s.rows_touched;
  out["values_read"] = s.values_read;
  out["centre_distances"] = s.centre_distances;
  out["groups_touched"] = s.groups_touched;
  out["switched_at"] = s.switched_at;
  out["plain_centres"] = s.plain_centres;
  out["labelled_pairs"] = s.labelled_pairs;
  out["sketch_tests"] = s.sketch_tests;
  out["dormant_rows"] = s.dormant_rows;
  out["woken_rows"] = s.woken_rows;
  out["wake_rounds"] = s.wake_rounds;
  out["plain_at_end"] = plain_at_end;
  return out;
}

// The pruned engine as the pick loop's state (common/select_driver.h).
template <class Rows>
class PrunedState {
 public:
  using Acc = typename Rows::Acc;

  // dormant_picks: k-center picks still to come after the labelled pass, 0 for k-means++ (which
  // needs every D exactly): with a sketch, rows that cannot matter to those picks go dormant.
  PrunedState(const Rows& rows, int mode, const pruned::SketchView& sketch, const pruned::SketchView& wide,
              const std::vector<uint8_t>& labelled, int64_t dormant_picks, int64_t* picks, double* dists)
      : eng_(rows, mode, sketch, wide), labelled_(labelled), dormant_picks_(dormant_picks), picks_(picks),
        dists_(dists) {}

  const Engine<Rows>& engine() const { return eng_; }
  int64_t n() const { return eng_.rows().n(); }

  // The labelled rows become centres at once, from the brute-force labelled pass.
  bool add_labelled(Checkpoint& checkpoint) {
    const Rows& rows = eng_.rows();
    const int64_t n = rows.n();
    const int64_t m = std::count(labelled_.begin(), labelled_.end(), uint8_t(1));
    if (m == 0) return false;
    if (eng_.has_sketch()) {
      eng_.add_labelled_sketched(labelled_, dormant_picks_, checkpoint);
      return true;
    }
    std::vector<Acc> D(static_cast<size_t>(n), std::numeric_limits<Acc>::infinity());
    std::vector<int64_t> A;
    const std::vector<int64_t> centres =
        cpu::labelled_init<Acc>(rows.emb(), labelled_.data(), rows.norms(), D.data(), rows.workspace(), checkpoint, A);
    eng_.add_centres(centres, D, A, (n - m) * m);
    return true;
  }
  void pick_row(int64_t t, int64_t i) { record(t, i); }
  void pick_max_norm(int64_t t) {  // norms as the brute-force first pick computes them
    const int64_t n = this->n();
    std::vector<Acc> norms(n);
#pragma omp parallel for num_threads(eng_.rows().workspace().threads) schedule(static, 4096) if (n >= 4096)
    for (int64_t i = 0; i < n; ++i) norms[i] = eng_.rows().norm(i);
    int64_t best = 0;
    for (int64_t i = 1; i < n; ++i)
      if (norms[i] > norms[best]) best = i;
    record(t, best);
  }
  void pick_farthest(int64_t t) { record(t, eng_.farthest()); }
  void pick_d2(int64_t t, uint64_t seed, uint64_t draw) {
    record(t, sample_(eng_.D().data(), eng_.taken().data(), n(), eng_.untaken(), splitmix64_uniform(seed, draw)));
  }
  void add_centre(int64_t t) { eng_.add_centre(picks_[t]); }

 private:
  void record(int64_t t, int64_t i) {
    picks_[t] = i;
    if (dists_) dists_[t] = std::sqrt(static_cast<double>(eng_.D()[i]));
    const pruned::Stats& st = eng_.stats();
    const double work = static_cast<double>(st.values_read + st.rows_touched);
    eng_.rows().workspace().pick_done(work - work_seen_);
    work_seen_ = work;
  }

  Engine<Rows> eng_;
  const std::vector<uint8_t>& labelled_;
  int64_t dormant_picks_;
  int64_t* picks_;
  double* dists_;
  D2Sampler sample_;
  double work_seen_ = 0.0;  // engine reads already reported to the workspace's team tuner
};

using F32 = py::array_t<float, py::array::c_style>;

// The sketch tuple (z [n, k], r [n], slack [n] float32 C-contiguous, scale, tau) or None;
// sketch2: the same for a wider second tier of the same pool (read only for the rows the
// first tier does not settle), or None.
pruned::SketchView sketch_view(const py::object& sketch, const cpu::Emb& e) {
  pruned::SketchView v;
  if (sketch.is_none()) return v;
  if (e.kind == kBadge) throw py::value_error("pruned selection: sketch bounds cover dense pools and factored UWE");
  const auto t = sketch.cast<py::tuple>();
  if (t.size() != 5) throw py::value_error("pruned selection: sketch must be (z, r, slack, scale, tau)");
  const auto z = t[0].cast<F32>(), r = t[1].cast<F32>(), slack = t[2].cast<F32>();
  const int64_t n = e.n();
  if (z.ndim() != 2 || z.shape(0) != n || r.ndim() != 1 || r.shape(0) != n || slack.ndim() != 1 ||
      slack.shape(0) != n)
    throw py::value_error("pruned selection: sketch arrays must be z [n, k], r [n], slack [n]");
  // The casts above may have converted: only arrays already float32 and contiguous are views.
  if (!py::isinstance<F32>(t[0]) || !py::isinstance<F32>(t[1]) || !py::isinstance<F32>(t[2]))
    throw py::value_error("pruned selection: sketch arrays must be C-contiguous float32");
  v.z = z.data();
  v.r = r.data();
  v.slack = slack.data();
  v.k = z.shape(1);
  v.scale = t[3].cast<float>();
  v.tau = t[4].cast<float>();
  return v;
}

// k-center greedy (kcenter) or k-means++: (picks, [dists,] stats).
py::tuple select_pruned(const py::tuple& emb_spec, const py::array_t<bool, py::array::forcecast>& labelled_mask,
                        int64_t budget, uint64_t seed, int64_t first, bool double_acc, int mode, bool kcenter,
                        py::object progress, const py::object& sketch, const py::object& sketch2) {
  const cpu::Emb e(emb_of(emb_spec));
  const int64_t n = e.n();
  const pruned::SketchView sk = sketch_view(sketch, e);
  const pruned::SketchView wide = sketch_view(sketch2, e);
  if (wide.z != nullptr && (sk.z == nullptr || wide.k <= sk.k))
    throw py::value_error("pruned selection: sketch2 must be a wider second tier of sketch");
  if (budget < 0 || budget > n) throw py::value_error("pruned selection: budget out of range");
  if (mode < pruned::kPlain || mode > pruned::kAdaptive) throw py::value_error("pruned selection: unknown mode");
  if (first >= n || first < (kcenter ? kFirstMaxNorm : kFirstRandom))
    throw py::value_error("pruned selection: first out of range");
  const std::vector<uint8_t> labelled = mask_vector(labelled_mask, n);
  py::array_t<int64_t> picks(budget);
  py::array_t<double> dists(kcenter ? budget : 0);
  int64_t* pk = picks.mutable_data();
  double* ds = kcenter ? dists.mutable_data() : nullptr;
  Checkpoint checkpoint(progress);
  pruned::Stats stats;
  bool plain_at_end = false;
  auto run = [&](auto acc) {
    using Acc = decltype(acc);
    cpu::Workspace<Acc> ws(cpu::team_threads(), e.width() + 1);
    std::vector<Acc> p(e.kind == kBadge ? static_cast<size_t>(n) : 0);
    if (e.kind == kBadge) cpu::badge_norms<Acc>(e, p.data(), ws);
    cpu::with_row_distance<Acc>(e, p.data(), [&](const auto& dist) {
      using Rows = EmbRows<Acc, std::decay_t<decltype(dist)>>;
      const Rows rows(e, dist, p.data(), ws);
      PrunedState<Rows> state(rows, mode, sk, wide, labelled, kcenter ? budget : 0, pk, ds);
      if (kcenter)
        kcenter_greedy_loop(state, budget, first, checkpoint);
      else
        kmeans_pp_loop(state, budget, seed, first, checkpoint);
      stats = state.engine().stats();
      plain_at_end = state.engine().plain();
    });
  };
  {
    py::gil_scoped_release release;
    if (double_acc)
      run(double{});
    else
      run(float{});
  }
  checkpoint.finish(budget);
  if (kcenter) return py::make_tuple(picks, dists, stats_dict(stats, n, budget, plain_at_end));
  return py::make_tuple(picks, stats_dict(stats, n, budget, plain_at_end));
}

}  // namespace

void register_pruned_cpu(py::module_& m) {
  m.def(
      "kcenter_greedy_pruned",
      [](const py::tuple& emb, const py::array_t<bool, py::array::forcecast>& labelled_mask, int64_t budget,
         int64_t first, bool double_acc, int mode, py::object progress, py::object sketch, py::object sketch2) {
        return select_pruned(emb, labelled_mask, budget, 0, first, double_acc, mode, true, progress, sketch, sketch2);
      },
      py::arg("emb"), py::arg("labelled_mask"), py::arg("budget"), py::arg("first"), py::arg("double_acc"),
      py::arg("mode"), py::arg("progress"), py::arg("sketch") = py::none(), py::arg("sketch2") = py::none(),
      "Pruned k-center greedy on an embedding spec (uwe_kernels/_spec.py): (picks [budget] int64, "
      "dists [budget] float64, stats dict).");
  m.def(
      "kmeans_pp_pruned",
      [](const py::tuple& emb, const py::array_t<bool, py::array::forcecast>& labelled_mask, int64_t budget,
         uint64_t seed, int64_t first, bool double_acc, int mode, py::object progress, py::object sketch,
         py::object sketch2) {
        return select_pruned(emb, labelled_mask, budget, seed, first, double_acc, mode, false, progress, sketch,
                             sketch2);
      },
      py::arg("emb"), py::arg("labelled_mask"), py::arg("budget"), py::arg("seed"), py::arg("first"),
      py::arg("double_acc"), py::arg("mode"), py::arg("progress"), py::arg("sketch") = py::none(), py::arg("sketch2") = py::none(),
      "Pruned k-means++ seeding on an embedding spec: (picks [budget] int64, stats dict).");
}

}  // namespace uwe
