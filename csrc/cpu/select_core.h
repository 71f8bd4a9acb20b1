// Shared pieces of the CPU selection kernels (brute-force and pruned): the embedding view
// (dense rows, or UWE / BADGE factors), per-thread scratch, the per-pick row distances, BADGE
// norms, the labelled-set pass and the signal/progress checkpoint. Both kernel families call
// these same functions, so a distance they both compute is bit-identical.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "common/checkpoint.h"
#include "common/distance.h"
#include "common/dtype_convert.h"
#include "cpu/select_simd.h"

namespace uwe {
namespace cpu {

namespace py = pybind11;


inline int thread_count() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

inline int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

inline int team_size() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

template <class Acc>
constexpr Acc kInf = std::numeric_limits<Acc>::infinity();

// Below this many element reads a pass runs on one thread (a team costs more than it saves).
constexpr int64_t kParallelMinWork = 1 << 15;

// ------------------------------------------------------------------ embeddings
enum EmbKind : int { kDense = 0, kUwe = 1, kBadge = 2 };

struct Emb {
  int kind = kDense;
  Matrix f;  // dense rows, or the features of a factored embedding
  Matrix w;  // factored weights: [n, 1] (UWE) or [n, K] (BADGE)

  int64_t n() const { return f.rows; }
  int64_t d() const { return f.cols; }
  int64_t K() const { return kind == kBadge ? w.cols : 0; }
  // Acc values of one row as the kernels hold it: d, or K + d for BADGE (a then f).
  int64_t width() const { return K() + d(); }

  // Dense or UWE row i as Acc values: x_i, or u_i * f_i rounded per element (what the
  // materialised embedding holds, so factored and explicit picks agree).
  template <class Acc>
  void materialise(int64_t i, Acc* out) const {
    f.load_row(i, out);
    if (kind == kUwe) {
      const Acc u = load_as<Acc>(w.row(i), w.dtype);
      for (int64_t k = 0, dd = d(); k < dd; ++k) out[k] = u * out[k];
    }
  }

  template <class Acc>
  const Acc* dense_row(int64_t i, Acc* buf) const {
    if (kind == kDense) {
      if (const Acc* p = f.in_place<Acc>(i)) return p;
    }
    materialise(i, buf);
    return buf;
  }

  template <class Acc>
  const Acc* a_row(int64_t i, Acc* buf) const {
    if (const Acc* p = w.in_place<Acc>(i)) return p;
    w.load_row(i, buf);
    return buf;
  }

  template <class Acc>
  const Acc* f_row(int64_t i, Acc* buf) const {
    if (const Acc* p = f.in_place<Acc>(i)) return p;
    f.load_row(i, buf);
    return buf;
  }

  // The row in the kernels' layout: [x] or [a | f].
  template <class Acc>
  void pack_row(int64_t i, Acc* out) const {
    if (kind == kBadge) {
      w.load_row(i, out);
      f.load_row(i, out + K());
    } else {
      materialise(i, out);
    }
  }
};

// ------------------------------------------------------------------ per-thread scratch
template <class Acc>
struct Workspace {
  int threads;
  int64_t stride;  // Acc values per thread buffer, padded to a cache line
  std::vector<Acc> buffers;
  std::vector<Acc> best_value;
  std::vector<int64_t> best_index;
  int used = 1;

