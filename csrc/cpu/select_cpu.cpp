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
#include "cpu/select_simd.h"

namespace py = pybind11;

namespace uwe {
namespace cpu {
namespace {

int thread_count() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

int team_size() {
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

// ------------------------------------------------------------------ signals and progress
class Checkpoint {
 public:
  explicit Checkpoint(py::handle progress) : progress_(progress), last_(Clock::now()) {}

  // Every ~100 ms: re-acquire the GIL, raise KeyboardInterrupt (or any pending signal's
  // exception), report progress. Called between passes, never inside a parallel region.
  void poll(int64_t done) {
    const auto now = Clock::now();
    if (now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    if (!progress_.is_none()) progress_(done);
  }

 private:
  using Clock = std::chrono::steady_clock;
  py::handle progress_;
  Clock::time_point last_;
};

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
template <class Acc>
void labelled_init(const Emb& e, const uint8_t* taken, const Acc* p, Acc* D, Workspace<Acc>& ws,
                   Checkpoint& checkpoint) {
  const int64_t n = e.n();
  std::vector<int64_t> unlabelled, labelled;
  for (int64_t i = 0; i < n; ++i) (taken[i] ? labelled : unlabelled).push_back(i);
  std::vector<int64_t> A(static_cast<size_t>(n), -1);
  nearest_centres<Acc>(e, unlabelled.data(), (int64_t)unlabelled.size(), e, labelled.data(),
                       (int64_t)labelled.size(), p, p, D, A.data(), ws, checkpoint, 0);
  if (e.kind == kBadge)
    badge_recompute<Acc>(e, unlabelled.data(), (int64_t)unlabelled.size(), e, labelled.data(), p, p, D,
                         A.data(), ws);
  for (int64_t i : labelled) D[i] = Acc(0);
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
Matrix matrix_of(const py::array& a, int dtype) {
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
Emb emb_of(const py::tuple& spec) {
  Emb e;
  e.kind = spec[0].cast<int>();
  e.f = matrix_of(spec[1].cast<py::array>(), spec[2].cast<int>());
  if (e.kind != kDense) {
    e.w = matrix_of(spec[3].cast<py::array>(), spec[4].cast<int>());
    if (e.w.rows != e.f.rows) throw py::value_error("weights and features must have the same number of rows");
  }
  return e;
}

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
