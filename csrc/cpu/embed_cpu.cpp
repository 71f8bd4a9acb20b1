// CPU embedding kernels: uncertainty, fused UWE, BADGE weights and embeddings,
// segmentation and detection aggregation (API.md "Uncertainty and embeddings").
//
// Algorithm: rows are processed in blocks of kBlock; for each block the per-row
// uncertainty (common/uncertainty.h: max pass + softmax-sum pass, no probability matrix)
// becomes a weight, then the feature rows are scaled and written once. OpenMP splits the
// blocks statically; every output element depends on one thread's work only, so results
// do not depend on the thread count.
// Complexity: O(n (K + d)) time, O(kBlock) extra memory per thread (O(kBlock K) for BADGE).
// Shapes: scores [n, K] ([n, K, T] for kind bald: each row's [K, T] block goes through a
// BaldTile, bald_tile.h), features [n, d], out [n, d] (or [n, K*d], [n, K], [n]).
// Memory: contiguous float16 rows go through F16C tiles (embed_simd.h); float32 UWE outputs
// of kStreamBytes or more are written with streaming stores (no read of the destination).
// Precision: loads convert float16 / bfloat16 in registers; accumulation in A = float, or
// double when any input is float64; region sums of the segmentation op in double.
// Ties: argmax is the lowest class; detection "max" keeps the lowest box index.
// Checks: the same passes record the first row holding NaN / inf (and, for probabilities,
// a negative value); the minimum over threads is returned to the adapter, which raises. The
// fused UWE op also reports whether an output rounded to inf, from each row's largest |x|.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "common/dtype.h"
#include "common/uncertainty.h"
#include "cpu/bald_tile.h"
#include "cpu/embed_simd.h"
#include "cpu/embed_strided.h"
#include "cpu/threads.h"

namespace py = pybind11;

