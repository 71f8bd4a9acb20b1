// Selection kernels of the CUDA module: k-center greedy, k-means++ seeding and nearest-centre
// distances for dense [n, d] pools and factored embeddings (UWE u (x) f, BADGE a (x) f).
//
// Algorithm. One min-distance vector D [n] on the device (+inf at the start). Per pick:
//   step   grid-wide kernel, one warp per row (grid-stride): distance of the row to the centre
//          buffer, D = min(D, dist), and each block's (max D, lowest index) written to partials;
//   finish one block reduces the partials to the next pick, records it (picks[t], its distance),
//          marks it taken, sets D[pick] = 0 and writes the pick's row into the centre buffer
//          that the next step reads. No host round trip per pick: launches queue on the stream.
// K-means++ replaces finish by `chunk sums` (grid-wide float64 sums of 2048-row chunks) and
// `sample`: one block draws r_t (SplitMix64 on the device), scans the chunk sums and the chunk
// holding r_t * sum(D) in parallel and accepts the first row whose prefix exceeds it when a
// certified error bound shows the sequential float64 chain (the rule, exactly the CPU's
// roundings) picks the same row (cuda/certified_draw.cuh). On a close call thread 0 runs that
// chain itself, staging D through shared memory; uniform among untaken rows when sum(D) = 0.
// A labelled set (and min_distances) uses a shared-memory tiled kernel: 32 rows x 32 centres per
// block, k in chunks of 16, exact difference formula (BADGE: the two dot products, then the
// factored formula; D is then recomputed at the chosen centre with the per-pick arithmetic).
//
// Complexity: O(budget * n * d) k-center; O(n * m * d) labelled init; BADGE O(K + d) per
// distance. Device memory: O(n) workspace allocated by the caller (torch), no [n, m] matrix.
// Accumulation: float for float16/bfloat16/float32 pools, double when anything is float64.
// Ties: lowest index wins every argmax and argmin.
#include <cuda_runtime.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "common/checkpoint.h"
#include "common/distance.h"
#include "common/dtype_convert.h"
#include "common/matrix_spec.h"
#include "common/select_driver.h"
#include "common/splitmix64.h"
#include "cuda/certified_draw.cuh"

namespace py = pybind11;

namespace uwe {
namespace cuda {
namespace {

constexpr int kWarp = 32;
constexpr int kStepThreads = 256;
constexpr int kFinishThreads = 1024;
constexpr int kMaxParts = kFinishThreads;
constexpr int kSampleChunk = kDrawChunk;  // chunk sums and the exact chain share `starts`
constexpr int kTileRows = 32, kTileCentres = 32, kTileK = 16;

// Features of type T (tag) and weights of any dtype, read as Acc.
template <class T, class Acc>
struct Rows {
  int kind;
  int64_t n, d, K;
  MatrixSpec f, w;

