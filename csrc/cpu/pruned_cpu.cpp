// Pruned k-center greedy and k-means++ of the CPU module: exactly the picks of the plain
// per-pick pass, with far fewer rows read on clustered pools (see cpu/pruned_engine.h).
// Pools: dense [n, d] (cpu/pruned_distance.h) or factored UWE / BADGE embeddings
// (cpu/pruned_factored.h, the brute-force kernels' own distance functions).
//
// k-center greedy: labelled rows are added as centres (dense: one by one, the same pruned
// update; factored: the brute-force labelled pass, so D starts from the same values), then
// each pick is the argmax of D over untaken rows (lowest index on ties), found from the group
// maxima. Picked distances are sqrt(D) at pick time, inf for a first pick with nothing labelled.
// k-means++: the same updates; each pick draws r_t (SplitMix64) and takes the first row whose
// float64 prefix sum of D, summed sequentially in index order, exceeds r_t * sum(D) -- the
// exact sums of the definition, so the picks equal those of any backend computing the same D.
// The prefix pass reads D only (one Acc per row, serial: the order is the definition) and keeps
// block checkpoints, so locating the row rescans one block. Uniform pick when sum(D) = 0.
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
#include "common/splitmix64.h"
#include "cpu/pruned_engine.h"
#include "cpu/pruned_factored.h"

namespace py = pybind11;

namespace uwe {
namespace {

using pruned::DenseRows;
using pruned::Engine;
using pruned::FactoredRows;

constexpr int64_t kPrefixBlock = 4096;
constexpr int64_t kFirstMaxNorm = -1;
constexpr int64_t kFirstRandom = -2;

struct Pool {
  const char* base;
  int64_t n, d, row_stride;
  int dtype;
};

Pool pool_view(const py::array& x, int dtype) {
  if (x.ndim() != 2) throw py::value_error("pruned selection: pool must be 2-D, got ndim=" + std::to_string(x.ndim()));
  if (dtype < 0 || dtype > 3) throw py::value_error("pruned selection: unknown dtype code " + std::to_string(dtype));
  const int64_t size = dtype == pruned::kFloat64 ? 8 : dtype == pruned::kFloat32 ? 4 : 2;
  if (x.itemsize() != size) throw py::value_error("pruned selection: itemsize does not match the dtype code");
  if (x.shape(1) > 1 && x.strides(1) != size)
    throw py::value_error("pruned selection: rows must have unit element stride");
  return Pool{static_cast<const char*>(x.data()), x.shape(0), x.shape(1), x.strides(0), dtype};
}

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
  out["plain_at_end"] = plain_at_end;
  return out;
}

// The row of largest norm, lowest index on ties (norms as the brute-force first pick computes them).
template <class Rows>
int64_t max_norm_row(const Engine<Rows>& eng) {
  using Acc = typename Rows::Acc;
  const int64_t n = eng.rows().n();
  std::vector<Acc> norms(n);
#pragma omp parallel for schedule(static, 4096) if (n >= 4096)
  for (int64_t i = 0; i < n; ++i) norms[i] = eng.rows().norm(i);
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (norms[i] > norms[best]) best = i;
  return best;
}

// The floor(r * m)-th untaken row in index order, m the number of untaken rows.
int64_t uniform_untaken(const std::vector<uint8_t>& taken, int64_t m, double r) {
  int64_t j = uniform_rank(r, m);
  for (int64_t i = 0; i < static_cast<int64_t>(taken.size()); ++i) {
    if (taken[i]) continue;
    if (j-- == 0) return i;
  }
  return -1;
}

// First i whose sequential float64 prefix D_0 + ... + D_i exceeds r * total (index order);
// the last row with D > 0 when rounding leaves none; -1 when the total is 0.
template <class Acc>
int64_t sample_d2(const std::vector<Acc>& D, double r, std::vector<double>& block_start) {
  const int64_t n = static_cast<int64_t>(D.size());
  const int64_t blocks = (n + kPrefixBlock - 1) / kPrefixBlock;
  block_start.resize(blocks + 1);
  double p = 0;
  for (int64_t b = 0; b < blocks; ++b) {
    block_start[b] = p;
    const int64_t end = std::min(n, (b + 1) * kPrefixBlock);
    for (int64_t i = b * kPrefixBlock; i < end; ++i) p += static_cast<double>(D[i]);
  }
  block_start[blocks] = p;
  if (!(p > 0.0)) return -1;
  const double target = r * p;
  // Prefixes never decrease: the first block whose end prefix exceeds target holds the row.
  int64_t lo = 0, hi = blocks;  // block_start[hi] > target (or hi == blocks)
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (block_start[mid + 1] > target) hi = mid; else lo = mid + 1;
  }
  if (lo < blocks) {
    double q = block_start[lo];
    const int64_t end = std::min(n, (lo + 1) * kPrefixBlock);
    for (int64_t i = lo * kPrefixBlock; i < end; ++i) {
      q += static_cast<double>(D[i]);
      if (q > target) return i;
    }
  }
  for (int64_t i = n - 1; i >= 0; --i)
    if (D[i] > 0) return i;
  return -1;
}

