// CUDA embedding kernels: uncertainty, fused UWE, BADGE weights and embeddings,
// segmentation and detection aggregation (API.md "Uncertainty and embeddings").
//
// Algorithm: the per-row arithmetic is the CPU kernels' (common/uncertainty.h). UWE: one
// block per tile of kTileRows rows; the tile's first threads compute the row weights into
// shared memory (max pass + softmax-sum pass over the row, no probability matrix), then
// the whole block writes the tile's scaled rows with coalesced loads and stores.
// BADGE: a weights kernel ([n, K], p - onehot) and an outer-product kernel. Segmentation:
// pixel uncertainty -> per-region block reduction (fixed order, deterministic) -> region
// feature means. Detection: boxes come sorted by image (stable, from the adapter); one
// thread per (image, class) slot finds the max box (lowest index on ties) and the count,
// then outputs are written per element; "mean" sums each image's boxes in index order.
// Complexity: O(n (K + d)) work, one read of scores and features, one write of the output.
// Shapes and strides are in elements (torch); element types are runtime codes
// (common/dtype.h), uniform per launch, so one instantiation per accumulator serves all.
// Precision: accumulation in A = float, or double when any input is float64.
// Ties: argmax is the lowest class; detection "max" keeps the lowest box index.
// Inputs are validated (and checked for NaN / inf) by the Python wrapper before launch.
#include <cuda_runtime.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "common/dtype.h"
#include "common/uncertainty.h"

namespace py = pybind11;

namespace uwe {
namespace {

constexpr int kThreads = 256;
constexpr int kTileRows = 32;

// ---------------------------------------------------------------- element access

template <typename A>
__device__ __forceinline__ A load_code(const void* base, int64_t idx, int code) {
  switch (code) {
    case kFloat16:
      return load<A>(static_cast<const half_t*>(base)[idx]);
    case kBFloat16:
      return load<A>(static_cast<const bf16_t*>(base)[idx]);
    case kFloat32:
      return load<A>(static_cast<const float*>(base)[idx]);
    default:
      return load<A>(static_cast<const double*>(base)[idx]);
  }
}

template <typename A>
__device__ __forceinline__ void store_code(void* base, int64_t idx, int code, A v) {
  switch (code) {
    case kFloat16:
      static_cast<half_t*>(base)[idx] = store<half_t>(v);
      break;
    case kBFloat16:
      static_cast<bf16_t*>(base)[idx] = store<bf16_t>(v);
      break;
    case kFloat32:
      static_cast<float*>(base)[idx] = store<float>(v);
      break;
    default:
      static_cast<double*>(base)[idx] = store<double>(v);
  }
}

// A strided device tensor of up to 4 dimensions.
struct DevBuf {
  const void* ptr;
  int64_t shape[4];
  int64_t stride[4];
  int code;
};

template <typename A>
struct DevRow {
  const void* base;
  int64_t offset;
  int64_t step;
  int code;
  __device__ A operator()(int64_t k) const { return load_code<A>(base, offset + k * step, code); }
};

// Pass t of a row of scores [n, K, T] (kind bald) as a DevRow over its K classes.
template <typename A>
struct DevPasses {
  const void* base;
  int64_t offset;
  int64_t step_k;
  int64_t step_t;
  int code;
  __device__ DevRow<A> operator()(int t) const { return DevRow<A>{base, offset + t * step_t, step_k, code}; }
};

// `scratch` ([n, 2T] accumulators) is read only for kind bald: row i uses its 2T values.
template <typename A>
__device__ A row_u(const DevBuf& s, int64_t row, int kind, bool logits, A* scratch, RowSummary<A>& r) {
  if (kind == kBald) {
    const DevPasses<A> passes{s.ptr, row * s.stride[0], s.stride[1], s.stride[2], s.code};
    const int T = static_cast<int>(s.shape[2]);
    return row_bald<A>(passes, static_cast<int>(s.shape[1]), T, logits, scratch + row * 2 * T, r);
  }
  const DevRow<A> at{s.ptr, row * s.stride[0], s.stride[1], s.code};
  return row_uncertainty<A>(at, static_cast<int>(s.shape[1]), kind, logits, r);
}

// ---------------------------------------------------------------- kernels

template <typename A>
__global__ void uncertainty_kernel(DevBuf s, int kind, bool logits, A* scratch, void* out, int o_code) {
  const int64_t n = s.shape[0];
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    RowSummary<A> r;
    store_code<A>(out, i, o_code, row_u<A>(s, i, kind, logits, scratch, r));
  }
}

template <typename A>
__global__ void uwe_kernel(DevBuf s, DevBuf f, int kind, WeightRule<A> rule, bool logits, A* scratch, void* out,
                           int o_code) {
  __shared__ A w[kTileRows];
  const int64_t n = s.shape[0], d = f.shape[1];
  const int64_t r0 = int64_t(blockIdx.x) * kTileRows;
  const int64_t rows = n - r0 < kTileRows ? n - r0 : kTileRows;
  if (threadIdx.x < rows) {
    RowSummary<A> r;
    w[threadIdx.x] = weight_by<A>(rule, row_u<A>(s, r0 + threadIdx.x, kind, logits, scratch, r));
  }
  __syncthreads();
  for (int64_t e = threadIdx.x; e < rows * d; e += blockDim.x) {
    const int64_t i = e / d, j = e - i * d;
    const A x = load_code<A>(f.ptr, (r0 + i) * f.stride[0] + j * f.stride[1], f.code);
    store_code<A>(out, (r0 + i) * d + j, o_code, w[i] * x);
  }
}

template <typename A>
__global__ void badge_weights_kernel(DevBuf s, bool logits, void* out, int o_code) {
  const int64_t n = s.shape[0];
  const int K = static_cast<int>(s.shape[1]);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const DevRow<A> at{s.ptr, i * s.stride[0], s.stride[1], s.code};
    const RowSummary<A> r = summarize_row<A>(at, K, false);
    A inv_s = 1;
    if (logits) {
      A sum, t;
      softmax_sums<A>(at, K, r.best, sum, t);
      inv_s = A(1) / sum;
    }
    for (int k = 0; k < K; ++k) store_code<A>(out, i * K + k, o_code, badge_weight<A>(at(k), k, r, logits, inv_s));
  }
}