  Workspace(int t, int64_t width) : threads(t) {
    stride = (width + 2 * Simd<Acc>::L + 15) / 16 * 16;
    buffers.assign(static_cast<size_t>(stride) * threads, Acc(0));
    best_value.assign(threads, Acc(0));
    best_index.assign(threads, -1);
  }
  Acc* buffer(int tid) { return buffers.data() + static_cast<size_t>(stride) * tid; }
};

// ------------------------------------------------------------------ row distance functors
// operator()(i, centre, scratch) -> squared distance of row i to the prepared centre.

template <class Src>
struct DirectDistance {  // dense rows read in place (float accumulation)
  Matrix x;
  float operator()(int64_t i, const float* c, float*) const {
    return sq_dist_src<Src>(reinterpret_cast<const typename Src::T*>(x.row(i)), c, x.cols);
  }
};

template <class Acc>
struct RowDistance {  // dense rows converted, or UWE rows u_i * f_i
  const Emb* e;
  Acc operator()(int64_t i, const Acc* c, Acc* buf) const { return sq_dist<Acc>(e->dense_row(i, buf), c, e->d()); }
};

template <class Acc>
struct BadgeDistance {  // centre layout [a_c (K) | f_c (d) | p_c]
  const Emb* e;
  const Acc* p;  // p_i = mul_rn(|a_i|^2, |f_i|^2)
  Acc operator()(int64_t i, const Acc* c, Acc* buf) const {
    const int64_t K = e->K(), d = e->d();
    const Acc aa = dot<Acc>(e->a_row(i, buf), c, K);
    const Acc ff = dot<Acc>(e->f_row(i, buf + K), c + K, d);
    return factored_sq_dist<Acc>(p[i], c[K + d], aa, ff);
  }
};

// Calls fn(distance functor) with the fastest functor for this embedding.
template <class Acc, class Fn>
void with_row_distance(const Emb& e, const Acc* p, Fn&& fn) {
  if (e.kind == kBadge) {
    fn(BadgeDistance<Acc>{&e, p});
    return;
  }
  if constexpr (sizeof(Acc) == 4) {
    const Matrix& x = e.f;
    const int64_t item = dtype_size(x.dtype);
    const bool aligned = reinterpret_cast<uintptr_t>(x.base) % item == 0 && x.stride0 % item == 0;
    if (e.kind == kDense && x.unit_cols() && aligned) {
      if (x.dtype == kFloat32) return fn(DirectDistance<F32Src>{x});
      if (x.dtype == kFloat16) return fn(DirectDistance<F16Src>{x});
      if (x.dtype == kBFloat16) return fn(DirectDistance<BF16Src>{x});
    }
  }
  fn(RowDistance<Acc>{&e});
}

// p_i = mul_rn(|a_i|^2, |f_i|^2) with the same dot kernel the per-pick pass uses, so a row
// identical to a centre has distance exactly 0.
template <class Acc>
void badge_norms(const Emb& e, Acc* p, Workspace<Acc>& ws) {
  const int64_t n = e.n(), K = e.K(), d = e.d();
#pragma omp parallel num_threads(ws.threads) if (n * (K + d) > kParallelMinWork)
  {
    Acc* buf = ws.buffer(thread_id());
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const Acc* a = e.a_row(i, buf);
      const Acc* f = e.f_row(i, buf + K);
      p[i] = mul_rn(dot<Acc>(a, a, K), dot<Acc>(f, f, d));
    }
  }
}

// The centre buffer for row i (layout of the functors above).
template <class Acc>
void prepare_centre(const Emb& e, int64_t i, const Acc* p, Acc* c) {
  e.pack_row(i, c);
  if (e.kind == kBadge) c[e.K() + e.d()] = p[i];
}

// ------------------------------------------------------------------ labelled set / centres
// For each listed row: min over the listed centres of the squared distance, and the centre's
// position in the centre list (lowest on ties), merged into D / A with strict <.
// Work is cut into units (a group of rows x a chunk of centres, ~1e9 element pairs at most);
// each unit packs its chunk into panels [len][W] once, then threads take row blocks of Rb
// rows, pack them, and run the 4 x W register tile over every panel. Between units the
// checkpoint runs.
template <class Acc>
void nearest_centres(const Emb& rows, const int64_t* row_list, int64_t nr, const Emb& cents,
                     const int64_t* cen_list, int64_t m, const Acc* row_p, const Acc* cen_p, Acc* D,
                     int64_t* A, Workspace<Acc>& ws, Checkpoint& checkpoint, int64_t done) {
  using V = typename Simd<Acc>::V;
  using I = typename Simd<Acc>::I;
  using Lane = std::remove_reference_t<decltype(std::declval<I>()[0])>;
  constexpr int L = Simd<Acc>::L;
  constexpr int64_t W = 2 * L;
  if (nr == 0 || m == 0) return;
  const bool badge = rows.kind == kBadge;
  const int64_t K = rows.K(), d = rows.d(), width = rows.width();
  const int64_t wide = std::max<int64_t>(width, 1);
  const int64_t panel_size = width * W + W;  // [a K x W | f d x W | p_c W]
  const int64_t C = std::clamp<int64_t>((262144 / (wide * (int64_t)sizeof(Acc))) / W * W, W, 2048);
  const int64_t Rb = std::clamp<int64_t>((131072 / (wide * (int64_t)sizeof(Acc))) / 4 * 4, 4, 128);
  const int64_t G = std::max<int64_t>(Rb * ws.threads, (int64_t(1) << 30) / (C * wide) / Rb * Rb);
  const int64_t npanels_max = C / W;
  std::vector<Acc> chunk(static_cast<size_t>(npanels_max * panel_size));
  const int64_t block_size = Rb * width + Rb;
  std::vector<Acc> blocks(static_cast<size_t>(block_size * ws.threads));
  I iota;
  for (int l = 0; l < L; ++l) iota[l] = static_cast<Lane>(l);
  const V inf = vbroadcast<Acc>(kInf<Acc>);

  for (int64_t g0 = 0; g0 < nr; g0 += G) {
    const int64_t g1 = std::min(nr, g0 + G);
    const int64_t nblocks = (g1 - g0 + Rb - 1) / Rb;
    for (int64_t c0 = 0; c0 < m; c0 += C) {
      const int64_t count = std::min(C, m - c0);
      const int64_t npanels = (count + W - 1) / W;
#pragma omp parallel num_threads(ws.threads) if ((g1 - g0) * count * wide > kParallelMinWork)
      {
        Acc* tmp = ws.buffer(thread_id());
#pragma omp for schedule(static)
        for (int64_t q = 0; q < npanels; ++q) {
          Acc* panel = chunk.data() + q * panel_size;
          for (int64_t j = 0; j < W; ++j) {
            const int64_t pos = c0 + q * W + j;
            if (pos < c0 + count) {
              const int64_t ci = cen_list ? cen_list[pos] : pos;
              cents.pack_row(ci, tmp);
              panel[width * W + j] = badge ? cen_p[ci] : Acc(0);
            } else {
              std::fill(tmp, tmp + width, Acc(0));
              panel[width * W + j] = Acc(0);
            }
            for (int64_t k = 0; k < width; ++k) panel[k * W + j] = tmp[k];
          }
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t b = 0; b < nblocks; ++b) {
          Acc* xb = blocks.data() + block_size * thread_id();
          Acc* xp = xb + Rb * width;
          const int64_t r0 = g0 + b * Rb, nrows = std::min(Rb, g1 - r0);
          const int64_t padded = (nrows + 3) / 4 * 4;
          for (int64_t r = 0; r < padded; ++r) {
            if (r < nrows) {
              const int64_t ri = row_list ? row_list[r0 + r] : r0 + r;
              rows.pack_row(ri, xb + r * width);
              xp[r] = badge ? row_p[ri] : Acc(0);
            } else {
              std::fill(xb + r * width, xb + (r + 1) * width, Acc(0));
              xp[r] = Acc(0);
            }
          }
          for (int64_t r4 = 0; r4 < padded; r4 += 4) {
            V best[4][2];
            I best_j[4][2];
            for (int r = 0; r < 4; ++r)
              for (int h = 0; h < 2; ++h) {
                best[r][h] = inf;
                best_j[r][h] = iota * 0 - 1;
              }
            const Acc* x4 = xb + r4 * width;
            for (int64_t q = 0; q < npanels; ++q) {
              const Acc* panel = chunk.data() + q * panel_size;
              V acc[4][2];
              if (badge) {
                V aa[4][2];
                tile_4x2<Acc, false>(x4, width, panel, K, aa);
                tile_4x2<Acc, false>(x4 + K, width, panel + K * W, d, acc);
                for (int r = 0; r < 4; ++r)
                  for (int h = 0; h < 2; ++h) {
                    const V pc = vload<V>(panel + width * W + h * L);
                    const V qv = vmul_rn(aa[r][h], acc[r][h]);
                    const V v = (vbroadcast<Acc>(xp[r4 + r]) + pc) - (qv + qv);
                    acc[r][h] = v > V{} ? v : V{};
                  }
              } else {
                tile_4x2<Acc, true>(x4, width, panel, d, acc);
              }
              for (int h = 0; h < 2; ++h) {
                const I lanes = iota + static_cast<Lane>(q * W + h * L);
                const I valid = lanes < static_cast<Lane>(count);
                for (int r = 0; r < 4; ++r) {
                  const V v = valid ? acc[r][h] : inf;
                  const I better = v < best[r][h];
                  best[r][h] = better ? v : best[r][h];
                  best_j[r][h] = better ? lanes : best_j[r][h];
                }
              }
            }
            for (int r = 0; r < 4 && r4 + r < nrows; ++r) {
              Acc v = kInf<Acc>;
              int64_t j = std::numeric_limits<int64_t>::max();
              for (int h = 0; h < 2; ++h)
                for (int l = 0; l < L; ++l) {
                  const int64_t lj = best_j[r][h][l];
                  if (lj >= 0 && argmin_better<Acc>(best[r][h][l], lj, v, j)) {
                    v = best[r][h][l];
                    j = lj;
                  }
                }
              const int64_t ri = row_list ? row_list[r0 + r4 + r] : r0 + r4 + r;
              if (j != std::numeric_limits<int64_t>::max() && (v < D[ri] || A[ri] < 0)) {
                D[ri] = v;
                A[ri] = c0 + j;
              }
            }
          }
        }
      }
      checkpoint.poll(done);
    }
  }
}

// BADGE: the tile pass sums the dot products in another order than the per-pick kernel;
// recompute D at the chosen centre with the per-pick arithmetic (exact 0 for duplicates).
template <class Acc>
void badge_recompute(const Emb& rows, const int64_t* row_list, int64_t nr, const Emb& cents,
                     const int64_t* cen_list, const Acc* row_p, const Acc* cen_p, Acc* D, const int64_t* A,
                     Workspace<Acc>& ws) {
  const int64_t K = rows.K(), d = rows.d();
#pragma omp parallel num_threads(ws.threads) if (nr * (K + d) > kParallelMinWork)
  {
    Acc* buf = ws.buffer(thread_id());
    std::vector<Acc> centre(static_cast<size_t>(K + d + 1));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < nr; ++r) {
      const int64_t i = row_list ? row_list[r] : r;
      if (A[i] < 0) continue;
      const int64_t c = cen_list ? cen_list[A[i]] : A[i];
      cents.pack_row(c, centre.data());
      centre[K + d] = cen_p[c];
      D[i] = BadgeDistance<Acc>{&rows, row_p}(i, centre.data(), buf);
    }
  }
}