// The labelled rows become centres; false when there are none. Dense pools: one pruned update
// per labelled row, in index order.
template <class T, class Acc>
bool add_labelled(Engine<DenseRows<T, Acc>>& eng, const std::vector<uint8_t>& labelled, Checkpoint& checkpoint) {
  bool any = false;
  for (int64_t i = 0; i < static_cast<int64_t>(labelled.size()); ++i) {
    if (!labelled[i]) continue;
    any = true;
    eng.add_centre(i);
    checkpoint.poll(0);
  }
  return any;
}

// Factored embeddings: the brute-force labelled pass (same tiles, same BADGE recompute), so
// every D starts bit-identical to the brute-force kernels'; then all centres at once.
template <class Acc>
bool add_labelled(Engine<FactoredRows<Acc>>& eng, const std::vector<uint8_t>& labelled, Checkpoint& checkpoint) {
  const FactoredRows<Acc>& rows = eng.rows();
  const int64_t n = rows.n();
  const int64_t m = std::count(labelled.begin(), labelled.end(), uint8_t(1));
  if (m == 0) return false;
  std::vector<Acc> D(static_cast<size_t>(n), std::numeric_limits<Acc>::infinity());
  std::vector<int64_t> A;
  const std::vector<int64_t> centres =
      cpu::labelled_init<Acc>(rows.emb(), labelled.data(), rows.norms(), D.data(), rows.workspace(), checkpoint, A);
  eng.add_centres(centres, D, A, (n - m) * m);
  return true;
}

template <class Rows>
py::tuple kcenter_impl(const Rows& rows, const std::vector<uint8_t>& labelled, int64_t budget, int64_t first,
                       int mode, py::object progress) {
  py::array_t<int64_t> picks(budget);
  py::array_t<double> dists(budget);
  int64_t* pk = picks.mutable_data();
  double* ds = dists.mutable_data();
  const int64_t n = rows.n();
  Engine<Rows> eng(rows, mode);
  Checkpoint checkpoint(progress);
  {
    py::gil_scoped_release release;
    int64_t t = 0;
    if (budget > 0) {
      const bool any_labelled = add_labelled(eng, labelled, checkpoint);
      if (!any_labelled) {
        const int64_t s = first >= 0 ? first : max_norm_row(eng);
        pk[0] = s;
        ds[0] = std::numeric_limits<double>::infinity();
        eng.add_centre(s);
        t = 1;
      }
    }
    for (; t < budget; ++t) {
      const int64_t s = eng.argmax();
      pk[t] = s;
      ds[t] = std::sqrt(static_cast<double>(eng.D()[s]));
      if (t + 1 < budget) eng.add_centre(s);
      checkpoint.poll(t + 1);
    }
  }
  checkpoint.finish(budget);
  return py::make_tuple(picks, dists, stats_dict(eng.stats(), n, budget, eng.plain()));
}

template <class Rows>
py::tuple kmeans_impl(const Rows& rows, const std::vector<uint8_t>& labelled, int64_t budget, uint64_t seed,
                      int64_t first, int mode, py::object progress) {
  py::array_t<int64_t> picks(budget);
  int64_t* pk = picks.mutable_data();
  const int64_t n = rows.n();
  Engine<Rows> eng(rows, mode);
  Checkpoint checkpoint(progress);
  {
    py::gil_scoped_release release;
    uint64_t draw = 0;
    int64_t t = 0;
    std::vector<double> block_start;
    if (budget > 0) {
      const bool any_labelled = add_labelled(eng, labelled, checkpoint);
      if (!any_labelled) {
        int64_t s = first;
        if (first == kFirstMaxNorm) s = max_norm_row(eng);
        if (first == kFirstRandom) s = uniform_untaken(eng.taken(), eng.untaken(), splitmix64_uniform(seed, draw++));
        pk[0] = s;
        eng.add_centre(s);
        t = 1;
      }
    }
    for (; t < budget; ++t) {
      const double r = splitmix64_uniform(seed, draw++);
      int64_t s = sample_d2(eng.D(), r, block_start);
      if (s < 0) s = uniform_untaken(eng.taken(), eng.untaken(), r);
      pk[t] = s;
      if (t + 1 < budget) eng.add_centre(s);
      checkpoint.poll(t + 1);
    }
  }
  checkpoint.finish(budget);
  return py::make_tuple(picks, stats_dict(eng.stats(), n, budget, eng.plain()));
}

// fn(rows) with the DenseRows of the pool's element type and the accumulator.
template <class Fn>
py::tuple dispatch(const Pool& pool, bool double_acc, Fn&& fn) {
  using pruned::BFloat16;
  using pruned::Half;
  auto run = [&](auto t, auto a) {
    return fn(DenseRows<decltype(t), decltype(a)>{pool.base, pool.n, pool.d, pool.row_stride});
  };
  switch (pool.dtype) {
    case pruned::kFloat16: return double_acc ? run(Half{}, double{}) : run(Half{}, float{});
    case pruned::kBFloat16: return double_acc ? run(BFloat16{}, double{}) : run(BFloat16{}, float{});
    case pruned::kFloat32: return double_acc ? run(float{}, double{}) : run(float{}, float{});
    default: return run(double{}, double{});
  }
}

