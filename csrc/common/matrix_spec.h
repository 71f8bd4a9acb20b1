// The one description of a strided matrix and of a selection's embedding that both compiled
// modules take from Python (built by uwe_kernels/_spec.py from numpy arrays and torch tensors
// alike): matrix = (address, rows, cols, row stride, column stride in bytes, dtype code);
// embedding = (kind, features matrix, weights matrix or None).
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "common/abi.h"
#include "common/hd.h"

namespace uwe {

struct MatrixSpec {
  const char* base = nullptr;
  int64_t rows = 0, cols = 0;
  int64_t stride0 = 0, stride1 = 0;  // bytes, any sign
  int dtype = kFloat32;

  UWE_HD const char* row(int64_t i) const { return base + i * stride0; }
  UWE_HD const char* at(int64_t i, int64_t k) const { return base + i * stride0 + k * stride1; }
};

struct EmbSpec {
  int kind = kDense;
  MatrixSpec f;  // dense rows, or the features of a factored embedding
  MatrixSpec w;  // factored weights: [n, 1] (UWE) or [n, K] (BADGE); unused for dense rows

  int64_t n() const { return f.rows; }
  int64_t d() const { return f.cols; }
  int64_t K() const { return kind == kBadge ? w.cols : 0; }
  int64_t width() const { return K() + d(); }  // values of a row in the kernels' layout
};

inline MatrixSpec matrix_of(const pybind11::handle& spec) {
  const auto t = spec.cast<pybind11::tuple>();
  if (t.size() != 6) throw pybind11::value_error("a matrix spec has 6 fields, got " + std::to_string(t.size()));
  MatrixSpec m;
  m.base = reinterpret_cast<const char*>(t[0].cast<uintptr_t>());
  m.rows = t[1].cast<int64_t>();
  m.cols = t[2].cast<int64_t>();
  m.stride0 = t[3].cast<int64_t>();
  m.stride1 = t[4].cast<int64_t>();
  m.dtype = t[5].cast<int>();
  if (m.dtype < kFloat16 || m.dtype > kFloat64)
    throw pybind11::type_error("selection kernels take float16, bfloat16, float32 or float64 (dtype code " +
                               std::to_string(m.dtype) + ")");
  if (m.rows < 0 || m.cols < 0) throw pybind11::value_error("a matrix spec has a negative shape");
  return m;
}

inline EmbSpec emb_of(const pybind11::handle& spec) {
  const auto t = spec.cast<pybind11::tuple>();
  if (t.size() != 3) throw pybind11::value_error("an embedding spec has 3 fields, got " + std::to_string(t.size()));
  EmbSpec e;
  e.kind = t[0].cast<int>();
  if (e.kind < kDense || e.kind > kBadge) throw pybind11::value_error("unknown embedding kind " + std::to_string(e.kind));
  e.f = matrix_of(t[1]);
  if (e.kind != kDense) {
    e.w = matrix_of(t[2]);
    if (e.w.rows != e.f.rows) throw pybind11::value_error("weights and features must have the same number of rows");
  }
  return e;
}

}  // namespace uwe
