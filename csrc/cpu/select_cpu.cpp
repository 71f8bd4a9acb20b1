// Selection kernels of the CPU module: k-center greedy, k-means++ seeding and nearest-centre
// distances, for dense [n, d] pools and factored embeddings (UWE u (x) f, BADGE a (x) f).
//
// Algorithm. One min-distance vector D [n] (+inf at the start, never a finite sentinel) is
// updated in place. Each pick costs one pass over the pool: every row's squared distance to
// the new centre is computed, D = min(D, dist), and the next argmax (k-center) falls out of
// the same pass as per-thread (value, index) maxima merged in thread order. K-means++ then
// draws from D with a sequential float64 prefix sum in index order (common/d2_sampling.h). The
// pick loop itself is common/select_driver.h, shared with the pruned and CUDA kernels. A
// labelled set initialises D by a blocked pass (register tiles of 4 rows x 2 centres, centres
// packed in chunks of fixed size) that sums every pair in row_sum's order, so its D is the
// per-pick pass's to the bit and memory stays O(n) + fixed chunks.
// No norm trick |x|^2 + |c|^2 - 2 x.c here, not even as a filter: with FMA the subtraction
// issues beside the multiply-add, so the exact form costs about what the dot product costs,
// and every pair gets the exact value (no close calls to re-decide, no error bound to trust).
// The whole loop runs with the GIL released; every ~100 ms it re-acquires it to check
// signals (Ctrl-C raises KeyboardInterrupt) and to report progress.
//
// Complexity: k-center O(budget * n * d) time; labelled init O(n * m * d); BADGE rows cost
// O(K + d) per distance instead of O(K * d). Extra memory O(n) + O(threads * chunk).
// Shapes: dense x [n, d]; UWE weights [n], features [n, d]; BADGE weights [n, K], features
// [n, d]. Any strides; float16/bfloat16 rows are read as they are (half the bytes).
// Accumulation: float for float16/bfloat16/float32 pools, double when anything is float64.
// Ties: lowest index wins every argmax and argmin; picked and labelled rows have D = 0 and
// are never picked again.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "common/d2_sampling.h"
#include "common/distance.h"
#include "common/dtype_convert.h"
#include "common/select_driver.h"
#include "common/splitmix64.h"
#include "cpu/select_core.h"
#include "cpu/select_simd.h"

namespace py = pybind11;

namespace uwe {
namespace cpu {
namespace {

// ------------------------------------------------------------------ the per-pick pass
// Update: D[i] = min(D[i], dist(i, centre)) over rows not taken (rows with D = 0 cannot
// change). Argmax: returns the untaken row of largest D, lowest index on ties (-1 if none).
// Rows go in chunks handed out dynamically (a thread that lost its core to another process
// leaves its remaining chunks to the others); chunk maxima merge in chunk order, so the result
// never depends on which thread ran which chunk.
template <class Acc, bool Update, bool Argmax, class Dist>
int64_t sweep(const Dist& dist, const Acc* centre, Acc* D, const uint8_t* taken, int64_t n, int64_t width,
              Workspace<Acc>& ws) {
  const int64_t rows = std::clamp<int64_t>(kChunkWork / std::max<int64_t>(Update ? width : 1, 1), 256, 1 << 16);
  const int64_t chunks = (n + rows - 1) / rows;
  if (static_cast<int64_t>(ws.best_value.size()) < chunks) {
    ws.best_value.resize(static_cast<size_t>(chunks));
    ws.best_index.resize(static_cast<size_t>(chunks));
  }
#pragma omp parallel for num_threads(ws.threads) schedule(dynamic, 1) if (n * (Update ? width : 1) > kParallelMinWork)
  for (int64_t b = 0; b < chunks; ++b) {
    Acc* buf = ws.buffer(thread_id());
    Acc best = Acc(-1);
    int64_t best_i = -1;
    for (int64_t i = b * rows, hi = std::min(n, (b + 1) * rows); i < hi; ++i) {
      if (taken[i]) continue;
      Acc di = D[i];
      if (Update && di > Acc(0)) {
        int64_t read = 0;
        const Acc x = dist(i, centre, buf, di, read);
        if (x < di) {
          di = x;
          D[i] = x;
        }
      }
      if (Argmax && di > best) {
        best = di;
        best_i = i;
      }
    }
    ws.best_value[b] = best;
    ws.best_index[b] = best_i;
  }
  if (!Argmax) return -1;
  Acc best = Acc(-1);
  int64_t best_i = -1;
  for (int64_t b = 0; b < chunks; ++b) {  // chunks ascend: strict > keeps the lowest index
    if (ws.best_index[b] >= 0 && ws.best_value[b] > best) {
      best = ws.best_value[b];
      best_i = ws.best_index[b];
    }
  }
  return best_i;
}


// ------------------------------------------------------------------ the driver's state
// Brute force for common/select_driver.h: every pick is one pass over the pool. For k-center
// the pass that adds a centre also finds the next argmax (one read of D per pick).
template <class Acc, class Dist>
class BruteState {
 public:
  // history (k-center, may be null): row t receives D before pick t, [budget, n] row-major.
  BruteState(const Emb& e, const Dist& dist, const Acc* p, std::vector<uint8_t>& taken, Workspace<Acc>& ws,
             bool fuse_argmax, int64_t* picks, double* dists, double* history = nullptr)
      : e_(e), dist_(dist), p_(p), taken_(taken), ws_(ws), fuse_argmax_(fuse_argmax), picks_(picks), dists_(dists),
        history_(history),
        n_(e.n()), width_(e.width()), D_(static_cast<size_t>(n_), kInf<Acc>),
        centre_(static_cast<size_t>(width_ + 1), Acc(0)),
        untaken_(std::count(taken.begin(), taken.end(), uint8_t(0))) {}

