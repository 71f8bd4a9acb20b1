"""The demo's speed step: one UWE selection from a large pool, by the package and by the usual
numpy / scikit-learn loop (softmax entropy, u * f, k-center greedy with pairwise_distances per
pick), with the picks compared and the speed-up reported."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from . import selection


@dataclass(frozen=True)
class SpeedResult:
    rows: int
    dim: int
    classes: int
    budget: int
    labelled: int
    package_s: float
    numpy_s: float
    same_picks: bool
    agreeing_prefix: int  # picks equal in order before the first difference

    @property
    def speedup(self) -> float:
        return self.numpy_s / self.package_s if self.package_s > 0 else float("inf")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "speedup": self.speedup}


def synthetic_outputs(rows: int, dim: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Model-like outputs: logits [rows, classes] and non-negative (ReLU) features [rows, dim],
    float32, from a fixed seed."""
    gen = np.random.default_rng(seed)
    centres = gen.normal(size=(classes, dim)).astype(np.float32)
    label = gen.integers(0, classes, size=rows)
    features = np.maximum(centres[label] + gen.normal(scale=0.8, size=(rows, dim)).astype(np.float32), 0)
    logits = (features @ np.maximum(centres, 0).T / np.sqrt(dim)).astype(np.float32)
    logits += gen.normal(scale=1.0, size=logits.shape).astype(np.float32)
    return logits, features.astype(np.float32)


def numpy_uwe_kcenter(logits: np.ndarray, features: np.ndarray, labelled: np.ndarray, budget: int) -> np.ndarray:
    """UWE + k-center greedy as it is usually written with numpy, scipy and scikit-learn."""
    from scipy.special import log_softmax
    from sklearn.metrics import pairwise_distances

    logp = log_softmax(logits, axis=1)
    u = -(np.exp(logp) * logp).sum(axis=1)
    emb = u[:, None] * features
    dist = pairwise_distances(emb, emb[labelled]).min(axis=1)
    picks = []
    for _ in range(budget):
        i = int(np.argmax(dist))
        picks.append(i)
        dist = np.minimum(dist, pairwise_distances(emb, emb[i : i + 1]).ravel())
    return np.asarray(picks, dtype=np.int64)


def run(rows: int = 300_000, dim: int = 64, classes: int = 10, budget: int = 50, labelled: int = 20,
        seed: int = 0, backend: str = "auto") -> SpeedResult:
    """Time both ways on the same synthetic pool (one warm-up call of the package first, so that
    neither side pays one-time start-up costs in the timing)."""
    logits, features = synthetic_outputs(rows, dim, classes, seed)
    lab = np.random.default_rng(seed + 1).choice(rows, size=labelled, replace=False)
    selection.select(logits[:1000], features[:1000], 2, labelled_idx=lab[lab < 1000], backend=backend)
    t0 = time.perf_counter()
    ours = np.asarray(selection.select(logits, features, budget, labelled_idx=lab, backend=backend))
    t1 = time.perf_counter()
    theirs = numpy_uwe_kcenter(logits, features, lab, budget)
    t2 = time.perf_counter()
    differ = np.flatnonzero(ours != theirs)
    prefix = int(differ[0]) if differ.size else budget
    return SpeedResult(rows, dim, classes, budget, labelled, t1 - t0, t2 - t1, not differ.size, prefix)


def report(r: SpeedResult) -> str:
    agree = ("identical picks" if r.same_picks
             else f"picks agree on the first {r.agreeing_prefix} of {r.budget} (near-tie after that)")
    return "\n".join([
        f"Speed: UWE + k-center greedy, {r.rows:,} x {r.dim} features, {r.classes} classes, "
        f"{r.labelled} labelled, budget {r.budget}",
        f"  uwe_kernels.select                     {r.package_s:8.3f} s",
        f"  numpy / scikit-learn loop              {r.numpy_s:8.3f} s",
        f"  speed-up {r.speedup:.1f}x, {agree}",
    ])


def plot(r: SpeedResult, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    names = ["numpy / scikit-learn", "uwe_kernels"]
    secs = [r.numpy_s, r.package_s]
    bars = ax.barh(names, secs, color=["#999999", "#1f77b4"])
    for bar, s in zip(bars, secs):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {s:.2f} s", va="center")
    ax.set_xlim(0, max(secs) * 1.25)
    ax.set_xlabel("seconds (one selection, lower is better)")
    ax.set_title(f"UWE + k-center greedy on {r.rows:,} x {r.dim}, budget {r.budget}: "
                 f"{r.speedup:.1f}x faster{'' if r.same_picks else ' (picks differ after a near-tie)'}",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
