"""`uwe-kernels demo`: every strategy on scikit-learn's bundled handwritten digits with a small
PyTorch MLP, several seeds; prints accuracy per cycle, the ablation (UWE as the paper's text and as
the authors' code runs it), the pairwise penalty matrix, the Fig. 1 correlations and timings, then
times one large selection against the usual numpy / scikit-learn loop; writes the plots, the
printed tables and the raw results to an output folder."""
from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from . import demo_speed, loop


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise ImportError("the demo needs PyTorch: pip install torch (or pip install 'uwe_kernels[demo]')") from exc
    return torch


@dataclass(frozen=True)
class DemoConfig:
    seeds: int = 3
    cycles: int = 5
    initial: int = 20
    budget: int = 20
    epochs: int = 60
    hidden: int = 64
    pool: int | None = None  # rows of the train pool to use; None = all
    tau: float = 1.0
    strategies: tuple[str, ...] | None = None  # names from loop.default_strategies; None = all
    threads: int | None = None
    backend: str = "auto"
    progress: bool = True
    speed_rows: int = 300_000  # pool of the speed step; 0 skips it
    speed_budget: int = 50

    @classmethod
    def quick(cls) -> "DemoConfig":
        return cls(seeds=2, cycles=3, initial=20, budget=20, epochs=30, hidden=32, pool=600, speed_rows=100_000,
                   speed_budget=30)