// D from the labelled rows (taken[i] != 0): min distance for the others, 0 on labelled.
// Returns the labelled rows in index order; A[i] is the position in that list of row i's
// nearest labelled row (lowest on ties), -1 for labelled rows.
template <class Acc>
std::vector<int64_t> labelled_init(const Emb& e, const uint8_t* taken, const Acc* p, Acc* D, Workspace<Acc>& ws,
                                   Checkpoint& checkpoint, std::vector<int64_t>& A) {
  const int64_t n = e.n();
  std::vector<int64_t> unlabelled, labelled;
  for (int64_t i = 0; i < n; ++i) (taken[i] ? labelled : unlabelled).push_back(i);
  A.assign(static_cast<size_t>(n), -1);
  nearest_centres<Acc>(e, unlabelled.data(), (int64_t)unlabelled.size(), e, labelled.data(),
                       (int64_t)labelled.size(), p, p, D, A.data(), ws, checkpoint, 0);
  if (e.kind == kBadge)
    badge_recompute<Acc>(e, unlabelled.data(), (int64_t)unlabelled.size(), e, labelled.data(), p, p, D,
                         A.data(), ws);
  for (int64_t i : labelled) D[i] = Acc(0);
  return labelled;
}

template <class Acc>
void labelled_init(const Emb& e, const uint8_t* taken, const Acc* p, Acc* D, Workspace<Acc>& ws,
                   Checkpoint& checkpoint) {
  std::vector<int64_t> A;
  labelled_init<Acc>(e, taken, p, D, ws, checkpoint, A);
}

