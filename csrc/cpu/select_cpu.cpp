// Selection kernels of the CPU module: k-center greedy, k-means++ seeding and nearest-centre
// distances, for dense [n, d] pools and factored embeddings (UWE u (x) f, BADGE a (x) f).
//
// Algorithm. One min-distance vector D [n] (+inf at the start, never a finite sentinel) is
// updated in place. Each pick costs one pass over the pool: every row's squared distance to
// the new centre is computed, D = min(D, dist), and the next argmax (k-center) falls out of
// the same pass as per-thread (value, index) maxima merged in thread order. K-means++ then
// draws from D with a sequential float64 prefix sum in index order (block checkpoints make the
// search O(block) without changing a single rounding). A labelled set initialises D by a
// GEMM-shaped blocked pass (register tiles of 4 rows x W centres, centres packed in chunks of
// fixed size) computing the exact difference formula, so memory stays O(n) + fixed chunks.
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

#include "common/distance.h"
#include "common/dtype_convert.h"
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
template <class Acc, bool Update, bool Argmax, class Dist>
int64_t sweep(const Dist& dist, const Acc* centre, Acc* D, const uint8_t* taken, int64_t n, int64_t width,
              Workspace<Acc>& ws) {
#pragma omp parallel num_threads(ws.threads) if (n * (Update ? width : 1) > kParallelMinWork)
  {
    const int tid = thread_id(), team = team_size();
    if (tid == 0) ws.used = team;
    const int64_t lo = n * tid / team, hi = n * (tid + 1) / team;
    Acc* buf = ws.buffer(tid);
    Acc best = Acc(-1);
    int64_t best_i = -1;
    for (int64_t i = lo; i < hi; ++i) {
      if (taken[i]) continue;
      Acc di = D[i];
      if (Update && di > Acc(0)) {
        const Acc x = dist(i, centre, buf);
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
    ws.best_value[tid] = best;
    ws.best_index[tid] = best_i;
  }
  if (!Argmax) return -1;
  Acc best = Acc(-1);
  int64_t best_i = -1;
  for (int t = 0; t < ws.used; ++t) {  // thread ranges ascend: strict > keeps the lowest index
    if (ws.best_index[t] >= 0 && ws.best_value[t] > best) {
      best = ws.best_value[t];
      best_i = ws.best_index[t];
    }
  }
  return best_i;
}


// ------------------------------------------------------------------ k-center greedy
template <class Acc>
void kcenter_greedy_run(const Emb& e, std::vector<uint8_t>& taken, int64_t budget, int64_t first, int64_t* picks,
                        double* dists, Checkpoint& checkpoint) {
  const int64_t n = e.n(), width = e.width();
  Workspace<Acc> ws(thread_count(), width + 1);
  std::vector<Acc> D(static_cast<size_t>(n), kInf<Acc>);
  std::vector<Acc> p(e.kind == kBadge ? static_cast<size_t>(n) : 0);
  if (e.kind == kBadge) badge_norms<Acc>(e, p.data(), ws);
  std::vector<Acc> centre(static_cast<size_t>(width + 1), Acc(0));
  const bool any_labelled = std::any_of(taken.begin(), taken.end(), [](uint8_t t) { return t != 0; });
  with_row_distance<Acc>(e, p.data(), [&](const auto& dist) {
    using Dist = std::decay_t<decltype(dist)>;
    int64_t next;
    if (any_labelled) {
      labelled_init<Acc>(e, taken.data(), p.data(), D.data(), ws, checkpoint);
      next = sweep<Acc, false, true, Dist>(dist, centre.data(), D.data(), taken.data(), n, width, ws);
    } else if (first >= 0) {
      next = first;
    } else {  // |x_i|^2 is the distance to the zero centre
      next = sweep<Acc, true, true, Dist>(dist, centre.data(), D.data(), taken.data(), n, width, ws);
      std::fill(D.begin(), D.end(), kInf<Acc>);
    }
    for (int64_t t = 0; t < budget; ++t) {
      const int64_t pick = next;
      picks[t] = pick;
      dists[t] = std::sqrt(static_cast<double>(D[pick]));
      taken[pick] = 1;
      D[pick] = Acc(0);
      if (t + 1 == budget) break;
      prepare_centre<Acc>(e, pick, p.data(), centre.data());
      next = sweep<Acc, true, true, Dist>(dist, centre.data(), D.data(), taken.data(), n, width, ws);
      checkpoint.poll(t + 1);
    }
  });
}

// ------------------------------------------------------------------ k-means++
// The sequential float64 prefix sums of D in index order, with the value reached at the
// start of every block of kPrefixBlock rows kept, so the search can restart from a block
// and reproduce exactly the same roundings.
constexpr int64_t kPrefixBlock = 4096;

template <class Acc>
double prefix_checkpoints(const Acc* D, int64_t n, std::vector<double>& starts) {
  double s = 0.0;
  const int64_t nb = (n + kPrefixBlock - 1) / kPrefixBlock;
  for (int64_t b = 0; b < nb; ++b) {
    starts[b] = s;
    const int64_t end = std::min(n, (b + 1) * kPrefixBlock);
    for (int64_t i = b * kPrefixBlock; i < end; ++i) s += static_cast<double>(D[i]);
  }
  starts[nb] = s;
  return s;
}

// Smallest i whose prefix D_0 + ... + D_i exceeds target (the last row with D > 0 when
// rounding leaves none).
template <class Acc>
int64_t prefix_search(const Acc* D, int64_t n, const std::vector<double>& starts, double target) {
  const int64_t nb = (n + kPrefixBlock - 1) / kPrefixBlock;
  // Last block whose starting prefix is <= target: the first exceedance lies in it.
  const int64_t b = std::upper_bound(starts.begin(), starts.begin() + nb, target) - starts.begin() - 1;
  double s = starts[b];
  const int64_t end = std::min(n, (b + 1) * kPrefixBlock);
  for (int64_t i = b * kPrefixBlock; i < end; ++i) {
    s += static_cast<double>(D[i]);
    if (s > target) return i;
  }
  for (int64_t i = n - 1; i >= 0; --i)
    if (D[i] > Acc(0)) return i;
  return -1;
}

int64_t kth_untaken(const std::vector<uint8_t>& taken, int64_t k) {
  for (int64_t i = 0, n = (int64_t)taken.size(); i < n; ++i)
    if (!taken[i] && k-- == 0) return i;
  return -1;
}

constexpr int64_t kFirstMaxNorm = -1;
constexpr int64_t kFirstRandom = -2;

template <class Acc>
void kmeans_pp_run(const Emb& e, std::vector<uint8_t>& taken, int64_t budget, uint64_t seed, int64_t first,
                   int64_t* picks, Checkpoint& checkpoint) {
  const int64_t n = e.n(), width = e.width();
  Workspace<Acc> ws(thread_count(), width + 1);
  std::vector<Acc> D(static_cast<size_t>(n), kInf<Acc>);
  std::vector<Acc> p(e.kind == kBadge ? static_cast<size_t>(n) : 0);
  if (e.kind == kBadge) badge_norms<Acc>(e, p.data(), ws);
  std::vector<Acc> centre(static_cast<size_t>(width + 1), Acc(0));
  std::vector<double> starts(static_cast<size_t>((n + kPrefixBlock - 1) / kPrefixBlock + 1));
  int64_t untaken = std::count(taken.begin(), taken.end(), uint8_t(0));
  const bool any_labelled = untaken < n;
  uint64_t draw = 0;
  with_row_distance<Acc>(e, p.data(), [&](const auto& dist) {
    using Dist = std::decay_t<decltype(dist)>;
    if (any_labelled) labelled_init<Acc>(e, taken.data(), p.data(), D.data(), ws, checkpoint);
    for (int64_t t = 0; t < budget; ++t) {
      int64_t pick;
      if (t == 0 && !any_labelled) {
        if (first == kFirstMaxNorm) {
          pick = sweep<Acc, true, true, Dist>(dist, centre.data(), D.data(), taken.data(), n, width, ws);
          std::fill(D.begin(), D.end(), kInf<Acc>);
        } else if (first == kFirstRandom) {
          pick = uniform_rank(splitmix64_uniform(seed, draw++), n);
        } else {
          pick = first;
        }
      } else {
        const double r = splitmix64_uniform(seed, draw++);
        const double total = prefix_checkpoints<Acc>(D.data(), n, starts);
        pick = total > 0.0 ? prefix_search<Acc>(D.data(), n, starts, r * total)
                           : kth_untaken(taken, uniform_rank(r, untaken));
      }
      picks[t] = pick;
      taken[pick] = 1;
      D[pick] = Acc(0);
      --untaken;
      if (t + 1 == budget) break;
      prepare_centre<Acc>(e, pick, p.data(), centre.data());
      sweep<Acc, true, false, Dist>(dist, centre.data(), D.data(), taken.data(), n, width, ws);
      checkpoint.poll(t + 1);
    }
  });
}

// ------------------------------------------------------------------ min distances
template <class Acc>
void min_distances_run(const Emb& rows, const Emb& cents, Acc* D, int64_t* A, Checkpoint& checkpoint) {
  const int64_t n = rows.n(), m = cents.n();
  Workspace<Acc> ws(thread_count(), rows.width() + 1);
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
  if (rows.kind == kBadge) badge_recompute<Acc>(rows, nullptr, n, cents, nullptr, rp.data(), cp.data(), D, A, ws);
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

py::tuple kcenter_greedy_py(const py::tuple& emb_spec, const py::array_t<bool, py::array::forcecast>& labelled,
                            int64_t budget, int64_t first, bool double_acc, py::object progress) {
  const Emb e = emb_of(emb_spec);
  std::vector<uint8_t> taken = taken_of(labelled, e.n());
  check_budget(budget, taken);
  if (first >= e.n()) throw py::value_error("first is out of range");
  py::array_t<int64_t> picks(budget);
  py::array_t<double> dists(budget);
  int64_t* pk = picks.mutable_data();
  double* ds = dists.mutable_data();
  Checkpoint checkpoint(progress);
  {
    py::gil_scoped_release release;
    if (budget > 0) {
      if (double_acc)
        kcenter_greedy_run<double>(e, taken, budget, first, pk, ds, checkpoint);
      else
        kcenter_greedy_run<float>(e, taken, budget, first, pk, ds, checkpoint);
    }
  }
  return py::make_tuple(picks, dists);
}

py::array_t<int64_t> kmeans_pp_py(const py::tuple& emb_spec, const py::array_t<bool, py::array::forcecast>& labelled,
                                  int64_t budget, uint64_t seed, int64_t first, bool double_acc, py::object progress) {
  const Emb e = emb_of(emb_spec);
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
        kmeans_pp_run<double>(e, taken, budget, seed, first, pk, checkpoint);
      else
        kmeans_pp_run<float>(e, taken, budget, seed, first, pk, checkpoint);
    }
  }
  return picks;
}

py::tuple min_distances_py(const py::tuple& emb_spec, const py::tuple& centres_spec, bool double_acc) {
  const Emb rows = emb_of(emb_spec);
  const Emb cents = emb_of(centres_spec);
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
        "emb = (kind 0 dense / 1 UWE / 2 BADGE, features, dtype code, weights or None, dtype code); "
        "first = -1 for the row of largest norm.");
  m.def("kmeans_pp", &cpu::kmeans_pp_py, py::arg("emb"), py::arg("labelled"), py::arg("budget"), py::arg("seed"),
        py::arg("first"), py::arg("double_acc"), py::arg("progress"),
        "k-means++ seeding with SplitMix64 draws: picks [budget] int64. first = -1 max norm, -2 random, "
        "or an index.");
  m.def("min_distances", &cpu::min_distances_py, py::arg("emb"), py::arg("centres"), py::arg("double_acc"),
        "(squared distance to the nearest centre [n], its index [n] int64, lowest on ties).");
  m.def("splitmix64_uniforms", &cpu::splitmix64_uniforms_py, py::arg("seed"), py::arg("start"), py::arg("count"),
        "SplitMix64 draws start .. start + count - 1 as float64 in [0, 1).");
}

}  // namespace uwe