// out[i, k*d + j] = w[i, k] * f[i, j]; w is contiguous [n, K] in A.
template <typename A>
__global__ void outer_kernel(const A* w, DevBuf f, int64_t K, void* out, int o_code) {
  const int64_t n = f.shape[0], d = f.shape[1], total = n * K * d;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t j = e % d, ik = e / d, i = ik / K;
    const A x = load_code<A>(f.ptr, i * f.stride[0] + j * f.stride[1], f.code);
    store_code<A>(out, e, o_code, w[ik] * x);
  }
}

// u[(n * H + y) * W + x]: pixel uncertainty of scores [N, K, H, W].
template <typename A>
__global__ void pixel_uncertainty_kernel(DevBuf s, int kind, bool logits, A* u) {
  const int64_t N = s.shape[0], H = s.shape[2], W = s.shape[3], total = N * H * W;
  const int K = static_cast<int>(s.shape[1]);
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t x = e % W, y = (e / W) % H, n = e / (H * W);
    const DevRow<A> at{s.ptr, n * s.stride[0] + y * s.stride[2] + x * s.stride[3], s.stride[1], s.code};
    RowSummary<A> r;
    u[e] = row_uncertainty<A>(at, K, kind, logits, r);
  }
}

// One block per region: w[n R + r] = weight of the mean pixel u, reduced in a fixed order.
template <typename A>
__global__ void region_weight_kernel(const A* u, int64_t H, int64_t W, int64_t rh, int64_t rw, WeightRule<A> rule,
                                     A* w) {
  __shared__ double part[kThreads];
  const int64_t nw = W / rw, R = (H / rh) * nw;
  const int64_t sample = blockIdx.x, n = sample / R, r = sample % R, i = r / nw, j = r % nw;
  double sum = 0;
  for (int64_t e = threadIdx.x; e < rh * rw; e += blockDim.x) {
    const int64_t y = i * rh + e / rw, x = j * rw + e % rw;
    sum += static_cast<double>(u[(n * H + y) * W + x]);
  }
  part[threadIdx.x] = sum;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) part[threadIdx.x] += part[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) w[sample] = weight_by<A>(rule, static_cast<A>(part[0] / static_cast<double>(rh * rw)));
}