namespace uwe {
namespace {

constexpr int64_t kBlock = 64;
// Outputs at least this large bypass the caches (streaming stores) in the fused UWE op.
constexpr int64_t kStreamBytes = int64_t(16) << 20;

// ---------------------------------------------------------------- per-row pieces

template <typename S, typename A, bool Contig>
A score_row(const char* row, int64_t step, int K, int kind, bool logits, RowSummary<A>& r) {
  const RowReader<S, A, Contig> at{row, step};
  return row_uncertainty<A>(at, K, kind, logits, r);
}

template <typename A>
inline void note_score_checks(const RowSummary<A>& r, bool logits, int64_t row, int64_t& bad_nf,
                              int64_t& bad_neg) {
  if (!r.finite)
    bad_nf = std::min(bad_nf, row);
  else if (!logits && r.smallest < A(0))
    bad_neg = std::min(bad_neg, row);
}

// w[i - r0] = u_i (or its weight by `rule` when `power`) for rows [r0, r1) of scores [n, K].
template <typename S, typename A>
void uncertainty_rows(const HostBuf& s, int64_t r0, int64_t r1, int kind, bool logits, bool power,
                      WeightRule<A> rule, A* w, int64_t& bad_nf, int64_t& bad_neg) {
  const int K = static_cast<int>(s.shape[1]);
  const bool contig = s.stride[1] == static_cast<int64_t>(sizeof(S));
  for (int64_t i = r0; i < r1; ++i) {
    const char* row = s.ptr + i * s.stride[0];
    RowSummary<A> r;
    const A u = contig ? score_row<S, A, true>(row, s.stride[1], K, kind, logits, r)
                       : score_row<S, A, false>(row, s.stride[1], K, kind, logits, r);
    note_score_checks(r, logits, i, bad_nf, bad_neg);
    w[i - r0] = power ? weight_by<A>(rule, u) : u;
  }
}

// As uncertainty_rows for kind "bald": scores [n, K, T], each row's [K, T] block through a
// BaldTile (bald_tile.h): read straight through when C-contiguous, element by element otherwise.
template <typename S, typename A>
void bald_rows(const HostBuf& s, int64_t r0, int64_t r1, int /*kind*/, bool logits, bool power,
               WeightRule<A> rule, A* w, int64_t& bad_nf, int64_t& bad_neg) {
  const int K = static_cast<int>(s.shape[1]), T = static_cast<int>(s.shape[2]);
  const bool contig = s.stride[2] == static_cast<int64_t>(sizeof(S)) && s.stride[1] == T * s.stride[2];
  BaldTile<A> tile(K, T);
  for (int64_t i = r0; i < r1; ++i) {
    const char* row = s.ptr + i * s.stride[0];
    if (contig)
      tile.template fill<S, true>(row, s.stride[1], s.stride[2]);
    else
      tile.template fill<S, false>(row, s.stride[1], s.stride[2]);
    RowSummary<A> r;
    const A u = tile.bald(logits, r);
    note_score_checks(r, logits, i, bad_nf, bad_neg);
    w[i - r0] = power ? weight_by<A>(rule, u) : u;
  }
}

// What scaling a row of features saw: probe = sum(x * 0), NaN when the row is not finite, and
// top = max |x| (NaN ignored). Rounding is monotone, so the row's largest output is exactly
// store<O>(|w| * top): the kernel knows whether it wrote an inf without reading its output.
template <typename A>
struct RowSeen {
  A probe;
  A top;
};

template <typename A>
UWE_INLINE A magnitude(A x) { return x < A(0) ? -x : x; }

// dst[j] = w * src[j] for one row of d features.
template <typename F, typename O, typename A, bool Contig>
RowSeen<A> scale_row(const char* src, int64_t step, int64_t d, A w, O* dst) {
  A probe = 0, top = 0;
  UWE_SIMD(reduction(+ : probe) reduction(max : top))
  for (int64_t j = 0; j < d; ++j) {
    const A x = load<A>(read_as<F>(src + j * (Contig ? static_cast<int64_t>(sizeof(F)) : step)));
    probe += x * A(0);
    top = magnitude(x) > top ? magnitude(x) : top;
    dst[j] = store<O>(w * x);
  }
  return {probe, top};
}

// Contiguous rows touching float16 with a float accumulator: convert tiles of the row
// through F16C (embed_simd.h), scale the float tile, convert back.
template <typename F, typename O>
RowSeen<float> scale_row_half_tiles(const F* src, int64_t d, float w, O* dst) {
  constexpr int64_t kTile = 256;
  float in[kTile], res[kTile];
  float probe = 0, top = 0;
  for (int64_t j0 = 0; j0 < d; j0 += kTile) {
    const int64_t len = std::min(kTile, d - j0);
    if constexpr (std::is_same_v<F, half_t>)
      halves_to_floats(src + j0, in, len);
    else
      for (int64_t j = 0; j < len; ++j) in[j] = load<float>(src[j0 + j]);
    UWE_SIMD(reduction(+ : probe) reduction(max : top))
    for (int64_t j = 0; j < len; ++j) {
      probe += in[j] * 0.0f;
      top = magnitude(in[j]) > top ? magnitude(in[j]) : top;
      res[j] = w * in[j];
    }
    if constexpr (std::is_same_v<O, half_t>)
      floats_to_halves(res, dst + j0, len);
    else
      for (int64_t j = 0; j < len; ++j) dst[j0 + j] = store<O>(res[j]);
  }
  return {probe, top};
}

template <typename F, typename O, typename A>
RowSeen<A> scale_any(const char* src, int64_t step, int64_t d, A w, O* dst) {
  if (step != static_cast<int64_t>(sizeof(F))) return scale_row<F, O, A, false>(src, step, d, w, dst);
  if constexpr (std::is_same_v<A, float> && (std::is_same_v<F, half_t> || std::is_same_v<O, half_t>))
    return scale_row_half_tiles<F, O>(reinterpret_cast<const F*>(src), d, w, dst);
  return scale_row<F, O, A, true>(src, step, d, w, dst);
}

// out rows [r0, r1) = w[i - r0] * features[i]. `stream`: the output is too large to stay in
// cache, so contiguous float32 rows are written with streaming stores. `largest` grows to the
// largest |w_i x_ij| before rounding to O (inf for a NaN product, e.g. an inf weight times 0).
template <typename F, typename O, typename A>
void scale_rows(const HostBuf& f, char* out, int64_t r0, int64_t r1, const A* w, bool stream, int64_t& bad_f,
                A& largest) {
  const int64_t d = f.shape[1];
  constexpr bool kFloatRows = std::is_same_v<F, float> && std::is_same_v<O, float> && std::is_same_v<A, float>;
  const bool contig = f.stride[1] == static_cast<int64_t>(sizeof(F));
  for (int64_t i = r0; i < r1; ++i) {
    O* dst = reinterpret_cast<O*>(out) + i * d;
    const char* src = f.ptr + i * f.stride[0];
    RowSeen<A> seen;
    if constexpr (kFloatRows) {
      if (stream && contig)
        seen.probe = scale_stream_f32(reinterpret_cast<const float*>(src), d, w[i - r0], dst, seen.top);
      else
        seen = scale_any<F, O, A>(src, f.stride[1], d, w[i - r0], dst);
    } else {
      seen = scale_any<F, O, A>(src, f.stride[1], d, w[i - r0], dst);
    }
    if (!(seen.probe == A(0))) bad_f = std::min(bad_f, i);
    const A big = d > 0 ? magnitude(w[i - r0]) * seen.top : A(0);
    if (!(big <= largest)) largest = big == big ? big : A(INFINITY);
  }
  if (kFloatRows && stream) stream_fence();
}

// BADGE weights p_k - [k == argmax] for rows [r0, r1) into w[(i - r0) * K + k].
template <typename S, typename A>
void badge_rows(const HostBuf& s, int64_t r0, int64_t r1, bool logits, A* w, int64_t& bad_nf,
                int64_t& bad_neg) {
  const int K = static_cast<int>(s.shape[1]);
  for (int64_t i = r0; i < r1; ++i) {
    const RowReader<S, A, false> at{s.ptr + i * s.stride[0], s.stride[1]};
    const RowSummary<A> r = summarize_row<A>(at, K, false);
    note_score_checks(r, logits, i, bad_nf, bad_neg);
    A inv_s = 1;
    if (logits) {
      A sum, t;
      softmax_sums<A>(at, K, r.best, sum, t);
      inv_s = A(1) / sum;
    }
    A* wr = w + (i - r0) * K;
    for (int k = 0; k < K; ++k) wr[k] = badge_weight<A>(at(k), k, r, logits, inv_s);
  }
}

template <typename O, typename A>
void store_rows(const A* src, int64_t count, char* out, int64_t offset) {
  O* dst = reinterpret_cast<O*>(out) + offset;
  for (int64_t j = 0; j < count; ++j) dst[j] = store<O>(src[j]);
}

// ---------------------------------------------------------------- dispatch helpers

template <typename A>
using UncertaintyFn = void (*)(const HostBuf&, int64_t, int64_t, int, bool, bool, WeightRule<A>, A*, int64_t&,
                               int64_t&);
template <typename A>
using ScaleFn = void (*)(const HostBuf&, char*, int64_t, int64_t, const A*, bool, int64_t&, A&);
template <typename A>
using BadgeFn = void (*)(const HostBuf&, int64_t, int64_t, bool, A*, int64_t&, int64_t&);
template <typename A>
using StoreFn = void (*)(const A*, int64_t, char*, int64_t);

template <typename A>
UncertaintyFn<A> pick_uncertainty(int s_code, int kind) {
  UncertaintyFn<A> fn = nullptr;
  with_dtype(s_code, [&](auto s) {
    fn = kind == kBald ? &bald_rows<decltype(s), A> : &uncertainty_rows<decltype(s), A>;
  });
  return fn;
}

template <typename A>
ScaleFn<A> pick_scale(int f_code, int o_code) {
  ScaleFn<A> fn = nullptr;
  with_dtype(f_code, [&](auto f) { with_dtype(o_code, [&](auto o) { fn = &scale_rows<decltype(f), decltype(o), A>; }); });
  return fn;
}

template <typename A>
BadgeFn<A> pick_badge(int s_code) {
  BadgeFn<A> fn = nullptr;
  with_dtype(s_code, [&](auto s) { fn = &badge_rows<decltype(s), A>; });
  return fn;
}

template <typename A>
StoreFn<A> pick_store(int o_code) {
  StoreFn<A> fn = nullptr;
  with_dtype(o_code, [&](auto o) { fn = &store_rows<decltype(o), A>; });
  return fn;
}

BadRows finish(int64_t nf, int64_t neg, int64_t feat) {
  BadRows b;
  b.nonfinite_scores = none_to_minus1(nf);
  b.negative_scores = none_to_minus1(neg);
  b.nonfinite_features = none_to_minus1(feat);
  return b;
}

int64_t blocks_of(int64_t n) { return (n + kBlock - 1) / kBlock; }

// Long calls run in slices of work; between slices, about every 100 ms, the GIL is
// re-acquired so Python can handle signals: a pending KeyboardInterrupt is raised.
class SignalCheck {
 public:
  void operator()() {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
  }

