// The codes that cross the Python <-> compiled boundary, defined once for C++. Their Python
// twin is uwe_kernels/_abi.py; each module exports these values as `ABI` (common/abi_export.h)
// and the package compares the two tables when it first imports a module.
#pragma once

namespace uwe {

// Element type of a buffer.
enum DType : int { kFloat16 = 0, kBFloat16 = 1, kFloat32 = 2, kFloat64 = 3 };

// Uncertainty measure (kBald reads the [K, T] passes of a row, the others one [K] row).
enum Kind : int { kEntropy = 0, kBvsb = 1, kMargin = 2, kLeastConfidence = 3, kBald = 4 };

// What a selection's rows are: a dense matrix, u_i * f_i, or BADGE's (p_i - onehot_i) (x) f_i.
enum EmbKind : int { kDense = 0, kUwe = 1, kBadge = 2 };

// k-center / k-means++ first pick when no index is given (an index >= 0 is taken as it is).
enum FirstPick : long long { kFirstMaxNorm = -1, kFirstRandom = -2 };

}  // namespace uwe