  __device__ Acc feat(int64_t i, int64_t k) const { return static_cast<Acc>(T::get(f.at(i, k))); }
  __device__ Acc weight(int64_t i, int64_t k) const { return load_as<Acc>(w.at(i, k), w.dtype); }
  // Dense / UWE value (u_i * f_ik rounded on its own, as the CPU and the materialised rows hold it).
  __device__ Acc x(int64_t i, int64_t k) const {
    return kind == kUwe ? mul_rn(weight(i, 0), feat(i, k)) : feat(i, k);
  }
  // Value k of the row in the kernels' layout: [x] or [a | f].
  __device__ Acc packed(int64_t i, int64_t k) const {
    if (kind != kBadge) return x(i, k);
    return k < K ? weight(i, k) : feat(i, k - K);
  }
  __device__ int64_t width() const { return kind == kBadge ? K + d : d; }
};

struct TagF16 {
  __device__ static float get(const char* p) { return half_bits_to_float(*reinterpret_cast<const uint16_t*>(p)); }
};
struct TagBF16 {
  __device__ static float get(const char* p) { return bf16_bits_to_float(*reinterpret_cast<const uint16_t*>(p)); }
};
struct TagF32 {
  __device__ static float get(const char* p) { return *reinterpret_cast<const float*>(p); }
};
struct TagF64 {
  __device__ static double get(const char* p) { return *reinterpret_cast<const double*>(p); }
};

template <class Acc>
__device__ Acc warp_sum(Acc v) {
  for (int off = kWarp / 2; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// sum_k a(k) * b(k) over [0, len): lane-strided terms, then a butterfly; every lane gets the
// same value. Norms and cross products both come from here, so duplicates cancel exactly.
template <class Acc, class A, class B>
__device__ Acc warp_dot(A a, B b, int64_t len, int lane) {
  Acc s = 0;
  for (int64_t k = lane; k < len; k += kWarp) s += a(k) * b(k);
  return warp_sum(s);
}

// Squared distance of row i to a centre given by value getter c(k) (layout [x] or [a | f | p]).
template <class T, class Acc, class C>
__device__ Acc warp_row_distance(const Rows<T, Acc>& rows, const Acc* p, int64_t i, C c, Acc p_centre, int lane) {
  if (rows.kind == kBadge) {
    const int64_t K = rows.K;
    const Acc aa = warp_dot<Acc>([&](int64_t k) { return rows.weight(i, k); }, [&](int64_t k) { return c(k); }, K, lane);
    const Acc ff = warp_dot<Acc>([&](int64_t k) { return rows.feat(i, k); }, [&](int64_t k) { return c(K + k); },
                                 rows.d, lane);
    return factored_sq_dist<Acc>(p[i], p_centre, aa, ff);
  }
  const Acc acc = sq_dist_terms<Acc>([&](int64_t k) { return rows.x(i, k); }, c, lane, rows.d, kWarp);
  return warp_sum(acc);
}

// ------------------------------------------------------------------ small kernels
template <class Acc>
__global__ void fill_kernel(Acc* D, int64_t n, Acc value) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    D[i] = value;
}

template <class Acc>
__global__ void zero_taken_kernel(Acc* D, const uint8_t* taken, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    if (taken[i]) D[i] = Acc(0);
}

// p_i = mul_rn(|a_i|^2, |f_i|^2), warp per row.
template <class T, class Acc>
__global__ void badge_norms_kernel(Rows<T, Acc> rows, Acc* p) {
  const int lane = threadIdx.x % kWarp;
  const int64_t warps = (int64_t)gridDim.x * (blockDim.x / kWarp);
  for (int64_t i = blockIdx.x * (int64_t)(blockDim.x / kWarp) + threadIdx.x / kWarp; i < rows.n; i += warps) {
    auto a = [&](int64_t k) { return rows.weight(i, k); };
    auto f = [&](int64_t k) { return rows.feat(i, k); };
    const Acc na = warp_dot<Acc>(a, a, rows.K, lane);
    const Acc nf = warp_dot<Acc>(f, f, rows.d, lane);
    if (lane == 0) p[i] = mul_rn(na, nf);
  }
}

// ------------------------------------------------------------------ per-pick step
template <class T, class Acc, bool Update>
__global__ void step_kernel(Rows<T, Acc> rows, const Acc* p, const Acc* centre, Acc* D, const uint8_t* taken,
                            Acc* part_value, int64_t* part_index) {
  __shared__ Acc warp_value[kStepThreads / kWarp];
  __shared__ int64_t warp_index[kStepThreads / kWarp];
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int64_t warps = (int64_t)gridDim.x * (kStepThreads / kWarp);
  const Acc p_centre = rows.kind == kBadge ? centre[rows.K + rows.d] : Acc(0);
  Acc best = Acc(-1);
  int64_t best_i = -1;
  for (int64_t i = blockIdx.x * (int64_t)(kStepThreads / kWarp) + warp; i < rows.n; i += warps) {
    if (taken[i]) continue;
    Acc di = D[i];
    if (Update && di > Acc(0)) {
      const Acc x = warp_row_distance<T, Acc>(rows, p, i, [&](int64_t k) { return centre[k]; }, p_centre, lane);
      if (x < di) {
        di = x;
        if (lane == 0) D[i] = x;
      }
    }
    if (di > best) {  // a warp's rows ascend: strict > keeps the lowest index
      best = di;
      best_i = i;
    }
  }
  if (lane == 0) {
    warp_value[warp] = best;
    warp_index[warp] = best_i;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    Acc v = Acc(-1);
    int64_t j = -1;
    for (int w = 0; w < kStepThreads / kWarp; ++w)
      if (warp_index[w] >= 0 && (j < 0 || argmax_better<Acc>(warp_value[w], warp_index[w], v, j))) {
        v = warp_value[w];
        j = warp_index[w];
      }
    part_value[blockIdx.x] = v;
    part_index[blockIdx.x] = j;
  }
}

// Records pick (already in *pick_s), marks it taken, writes its row into the centre buffer.
template <class T, class Acc>
__device__ void record_pick(const Rows<T, Acc>& rows, const Acc* p, int64_t pick, int64_t t, int64_t* picks,
                            double* dists, Acc* D, uint8_t* taken, Acc* centre) {
  const int64_t width = rows.width();
  for (int64_t k = threadIdx.x; k < width; k += blockDim.x) centre[k] = rows.packed(pick, k);
  if (threadIdx.x == 0) {
    if (rows.kind == kBadge) centre[width] = p[pick];
    picks[t] = pick;
    if (dists) dists[t] = sqrt(static_cast<double>(D[pick]));
    taken[pick] = 1;
    D[pick] = Acc(0);
  }
}

// Reduces the step partials to the next pick (or takes `fixed` when >= 0) and records it.
template <class T, class Acc>
__global__ void finish_kernel(Rows<T, Acc> rows, const Acc* p, const Acc* part_value, const int64_t* part_index,
                              int parts, int64_t fixed, int64_t t, int64_t* picks, double* dists, Acc* D,
                              uint8_t* taken, Acc* centre) {
  __shared__ Acc sv[kFinishThreads];
  __shared__ int64_t si[kFinishThreads];
  const int tid = threadIdx.x;
  sv[tid] = tid < parts ? part_value[tid] : Acc(-1);
  si[tid] = tid < parts ? part_index[tid] : -1;
  __syncthreads();
  for (int half = kFinishThreads / 2; half > 0; half /= 2) {
    if (tid < half) {
      const Acc v = sv[tid + half];
      const int64_t j = si[tid + half];
      if (j >= 0 && (si[tid] < 0 || argmax_better<Acc>(v, j, sv[tid], si[tid]))) {
        sv[tid] = v;
        si[tid] = j;
      }
    }
    __syncthreads();
  }
  const int64_t pick = fixed >= 0 ? fixed : si[0];
  record_pick<T, Acc>(rows, p, pick, t, picks, dists, D, taken, centre);
}

// K-means++ draw for pick t with draw index `draw`, then record it. `starts` holds the chunk
// sums on entry (chunk_sums_kernel); the exact chain overwrites them with chunk starts.
template <class T, class Acc>
__global__ void __launch_bounds__(kDrawThreads) sample_kernel(Rows<T, Acc> rows, const Acc* p, double* starts,
                                                             uint64_t seed, uint64_t draw, int64_t untaken, int64_t t,
                                                             int64_t* picks, Acc* D, uint8_t* taken, Acc* centre) {
  __shared__ double stage[kSampleChunk];
  __shared__ int64_t pick_s;
  const int64_t n = rows.n;
  const int64_t nb = (n + kSampleChunk - 1) / kSampleChunk;
  const int64_t fast = certified_block_pick<Acc>(D, n, starts, nb, splitmix64_uniform(seed, draw));
  if (fast >= 0) {
    record_pick<T, Acc>(rows, p, fast, t, picks, nullptr, D, taken, centre);
    return;
  }
  double s = 0.0;  // a close call (or sum(D) = 0): the sequential chain decides
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t b0 = b * kSampleChunk;
    const int64_t len = (n - b0 < kSampleChunk ? n - b0 : int64_t(kSampleChunk));
    for (int64_t j = threadIdx.x; j < len; j += blockDim.x) stage[j] = static_cast<double>(D[b0 + j]);
    __syncthreads();
    if (threadIdx.x == 0) {
      starts[b] = s;
      for (int64_t j = 0; j < len; ++j) s += stage[j];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    starts[nb] = s;
    const double r = splitmix64_uniform(seed, draw);
    int64_t pick = -1;
    if (s > 0.0) {
      const double target = r * s;
      int64_t lo = 0, hi = nb;  // last block whose start is <= target
      while (hi - lo > 1) {
        const int64_t mid = (lo + hi) / 2;
        if (starts[mid] <= target) lo = mid; else hi = mid;
      }
      double q = starts[lo];
      const int64_t end = ((lo + 1) * kSampleChunk < n ? (lo + 1) * kSampleChunk : n);
      for (int64_t i = lo * kSampleChunk; i < end && pick < 0; ++i) {
        q += static_cast<double>(D[i]);
        if (q > target) pick = i;
      }
      for (int64_t i = n - 1; i >= 0 && pick < 0; --i)
        if (D[i] > Acc(0)) pick = i;
    } else {
      int64_t k = uniform_rank(r, untaken);
      for (int64_t i = 0; i < n && pick < 0; ++i)
        if (!taken[i] && k-- == 0) pick = i;
    }
    pick_s = pick;
  }
  __syncthreads();
  record_pick<T, Acc>(rows, p, pick_s, t, picks, nullptr, D, taken, centre);
}

// ------------------------------------------------------------------ nearest centres (tiled)
// Block (16 x 16 threads) = 32 rows x all centres in tiles of 32; each thread a 2 x 2 tile.
template <class T, class Acc>
__global__ void nearest_kernel(Rows<T, Acc> rows, Rows<T, Acc> cents, const int64_t* cen_list, int64_t m,
                               const Acc* row_p, const Acc* cen_p, Acc* D, int64_t* A) {
  __shared__ Acc xs[kTileRows][kTileK + 1];
  __shared__ Acc cs[kTileCentres][kTileK + 1];
  __shared__ Acc best_v[kTileRows][16];
  __shared__ int64_t best_i[kTileRows][16];
  const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * 16 + tx;
  const int64_t r0 = (int64_t)blockIdx.x * kTileRows;
  const bool badge = rows.kind == kBadge;
  Acc bv[2] = {INFINITY, INFINITY};
  int64_t bi[2] = {-1, -1};
  for (int64_t c0 = 0; c0 < m; c0 += kTileCentres) {
    Acc s[2][2][2] = {};  // [pass][i][j]: pass 0 = difference or a . a', pass 1 = f . f'
    for (int pass = 0; pass < (badge ? 2 : 1); ++pass) {
      const int64_t len = badge && pass == 0 ? rows.K : rows.d;
      for (int64_t k0 = 0; k0 < len; k0 += kTileK) {
        for (int e = tid; e < kTileRows * kTileK; e += 256) {
          const int r = e / kTileK, kk = e % kTileK;
          const int64_t k = k0 + kk, row = r0 + r, c = c0 + r;
          Acc xv = 0, cv = 0;
          if (k < len && row < rows.n)
            xv = badge ? (pass == 0 ? rows.weight(row, k) : rows.feat(row, k)) : rows.x(row, k);
          if (k < len && c < m) {
            const int64_t ci = cen_list ? cen_list[c] : c;
            cv = badge ? (pass == 0 ? cents.weight(ci, k) : cents.feat(ci, k)) : cents.x(ci, k);
          }
          xs[r][kk] = xv;
          cs[r][kk] = cv;
        }
        __syncthreads();
        for (int kk = 0; kk < kTileK; ++kk)
          for (int i = 0; i < 2; ++i)
            for (int j = 0; j < 2; ++j) {
              const Acc xv = xs[ty * 2 + i][kk], cv = cs[tx * 2 + j][kk];
              if (badge) {
                s[pass][i][j] += xv * cv;
              } else {
                const Acc t = xv - cv;
                s[0][i][j] += t * t;
              }
            }
        __syncthreads();
      }
    }
    for (int i = 0; i < 2; ++i) {
      const int64_t row = r0 + ty * 2 + i;
      if (row >= rows.n) continue;
      for (int j = 0; j < 2; ++j) {
        const int64_t c = c0 + tx * 2 + j;
        if (c >= m) continue;
        const Acc v = badge ? factored_sq_dist<Acc>(row_p[row], cen_p[cen_list ? cen_list[c] : c], s[0][i][j], s[1][i][j])
                            : s[0][i][j];
        if (bi[i] < 0 || argmin_better<Acc>(v, c, bv[i], bi[i])) {
          bv[i] = v;
          bi[i] = c;
        }
      }
    }
  }
  for (int i = 0; i < 2; ++i) {
    best_v[ty * 2 + i][tx] = bv[i];
    best_i[ty * 2 + i][tx] = bi[i];
  }
  __syncthreads();
  if (tid < kTileRows && r0 + tid < rows.n) {
    Acc v = INFINITY;
    int64_t j = -1;
    for (int x = 0; x < 16; ++x)
      if (best_i[tid][x] >= 0 && (j < 0 || argmin_better<Acc>(best_v[tid][x], best_i[tid][x], v, j))) {
        v = best_v[tid][x];
        j = best_i[tid][x];
      }
    D[r0 + tid] = v;
    A[r0 + tid] = j;
  }
}

// BADGE: D at the chosen centre with the per-pick arithmetic (exact 0 for duplicates).
template <class T, class Acc>
__global__ void badge_recompute_kernel(Rows<T, Acc> rows, Rows<T, Acc> cents, const int64_t* cen_list,
                                       const Acc* row_p, const Acc* cen_p, Acc* D, const int64_t* A) {
  const int lane = threadIdx.x % kWarp;
  const int64_t warps = (int64_t)gridDim.x * (blockDim.x / kWarp);
  for (int64_t i = blockIdx.x * (int64_t)(blockDim.x / kWarp) + threadIdx.x / kWarp; i < rows.n; i += warps) {
    if (A[i] < 0) continue;
    const int64_t c = cen_list ? cen_list[A[i]] : A[i];
    const Acc v = warp_row_distance<T, Acc>(rows, row_p, i, [&](int64_t k) { return cents.packed(c, k); }, cen_p[c], lane);
    if (lane == 0) D[i] = v;
  }
}

// ------------------------------------------------------------------ host side
void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
}

class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    check(cudaGetDevice(&previous_), "cudaGetDevice");
    check(cudaSetDevice(device), "cudaSetDevice");
  }
  ~DeviceGuard() { cudaSetDevice(previous_); }