 private:
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

constexpr int64_t kSliceBlocks = 1024;  // row blocks per parallel region between signal checks

// ---------------------------------------------------------------- ops

template <typename A>
BadRows uncertainty_impl(const HostBuf& s, int kind, bool logits, char* out, int o_code) {
  const auto ufn = pick_uncertainty<A>(s.dtype, kind);
  const auto sfn = pick_store<A>(o_code);
  const int64_t n = s.shape[0];
  int64_t nf = kNone, neg = kNone;
  SignalCheck check;
  py::gil_scoped_release release;
  for (int64_t b0 = 0; b0 < blocks_of(n); b0 += kSliceBlocks) {
    const int64_t b1 = std::min(blocks_of(n), b0 + kSliceBlocks);
#pragma omp parallel for num_threads(cpu::team_threads()) schedule(static) reduction(min : nf, neg)
    for (int64_t b = b0; b < b1; ++b) {
      A w[kBlock];
      const int64_t r0 = b * kBlock, r1 = std::min(n, r0 + kBlock);
      ufn(s, r0, r1, kind, logits, false, WeightRule<A>{A(1), A(0), A(-1)}, w, nf, neg);
      sfn(w, r1 - r0, out, r0);
    }
    check();
  }
  return finish(nf, neg, kNone);
}

// Whether the largest |w x| of a call, rounded to the output type, is inf.
template <typename A>
bool rounds_to_inf(A largest, int o_code) {
  bool inf = false;
  with_dtype(o_code, [&](auto o) {
    inf = !(load<double>(store<decltype(o)>(largest)) <= std::numeric_limits<double>::max());
  });
  return inf;
}

// `overflowed`: some output rounded to inf (or is NaN: an inf weight times a zero feature),
// found while writing, so no pass re-reads the output.
template <typename A>
BadRows uwe_impl(const HostBuf& s, const HostBuf& f, int kind, WeightRule<A> rule, bool logits, char* out,
                 int o_code, bool& overflowed) {
  const auto ufn = pick_uncertainty<A>(s.dtype, kind);
  const auto sfn = pick_scale<A>(f.dtype, o_code);
  const int64_t n = s.shape[0];
  const bool stream = n * f.shape[1] * static_cast<int64_t>(sizeof(float)) >= kStreamBytes;
  int64_t nf = kNone, neg = kNone, bf = kNone;
  A largest = 0;
  SignalCheck check;
  py::gil_scoped_release release;
  for (int64_t b0 = 0; b0 < blocks_of(n); b0 += kSliceBlocks) {
    const int64_t b1 = std::min(blocks_of(n), b0 + kSliceBlocks);
#pragma omp parallel for num_threads(cpu::team_threads()) schedule(static) reduction(min : nf, neg, bf) \
    reduction(max : largest)
    for (int64_t b = b0; b < b1; ++b) {
      A w[kBlock];
      const int64_t r0 = b * kBlock, r1 = std::min(n, r0 + kBlock);
      ufn(s, r0, r1, kind, logits, true, rule, w, nf, neg);
      sfn(f, out, r0, r1, w, stream, bf, largest);
    }
    check();
  }
  overflowed = rounds_to_inf(largest, o_code);
  return finish(nf, neg, bf);
}

template <typename A>
BadRows badge_weights_impl(const HostBuf& s, bool logits, char* out, int o_code) {
  const auto bfn = pick_badge<A>(s.dtype);
  const auto sfn = pick_store<A>(o_code);
  const int64_t n = s.shape[0], K = s.shape[1];
  int64_t nf = kNone, neg = kNone;
  SignalCheck check;
  py::gil_scoped_release release;
  for (int64_t b0 = 0; b0 < blocks_of(n); b0 += kSliceBlocks) {
    const int64_t b1 = std::min(blocks_of(n), b0 + kSliceBlocks);
#pragma omp parallel num_threads(cpu::team_threads()) reduction(min : nf, neg)
    {
      std::vector<A> w(kBlock * K);
#pragma omp for schedule(static)
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t r0 = b * kBlock, r1 = std::min(n, r0 + kBlock);
        bfn(s, r0, r1, logits, w.data(), nf, neg);
        sfn(w.data(), (r1 - r0) * K, out, r0 * K);
      }
    }
    check();
  }
  return finish(nf, neg, kNone);
}

template <typename F, typename O, typename A>
void badge_scale_rows(const HostBuf& f, char* out, int64_t r0, int64_t r1, int64_t K, const A* w, int64_t& bad_f) {
  const int64_t d = f.shape[1];
  for (int64_t i = r0; i < r1; ++i) {
    const char* src = f.ptr + i * f.stride[0];
    O* dst = reinterpret_cast<O*>(out) + i * K * d;
    A probe = 0;
    for (int64_t k = 0; k < K; ++k) {
      const A p = scale_any<F, O, A>(src, f.stride[1], d, w[(i - r0) * K + k], dst + k * d).probe;
      if (k == 0) probe = p;
    }
    if (!(probe == A(0))) bad_f = std::min(bad_f, i);
  }
}

template <typename A>
BadRows badge_embedding_impl(const HostBuf& s, const HostBuf& f, bool logits, char* out, int o_code) {
  const auto bfn = pick_badge<A>(s.dtype);
  void (*sfn)(const HostBuf&, char*, int64_t, int64_t, int64_t, const A*, int64_t&) = nullptr;
  with_dtype(f.dtype, [&](auto ft) { with_dtype(o_code, [&](auto ot) { sfn = &badge_scale_rows<decltype(ft), decltype(ot), A>; }); });
  const int64_t n = s.shape[0], K = s.shape[1];
  int64_t nf = kNone, neg = kNone, bf = kNone;
  SignalCheck check;
  py::gil_scoped_release release;
  // Slices of fewer blocks: each row writes K * d values.
  const int64_t slice = std::max<int64_t>(1, kSliceBlocks / std::max<int64_t>(1, K));
  for (int64_t b0 = 0; b0 < blocks_of(n); b0 += slice) {
    const int64_t b1 = std::min(blocks_of(n), b0 + slice);
#pragma omp parallel num_threads(cpu::team_threads()) reduction(min : nf, neg, bf)
    {
      std::vector<A> w(kBlock * K);
#pragma omp for schedule(static)
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t r0 = b * kBlock, r1 = std::min(n, r0 + kBlock);
        bfn(s, r0, r1, logits, w.data(), nf, neg);
        sfn(f, out, r0, r1, K, w.data(), bf);
      }
    }
    check();
  }
  return finish(nf, neg, bf);
}

// ---------------------------------------------------------------- segmentation
//
// Pass 1 (tasks = score rows (n, y)): pixel uncertainty, summed per region column into
// row_sums[(n * H + y) * nw + j] (double). Then, per region, the band's rows are summed in
// order (deterministic), averaged and turned into w_r = mean_u ** tau.
// Pass 2 (tasks = feature planes (n, c)): feature sums per region over its
// (rh / s) x (rw / s) cells, out[(n R + r), c] = w_r * mean.

template <typename S, typename A>
void segmentation_pixels(const HostBuf& s, int64_t n, int64_t y, int64_t rw, int kind, bool logits, double* sums,
                         int64_t& bad_nf, int64_t& bad_neg) {
  const int K = static_cast<int>(s.shape[1]);
  const int64_t W = s.shape[3];
  const char* base = s.ptr + n * s.stride[0] + y * s.stride[2];
  for (int64_t x = 0; x < W; ++x) {
    const RowReader<S, A, false> at{base + x * s.stride[3], s.stride[1]};
    RowSummary<A> r;
    const A u = row_uncertainty<A>(at, K, kind, logits, r);
    note_score_checks(r, logits, n, bad_nf, bad_neg);
    sums[x / rw] += static_cast<double>(u);
  }
}

template <typename F>
void segmentation_plane(const HostBuf& f, int64_t n, int64_t c, int64_t ch, int64_t cw, int64_t nw, double* sums,
                        int64_t& bad_f) {
  const int64_t h = f.shape[2], w = f.shape[3];
  const char* base = f.ptr + n * f.stride[0] + c * f.stride[1];
  double probe = 0;
  for (int64_t yy = 0; yy < h; ++yy) {
    const char* row = base + yy * f.stride[2];
    double* band = sums + (yy / ch) * nw;
    for (int64_t xx = 0; xx < w; ++xx) {
      const double v = load<double>(read_as<F>(row + xx * f.stride[3]));
      probe += v * 0.0;
      band[xx / cw] += v;
    }
  }
  if (!(probe == 0.0)) bad_f = std::min(bad_f, n);
}

template <typename A>
BadRows segmentation_impl(const HostBuf& s, const HostBuf& f, int64_t rh, int64_t rw, int kind, WeightRule<A> rule,
                          bool logits, char* out, int o_code) {
  const int64_t N = s.shape[0], H = s.shape[2], W = s.shape[3];
  const int64_t C = f.shape[1], h = f.shape[2];
  const int64_t st = H / h, nh = H / rh, nw = W / rw, R = nh * nw;
  const int64_t ch = rh / st, cw = rw / st;
  void (*pixels)(const HostBuf&, int64_t, int64_t, int64_t, int, bool, double*, int64_t&, int64_t&) = nullptr;
  with_dtype(s.dtype, [&](auto t) { pixels = &segmentation_pixels<decltype(t), A>; });
  void (*plane)(const HostBuf&, int64_t, int64_t, int64_t, int64_t, int64_t, double*, int64_t&) = nullptr;
  with_dtype(f.dtype, [&](auto t) { plane = &segmentation_plane<decltype(t)>; });
  const auto store_fn = pick_store<double>(o_code);

  std::vector<double> row_sums(static_cast<size_t>(N * H * nw), 0.0);
  std::vector<double> weights(static_cast<size_t>(N * R), 0.0);
  int64_t nf = kNone, neg = kNone, bf = kNone;
  {
    py::gil_scoped_release release;
    SignalCheck check;
    const int64_t slice = std::max<int64_t>(1, (int64_t(1) << 22) / std::max<int64_t>(1, W * s.shape[1]));
    for (int64_t t0 = 0; t0 < N * H; t0 += slice) {
      const int64_t t1 = std::min(N * H, t0 + slice);
#pragma omp parallel for num_threads(cpu::team_threads()) schedule(static) reduction(min : nf, neg)
      for (int64_t t = t0; t < t1; ++t)
        pixels(s, t / H, t % H, rw, kind, logits, row_sums.data() + t * nw, nf, neg);
      check();
    }

    const double pixels_per_region = static_cast<double>(rh * rw);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < nh; ++i)
        for (int64_t j = 0; j < nw; ++j) {
          double sum = 0;
          for (int64_t y = i * rh; y < (i + 1) * rh; ++y) sum += row_sums[(n * H + y) * nw + j];
          const A mean = static_cast<A>(sum / pixels_per_region);
          weights[n * R + i * nw + j] = static_cast<double>(weight_by<A>(rule, mean));
        }

    const double cells = static_cast<double>(ch * cw);
#pragma omp parallel num_threads(cpu::team_threads()) reduction(min : bf)
    {
      std::vector<double> sums(static_cast<size_t>(R));
      std::vector<double> vals(static_cast<size_t>(R));
#pragma omp for schedule(static)
      for (int64_t t = 0; t < N * C; ++t) {
        const int64_t n = t / C, c = t % C;
        std::fill(sums.begin(), sums.end(), 0.0);
        plane(f, n, c, ch, cw, nw, sums.data(), bf);
        for (int64_t r = 0; r < R; ++r) {
          const double v = weights[n * R + r] * (sums[r] / cells);
          store_fn(&v, 1, out, (n * R + r) * C + c);
        }
      }
    }
  }
  return finish(nf, neg, bf);
}