// out[sample, c] = w[sample] * mean of features[n, c] over the region's cells.
template <typename A>
__global__ void region_features_kernel(DevBuf f, const A* w, int64_t R, int64_t nw, int64_t ch, int64_t cw, void* out,
                                       int o_code) {
  const int64_t N = f.shape[0], C = f.shape[1], total = N * R * C;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = e % C, sample = e / C, n = sample / R, r = sample % R, i = r / nw, j = r % nw;
    double sum = 0;
    for (int64_t yy = i * ch; yy < (i + 1) * ch; ++yy)
      for (int64_t xx = j * cw; xx < (j + 1) * cw; ++xx)
        sum += load_code<double>(f.ptr, n * f.stride[0] + c * f.stride[1] + yy * f.stride[2] + xx * f.stride[3], f.code);
    store_code<A>(out, e, o_code, static_cast<A>(static_cast<double>(w[sample]) * (sum / static_cast<double>(ch * cw))));
  }
}

template <typename A>
__global__ void box_kernel(DevBuf s, int kind, bool logits, WeightRule<A> rule, A* u, A* weight, int64_t* cls) {
  const int64_t B = s.shape[0];
  for (int64_t b = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; b < B; b += int64_t(gridDim.x) * blockDim.x) {
    RowSummary<A> r;
    const A ub = row_u<A>(s, b, kind, logits, static_cast<A*>(nullptr), r);
    u[b] = ub;
    weight[b] = weight_by<A>(rule, ub);
    cls[b] = r.argmax;
  }
}

// Slot (m, c): the box of class c in image m with the largest u (first in index order on
// ties) and the number of such boxes. `order` lists boxes by image, in index order.
template <typename A>
__global__ void slot_kernel(const A* u, const int64_t* cls, const int64_t* order, const int64_t* start, int64_t M,
                            int64_t K, int64_t* best, int64_t* count) {
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < M * K; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t m = t / K, c = t % K;
    int64_t win = -1, cnt = 0;
    for (int64_t q = start[m]; q < start[m + 1]; ++q) {
      const int64_t b = order[q];
      if (cls[b] != c) continue;
      ++cnt;
      if (win < 0 || u[b] > u[win]) win = b;
    }
    best[t] = win;
    count[t] = cnt;
  }
}

template <typename A>
__global__ void detection_max_kernel(DevBuf f, const A* weight, const int64_t* best, int64_t slots, void* out,
                                     int o_code) {
  const int64_t d = f.shape[1], total = slots * d;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = best[e / d], j = e % d;
    const A v = b < 0 ? A(0) : weight[b] * load_code<A>(f.ptr, b * f.stride[0] + j * f.stride[1], f.code);
    store_code<A>(out, e, o_code, v);
  }
}

// acc[m, cls_b, j] += w_b f_b[j] over image m's boxes in index order; one thread per (m, j).
template <typename A>
__global__ void detection_sum_kernel(DevBuf f, const A* weight, const int64_t* cls, const int64_t* order,
                                     const int64_t* start, int64_t M, int64_t K, A* acc) {
  const int64_t d = f.shape[1];
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < M * d; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t m = t / d, j = t % d;
    for (int64_t q = start[m]; q < start[m + 1]; ++q) {
      const int64_t b = order[q];
      acc[(m * K + cls[b]) * d + j] += weight[b] * load_code<A>(f.ptr, b * f.stride[0] + j * f.stride[1], f.code);
    }
  }
}

template <typename A>
__global__ void detection_mean_kernel(const A* acc, const int64_t* count, int64_t slots, int64_t d, void* out,
                                      int o_code) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < slots * d; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t cnt = count[e / d];
    store_code<A>(out, e, o_code, cnt ? acc[e] / static_cast<A>(cnt) : A(0));
  }
}

// ---------------------------------------------------------------- launch helpers

