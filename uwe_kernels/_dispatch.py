"""The step between a validated public call and a backend op."""
from __future__ import annotations

import sys
from typing import Any, Callable, Sequence

from . import registry
from ._arrays import Prepared
from .validation import check_same_device, check_values


def run(
    op: str,
    backend: str,
    named: Sequence[tuple[str, Prepared]],
    call_op: Callable[[Callable[..., Any]], Any],
    *,
    value_checks: Sequence[tuple[str, Prepared, bool]] = (),
    options: dict[str, Any] | None = None,
) -> tuple[str, Any]:
    """Pick a backend for `op` and run it as `call_op(fn)`.

    value_checks: (name, input, nonnegative) to check for non-finite (and negative) values.
    An op module that sets CHECKS_FINITE = True does these checks inside its own pass
    (raising the same errors), so the wrapper does not read the data twice.
    Returns (backend name, result).
    """
    check_same_device(*named)
    call = registry.Call(
        op=op,
        device=named[0][1].device,
        dtypes=tuple(p.dtype for _, p in named),
        shapes={name: p.shape for name, p in named},
        options=dict(options or {}),
    )
    name, fn = registry.resolve(op, call, backend)
    if not getattr(sys.modules[fn.__module__], "CHECKS_FINITE", False):
        for label, p, nonnegative in value_checks:
            check_values(p, label, nonnegative=nonnegative)
    return name, call_op(fn)
