"""The codes that cross the Python <-> compiled boundary, defined once.

Every Python adapter (cpp, cuda, numba, triton) takes its codes from here; the compiled modules
export their own values (``csrc/common/abi.h``) and ``check_extension`` compares the two when a
module is first imported, so a code changed on one side only fails loudly at import.
"""
from __future__ import annotations

from typing import Any

import numpy as np

# Element type of a buffer, by numpy dtype name ("bfloat16" is ml_dtypes' name).
DTYPE_CODES: dict[str, int] = {"float16": 0, "bfloat16": 1, "float32": 2, "float64": 3}

# Uncertainty measure ("bald" reads [K, T] passes per row, the others one [K] row).
KIND_CODES: dict[str, int] = {"entropy": 0, "bvsb": 1, "margin": 2, "least_confidence": 3, "bald": 4}

# What a selection's rows are: a dense matrix, u_i * f_i, or BADGE's (p_i - onehot_i) (x) f_i.
EMB_DENSE, EMB_UWE, EMB_BADGE = 0, 1, 2

# k-center / k-means++ first pick when no index is given.
FIRST_MAX_NORM, FIRST_RANDOM = -1, -2


def dtype_code(dtype: Any) -> int:
    """The code of a numpy (or ml_dtypes) dtype; KeyError names the dtype when it has none."""
    name = np.dtype(dtype).name
    try:
        return DTYPE_CODES[name]
    except KeyError:
        raise KeyError(f"no kernel element type for dtype {name}") from None


def first_code(first: Any) -> int:
    """A validated first pick (None, "max_norm", "random" or an index) as the kernels' integer."""
    if first is None or first == "max_norm":
        return FIRST_MAX_NORM
    if first == "random":
        return FIRST_RANDOM
    return int(first)


def check_extension(module: Any) -> None:
    """Raise ImportError when a compiled module was built with other codes than these."""
    exported = getattr(module, "ABI", None)
    if exported is None:
        return  # a module built before the ABI table was exported
    ours = {"dtype": DTYPE_CODES, "kind": KIND_CODES,
            "emb": {"dense": EMB_DENSE, "uwe": EMB_UWE, "badge": EMB_BADGE},
            "first": {"max_norm": FIRST_MAX_NORM, "random": FIRST_RANDOM}}
    theirs = {group: dict(table) for group, table in dict(exported).items()}
    if theirs != ours:
        raise ImportError(f"{module.__name__} was built with other codes than uwe_kernels._abi "
                          f"({theirs} != {ours}): rebuild it with `pip install .`")