void check_launch(const char* what) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
}

unsigned grid_for(int64_t work) {
  const int64_t blocks = (work + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > 65535 * 8 ? 65535 * 8 : blocks));
}

cudaStream_t as_stream(uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

DevBuf dev_buf(uintptr_t ptr, const py::tuple& shape, const py::tuple& stride, int code) {
  if (shape.size() != stride.size() || shape.size() > 4) throw std::invalid_argument("bad tensor shape/strides");
  if (code < kFloat16 || code > kFloat64) throw std::invalid_argument("unknown dtype code " + std::to_string(code));
  DevBuf b{};
  b.ptr = reinterpret_cast<const void*>(ptr);
  for (size_t i = 0; i < shape.size(); ++i) {
    b.shape[i] = shape[i].cast<int64_t>();
    b.stride[i] = stride[i].cast<int64_t>();
  }
  b.code = code;
  return b;
}

void check_code(int code) {
  if (code < kFloat16 || code > kFloat64) throw std::invalid_argument("unknown dtype code " + std::to_string(code));
}

// `passes`: the op takes kind bald ([n, K, T] scores and an [n, 2T] scratch buffer).
void check_kind(int kind, bool passes = false, uintptr_t scratch = 0) {
  if (kind < kEntropy || kind > (passes ? kBald : kLeastConfidence))
    throw std::invalid_argument("unknown uncertainty kind code");
  if (kind == kBald && scratch == 0) throw std::invalid_argument("kind bald needs an [n, 2T] scratch buffer");
}

template <typename A>
A* as_acc(uintptr_t p) {
  return reinterpret_cast<A*>(p);
}

// ---------------------------------------------------------------- ops

void cu_uncertainty(uintptr_t s_ptr, py::tuple s_shape, py::tuple s_stride, int s_code, int kind, bool logits,
                    uintptr_t out, int o_code, bool acc64, uintptr_t stream, uintptr_t scratch) {
  check_kind(kind, true, scratch);
  check_code(o_code);
  const DevBuf s = dev_buf(s_ptr, s_shape, s_stride, s_code);
  if (s.shape[0] == 0) return;
  void* o = reinterpret_cast<void*>(out);
  const unsigned g = grid_for(s.shape[0]);
  if (acc64)
    uncertainty_kernel<double><<<g, kThreads, 0, as_stream(stream)>>>(s, kind, logits, as_acc<double>(scratch), o,
                                                                       o_code);
  else
    uncertainty_kernel<float><<<g, kThreads, 0, as_stream(stream)>>>(s, kind, logits, as_acc<float>(scratch), o,
                                                                      o_code);
  check_launch("uncertainty kernel");
}

void cu_uwe(uintptr_t s_ptr, py::tuple s_shape, py::tuple s_stride, int s_code, uintptr_t f_ptr, py::tuple f_shape,
            py::tuple f_stride, int f_code, int kind, double tau, bool logits, uintptr_t out, int o_code, bool acc64,
            uintptr_t stream, double lo, double span, uintptr_t scratch) {
  check_kind(kind, true, scratch);
  check_code(o_code);
  const DevBuf s = dev_buf(s_ptr, s_shape, s_stride, s_code);
  const DevBuf f = dev_buf(f_ptr, f_shape, f_stride, f_code);
  if (s.shape[0] == 0) return;
  void* o = reinterpret_cast<void*>(out);
  const int64_t tiles = (s.shape[0] + kTileRows - 1) / kTileRows;
  if (tiles > 0x7fffffff) throw std::invalid_argument("uwe: too many rows for one launch");
  const unsigned g = static_cast<unsigned>(tiles);
  if (acc64)
    uwe_kernel<double><<<g, kThreads, 0, as_stream(stream)>>>(s, f, kind, rule_of<double>(tau, lo, span), logits,
                                                               as_acc<double>(scratch), o, o_code);
  else
    uwe_kernel<float><<<g, kThreads, 0, as_stream(stream)>>>(s, f, kind, rule_of<float>(tau, lo, span), logits,
                                                              as_acc<float>(scratch), o, o_code);
  check_launch("uwe kernel");
}

void cu_badge_weights(uintptr_t s_ptr, py::tuple s_shape, py::tuple s_stride, int s_code, bool logits, uintptr_t out,
                      int o_code, bool acc64, uintptr_t stream) {
  check_code(o_code);
  const DevBuf s = dev_buf(s_ptr, s_shape, s_stride, s_code);
  if (s.shape[0] == 0) return;
  void* o = reinterpret_cast<void*>(out);
  const unsigned g = grid_for(s.shape[0]);
  if (acc64)
    badge_weights_kernel<double><<<g, kThreads, 0, as_stream(stream)>>>(s, logits, o, o_code);
  else
    badge_weights_kernel<float><<<g, kThreads, 0, as_stream(stream)>>>(s, logits, o, o_code);
  check_launch("badge weights kernel");
}

// `w` is an [n, K] accumulator-typed scratch buffer from the adapter.
void cu_badge_embedding(uintptr_t s_ptr, py::tuple s_shape, py::tuple s_stride, int s_code, uintptr_t f_ptr,
                        py::tuple f_shape, py::tuple f_stride, int f_code, bool logits, uintptr_t w, uintptr_t out,
                        int o_code, bool acc64, uintptr_t stream) {
  const DevBuf s = dev_buf(s_ptr, s_shape, s_stride, s_code);
  const DevBuf f = dev_buf(f_ptr, f_shape, f_stride, f_code);
  if (s.shape[0] == 0) return;
  cu_badge_weights(s_ptr, s_shape, s_stride, s_code, logits, w, acc64 ? kFloat64 : kFloat32, acc64, stream);
  void* o = reinterpret_cast<void*>(out);
  const unsigned g = grid_for(s.shape[0] * s.shape[1] * f.shape[1]);
  if (acc64)
    outer_kernel<double><<<g, kThreads, 0, as_stream(stream)>>>(as_acc<double>(w), f, s.shape[1], o, o_code);
  else
    outer_kernel<float><<<g, kThreads, 0, as_stream(stream)>>>(as_acc<float>(w), f, s.shape[1], o, o_code);
  check_launch("badge outer-product kernel");
}

template <typename A>
void segmentation_launch(const DevBuf& s, const DevBuf& f, int64_t rh, int64_t rw, int kind, WeightRule<A> rule,
                         bool logits, uintptr_t pixel_u, uintptr_t region_w, void* out, int o_code,
                         cudaStream_t stream) {
  const int64_t N = s.shape[0], H = s.shape[2], W = s.shape[3], st = H / f.shape[2];
  const int64_t nw = W / rw, R = (H / rh) * nw;
  pixel_uncertainty_kernel<A><<<grid_for(N * H * W), kThreads, 0, stream>>>(s, kind, logits, as_acc<A>(pixel_u));
  check_launch("pixel uncertainty kernel");
  if (N * R > 0x7fffffff) throw std::invalid_argument("uwe_segmentation: too many regions for one launch");
  region_weight_kernel<A><<<static_cast<unsigned>(N * R), kThreads, 0, stream>>>(
      as_acc<A>(pixel_u), H, W, rh, rw, rule, as_acc<A>(region_w));
  check_launch("region weight kernel");
  region_features_kernel<A><<<grid_for(N * R * f.shape[1]), kThreads, 0, stream>>>(
      f, as_acc<A>(region_w), R, nw, rh / st, rw / st, out, o_code);
  check_launch("region feature kernel");
}

// `pixel_u` [N*H*W] and `region_w` [N*R] are accumulator-typed scratch buffers.
void cu_segmentation(uintptr_t s_ptr, py::tuple s_shape, py::tuple s_stride, int s_code, uintptr_t f_ptr,
                     py::tuple f_shape, py::tuple f_stride, int f_code, int64_t rh, int64_t rw, int kind, double tau,
                     bool logits, uintptr_t pixel_u, uintptr_t region_w, uintptr_t out, int o_code, bool acc64,
                     uintptr_t stream, double lo, double span) {
  check_kind(kind);
  check_code(o_code);
  const DevBuf s = dev_buf(s_ptr, s_shape, s_stride, s_code);
  const DevBuf f = dev_buf(f_ptr, f_shape, f_stride, f_code);
  const int64_t H = s.shape[2], W = s.shape[3], h = f.shape[2], w = f.shape[3];
  if (h <= 0 || w <= 0 || H % h || W % w || H / h != W / w || rh <= 0 || rw <= 0 || H % rh || W % rw ||
      rh % (H / h) || rw % (H / h))
    throw std::invalid_argument("segmentation shapes, stride and region do not fit");
  if (s.shape[0] == 0 || f.shape[1] == 0) return;
  void* o = reinterpret_cast<void*>(out);
  if (acc64)
    segmentation_launch<double>(s, f, rh, rw, kind, rule_of<double>(tau, lo, span), logits, pixel_u, region_w, o,
                                o_code, as_stream(stream));
  else
    segmentation_launch<float>(s, f, rh, rw, kind, rule_of<float>(tau, lo, span), logits, pixel_u, region_w, o,
                               o_code, as_stream(stream));
}

template <typename A>
void detection_launch(const DevBuf& s, const DevBuf& f, const int64_t* order, const int64_t* start, int64_t M,
                      int kind, WeightRule<A> rule, bool mean, bool logits, uintptr_t scratch, int64_t* cls,
                      int64_t* best,
                      int64_t* count, A* acc, void* out, int o_code, cudaStream_t stream) {
  const int64_t B = s.shape[0], K = s.shape[1], d = f.shape[1];
  A* u = as_acc<A>(scratch);
  A* weight = u + B;
  if (B > 0) {
    box_kernel<A><<<grid_for(B), kThreads, 0, stream>>>(s, kind, logits, rule, u, weight, cls);
    check_launch("box uncertainty kernel");
  }
  slot_kernel<A><<<grid_for(M * K), kThreads, 0, stream>>>(u, cls, order, start, M, K, best, count);
  check_launch("slot kernel");
  if (!mean) {
    detection_max_kernel<A><<<grid_for(M * K * d), kThreads, 0, stream>>>(f, weight, best, M * K, out, o_code);
    check_launch("detection max kernel");
    return;
  }
  detection_sum_kernel<A><<<grid_for(M * d), kThreads, 0, stream>>>(f, weight, cls, order, start, M, K, acc);
  check_launch("detection sum kernel");
  detection_mean_kernel<A><<<grid_for(M * K * d), kThreads, 0, stream>>>(acc, count, M * K, d, out, o_code);
  check_launch("detection mean kernel");
}

// Scratch from the adapter: `order` [B] boxes sorted by image (stable), `start` [M+1] image
// offsets into it, `scratch` [2B] accumulator-typed (u, weights), `cls` [B], `best` and
// `count` [M*K] int64, `acc` [M*K*d] accumulator-typed zeros (mean only).
void cu_detection(uintptr_t s_ptr, py::tuple s_shape, py::tuple s_stride, int s_code, uintptr_t f_ptr,
                  py::tuple f_shape, py::tuple f_stride, int f_code, uintptr_t order, uintptr_t start,
                  int64_t num_images, int kind, double tau, bool mean, bool logits, uintptr_t scratch, uintptr_t cls,
                  uintptr_t best, uintptr_t count, uintptr_t acc, uintptr_t out, int o_code, bool acc64,
                  uintptr_t stream, double lo, double span) {
  check_kind(kind);
  check_code(o_code);
  const DevBuf s = dev_buf(s_ptr, s_shape, s_stride, s_code);
  const DevBuf f = dev_buf(f_ptr, f_shape, f_stride, f_code);
  if (num_images == 0 || s.shape[1] * f.shape[1] == 0) return;
  const auto* o_idx = reinterpret_cast<const int64_t*>(order);
  const auto* st = reinterpret_cast<const int64_t*>(start);
  auto* c = reinterpret_cast<int64_t*>(cls);
  auto* b = reinterpret_cast<int64_t*>(best);
  auto* n = reinterpret_cast<int64_t*>(count);
  void* o = reinterpret_cast<void*>(out);
  if (acc64)
    detection_launch<double>(s, f, o_idx, st, num_images, kind, rule_of<double>(tau, lo, span), mean, logits, scratch,
                             c, b, n,
                             as_acc<double>(acc), o, o_code, as_stream(stream));
  else
    detection_launch<float>(s, f, o_idx, st, num_images, kind, rule_of<float>(tau, lo, span), mean, logits, scratch,
                            c, b, n,
                            as_acc<float>(acc), o, o_code, as_stream(stream));
}

}  // namespace