 private:
  int previous_ = 0;
};

// Device buffers handed over by the Python adapter by name (torch allocations on the same stream).
struct Work {
  void* D;                  // Acc [n]
  void* scratch;            // Acc [max(n, m)]
  uint8_t* taken;           // [n]
  const int64_t* labelled;  // [m] indices of labelled rows
  int64_t m;
  void* part_value;         // Acc [parts]
  int64_t* part_index;      // [parts]
  int parts;
  void* centre;             // Acc [width + 1]
  void* zero_centre;        // Acc [width + 1], zeros
  void* p;                  // Acc [n] (BADGE norms)
  int64_t* argmin;          // [n]
  double* starts;           // [n / kSampleChunk + 2]
};

struct Launch {
  cudaStream_t stream;
  int grid_rows;  // blocks for warp-per-row kernels
};

template <class Ptr>
Ptr pointer(const py::dict& w, const char* name) {
  return reinterpret_cast<Ptr>(w[name].cast<uintptr_t>());
}

Work work_of(const py::dict& w) {
  Work k;
  k.D = pointer<void*>(w, "D");
  k.scratch = pointer<void*>(w, "scratch");
  k.taken = pointer<uint8_t*>(w, "taken");
  k.labelled = pointer<const int64_t*>(w, "labelled");
  k.m = w["m"].cast<int64_t>();
  k.part_value = pointer<void*>(w, "part_value");
  k.part_index = pointer<int64_t*>(w, "part_index");
  k.parts = w["parts"].cast<int>();
  k.centre = pointer<void*>(w, "centre");
  k.zero_centre = pointer<void*>(w, "zero_centre");
  k.p = pointer<void*>(w, "p");
  k.argmin = pointer<int64_t*>(w, "argmin");
  k.starts = pointer<double*>(w, "starts");
  if (k.parts < 1 || k.parts > kMaxParts) throw py::value_error("parts must be in [1, 1024]");
  return k;
}

template <class T, class Acc>
Rows<T, Acc> rows_of(const EmbSpec& e) {
  Rows<T, Acc> r;
  r.kind = e.kind;
  r.n = e.n();
  r.d = e.d();
  r.K = e.K();
  r.f = e.f;
  r.w = e.w;
  return r;
}

// Blocks for the tiled kernel: one per 32 rows, no grid-stride loop (x-dimension limit 2^31 - 1).
int tile_grid(int64_t n) { return static_cast<int>((n + kTileRows - 1) / kTileRows > 0 ? (n + kTileRows - 1) / kTileRows : 1); }

int grid_for(int64_t n, int per_block) {
  const int64_t blocks = (n + per_block - 1) / per_block;
  return static_cast<int>(blocks < 1 ? 1 : blocks > 65535 ? 65535 : blocks);
}

// D from the labelled rows (and p for BADGE); returns nothing, all on the stream.
template <class T, class Acc>
void prepare(const Rows<T, Acc>& rows, const Work& w, const Launch& l, bool any_labelled) {
  Acc* D = static_cast<Acc*>(w.D);
  Acc* p = static_cast<Acc*>(w.p);
  const int fill_grid = grid_for(rows.n, 256);
  fill_kernel<Acc><<<fill_grid, 256, 0, l.stream>>>(D, rows.n, Acc(INFINITY));
  if (rows.kind == kBadge) badge_norms_kernel<T, Acc><<<l.grid_rows, kStepThreads, 0, l.stream>>>(rows, p);
  if (any_labelled) {
    nearest_kernel<T, Acc><<<tile_grid(rows.n), dim3(16, 16), 0, l.stream>>>(
        rows, rows, w.labelled, w.m, p, p, D, w.argmin);
    if (rows.kind == kBadge)
      badge_recompute_kernel<T, Acc><<<l.grid_rows, kStepThreads, 0, l.stream>>>(rows, rows, w.labelled, p, p, D,
                                                                                 w.argmin);
    zero_taken_kernel<Acc><<<fill_grid, 256, 0, l.stream>>>(D, w.taken, rows.n);
  }
  check(cudaGetLastError(), "selection setup kernels");
}

// First pick without a labelled set: argmax |x_i|^2 (distance to the zero centre, in scratch).
template <class T, class Acc>
void max_norm_partials(const Rows<T, Acc>& rows, const Work& w, const Launch& l) {
  Acc* S = static_cast<Acc*>(w.scratch);
  fill_kernel<Acc><<<grid_for(rows.n, 256), 256, 0, l.stream>>>(S, rows.n, Acc(INFINITY));
  step_kernel<T, Acc, true><<<w.parts, kStepThreads, 0, l.stream>>>(
      rows, static_cast<Acc*>(w.p), static_cast<Acc*>(w.zero_centre), S, w.taken, static_cast<Acc*>(w.part_value),
      w.part_index);
}

// The device pick loop's state for common/select_driver.h: every pick is a kernel queued on the
// stream (finish_kernel or sample_kernel reads the partials or D and records the pick on the
// device), every centre one step_kernel; the host never waits for a pick.
template <class T, class Acc>
class DeviceState {
 public:
  DeviceState(const Rows<T, Acc>& rows, const Work& w, const Launch& l, int64_t untaken, int64_t* picks,
              double* dists)
      : rows_(rows), w_(w), l_(l), untaken_(untaken), picks_(picks), dists_(dists) {}