// ---------------------------------------------------------------- detection
//
// Box pass (parallel): u_b, class c_b = argmax (lowest class on ties), w_b = u_b ** tau.
// "max": one ordered scan keeps, per (image, class) slot, the box with the largest u (the
// first one on ties); slots are then written in parallel. "mean": boxes are bucketed by
// image in index order (counting sort) and each image sums its boxes in that order.

template <typename S, typename A>
void detection_boxes(const HostBuf& s, int64_t r0, int64_t r1, int kind, bool logits, A* u, int64_t* cls,
                     int64_t& bad_nf, int64_t& bad_neg) {
  const int K = static_cast<int>(s.shape[1]);
  for (int64_t i = r0; i < r1; ++i) {
    const RowReader<S, A, false> at{s.ptr + i * s.stride[0], s.stride[1]};
    RowSummary<A> r;
    u[i] = row_uncertainty<A>(at, K, kind, logits, r);
    cls[i] = r.argmax;
    note_score_checks(r, logits, i, bad_nf, bad_neg);
  }
}

template <typename F>
bool features_row_finite(const HostBuf& f, int64_t i) {
  double probe = 0;
  const char* row = f.ptr + i * f.stride[0];
  for (int64_t j = 0; j < f.shape[1]; ++j) probe += load<double>(read_as<F>(row + j * f.stride[1])) * 0.0;
  return probe == 0.0;
}