// ------------------------------------------------------------------ Python side

inline Matrix matrix_of(const py::array& a, int dtype) {
  Matrix m;
  m.base = static_cast<const char*>(a.data());
  m.dtype = dtype;
  m.rows = a.ndim() > 0 ? a.shape(0) : 1;
  m.stride0 = a.ndim() > 0 ? a.strides(0) : 0;
  m.cols = a.ndim() > 1 ? a.shape(1) : 1;
  m.stride1 = a.ndim() > 1 ? a.strides(1) : a.itemsize();
  if (dtype < kFloat16 || dtype > kFloat64 || a.itemsize() != dtype_size(dtype))
    throw py::type_error("select kernels take float16, bfloat16, float32 or float64 arrays (dtype code " +
                         std::to_string(dtype) + ", item size " + std::to_string(a.itemsize()) + ")");
  if (a.ndim() < 1 || a.ndim() > 2) throw py::value_error("select kernels take 1-D or 2-D arrays");
  return m;
}

// emb = (kind, features, features dtype code, weights or None, weights dtype code)
inline Emb emb_of(const py::tuple& spec) {
  Emb e;
  e.kind = spec[0].cast<int>();
  e.f = matrix_of(spec[1].cast<py::array>(), spec[2].cast<int>());
  if (e.kind != kDense) {
    e.w = matrix_of(spec[3].cast<py::array>(), spec[4].cast<int>());
    if (e.w.rows != e.f.rows) throw py::value_error("weights and features must have the same number of rows");
  }
  return e;
}

}  // namespace cpu
}  // namespace uwe