class MLPLearner(loop.LearnerBase):
    """Two hidden ReLU layers; the second is the penultimate feature layer. Full-batch Adam."""

    def __init__(self, n_in: int, n_classes: int, seed: int, *, hidden: int = 64, epochs: int = 60,
                 bar: Callable[[Iterable[int]], Iterable[int]] | None = None) -> None:
        torch = _torch()
        gen = torch.Generator().manual_seed(seed)
        self.body = torch.nn.Sequential(torch.nn.Linear(n_in, 2 * hidden), torch.nn.ReLU(),
                                        torch.nn.Linear(2 * hidden, hidden), torch.nn.ReLU())
        self.head = torch.nn.Linear(hidden, n_classes)
        with torch.no_grad():
            for p in [*self.body.parameters(), *self.head.parameters()]:
                p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) / np.sqrt(p.shape[-1]))
        self.epochs, self.bar = epochs, bar

    def fit(self, X: np.ndarray, y: np.ndarray) -> None:
        torch = _torch()
        X_t, y_t = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64)
        params = [*self.body.parameters(), *self.head.parameters()]
        opt = torch.optim.Adam(params, lr=1e-2, weight_decay=1e-4)
        epochs = self.bar(range(self.epochs)) if self.bar else range(self.epochs)
        for _ in epochs:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(self.head(self.body(X_t)), y_t).backward()
            opt.step()

    def _forward(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torch = _torch()
        with torch.no_grad():
            f = self.body(torch.as_tensor(X, dtype=torch.float32))
            return self.head(f).numpy(), f.numpy()

    def logits(self, X: np.ndarray) -> np.ndarray:
        return self._forward(X)[0]

    def features(self, X: np.ndarray) -> np.ndarray:
        return self._forward(X)[1]


def digits_dataset(pool: int | None = None, seed: int = 0) -> loop.Dataset:
    """scikit-learn's 1797 8x8 digits (bundled, no download), scaled to [0, 1]; a fixed
    stratified split of 1297 train-pool rows and 500 test rows, optionally a smaller pool."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=500, random_state=seed, stratify=y)
    if pool is not None and pool < len(X_tr):
        X_tr, _, y_tr, _ = train_test_split(X_tr, y_tr, train_size=pool, random_state=seed, stratify=y_tr)
    return loop.Dataset("digits", X_tr, y_tr.astype(np.int64), X_te, y_te.astype(np.int64))


def run_demo(cfg: DemoConfig, data: loop.Dataset | None = None) -> loop.Results:
    torch = _torch()
    # Tiny full-batch steps: extra threads only add synchronisation (measured 30x slower at 2).
    torch.set_num_threads(cfg.threads or 1)
    data = data or digits_dataset(cfg.pool)
    strategies = loop.default_strategies(cfg.tau)
    if cfg.strategies:
        known = {s.name: s for s in strategies}
        unknown = [s for s in cfg.strategies if s not in known]
        if unknown:
            raise ValueError(f"unknown strategy {unknown[0]!r}; choose from {', '.join(known)}")
        strategies = [known[s] for s in cfg.strategies]
    n_classes = int(max(data.y_train.max(), data.y_test.max())) + 1

    def make(seed: int) -> MLPLearner:
        return MLPLearner(data.X_train.shape[1], n_classes, seed, hidden=cfg.hidden, epochs=cfg.epochs)

    trainings = cfg.seeds * len(strategies) * cfg.cycles
    with _run_bar(cfg.progress, trainings) as progress:
        return loop.run_loop(data, make, strategies, seeds=range(cfg.seeds), initial=cfg.initial,
                             budget=cfg.budget, cycles=cfg.cycles, backend=cfg.backend, progress=progress)


@contextlib.contextmanager
def _run_bar(enabled: bool, total: int) -> Iterator[Callable[[Iterable[Any], str], Iterable[Any]] | None]:
    """One bar for the whole run, a step per training, named after the current strategy and
    seed; only on a terminal (a log file gets no control characters)."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit="training", dynamic_ncols=True)

    def progress(cycles: Iterable[Any], desc: str) -> Iterator[Any]:
        bar.set_description(desc, refresh=True)
        for c in cycles:
            yield c
            bar.update(1)

    try:
        yield progress
    finally:
        bar.close()


# ----------------------------------------------------------------- reporting


def report_sections(results: loop.Results) -> dict[str, str]:
    """The printed tables by name: accuracy, ablation, penalty, checks, timings (each also
    written to <name>.txt by `main`); a section with nothing to show is left out."""
    sections: dict[str, list[str]] = {"accuracy": [], "ablation": []}
    strategies = results.strategies()
    width = max(len(s) for s in strategies) + 2
    for ds in results.datasets():
        labels = results.table(ds, strategies[0], "n_labelled")[0].astype(int)
        seeds = results.table(ds, strategies[0]).shape[0]
        acc_lines = sections["accuracy"]
        acc_lines.append(f"Test accuracy on {ds}, mean +- std over {seeds} seeds, by labelled count")
        acc_lines.append(" " * width + "".join(f"{n:>14d}" for n in labels))
        for s in strategies:
            acc = results.table(ds, s)
            std = acc.std(axis=0, ddof=1) if acc.shape[0] > 1 else np.zeros(acc.shape[1])
            acc_lines.append(f"{s:<{width}}" + "".join(f"{m:>8.3f}+-{v:.3f}" for m, v in zip(acc.mean(0), std)))
        acc_lines.append("")
        ablation = [(k, v) for k, v in loop.ABLATION.items() if v in strategies]
        if ablation:
            key_w = max(len(k) for k, _ in ablation)
            sections["ablation"] += [f"Table 1 ablation on {ds} (mean accuracy over cycles and {seeds} seeds; "
                                     "U+F as the paper's text describes it and as the authors' code runs it)"]
            sections["ablation"] += [f"  {k:<{key_w}}  {v:<{width}} {results.table(ds, v).mean():.4f}"
                                     for k, v in ablation]
            sections["ablation"].append("")
    names, P, Phi = loop.penalty_matrix(results.accuracy_arrays())
    pen = ["Pairwise penalty matrix: P[i, j] = fraction of cycles where row i beats column j "
           "(two-sided t-test over seeds, alpha 0.05)"]
    pen.append(" " * (width + 3) + "".join(f"{j:>8d}" for j in range(len(names))))
    for i, name in enumerate(names):
        pen.append(f"{i:>2d} {name:<{width}}" + "".join(f"{v:>8.2f}" for v in P[i]))
    pen.append(f"{'Phi (lower is better)':<{width + 3}}" + "".join(f"{v:>8.2f}" for v in Phi))
    sections["penalty"] = pen + [""]
    sections["checks"] = _check_lines(results)
    timing = ["Seconds per cycle, mean (train / extract / select)"]
    for s in strategies:
        recs = [r for r in results.records if r.strategy == s]
        sel = [r for r in recs if r.picks]

        def mean(key: str, rs: list[loop.CycleRecord]) -> float:
            return float(np.mean([getattr(r, key) for r in rs])) if rs else 0.0

        timing.append(f"  {s:<{width}} {mean('train_s', recs):8.3f} {mean('extract_s', sel):8.4f} "
                      f"{mean('select_s', sel):8.4f}")
    sections["timings"] = timing
    return {k: "\n".join(v) for k, v in sections.items() if v}


def _check_lines(results: loop.Results) -> list[str]:
    """Fig. 1's correlations and the BADGE checks, one block per UWE variant."""
    lines: list[str] = []
    for strategy in dict.fromkeys(c.strategy for c in results.checks):
        checks = [c for c in results.checks if c.strategy == strategy]
        corr_u = np.array([c.corr_uwe for c in checks])
        corr_b = np.array([c.corr_badge for c in checks])
        overlap = np.array([c.overlap for c in checks])
        same = sum(c.factored_equal for c in checks)
        ties = [c for c in checks if not c.factored_equal and c.near_tie]
        verdict = "yes" if same == len(checks) else "yes, but for proven near-ties" \
            if same + len(ties) == len(checks) else "NO"
        lines.append(f"Checks against BADGE ({strategy} runs' own model outputs, unlabelled pool)")
        lines.append(f"  corr(|UWE|, u)          {np.nanmean(corr_u):.3f}   (paper Fig. 1, CIFAR-10: 0.98)")
        lines.append(f"  corr(|BADGE grad|, u)   {np.nanmean(corr_b):.3f}   (paper Fig. 1, CIFAR-10: 0.90)")
        lines.append(f"  overlap of UWE and BADGE picks per cycle  {np.mean(overlap):.3f}")
        lines.append(f"  factored BADGE picks == explicit BADGE picks: {verdict} "
                     f"({same} of {len(checks)} cycles identical)")
        for c in ties:
            lines.append(f"    seed {c.seed} cycle {c.cycle} near-tie, {c.near_tie}")
        lines.append("")
    return lines


def report(results: loop.Results) -> str:
    return "\n".join(report_sections(results).values())


# Ten strategies by default: colour, marker and dash pattern together keep every line apart.
_MARKERS = "osD^vP*Xp<>h"
_DASHES = ["-", "--", "-.", ":"]


def plot(results: loop.Results, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = results.datasets()
    fig, axes = plt.subplots(1, len(datasets), figsize=(8 * len(datasets), 5.5), squeeze=False)
    colours = [plt.get_cmap("tab10")(i) for i in range(10)]
    for ax, ds in zip(axes[0], datasets):
        seeds = 0
        for k, s in enumerate(results.strategies()):
            acc = results.table(ds, s)
            seeds = acc.shape[0]
            x = results.table(ds, s, "n_labelled")[0]
            mean = acc.mean(0)
            std = acc.std(0, ddof=1) if acc.shape[0] > 1 else np.zeros_like(mean)
            colour = colours[k % len(colours)]
            ax.plot(x, mean, color=colour, marker=_MARKERS[k % len(_MARKERS)],
                    linestyle=_DASHES[k % len(_DASHES)], markersize=5, label=s)
            ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.1, linewidth=0)
        ax.set(title=f"{ds}: lines = mean test accuracy over {seeds} seeds; shaded bands = ±1 std across the seeds",
               xlabel="labelled examples", ylabel="test accuracy")
        ax.title.set_fontsize(10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(cfg: DemoConfig, out_dir: str = "uwe_demo_results", stream: Any = None) -> loop.Results:
    stream = stream or sys.stdout
    t0 = time.perf_counter()
    results = run_demo(cfg)
    elapsed = time.perf_counter() - t0
    os.makedirs(out_dir, exist_ok=True)
    results.to_json(os.path.join(out_dir, "results.json"))
    results.to_csv(os.path.join(out_dir, "results.csv"))
    plot(results, os.path.join(out_dir, "accuracy.png"))
    sections = report_sections(results)
    files = ["accuracy.png", "results.json", "results.csv"]
    print("\n".join(sections.values()), file=stream)
    print(f"\n{len(results.records)} trainings in {elapsed:.1f} s\n", file=stream)
    if cfg.speed_rows > 0:
        print(f"Timing one selection from {cfg.speed_rows:,} rows ...", file=stream, flush=True)
        speed = demo_speed.run(cfg.speed_rows, budget=cfg.speed_budget, backend=cfg.backend)
        sections["speed"] = demo_speed.report(speed)
        print(sections["speed"], file=stream)
        demo_speed.plot(speed, os.path.join(out_dir, "speed.png"))
        files.append("speed.png")
    for name, text in sections.items():
        with open(os.path.join(out_dir, f"{name}.txt"), "w") as fh:
            fh.write(text.rstrip("\n") + "\n")
        files.append(f"{name}.txt")
    print(f"\nResults in {out_dir}/ ({', '.join(files)})", file=stream)
    return results