template <typename F, typename O, typename A>
void detection_write(const HostBuf& f, const int64_t* ids, const A* u, const int64_t* cls, int64_t M, int64_t K,
                     WeightRule<A> rule, bool mean, char* out, int64_t& bad_f) {
  const int64_t B = f.shape[0], d = f.shape[1];
  O* dst = reinterpret_cast<O*>(out);
  const O zero = store<O>(A(0));
  int64_t bad = kNone;
  if (!mean) {
    std::vector<int64_t> best(static_cast<size_t>(M * K), -1);
    for (int64_t b = 0; b < B; ++b) {
      int64_t& slot = best[ids[b] * K + cls[b]];
      if (slot < 0 || u[b] > u[slot]) slot = b;
    }
#pragma omp parallel for num_threads(cpu::team_threads()) schedule(static) reduction(min : bad)
    for (int64_t t = 0; t < M * K; ++t) {
      const int64_t b = best[t];
      O* row = dst + t * d;
      if (b < 0) {
        std::fill(row, row + d, zero);
        continue;
      }
      const A probe =
          scale_any<F, O, A>(f.ptr + b * f.stride[0], f.stride[1], d, weight_by<A>(rule, u[b]), row).probe;
      if (!(probe == A(0))) bad = std::min(bad, b);
    }
    // Boxes that lost their slot are still inputs: check them too.
#pragma omp parallel for num_threads(cpu::team_threads()) schedule(static) reduction(min : bad)
    for (int64_t b = 0; b < B; ++b)
      if (best[ids[b] * K + cls[b]] != b && !features_row_finite<F>(f, b)) bad = std::min(bad, b);
    bad_f = bad;
    return;
  }
  std::vector<int64_t> start(static_cast<size_t>(M + 1), 0), order(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) ++start[ids[b] + 1];
  for (int64_t m = 0; m < M; ++m) start[m + 1] += start[m];
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (int64_t b = 0; b < B; ++b) order[fill[ids[b]]++] = b;
  }