void register_embed_cuda(py::module_& m) {
  m.def("uncertainty", &cu_uncertainty, py::arg("s_ptr"), py::arg("s_shape"), py::arg("s_stride"),
        py::arg("s_code"), py::arg("kind"), py::arg("logits"), py::arg("out"), py::arg("o_code"),
        py::arg("acc64"), py::arg("stream"), py::arg("scratch") = 0,
        "Per-row uncertainty of device scores [n, K] ([n, K, T] for kind bald, with an [n, 2T] accumulator "
        "scratch) into out [n].");
  m.def("uwe", &cu_uwe, py::arg("s_ptr"), py::arg("s_shape"), py::arg("s_stride"), py::arg("s_code"),
        py::arg("f_ptr"), py::arg("f_shape"), py::arg("f_stride"), py::arg("f_code"), py::arg("kind"),
        py::arg("tau"), py::arg("logits"), py::arg("out"), py::arg("o_code"), py::arg("acc64"),
        py::arg("stream"), py::arg("norm_lo") = 0.0, py::arg("norm_span") = -1.0, py::arg("scratch") = 0,
        "Fused u ** tau * features into device out [n, d]; u min-max normalised by (norm_lo, norm_span) when "
        "norm_span >= 0. Kind bald: scores [n, K, T] and an [n, 2T] accumulator scratch.");
  m.def("badge_weights", &cu_badge_weights, py::arg("s_ptr"), py::arg("s_shape"), py::arg("s_stride"),
        py::arg("s_code"), py::arg("logits"), py::arg("out"), py::arg("o_code"), py::arg("acc64"),
        py::arg("stream"),
        "p - onehot(argmax) into device out [n, K].");
  m.def("badge_embedding", &cu_badge_embedding, py::arg("s_ptr"), py::arg("s_shape"), py::arg("s_stride"),
        py::arg("s_code"), py::arg("f_ptr"), py::arg("f_shape"), py::arg("f_stride"), py::arg("f_code"),
        py::arg("logits"), py::arg("w"), py::arg("out"), py::arg("o_code"), py::arg("acc64"),
        py::arg("stream"),
        "BADGE gradient embedding into device out [n, K*d].");
  m.def("uwe_segmentation", &cu_segmentation, py::arg("s_ptr"), py::arg("s_shape"), py::arg("s_stride"),
        py::arg("s_code"), py::arg("f_ptr"), py::arg("f_shape"), py::arg("f_stride"), py::arg("f_code"),
        py::arg("rh"), py::arg("rw"), py::arg("kind"), py::arg("tau"), py::arg("logits"), py::arg("pixel_u"),
        py::arg("region_w"), py::arg("out"), py::arg("o_code"), py::arg("acc64"), py::arg("stream"),
        py::arg("norm_lo") = 0.0, py::arg("norm_span") = -1.0,
        "Region UWEs into device out [N*R, C].");
  m.def("uwe_detection", &cu_detection, py::arg("s_ptr"), py::arg("s_shape"), py::arg("s_stride"),
        py::arg("s_code"), py::arg("f_ptr"), py::arg("f_shape"), py::arg("f_stride"), py::arg("f_code"),
        py::arg("order"), py::arg("start"), py::arg("num_images"), py::arg("kind"), py::arg("tau"),
        py::arg("mean"), py::arg("logits"), py::arg("scratch"), py::arg("cls"), py::arg("best"),
        py::arg("count"), py::arg("acc"), py::arg("out"), py::arg("o_code"), py::arg("acc64"),
        py::arg("stream"), py::arg("norm_lo") = 0.0, py::arg("norm_span") = -1.0,
        "Class-wise aggregated box UWEs into device out [num_images, K*d].");
}

}  // namespace uwe
