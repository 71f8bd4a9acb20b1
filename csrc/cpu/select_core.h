// Shared pieces of the CPU selection kernels (brute-force and pruned): the embedding view
// (dense rows, or UWE / BADGE factors), per-thread scratch, the row distances, BADGE norms and
// the labelled-set pass. Both kernel families call these same functions, and every distance
// goes through row_sum's one summation order (cpu/select_simd.h), so a distance is
// bit-identical whichever pass computed it.
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
#include "cpu/threads.h"

namespace uwe {
namespace cpu {

namespace py = pybind11;


inline int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

template <class Acc>
constexpr Acc kInf = std::numeric_limits<Acc>::infinity();

// Below this many element reads a pass runs on one thread (a team costs more than it saves).
constexpr int64_t kParallelMinWork = 1 << 15;
// Element reads per dynamically scheduled work item of a per-pick pass.
constexpr int64_t kChunkWork = 1 << 17;

// ------------------------------------------------------------------ embeddings
struct Emb {
  int kind = kDense;
  Matrix f;  // dense rows, or the features of a factored embedding
  Matrix w;  // factored weights: [n, 1] (UWE) or [n, K] (BADGE)

  Emb() = default;
  explicit Emb(const EmbSpec& e) : kind(e.kind), f(e.f), w(e.w) {}

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
// `threads` is the team of the current pick (cpu/threads.h's TeamTuner; at most the size the
// workspace was made for); pick_done(work) after every pick lets the tuner change it.
template <class Acc>
struct Workspace {
  int threads;
  int full;        // the team it was made for: threads never exceeds it
  int64_t stride;  // Acc values per thread buffer, padded to a cache line
  std::vector<Acc> buffers;
  std::vector<Acc> best_value;  // per work item of a pass (select_cpu.cpp's sweep)
  std::vector<int64_t> best_index;
  TeamTuner tuner;

  void pick_done(double work) {
    tuner.pick_done(work);
    threads = tuner.threads();
  }