#pragma omp parallel num_threads(cpu::team_threads()) reduction(min : bad)
  {
    std::vector<A> acc(static_cast<size_t>(K * d));
    std::vector<int64_t> count(static_cast<size_t>(K));
#pragma omp for schedule(dynamic, 16)
    for (int64_t m = 0; m < M; ++m) {
      std::fill(acc.begin(), acc.end(), A(0));
      std::fill(count.begin(), count.end(), 0);
      for (int64_t q = start[m]; q < start[m + 1]; ++q) {
        const int64_t b = order[q];
        const A w = weight_by<A>(rule, u[b]);
        A* a = acc.data() + cls[b] * d;
        const char* row = f.ptr + b * f.stride[0];
        A probe = 0;
        for (int64_t j = 0; j < d; ++j) {
          const A x = load<A>(read_as<F>(row + j * f.stride[1]));
          probe += x * A(0);
          a[j] += w * x;
        }
        if (!(probe == A(0))) bad = std::min(bad, b);
        ++count[cls[b]];
      }
      O* orow = dst + m * K * d;
      for (int64_t c = 0; c < K; ++c) {
        const A inv = count[c] ? A(1) / static_cast<A>(count[c]) : A(0);
        for (int64_t j = 0; j < d; ++j) orow[c * d + j] = count[c] ? store<O>(acc[c * d + j] * inv) : zero;
      }
    }
  }
  bad_f = bad;
}

