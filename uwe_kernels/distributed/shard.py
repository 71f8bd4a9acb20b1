"""One rank's rows: the shard (dense or factored), its distance kernel from the registry, and
the row byte format in which owners broadcast rows (factor by factor, row-major, the shard's
own dtypes), so every rank measures distances to bit-identical centres."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from .. import _abi, _arrays
from ..factored import FactoredArrays, FactoredEmbedding
from ..registry import Call, resolve
from ..validation import check_float, check_ndim, check_values

_DTYPE_NAMES = {code: name for name, code in _abi.DTYPE_CODES.items()}


class Shard:
    """One rank's rows (dense or factored) and its distance kernel from the registry."""

    def __init__(self, local_emb: Any, backend: str) -> None:
        if isinstance(local_emb, FactoredEmbedding):
            pw, pf = local_emb.prepared()
            self.parts = [pw, pf]
            self.factored = True
            self.k = pw.shape[1] if pw.ndim == 2 else 0
        else:
            p = _arrays.prepare(local_emb, "local_emb")
            check_float(p, "local_emb")
            check_ndim(p, "local_emb", 2, "[n, d] (or a FactoredEmbedding)")
            self.parts = [p]
            self.factored = False
            self.k = 0
        self.like = self.parts[-1]
        self.n = self.like.shape[0]
        self.d = self.like.shape[1]
        self.device = torch.device("cpu") if self.like.on_cpu else self.like.data.device
        self.acc = _arrays.accum_dtype(*(p.dtype for p in self.parts))
        self.row_widths = [int(np.prod(p.shape[1:], dtype=np.int64)) for p in self.parts]
        self.row_nbytes = sum(w * p.dtype.itemsize for w, p in zip(self.row_widths, self.parts))
        self.fn: Callable[..., Any] | None = None
        self.backend = backend

    def kind(self) -> dict[str, Any]:
        """What every rank's shard must share: factored or not, BADGE classes, width, dtypes."""
        codes = [_abi.dtype_code(p.dtype) for p in self.parts]
        return {"factored": self.factored, "classes": self.k, "width": self.d,
                "dtypes": tuple(codes + [-1] * (2 - len(codes)))}

    def check_values(self) -> None:
        names = ["weights", "features"] if self.factored else ["local_emb"]
        for name, p in zip(names, self.parts):
            check_values(p, name)

    def resolve(self) -> None:
        if self.n == 0:
            return
        call = Call(
            op="min_distances",
            device=self.like.device,
            dtypes=tuple(p.dtype for p in self.parts) * 2,
            shapes={f"emb.{i}": p.shape for i, p in enumerate(self.parts)},
            options={"factored": self.factored, "n": self.n},
        )
        self.name, self.fn = resolve("min_distances", call, self.backend)

    def _data(self) -> Any:
        if self.factored:
            return FactoredArrays(self.parts[0].data, self.parts[1].data)
        return self.parts[0].data

    def rows_bytes(self, rows: np.ndarray) -> torch.Tensor:
        """Rows `rows` (local indices) as raw bytes: factor by factor, row-major."""
        chunks = []
        for p in self.parts:
            block = p.data[torch.as_tensor(rows) if not p.on_cpu else rows]
            if p.on_cpu:
                raw = np.ascontiguousarray(block).reshape(-1).view(np.uint8)
                chunks.append(torch.from_numpy(raw.copy()))
            else:
                chunks.append(block.contiguous().reshape(-1).view(torch.uint8))
        return torch.cat([c.to(self.device) for c in chunks]) if chunks else torch.empty(0, dtype=torch.uint8)

    def centres_from_bytes(self, raw: torch.Tensor, count: int) -> Any:
        """The inverse of rows_bytes for `count` rows, in the backend's array kind."""
        raw = raw.to(self.device)
        out: list[Any] = []
        start = 0
        for p, w in zip(self.parts, self.row_widths):
            nbytes = count * w * p.dtype.itemsize
            piece = raw[start : start + nbytes]
            start += nbytes
            shape = (count, *p.shape[1:])
            if p.on_cpu:
                out.append(piece.numpy().copy().view(p.dtype).reshape(shape))
            else:
                out.append(piece.clone().view(_arrays.torch_dtype(p.dtype)).reshape(shape))
        return FactoredArrays(out[0], out[1]) if self.factored else out[0]

    def zero_centre(self) -> Any:
        raw = torch.zeros(self.row_nbytes, dtype=torch.uint8)
        return self.centres_from_bytes(raw, 1)

    def sqdist(self, centres: Any) -> torch.Tensor:
        """Squared distance of every local row to its nearest centre, float64 [n]."""
        if self.n == 0:
            return torch.empty(0, dtype=torch.float64, device=self.device)
        assert self.fn is not None
        d, _ = self.fn(self._data(), centres, return_argmin=False, out_dtype=np.dtype(np.float64),
                       accum_dtype=self.acc)
        d = d if _arrays.is_torch(d) else torch.from_numpy(np.asarray(d))
        return d.to(device=self.device, dtype=torch.float64)


def describe(factored: bool, classes: int, width: int, dtypes: tuple[int, ...]) -> str:
    """A shard's kind in words, for error messages."""
    names = [_DTYPE_NAMES[c] for c in dtypes if c >= 0]
    kind = f"factored BADGE K={classes}" if factored and classes else ("factored UWE" if factored else "dense")
    return f"{kind}, d={width}, {'/'.join(names)}"
