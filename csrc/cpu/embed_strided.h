// Strided host buffers for the CPU embed kernels: a numpy array's data pointer, byte
// strides (any sign, zero included, not necessarily multiples of the item size) and dtype
// code, read element by element through memcpy so unaligned views are safe, and a
// dispatcher from dtype codes to element types.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "common/dtype.h"

namespace uwe {

namespace py = pybind11;

struct HostBuf {
  const char* ptr = nullptr;
  int64_t shape[4] = {0, 0, 0, 0};
  int64_t stride[4] = {0, 0, 0, 0};  // bytes
  int ndim = 0;
  int dtype = kFloat32;
};

inline int itemsize_of(int code) { return code == kFloat64 ? 8 : code == kFloat32 ? 4 : 2; }

inline HostBuf host_buf(const py::array& a, int code, int ndim, const char* name) {
  if (a.ndim() != ndim)
    throw std::invalid_argument(std::string(name) + ": expected " + std::to_string(ndim) + "-D array");
  if (code < kFloat16 || code > kFloat64 || a.itemsize() != itemsize_of(code))
    throw std::invalid_argument(std::string(name) + ": dtype code does not match the array");
  HostBuf b;
  b.ptr = static_cast<const char*>(a.data());
  b.ndim = ndim;
  b.dtype = code;
  for (int i = 0; i < ndim; ++i) {
    b.shape[i] = a.shape(i);
    b.stride[i] = a.strides(i);
  }
  return b;
}

// Output buffers are allocated by the adapters: C-contiguous, writeable.
inline char* out_ptr(py::array& a, int code, int64_t expected_size, const char* name) {
  if (!(a.flags() & py::array::c_style) || !a.writeable() || a.size() != expected_size ||
      a.itemsize() != itemsize_of(code))
    throw std::invalid_argument(std::string(name) + ": output must be a writeable C-contiguous array of the right size and dtype");
  return static_cast<char*>(a.mutable_data());
}

template <typename T>
UWE_INLINE T read_as(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Score k of a row in accumulator type A; `Contig` rows step by sizeof(T), which lets the
// compiler vectorise the row passes.
template <typename T, typename A, bool Contig>
struct RowReader {
  const char* p;
  int64_t step;
  UWE_INLINE A operator()(int64_t k) const {
    return load<A>(read_as<T>(p + k * (Contig ? static_cast<int64_t>(sizeof(T)) : step)));
  }
};

// Calls f(T{}) with T the element type of `code`.
template <typename F>
inline void with_dtype(int code, F&& f) {
  switch (code) {
    case kFloat16:
      f(half_t{});
      break;
    case kBFloat16:
      f(bf16_t{});
      break;
    case kFloat32:
      f(float{});
      break;
    case kFloat64:
      f(double{});
      break;
    default:
      throw std::invalid_argument("unknown dtype code " + std::to_string(code));
  }
}

// First-bad-row bookkeeping of one call; -1 means none. Rows are along axis 0.
struct BadRows {
  int64_t nonfinite_scores = -1;
  int64_t negative_scores = -1;
  int64_t nonfinite_features = -1;
  py::tuple to_tuple() const { return py::make_tuple(nonfinite_scores, negative_scores, nonfinite_features); }
};

constexpr int64_t kNone = INT64_MAX;  // "no bad row" inside min-reductions
inline int64_t none_to_minus1(int64_t r) { return r == kNone ? -1 : r; }

}  // namespace uwe