  int64_t n() const { return n_; }

  bool add_labelled(Checkpoint& checkpoint) {
    if (untaken_ == n_) return false;
    labelled_init<Acc>(e_, taken_.data(), p_, D_.data(), ws_, checkpoint);
    return true;
  }
  void pick_row(int64_t t, int64_t i) { record(t, i); }
  void pick_max_norm(int64_t t) {  // |x_i|^2 is the distance to the zero centre
    std::fill(centre_.begin(), centre_.end(), Acc(0));
    const int64_t i = sweep<Acc, true, true>(dist_, centre_.data(), D_.data(), taken_.data(), n_, width_, ws_);
    std::fill(D_.begin(), D_.end(), kInf<Acc>);
    record(t, i);
  }
  void pick_farthest(int64_t t) {
    const int64_t i = next_ >= 0 ? next_ : sweep<Acc, false, true>(dist_, centre_.data(), D_.data(), taken_.data(), n_, width_, ws_);
    record(t, i);
  }
  void pick_d2(int64_t t, uint64_t seed, uint64_t draw) {
    record(t, sample_(D_.data(), taken_.data(), n_, untaken_, splitmix64_uniform(seed, draw)));
  }
  void add_centre(int64_t t) {
    prepare_centre<Acc>(e_, picks_[t], p_, centre_.data());
    if (fuse_argmax_)
      next_ = sweep<Acc, true, true>(dist_, centre_.data(), D_.data(), taken_.data(), n_, width_, ws_);
    else
      sweep<Acc, true, false>(dist_, centre_.data(), D_.data(), taken_.data(), n_, width_, ws_);
  }

 private:
  void record(int64_t t, int64_t i) {
    if (history_) std::copy(D_.begin(), D_.end(), history_ + t * n_);
    picks_[t] = i;
    if (dists_) dists_[t] = std::sqrt(static_cast<double>(D_[i]));
    taken_[i] = 1;
    D_[i] = Acc(0);
    --untaken_;
    next_ = -1;
    ws_.pick_done(static_cast<double>(untaken_) * static_cast<double>(width_));
  }