  Workspace(int t, int64_t width) : threads(t), full(t), tuner(t) {
    stride = (width + 2 * Simd<Acc>::L + 15) / 16 * 16;
    buffers.assign(static_cast<size_t>(stride) * threads, Acc(0));
  }
  Acc* buffer(int tid) { return buffers.data() + static_cast<size_t>(stride) * tid; }
};

// ------------------------------------------------------------------ row distance functors
// operator()(i, centre, scratch, bound, read) -> squared distance of row i to the prepared
// centre, or a partial sum >= bound (row_sum's early exit; +inf for the full value).

template <class Src>
struct DirectDistance {  // dense rows read in place (float accumulation)
  Matrix x;
  float operator()(int64_t i, const float* c, float*, float bound, int64_t& read) const {
    return row_sum<Src, true>(reinterpret_cast<const typename Src::T*>(x.row(i)), c, x.cols, bound, read);
  }
};

template <class Acc>
struct RowDistance {  // dense rows converted, or UWE rows u_i * f_i
  const Emb* e;
  Acc operator()(int64_t i, const Acc* c, Acc* buf, Acc bound, int64_t& read) const {
    return row_sum<AccSrc<Acc>, true>(e->dense_row(i, buf), c, e->d(), bound, read);
  }
};

template <class Acc>
struct BadgeDistance {  // centre layout [a_c (K) | f_c (d) | p_c]; no early exit (not monotone)
  const Emb* e;
  const Acc* p;  // p_i = mul_rn(|a_i|^2, |f_i|^2)
  Acc operator()(int64_t i, const Acc* c, Acc* buf, Acc, int64_t& read) const {
    const int64_t K = e->K(), d = e->d();
    const Acc aa = dot<Acc>(e->a_row(i, buf), c, K);
    const Acc ff = dot<Acc>(e->f_row(i, buf + K), c + K, d);
    read += K + d;
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
// position in the centre list (lowest on ties), merged into D / A with strict <. Values are
// row_sum's (tile_4x2), the same bits as the per-pick pass, so the labelled pass and a pass
// adding the centres one by one leave the same D.
// Work is cut into units (a group of rows x a chunk of centres, ~1e9 element pairs at most);
// each unit packs its chunk once, then threads take row blocks of Rb rows, pack them, and run
// the 4 x 2 register tile over the chunk. Between units the checkpoint runs.
template <class Acc>
void nearest_centres(const Emb& rows, const int64_t* row_list, int64_t nr, const Emb& cents,
                     const int64_t* cen_list, int64_t m, const Acc* row_p, const Acc* cen_p, Acc* D,
                     int64_t* A, Workspace<Acc>& ws, Checkpoint& checkpoint, int64_t done) {
  if (nr == 0 || m == 0) return;
  const bool badge = rows.kind == kBadge;
  const int64_t K = rows.K(), d = rows.d(), width = rows.width();
  const int64_t wide = std::max<int64_t>(width, 1);
  const int64_t C = std::clamp<int64_t>((262144 / (wide * (int64_t)sizeof(Acc))) / 2 * 2, 2, 2048);
  const int64_t Rb = std::clamp<int64_t>((131072 / (wide * (int64_t)sizeof(Acc))) / 4 * 4, 4, 128);
  const int64_t G = std::max<int64_t>(Rb * ws.threads, (int64_t(1) << 30) / (C * wide) / Rb * Rb);
  std::vector<Acc> chunk(static_cast<size_t>(C * width));
  std::vector<Acc> chunk_p(static_cast<size_t>(C));
  const int64_t block_size = Rb * width + Rb;
  std::vector<Acc> blocks(static_cast<size_t>(block_size * ws.threads));

  for (int64_t g0 = 0; g0 < nr; g0 += G) {
    const int64_t g1 = std::min(nr, g0 + G);
    const int64_t nblocks = (g1 - g0 + Rb - 1) / Rb;
    for (int64_t c0 = 0; c0 < m; c0 += C) {
      const int64_t count = std::min(C, m - c0);
      const int64_t padded_c = (count + 1) / 2 * 2;
#pragma omp parallel num_threads(ws.threads) if ((g1 - g0) * count * wide > kParallelMinWork)
      {
#pragma omp for schedule(static)
        for (int64_t j = 0; j < padded_c; ++j) {
          Acc* dst = chunk.data() + j * width;
          if (j < count) {
            const int64_t ci = cen_list ? cen_list[c0 + j] : c0 + j;
            cents.pack_row(ci, dst);
            chunk_p[j] = badge ? cen_p[ci] : Acc(0);
          } else {
            std::fill(dst, dst + width, Acc(0));
            chunk_p[j] = Acc(0);
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
            Acc best[4];
            int64_t best_j[4];
            for (int r = 0; r < 4; ++r) best[r] = kInf<Acc>, best_j[r] = -1;
            const Acc* x4 = xb + r4 * width;
            for (int64_t j = 0; j < count; j += 2) {
              const Acc* c2 = chunk.data() + j * width;
              Acc v[4][2];
              if (badge) {
                Acc aa[4][2];
                tile_4x2<Acc, false>(x4, width, c2, width, K, aa);
                tile_4x2<Acc, false>(x4 + K, width, c2 + K, width, d, v);
                for (int r = 0; r < 4; ++r)
                  for (int h = 0; h < 2; ++h) v[r][h] = factored_sq_dist<Acc>(xp[r4 + r], chunk_p[j + h], aa[r][h], v[r][h]);
              } else {
                tile_4x2<Acc, true>(x4, width, c2, width, d, v);
              }
              for (int h = 0; h < 2 && j + h < count; ++h)
                for (int r = 0; r < 4; ++r)
                  if (v[r][h] < best[r] || best_j[r] < 0) best[r] = v[r][h], best_j[r] = j + h;
            }
            for (int r = 0; r < 4 && r4 + r < nrows; ++r) {
              const int64_t ri = row_list ? row_list[r0 + r4 + r] : r0 + r4 + r;
              if (best_j[r] >= 0 && (best[r] < D[ri] || A[ri] < 0)) {
                D[ri] = best[r];
                A[ri] = c0 + best_j[r];
              }
            }
          }
        }
      }
      checkpoint.poll(done);
    }
  }
}

// Rows i < n in index order: those with flag[i] != 0, and the others.
inline void split_rows(const uint8_t* flag, int64_t n, std::vector<int64_t>& set, std::vector<int64_t>& rest) {
  for (int64_t i = 0; i < n; ++i) (flag[i] ? set : rest).push_back(i);
}

// D from the labelled rows (taken[i] != 0): min distance for the others, 0 on labelled.
// Returns the labelled rows in index order; A[i] is the position in that list of row i's
// nearest labelled row (lowest on ties), -1 for labelled rows.
template <class Acc>
std::vector<int64_t> labelled_init(const Emb& e, const uint8_t* taken, const Acc* p, Acc* D, Workspace<Acc>& ws,
                                   Checkpoint& checkpoint, std::vector<int64_t>& A) {
  const int64_t n = e.n();
  std::vector<int64_t> unlabelled, labelled;
  split_rows(taken, n, labelled, unlabelled);
  A.assign(static_cast<size_t>(n), -1);
  nearest_centres<Acc>(e, unlabelled.data(), (int64_t)unlabelled.size(), e, labelled.data(),
                       (int64_t)labelled.size(), p, p, D, A.data(), ws, checkpoint, 0);
  for (int64_t i : labelled) D[i] = Acc(0);
  return labelled;
}

template <class Acc>
void labelled_init(const Emb& e, const uint8_t* taken, const Acc* p, Acc* D, Workspace<Acc>& ws,
                   Checkpoint& checkpoint) {
  std::vector<int64_t> A;
  labelled_init<Acc>(e, taken, p, D, ws, checkpoint, A);
}

}  // namespace cpu
}  // namespace uwe