  int64_t n() const { return rows_.n; }

  bool add_labelled(Checkpoint&) {
    prepare<T, Acc>(rows_, w_, l_, w_.m > 0);
    return w_.m > 0;
  }
  void pick_row(int64_t t, int64_t i) { finish(t, i); }
  void pick_max_norm(int64_t t) {
    max_norm_partials<T, Acc>(rows_, w_, l_);
    finish(t, -1);
  }
  void pick_farthest(int64_t t) {
    if (!partials_) step<false>();  // the argmax of D from the labelled pass
    finish(t, -1);
  }
  void pick_d2(int64_t t, uint64_t seed, uint64_t draw) {
    chunk_sums_kernel<Acc><<<static_cast<unsigned>((rows_.n + kDrawChunk - 1) / kDrawChunk), kChunkSumThreads, 0,
                             l_.stream>>>(D(), rows_.n, w_.starts);
    sample_kernel<T, Acc><<<1, kDrawThreads, 0, l_.stream>>>(rows_, p(), w_.starts, seed, draw, untaken_, t, picks_,
                                                             D(), w_.taken, centre());
    picked();
  }
  void add_centre(int64_t) {
    step<true>();
    check(cudaGetLastError(), "selection kernels");
  }

 private:
  Acc* D() const { return static_cast<Acc*>(w_.D); }
  Acc* p() const { return static_cast<Acc*>(w_.p); }
  Acc* centre() const { return static_cast<Acc*>(w_.centre); }