// fn(rows) with the FactoredRows of a UWE / BADGE embedding spec (the brute-force kernels' spec).
template <class Fn>
py::tuple dispatch_factored(const cpu::Emb& e, bool double_acc, Fn&& fn) {
  if (e.kind != cpu::kUwe && e.kind != cpu::kBadge)
    throw py::value_error("pruned selection: factored kernels take a UWE or BADGE embedding (kind 1 or 2)");
  if (double_acc) return fn(FactoredRows<double>(e));
  return fn(FactoredRows<float>(e));
}

void check_common(int64_t n, int64_t budget, int mode) {
  if (budget < 0 || budget > n) throw py::value_error("pruned selection: budget out of range");
  if (mode < pruned::kPlain || mode > pruned::kAdaptive) throw py::value_error("pruned selection: unknown mode");
}

}  // namespace

void register_pruned_cpu(py::module_& m) {
  m.def(
      "kcenter_greedy_pruned",
      [](const py::array& pool, int dtype, const py::array_t<bool, py::array::forcecast>& labelled_mask,
         int64_t budget, int64_t first, bool double_acc, int mode, py::object progress) {
        const Pool p = pool_view(pool, dtype);
        check_common(p.n, budget, mode);
        if (first >= p.n) throw py::value_error("pruned selection: first out of range");
        const std::vector<uint8_t> labelled = mask_vector(labelled_mask, p.n);
        return dispatch(p, double_acc,
                        [&](const auto& rows) { return kcenter_impl(rows, labelled, budget, first, mode, progress); });
      },
      py::arg("pool"), py::arg("dtype"), py::arg("labelled_mask"), py::arg("budget"), py::arg("first"),
      py::arg("double_acc"), py::arg("mode"), py::arg("progress"),
      "Pruned k-center greedy: (picks [budget] int64, dists [budget] float64, stats dict).");
  m.def(
      "kmeans_pp_pruned",
      [](const py::array& pool, int dtype, const py::array_t<bool, py::array::forcecast>& labelled_mask,
         int64_t budget, uint64_t seed, int64_t first, bool double_acc, int mode, py::object progress) {
        const Pool p = pool_view(pool, dtype);
        check_common(p.n, budget, mode);
        if (first >= p.n || first < kFirstRandom) throw py::value_error("pruned selection: first out of range");
        const std::vector<uint8_t> labelled = mask_vector(labelled_mask, p.n);
        return dispatch(p, double_acc, [&](const auto& rows) {
          return kmeans_impl(rows, labelled, budget, seed, first, mode, progress);
        });
      },
      py::arg("pool"), py::arg("dtype"), py::arg("labelled_mask"), py::arg("budget"), py::arg("seed"),
      py::arg("first"), py::arg("double_acc"), py::arg("mode"), py::arg("progress"),
      "Pruned k-means++ seeding: (picks [budget] int64, stats dict).");
  m.def(
      "kcenter_greedy_pruned_factored",
      [](const py::tuple& emb, const py::array_t<bool, py::array::forcecast>& labelled_mask, int64_t budget,
         int64_t first, bool double_acc, int mode, py::object progress) {
        const cpu::Emb e = cpu::emb_of(emb);
        check_common(e.n(), budget, mode);
        if (first >= e.n()) throw py::value_error("pruned selection: first out of range");
        const std::vector<uint8_t> labelled = mask_vector(labelled_mask, e.n());
        return dispatch_factored(e, double_acc, [&](const auto& rows) {
          return kcenter_impl(rows, labelled, budget, first, mode, progress);
        });
      },
      py::arg("emb"), py::arg("labelled_mask"), py::arg("budget"), py::arg("first"), py::arg("double_acc"),
      py::arg("mode"), py::arg("progress"),
      "Pruned k-center greedy on a factored embedding spec (kind 1 UWE / 2 BADGE, features, dtype code, "
      "weights, dtype code): (picks, dists, stats dict).");
  m.def(
      "kmeans_pp_pruned_factored",
      [](const py::tuple& emb, const py::array_t<bool, py::array::forcecast>& labelled_mask, int64_t budget,
         uint64_t seed, int64_t first, bool double_acc, int mode, py::object progress) {
        const cpu::Emb e = cpu::emb_of(emb);
        check_common(e.n(), budget, mode);
        if (first >= e.n() || first < kFirstRandom) throw py::value_error("pruned selection: first out of range");
        const std::vector<uint8_t> labelled = mask_vector(labelled_mask, e.n());
        return dispatch_factored(e, double_acc, [&](const auto& rows) {
          return kmeans_impl(rows, labelled, budget, seed, first, mode, progress);
        });
      },
      py::arg("emb"), py::arg("labelled_mask"), py::arg("budget"), py::arg("seed"), py::arg("first"),
      py::arg("double_acc"), py::arg("mode"), py::arg("progress"),
      "Pruned k-means++ seeding on a factored embedding spec: (picks, stats dict).");
}

}  // namespace uwe
