// Reading one pool element of a dtype known only at run time (the code the Python adapters
// pass), as the accumulator type. The conversions themselves live in common/dtype.h, shared by
// every kernel on the host and the device.
#pragma once

#include <cstdint>

#include "common/dtype.h"
#include "common/hd.h"

namespace uwe {

using DtypeCode = DType;

UWE_HD inline int dtype_size(int code) { return code == kFloat64 ? 8 : code == kFloat32 ? 4 : 2; }

// One element at `p` (of type `code`) as Acc (float or double).
template <class Acc>
UWE_HD inline Acc load_as(const void* p, int code) {
  switch (code) {
    case kFloat16: return static_cast<Acc>(half_bits_to_float(*static_cast<const uint16_t*>(p)));
    case kBFloat16: return static_cast<Acc>(bf16_bits_to_float(*static_cast<const uint16_t*>(p)));
    case kFloat32: return static_cast<Acc>(*static_cast<const float*>(p));
    default: return static_cast<Acc>(*static_cast<const double*>(p));
  }
}

}  // namespace uwe