  const Emb& e_;
  const Dist& dist_;
  const Acc* p_;
  std::vector<uint8_t>& taken_;
  Workspace<Acc>& ws_;
  bool fuse_argmax_;
  int64_t* picks_;
  double* dists_;
  double* history_;
  int64_t n_, width_;
  std::vector<Acc> D_;
  std::vector<Acc> centre_;
  int64_t untaken_;
  int64_t next_ = -1;
  D2Sampler sample_;
};

// k-center greedy (dists != nullptr) or k-means++ (dists == nullptr) by brute force.
template <class Acc>
void select_run(const Emb& e, std::vector<uint8_t>& taken, int64_t budget, uint64_t seed, int64_t first,
                int64_t* picks, double* dists, Checkpoint& checkpoint, double* history = nullptr) {
  Workspace<Acc> ws(team_threads(), e.width() + 1);
  std::vector<Acc> p(e.kind == kBadge ? static_cast<size_t>(e.n()) : 0);
  if (e.kind == kBadge) badge_norms<Acc>(e, p.data(), ws);
  with_row_distance<Acc>(e, p.data(), [&](const auto& dist) {
    BruteState<Acc, std::decay_t<decltype(dist)>> state(e, dist, p.data(), taken, ws, dists != nullptr, picks, dists,
                                                        history);
    if (dists)
      kcenter_greedy_loop(state, budget, first, checkpoint);
    else
      kmeans_pp_loop(state, budget, seed, first, checkpoint);
  });
}

// ------------------------------------------------------------------ min distances
template <class Acc>
void min_distances_run(const Emb& rows, const Emb& cents, Acc* D, int64_t* A, Checkpoint& checkpoint) {
  const int64_t n = rows.n(), m = cents.n();
  Workspace<Acc> ws(team_threads(), rows.width() + 1);
  std::fill(D, D + n, kInf<Acc>);
  std::fill(A, A + n, int64_t(-1));
  std::vector<Acc> rp, cp;
  if (rows.kind == kBadge) {
    rp.resize(static_cast<size_t>(n));
    cp.resize(static_cast<size_t>(m));
    badge_norms<Acc>(rows, rp.data(), ws);
    badge_norms<Acc>(cents, cp.data(), ws);
  }
  nearest_centres<Acc>(rows, nullptr, n, cents, nullptr, m, rp.data(), cp.data(), D, A, ws, checkpoint, 0);
}


// ------------------------------------------------------------------ Python side
std::vector<uint8_t> taken_of(const py::array_t<bool, py::array::forcecast>& mask, int64_t n) {
  if (mask.ndim() != 1 || mask.shape(0) != n)
    throw py::value_error("labelled mask must have shape (" + std::to_string(n) + ",)");
  std::vector<uint8_t> taken(static_cast<size_t>(n));
  auto view = mask.unchecked<1>();
  for (int64_t i = 0; i < n; ++i) taken[i] = view(i) ? 1 : 0;
  return taken;
}

void check_budget(int64_t budget, const std::vector<uint8_t>& taken) {
  const int64_t free = std::count(taken.begin(), taken.end(), uint8_t(0));
  if (budget < 0 || budget > free)
    throw py::value_error("budget " + std::to_string(budget) + " is outside [0, " + std::to_string(free) +
                          "] (the unlabelled rows)");
}

py::tuple kcenter_greedy_run(const py::tuple& emb_spec, const py::array_t<bool, py::array::forcecast>& labelled,
                             int64_t budget, int64_t first, bool double_acc, py::object progress, bool with_history) {
  const Emb e(emb_of(emb_spec));
  std::vector<uint8_t> taken = taken_of(labelled, e.n());
  check_budget(budget, taken);
  if (first >= e.n()) throw py::value_error("first is out of range");
  py::array_t<int64_t> picks(budget);
  py::array_t<double> dists(budget);
  py::array_t<double> history(with_history ? std::vector<int64_t>{budget, e.n()} : std::vector<int64_t>{0, 0});
  int64_t* pk = picks.mutable_data();
  double* ds = dists.mutable_data();
  double* hs = with_history ? history.mutable_data() : nullptr;
  Checkpoint checkpoint(progress);
  {
    py::gil_scoped_release release;
    if (budget > 0) {
      if (double_acc)
        select_run<double>(e, taken, budget, 0, first, pk, ds, checkpoint, hs);
      else
        select_run<float>(e, taken, budget, 0, first, pk, ds, checkpoint, hs);
    }
  }
  if (with_history) return py::make_tuple(picks, dists, history);
  return py::make_tuple(picks, dists);
}

py::tuple kcenter_greedy_py(const py::tuple& emb_spec, const py::array_t<bool, py::array::forcecast>& labelled,
                            int64_t budget, int64_t first, bool double_acc, py::object progress) {
  return kcenter_greedy_run(emb_spec, labelled, budget, first, double_acc, progress, false);
}

py::tuple kcenter_greedy_history_py(const py::tuple& emb_spec,
                                    const py::array_t<bool, py::array::forcecast>& labelled, int64_t budget,
                                    int64_t first, bool double_acc) {
  return kcenter_greedy_run(emb_spec, labelled, budget, first, double_acc, py::none(), true);
}

py::array_t<int64_t> kmeans_pp_py(const py::tuple& emb_spec, const py::array_t<bool, py::array::forcecast>& labelled,
                                  int64_t budget, uint64_t seed, int64_t first, bool double_acc, py::object progress) {
  const Emb e(emb_of(emb_spec));
  std::vector<uint8_t> taken = taken_of(labelled, e.n());
  check_budget(budget, taken);
  if (first >= e.n() || first < kFirstRandom) throw py::value_error("first is out of range");
  py::array_t<int64_t> picks(budget);
  int64_t* pk = picks.mutable_data();
  Checkpoint checkpoint(progress);
  {
    py::gil_scoped_release release;
    if (budget > 0) {
      if (double_acc)
        select_run<double>(e, taken, budget, seed, first, pk, nullptr, checkpoint);
      else
        select_run<float>(e, taken, budget, seed, first, pk, nullptr, checkpoint);
    }
  }
  return picks;
}

py::tuple min_distances_py(const py::tuple& emb_spec, const py::tuple& centres_spec, bool double_acc) {
  const Emb rows(emb_of(emb_spec));
  const Emb cents(emb_of(centres_spec));
  if (rows.kind != cents.kind || rows.d() != cents.d() || rows.K() != cents.K())
    throw py::value_error("centres must have the same kind and shape of rows as the embedding");
  if (cents.n() == 0) throw py::value_error("centres must have at least one row");
  const int64_t n = rows.n();
  py::array D = double_acc ? py::array(py::array_t<double>(n)) : py::array(py::array_t<float>(n));
  py::array_t<int64_t> A(n);
  void* dp = D.mutable_data();
  int64_t* ap = A.mutable_data();
  Checkpoint checkpoint{py::none()};
  {
    py::gil_scoped_release release;
    if (double_acc)
      min_distances_run<double>(rows, cents, static_cast<double*>(dp), ap, checkpoint);
    else
      min_distances_run<float>(rows, cents, static_cast<float*>(dp), ap, checkpoint);
  }
  return py::make_tuple(D, A);
}

py::array_t<double> splitmix64_uniforms_py(uint64_t seed, uint64_t start, int64_t count) {
  py::array_t<double> out(std::max<int64_t>(count, 0));
  double* o = out.mutable_data();
  for (int64_t t = 0; t < count; ++t) o[t] = splitmix64_uniform(seed, start + static_cast<uint64_t>(t));
  return out;
}

}  // namespace
}  // namespace cpu

void register_select_cpu(py::module_& m) {
  m.def("kcenter_greedy", &cpu::kcenter_greedy_py, py::arg("emb"), py::arg("labelled"), py::arg("budget"),
        py::arg("first"), py::arg("double_acc"), py::arg("progress"),
        "k-center greedy: (picks [budget] int64, Euclidean distance at pick time [budget] float64). "
        "emb: an embedding spec (uwe_kernels/_spec.py); first: an index or the max-norm code (uwe_kernels/_abi.py).");
  m.def("kcenter_greedy_history", &cpu::kcenter_greedy_history_py, py::arg("emb"), py::arg("labelled"),
        py::arg("budget"), py::arg("first"), py::arg("double_acc"),
        "k-center greedy by brute force that also keeps D: (picks, distances at pick time, [budget, n] float64 "
        "squared distance of every row to its nearest centre just before each pick; 0 for taken rows, inf "
        "before a first pick with nothing labelled).");
  m.def("kmeans_pp", &cpu::kmeans_pp_py, py::arg("emb"), py::arg("labelled"), py::arg("budget"), py::arg("seed"),
        py::arg("first"), py::arg("double_acc"), py::arg("progress"),
        "k-means++ seeding with SplitMix64 draws: picks [budget] int64. first: an index or a first-pick "
        "code (uwe_kernels/_abi.py).");
  m.def("min_distances", &cpu::min_distances_py, py::arg("emb"), py::arg("centres"), py::arg("double_acc"),
        "(squared distance to the nearest centre [n], its index [n] int64, lowest on ties).");
  m.def("splitmix64_uniforms", &cpu::splitmix64_uniforms_py, py::arg("seed"), py::arg("start"), py::arg("count"),
        "SplitMix64 draws start .. start + count - 1 as float64 in [0, 1).");
}

}  // namespace uwe