  template <bool Update>
  void step() {
    step_kernel<T, Acc, Update><<<w_.parts, kStepThreads, 0, l_.stream>>>(
        rows_, p(), centre(), D(), w_.taken, static_cast<Acc*>(w_.part_value), w_.part_index);
    partials_ = true;
  }
  // Pick t: row `fixed`, or the argmax of the step partials when fixed < 0.
  void finish(int64_t t, int64_t fixed) {
    finish_kernel<T, Acc><<<1, kFinishThreads, 0, l_.stream>>>(rows_, p(), static_cast<Acc*>(w_.part_value),
                                                               w_.part_index, w_.parts, fixed, t, picks_, dists_, D(),
                                                               w_.taken, centre());
    picked();
  }
  void picked() {
    --untaken_;
    partials_ = false;
    check(cudaGetLastError(), "selection kernels");
  }

  const Rows<T, Acc>& rows_;
  const Work& w_;
  const Launch& l_;
  int64_t untaken_;
  int64_t* picks_;
  double* dists_;
  bool partials_ = false;
};

template <class T, class Acc>
void min_distances_run(const Rows<T, Acc>& rows, const Rows<T, Acc>& cents, const Work& w, const Launch& l) {
  Acc* D = static_cast<Acc*>(w.D);
  Acc* rp = static_cast<Acc*>(w.p);
  Acc* cp = static_cast<Acc*>(w.scratch);  // centre norms (BADGE)
  if (rows.kind == kBadge) {
    badge_norms_kernel<T, Acc><<<l.grid_rows, kStepThreads, 0, l.stream>>>(rows, rp);
    badge_norms_kernel<T, Acc><<<grid_for(cents.n, kStepThreads / kWarp), kStepThreads, 0, l.stream>>>(cents, cp);
  }
  nearest_kernel<T, Acc><<<tile_grid(rows.n), dim3(16, 16), 0, l.stream>>>(rows, cents, nullptr, cents.n, rp,
                                                                                     cp, D, w.argmin);
  if (rows.kind == kBadge)
    badge_recompute_kernel<T, Acc><<<l.grid_rows, kStepThreads, 0, l.stream>>>(rows, cents, nullptr, rp, cp, D,
                                                                               w.argmin);
  check(cudaGetLastError(), "min_distances kernels");
}

// Runs fn.template operator()<T, Acc>() for the features' dtype and the accumulator.
template <class Fn>
void dispatch(int feature_dtype, bool double_acc, Fn&& fn) {
  if (double_acc) {
    switch (feature_dtype) {
      case kFloat16: return fn.template operator()<TagF16, double>();
      case kBFloat16: return fn.template operator()<TagBF16, double>();
      case kFloat32: return fn.template operator()<TagF32, double>();
      default: return fn.template operator()<TagF64, double>();
    }
  }
  switch (feature_dtype) {
    case kFloat16: return fn.template operator()<TagF16, float>();
    case kBFloat16: return fn.template operator()<TagBF16, float>();
    case kFloat32: return fn.template operator()<TagF32, float>();
    default: throw py::value_error("float64 features need double accumulation");
  }
}

struct KcgCall {
  const EmbSpec& emb;
  const Work& w;
  const Launch& l;
  int64_t budget, first;
  int64_t* picks;
  double* dists;
  Checkpoint& checkpoint;
  template <class T, class Acc>
  void operator()() const {
    const Rows<T, Acc> rows = rows_of<T, Acc>(emb);
    DeviceState<T, Acc> state(rows, w, l, rows.n - w.m, picks, dists);
    kcenter_greedy_loop(state, budget, first, checkpoint);
  }
};

struct KmppCall {
  const EmbSpec& emb;
  const Work& w;
  const Launch& l;
  int64_t budget;
  uint64_t seed;
  int64_t first, untaken;
  int64_t* picks;
  Checkpoint& checkpoint;
  template <class T, class Acc>
  void operator()() const {
    const Rows<T, Acc> rows = rows_of<T, Acc>(emb);
    DeviceState<T, Acc> state(rows, w, l, untaken, picks, nullptr);
    kmeans_pp_loop(state, budget, seed, first, checkpoint);
  }
};

struct MinDistCall {
  const EmbSpec& emb;
  const EmbSpec& centres;
  const Work& w;
  const Launch& l;
  template <class T, class Acc>
  void operator()() const {
    min_distances_run<T, Acc>(rows_of<T, Acc>(emb), rows_of<T, Acc>(centres), w, l);
  }
};

void kcenter_greedy_py(const py::tuple& emb, const py::dict& work, int64_t budget, int64_t first, bool double_acc,
                       uintptr_t picks, uintptr_t dists, uintptr_t stream, int device, py::object progress) {
  DeviceGuard guard(device);
  const EmbSpec e = emb_of(emb);
  const Work w = work_of(work);
  const Launch l{reinterpret_cast<cudaStream_t>(stream), grid_for(e.n(), kStepThreads / kWarp)};
  Checkpoint checkpoint(progress);
  const KcgCall call{e, w, l, budget, first, reinterpret_cast<int64_t*>(picks), reinterpret_cast<double*>(dists),
                     checkpoint};
  py::gil_scoped_release release;
  if (budget > 0) dispatch(e.f.dtype, double_acc, call);
}

void kmeans_pp_py(const py::tuple& emb, const py::dict& work, int64_t budget, uint64_t seed, int64_t first,
                  int64_t untaken, bool double_acc, uintptr_t picks, uintptr_t stream, int device, py::object progress) {
  DeviceGuard guard(device);
  const EmbSpec e = emb_of(emb);
  const Work w = work_of(work);
  const Launch l{reinterpret_cast<cudaStream_t>(stream), grid_for(e.n(), kStepThreads / kWarp)};
  Checkpoint checkpoint(progress);
  const KmppCall call{e, w, l, budget, seed, first, untaken, reinterpret_cast<int64_t*>(picks), checkpoint};
  py::gil_scoped_release release;
  if (budget > 0) dispatch(e.f.dtype, double_acc, call);
}

void min_distances_py(const py::tuple& emb, const py::tuple& centres, const py::dict& work, bool double_acc,
                      uintptr_t stream, int device) {
  DeviceGuard guard(device);
  const EmbSpec e = emb_of(emb), c = emb_of(centres);
  const Work w = work_of(work);
  const Launch l{reinterpret_cast<cudaStream_t>(stream), grid_for(e.n(), kStepThreads / kWarp)};
  const MinDistCall call{e, c, w, l};
  py::gil_scoped_release release;
  dispatch(e.f.dtype, double_acc, call);
}

}  // namespace
}  // namespace cuda