template <typename A>
BadRows detection_impl(const HostBuf& s, const HostBuf& f, const int64_t* ids, int64_t M, int kind,
                       WeightRule<A> rule, bool mean, bool logits, char* out, int o_code) {
  const int64_t B = s.shape[0], K = s.shape[1];
  void (*boxes)(const HostBuf&, int64_t, int64_t, int, bool, A*, int64_t*, int64_t&, int64_t&) = nullptr;
  with_dtype(s.dtype, [&](auto t) { boxes = &detection_boxes<decltype(t), A>; });
  void (*write)(const HostBuf&, const int64_t*, const A*, const int64_t*, int64_t, int64_t, WeightRule<A>, bool, char*,
                int64_t&) = nullptr;
  with_dtype(f.dtype, [&](auto ft) { with_dtype(o_code, [&](auto ot) { write = &detection_write<decltype(ft), decltype(ot), A>; }); });
  std::vector<A> u(static_cast<size_t>(B));
  std::vector<int64_t> cls(static_cast<size_t>(B));
  int64_t nf = kNone, neg = kNone, bf = kNone;
  py::gil_scoped_release release;
#pragma omp parallel for num_threads(cpu::team_threads()) schedule(static) reduction(min : nf, neg)
  for (int64_t b = 0; b < blocks_of(B); ++b)
    boxes(s, b * kBlock, std::min(B, (b + 1) * kBlock), kind, logits, u.data(), cls.data(), nf, neg);
  write(f, ids, u.data(), cls.data(), M, K, rule, mean, out, bf);
  return finish(nf, neg, bf);
}

// ---------------------------------------------------------------- bindings

int64_t size_of(const HostBuf& b) {
  int64_t s = 1;
  for (int i = 0; i < b.ndim; ++i) s *= b.shape[i];
  return s;
}

// `passes`: the op takes kind "bald" ([n, K, T] scores); the others take one [K] row per sample.
void check_kind(int kind, bool passes = false) {
  if (kind < kEntropy || kind > (passes ? kBald : kLeastConfidence))
    throw std::invalid_argument("unknown uncertainty kind code");
}

int scores_ndim(int kind) { return kind == kBald ? 3 : 2; }

py::tuple py_uncertainty(const py::array& scores, int s_code, int kind, bool logits, py::array& out, int o_code,
                         bool acc64) {
  check_kind(kind, true);
  const HostBuf s = host_buf(scores, s_code, scores_ndim(kind), "scores");
  char* o = out_ptr(out, o_code, s.shape[0], "out");
  return (acc64 ? uncertainty_impl<double>(s, kind, logits, o, o_code)
                : uncertainty_impl<float>(s, kind, logits, o, o_code)).to_tuple();
}

py::tuple py_uwe(const py::array& scores, int s_code, const py::array& features, int f_code, int kind, double tau,
                 bool logits, py::array& out, int o_code, bool acc64, double lo, double span) {
  check_kind(kind, true);
  const HostBuf s = host_buf(scores, s_code, scores_ndim(kind), "scores");
  const HostBuf f = host_buf(features, f_code, 2, "features");
  if (f.shape[0] != s.shape[0]) throw std::invalid_argument("scores and features differ in rows");
  char* o = out_ptr(out, o_code, size_of(f), "out");
  bool overflowed = false;
  const BadRows bad =
      acc64 ? uwe_impl<double>(s, f, kind, rule_of<double>(tau, lo, span), logits, o, o_code, overflowed)
            : uwe_impl<float>(s, f, kind, rule_of<float>(tau, lo, span), logits, o, o_code, overflowed);
  return py::make_tuple(bad.nonfinite_scores, bad.negative_scores, bad.nonfinite_features, overflowed);
}

py::tuple py_badge_weights(const py::array& scores, int s_code, bool logits, py::array& out, int o_code, bool acc64) {
  const HostBuf s = host_buf(scores, s_code, 2, "scores");
  char* o = out_ptr(out, o_code, size_of(s), "out");
  return (acc64 ? badge_weights_impl<double>(s, logits, o, o_code)
                : badge_weights_impl<float>(s, logits, o, o_code)).to_tuple();
}

py::tuple py_badge_embedding(const py::array& scores, int s_code, const py::array& features, int f_code, bool logits,
                             py::array& out, int o_code, bool acc64) {
  const HostBuf s = host_buf(scores, s_code, 2, "scores");
  const HostBuf f = host_buf(features, f_code, 2, "features");
  if (f.shape[0] != s.shape[0]) throw std::invalid_argument("scores and features differ in rows");
  char* o = out_ptr(out, o_code, s.shape[0] * s.shape[1] * f.shape[1], "out");
  return (acc64 ? badge_embedding_impl<double>(s, f, logits, o, o_code)
                : badge_embedding_impl<float>(s, f, logits, o, o_code)).to_tuple();
}

