// The `ABI` table a compiled module exports: every code of common/abi.h by name, in the format
// uwe_kernels._abi.check_extension compares with its own.
#pragma once

#include <pybind11/pybind11.h>

#include "common/abi.h"

namespace uwe {

inline pybind11::dict abi_table() {
  pybind11::dict dtype, kind, emb, first, table;
  dtype["float16"] = int(kFloat16);
  dtype["bfloat16"] = int(kBFloat16);
  dtype["float32"] = int(kFloat32);
  dtype["float64"] = int(kFloat64);
  kind["entropy"] = int(kEntropy);
  kind["bvsb"] = int(kBvsb);
  kind["margin"] = int(kMargin);
  kind["least_confidence"] = int(kLeastConfidence);
  kind["bald"] = int(kBald);
  emb["dense"] = int(kDense);
  emb["uwe"] = int(kUwe);
  emb["badge"] = int(kBadge);
  first["max_norm"] = static_cast<long long>(kFirstMaxNorm);
  first["random"] = static_cast<long long>(kFirstRandom);
  table["dtype"] = dtype;
  table["kind"] = kind;
  table["emb"] = emb;
  table["first"] = first;
  return table;
}

}  // namespace uwe