void register_select_cuda(py::module_& m) {
  m.def("kcenter_greedy", &cuda::kcenter_greedy_py, py::arg("emb"), py::arg("work"), py::arg("budget"),
        py::arg("first"), py::arg("double_acc"), py::arg("picks"), py::arg("dists"), py::arg("stream"),
        py::arg("device"), py::arg("progress"),
        "k-center greedy on the device; picks/dists are device pointers filled in stream order.");
  m.def("kmeans_pp", &cuda::kmeans_pp_py, py::arg("emb"), py::arg("work"), py::arg("budget"), py::arg("seed"),
        py::arg("first"), py::arg("untaken"), py::arg("double_acc"), py::arg("picks"), py::arg("stream"),
        py::arg("device"), py::arg("progress"), "k-means++ seeding on the device (SplitMix64 draws).");
  m.def("min_distances", &cuda::min_distances_py, py::arg("emb"), py::arg("centres"), py::arg("work"),
        py::arg("double_acc"), py::arg("stream"), py::arg("device"),
        "Nearest-centre squared distances into work.D and work.argmin.");
  m.def("step_threads", []() { return cuda::kStepThreads; });
  m.def("max_parts", []() { return cuda::kMaxParts; });
  m.def("sample_chunk", []() { return cuda::kSampleChunk; });
}

}  // namespace uwe