py::tuple py_segmentation(const py::array& scores, int s_code, const py::array& features, int f_code, int64_t rh,
                          int64_t rw, int kind, double tau, bool logits, py::array& out, int o_code, bool acc64,
                          double lo, double span) {
  check_kind(kind);
  const HostBuf s = host_buf(scores, s_code, 4, "scores");
  const HostBuf f = host_buf(features, f_code, 4, "features");
  const int64_t H = s.shape[2], W = s.shape[3], h = f.shape[2], w = f.shape[3];
  if (f.shape[0] != s.shape[0] || h <= 0 || w <= 0 || H % h || W % w || H / h != W / w || rh <= 0 || rw <= 0 ||
      H % rh || W % rw || rh % (H / h) || rw % (H / h))
    throw std::invalid_argument("segmentation shapes, stride and region do not fit");
  const int64_t R = (H / rh) * (W / rw);
  char* o = out_ptr(out, o_code, s.shape[0] * R * f.shape[1], "out");
  return (acc64 ? segmentation_impl<double>(s, f, rh, rw, kind, rule_of<double>(tau, lo, span), logits, o, o_code)
                : segmentation_impl<float>(s, f, rh, rw, kind, rule_of<float>(tau, lo, span), logits, o, o_code))
      .to_tuple();
}

py::tuple py_detection(const py::array& scores, int s_code, const py::array& features, int f_code,
                       const py::array_t<int64_t, py::array::c_style>& image_ids, int64_t num_images, int kind,
                       double tau, bool mean, bool logits, py::array& out, int o_code, bool acc64, double lo,
                       double span) {
  check_kind(kind);
  const HostBuf s = host_buf(scores, s_code, 2, "box_scores");
  const HostBuf f = host_buf(features, f_code, 2, "box_features");
  const int64_t B = s.shape[0];
  if (f.shape[0] != B || image_ids.ndim() != 1 || image_ids.shape(0) != B)
    throw std::invalid_argument("box_scores, box_features and image_ids differ in rows");
  const int64_t* ids = image_ids.data();
  for (int64_t b = 0; b < B; ++b)
    if (ids[b] < 0 || ids[b] >= num_images) throw std::invalid_argument("image id out of range");
  char* o = out_ptr(out, o_code, num_images * s.shape[1] * f.shape[1], "out");
  return (acc64 ? detection_impl<double>(s, f, ids, num_images, kind, rule_of<double>(tau, lo, span), mean, logits,
                                         o, o_code)
                : detection_impl<float>(s, f, ids, num_images, kind, rule_of<float>(tau, lo, span), mean, logits, o,
                                        o_code)).to_tuple();
}

}  // namespace

void register_embed_cpu(py::module_& m) {
  const char* bad = " Returns (first non-finite score row, first negative score row, first non-finite feature row), -1 for none.";
  m.def("uncertainty", &py_uncertainty, py::arg("scores"), py::arg("s_code"), py::arg("kind"), py::arg("from_logits"),
        py::arg("out"), py::arg("o_code"), py::arg("acc64"),
        (std::string("Per-row uncertainty of scores [n, K] ([n, K, T] for kind bald) into out [n].") + bad).c_str());
  m.def("uwe", &py_uwe, py::arg("scores"), py::arg("s_code"), py::arg("features"), py::arg("f_code"), py::arg("kind"),
        py::arg("tau"), py::arg("from_logits"), py::arg("out"), py::arg("o_code"), py::arg("acc64"),
        py::arg("norm_lo") = 0.0, py::arg("norm_span") = -1.0,
        (std::string("Fused u ** tau * features into out [n, d]; u min-max normalised by (norm_lo, norm_span) "
                     "when norm_span >= 0.") + bad + " A fourth value: whether an output rounded to inf (or is NaN).")
            .c_str());
  m.def("badge_weights", &py_badge_weights, py::arg("scores"), py::arg("s_code"), py::arg("from_logits"),
        py::arg("out"), py::arg("o_code"), py::arg("acc64"),
        (std::string("p - onehot(argmax) into out [n, K].") + bad).c_str());
  m.def("badge_embedding", &py_badge_embedding, py::arg("scores"), py::arg("s_code"), py::arg("features"),
        py::arg("f_code"), py::arg("from_logits"), py::arg("out"), py::arg("o_code"), py::arg("acc64"),
        (std::string("BADGE gradient embedding into out [n, K*d].") + bad).c_str());
  m.def("uwe_segmentation", &py_segmentation, py::arg("scores"), py::arg("s_code"), py::arg("features"),
        py::arg("f_code"), py::arg("rh"), py::arg("rw"), py::arg("kind"), py::arg("tau"), py::arg("from_logits"),
        py::arg("out"), py::arg("o_code"), py::arg("acc64"), py::arg("norm_lo") = 0.0, py::arg("norm_span") = -1.0,
        (std::string("Region UWEs into out [N*R, C].") + bad).c_str());
  m.def("uwe_detection", &py_detection, py::arg("scores"), py::arg("s_code"), py::arg("features"), py::arg("f_code"),
        py::arg("image_ids"), py::arg("num_images"), py::arg("kind"), py::arg("tau"), py::arg("mean"),
        py::arg("from_logits"), py::arg("out"), py::arg("o_code"), py::arg("acc64"), py::arg("norm_lo") = 0.0,
        py::arg("norm_span") = -1.0,
        (std::string("Class-wise aggregated box UWEs into out [num_images, K*d].") + bad).c_str());
}

}  // namespace uwe
