"""The GPU rows of the benchmarks in one bounded run (bench/device_check.sh calls it).

Measures the device's copy bandwidth, then per pick: brute-force k-center greedy and k-means++
on the cuda and triton backends at n = 1M..10M, d = 512, float32 and bfloat16, against the
copy floor (n * d * itemsize bytes per pick); fused UWE extraction against its floor; a
torch.cdist loop, a torch incremental loop with .item() per pick and torch_cluster.fps where
importable; and pick equality with the cpp backend on a subsample. Every row is written to the
JSON as soon as it ends, so a run cut short by its time limit keeps what it measured.

`--rehearse`: tiny shapes on the CPU (Triton under TRITON_INTERPRET=1); rows that need a
device are recorded as skipped with the reason.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
import traceback
from typing import Any, Callable

import numpy as np
import torch

sys.path.append(str(pathlib.Path(__file__).resolve().parents[1]))  # `bench`, after the installed package

import uwe_kernels  # noqa: E402
from bench import _peers  # noqa: E402

GPU_BACKENDS = ("cuda", "triton")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


class Run:
    def __init__(self, out: pathlib.Path, deadline_s: float, rehearse: bool) -> None:
        self.out, self.rehearse = out, rehearse
        self.end = time.monotonic() + deadline_s
        self.device = "cpu" if rehearse else "cuda"
        self.report: dict[str, Any] = {"rehearse": rehearse, "rows": [], "env": env_info(),
                                       "package": uwe_kernels.__file__}

    def left(self) -> float:
        return self.end - time.monotonic()

    def row(self, name: str, fn: Callable[[], dict[str, Any]], need_s: float = 5.0) -> None:
        """Runs one row unless too little time is left; records its result, skip or error."""
        entry: dict[str, Any] = {"row": name}
        t0 = time.monotonic()
        if self.left() < need_s:
            entry["skipped"] = f"out of time ({self.left():.0f} s left, row needs ~{need_s:.0f} s)"
        else:
            try:
                entry.update(fn())
            except Skip as why:
                entry["skipped"] = str(why)
            except Exception as exc:  # one failing row must not end the run
                entry["error"] = f"{type(exc).__name__}: {exc}"
                entry["trace"] = traceback.format_exc()[-2000:]
        entry["wall_s"] = round(time.monotonic() - t0, 3)
        self.report["rows"].append(entry)
        self.save()
        shown = {k: v for k, v in entry.items() if k != "trace"}
        print(json.dumps(shown), flush=True)

    def save(self) -> None:
        (self.out / "device_check.json").write_text(json.dumps(self.report, indent=1))


class Skip(Exception):
    pass


def env_info() -> dict[str, Any]:
    info: dict[str, Any] = {"torch": torch.__version__, "cuda_available": torch.cuda.is_available(),
                            "backends": {k: list(v) for k, v in uwe_kernels.backends().items()}}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(gpu=p.name, capability=list(torch.cuda.get_device_capability()), sms=p.multi_processor_count,
                    memory_gib=round(p.total_memory / 2**30, 1))
    return info


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def seconds(fn: Callable[[], Any], device: str, repeats: int = 3) -> float:
    """Best wall time of `repeats` calls after one warm-up, synchronised."""
    fn()
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def per_pick(fn: Callable[[int], Any], budgets: tuple[int, int], device: str) -> tuple[float, float]:
    """(seconds per pick from the difference of two budgets, seconds of the larger call):
    setup (norms, workspace, first pick) cancels out."""
    lo, hi = budgets
    t_lo = seconds(lambda: fn(lo), device, repeats=2)
    t_hi = seconds(lambda: fn(hi), device, repeats=2)
    return max(t_hi - t_lo, 1e-9) / (hi - lo), t_hi


def copy_bandwidth(device: str) -> dict[str, float]:
    """Device-to-device copy of 4 GiB (bytes read + written per second), and torch.sum's read rate."""
    if device != "cuda":
        raise Skip("no CUDA device")
    n = 2**30  # float32 elements
    a = torch.rand(n, device="cuda")
    b = torch.empty_like(a)
    copy_s = seconds(lambda: b.copy_(a), device, repeats=10)
    read_s = seconds(lambda: a.sum(), device, repeats=10)
    del a, b
    torch.cuda.empty_cache()
    return {"copy_Bps": 2 * 4 * n / copy_s, "read_Bps": 4 * n / read_s}


def pool(n: int, d: int, dtype: torch.dtype, device: str, seed: int = 0) -> torch.Tensor:
    g = torch.Generator(device=device).manual_seed(seed)
    return torch.randn(n, d, generator=g, device=device, dtype=torch.float32).to(dtype)


def torch_incremental_kcg(x: torch.Tensor, budget: int) -> list[int]:
    """The common GPU coreset loop: one distance pass per pick, .item() to the host each time."""
    xf = x.float()
    D = torch.full((len(xf),), float("inf"), device=xf.device)
    i = int((xf * xf).sum(1).argmax().item())  # the first pick: the largest norm, as ours
    picks = []
    for _ in range(budget):
        picks.append(i)
        D = torch.minimum(D, ((xf - xf[i]) ** 2).sum(1))
        i = int(D.argmax().item())
    return picks


class Bench:
    def __init__(self, run: Run, sizes: list[int], d: int, budgets: tuple[int, int]) -> None:
        self.run, self.sizes, self.d, self.budgets = run, sizes, d, budgets
        self.bw: dict[str, float] | None = None
        self.ours: np.ndarray | None = None

    def floor(self, nbytes: float) -> dict[str, float]:
        if self.bw is None:
            return {}
        return {"floor_s": nbytes / (self.bw["copy_Bps"] / 2)}  # a pick reads its bytes once

    def backend_ok(self, backend: str) -> None:
        ok, why = uwe_kernels.backends()[backend]
        if not ok:
            raise Skip(f"{backend}: {why}")
        if backend == "cuda" and self.run.device != "cuda":
            raise Skip("cuda: no device")

    def selection(self, op: str, backend: str, n: int, dtype: str) -> dict[str, Any]:
        self.backend_ok(backend)
        x = pool(n, self.d, DTYPES[dtype], self.run.device)
        if op == "kcenter_greedy":
            fn = lambda b: uwe_kernels.kcenter_greedy(x, None, b, algorithm="brute", backend=backend)  # noqa: E731
        else:
            fn = lambda b: uwe_kernels.kmeans_pp(x, b, seed=1, algorithm="brute", backend=backend)  # noqa: E731
        pick_s, call_s = per_pick(fn, self.budgets, self.run.device)
        out = {"op": op, "backend": backend, "n": n, "d": self.d, "dtype": dtype, "pick_s": pick_s,
               "call_s": call_s, "budget": self.budgets[1], **self.floor(n * self.d * x.element_size())}
        if "floor_s" in out:
            out["floor_fraction"] = out["floor_s"] / pick_s
        return out

    def uwe(self, backend: str, n: int, dtype: str, K: int = 10) -> dict[str, Any]:
        self.backend_ok(backend)
        f = pool(n, self.d, DTYPES[dtype], self.run.device)
        s = pool(n, K, DTYPES[dtype], self.run.device, seed=3)
        t = seconds(lambda: uwe_kernels.uwe(s, f, backend=backend), self.run.device)
        nbytes = (s.numel() + 2 * f.numel()) * f.element_size()
        out = {"op": "uwe", "backend": backend, "n": n, "d": self.d, "K": K, "dtype": dtype, "s": t,
               **self.floor(nbytes)}
        if "floor_s" in out:
            out["floor_fraction"] = out["floor_s"] / t
        return out

    def peer(self, name: str, n: int, budget: int) -> dict[str, Any]:
        x = pool(n, self.d, torch.float32, self.run.device)
        none = torch.empty(0, dtype=torch.int64, device=self.run.device)
        if name == "torch_cdist_loop":
            fn = lambda: _peers.torch_cdist_kcenter(x, none, budget)  # noqa: E731
        elif name == "torch_item_loop":
            fn = lambda: torch_incremental_kcg(x, budget)  # noqa: E731
        elif name == "torch_cluster_fps":
            try:
                import torch_cluster
            except ImportError as exc:
                raise Skip(f"torch_cluster not importable: {exc}") from None
            fn = lambda: torch_cluster.fps(x, None, ratio=budget / n, random_start=False)  # noqa: E731
        else:
            ok, _ = uwe_kernels.backends()["cuda"]
            backend = "cuda" if ok and self.run.device == "cuda" else "triton"
            self.backend_ok(backend)
            fn = lambda: uwe_kernels.kcenter_greedy(x, None, budget, backend=backend)  # noqa: E731
        t = seconds(fn, self.run.device, repeats=1)
        picks = np.asarray(torch.as_tensor(fn()).cpu()).ravel()
        out = {"op": "kcenter_greedy", "provider": name, "n": n, "d": self.d, "dtype": "float32", "budget": budget,
               "s": t, "pick_s": t / budget}
        if name == "uwe_kernels":
            self.ours = picks
        elif self.ours is not None:  # float32 near-ties may part the loops late: say how far they agree
            m = min(len(picks), len(self.ours))
            differ = np.flatnonzero(picks[:m] != self.ours[:m])
            out["same_leading_picks"] = int(differ[0]) if len(differ) else m
        return out

    def same_picks(self, backend: str, dtype: str, n: int, budget: int) -> dict[str, Any]:
        self.backend_ok(backend)
        x = pool(n, self.d, DTYPES[dtype], self.run.device, seed=7)
        host = x.cpu()
        if dtype == "bfloat16":
            host_np = host.view(torch.int16).numpy().view(uwe_kernels._arrays.BFLOAT16)
        else:
            host_np = host.numpy()
        out: dict[str, Any] = {"backend": backend, "dtype": dtype, "n": n, "d": self.d, "budget": budget}
        for op, call in (("kcenter_greedy", lambda e, b: uwe_kernels.kcenter_greedy(e, None, budget, backend=b)),
                         ("kmeans_pp", lambda e, b: uwe_kernels.kmeans_pp(e, budget, seed=3, backend=b))):
            ours = np.asarray(torch.as_tensor(call(x, backend)).cpu())
            cpu = np.asarray(call(host_np, "cpp"))
            out[op] = bool((ours == cpu).all())
            if not out[op]:
                out[op + "_first_difference"] = int(np.flatnonzero(ours != cpu)[0])
        return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=pathlib.Path)
    ap.add_argument("--rehearse", action="store_true", help="tiny shapes on the CPU; skip what needs a device")
    ap.add_argument("--deadline", type=float, default=240.0, help="seconds for all rows")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    run = Run(args.out, args.deadline, args.rehearse)
    if args.rehearse:  # the Triton interpreter runs a pick in about a second
        sizes, d, budgets = [400], 16, (1, 3)
        check_n, check_budget, vs_budget = 300, 4, 4
    else:
        sizes, d, budgets = [1_000_000, 4_000_000, 10_000_000], 512, (8, 24)
        check_n, check_budget, vs_budget = 20_000, 40, 1000
    bench = Bench(run, sizes, d, budgets)
    run.report["settings"] = {"sizes": sizes, "d": d, "budgets": budgets, "check_n": check_n,
                              "check_budget": check_budget, "vs_budget": vs_budget}

    def bandwidth() -> dict[str, Any]:
        bench.bw = copy_bandwidth(run.device)
        return dict(bench.bw)

    run.row("bandwidth", bandwidth)
    for backend in GPU_BACKENDS:
        for dtype in DTYPES:
            run.row(f"same_picks {backend} {dtype}",
                    lambda b=backend, t=dtype: bench.same_picks(b, t, check_n, check_budget))

    def selection_rows(n: int) -> None:
        for dtype in DTYPES:
            for backend in GPU_BACKENDS:
                for op in ("kcenter_greedy", "kmeans_pp"):
                    run.row(f"{op} {backend} {dtype} n={n}",
                            lambda o=op, b=backend, t=dtype, m=n: bench.selection(o, b, m, t), need_s=n / 4e5)

    def uwe_rows(n: int) -> None:
        for dtype in DTYPES:
            for backend in GPU_BACKENDS:
                run.row(f"uwe {backend} {dtype} n={n}", lambda b=backend, t=dtype, m=n: bench.uwe(b, m, t))

    # The goal rows first (a run cut short keeps them): 1M selection, UWE, the peers; then larger n.
    selection_rows(sizes[0])
    uwe_rows(sizes[0])
    vs_n = sizes[0]
    for name, budget in (("uwe_kernels", vs_budget), ("torch_item_loop", vs_budget),
                         ("torch_cdist_loop", min(100, vs_budget)), ("torch_cluster_fps", min(32, vs_budget))):
        run.row(f"peer {name} n={vs_n}", lambda p=name, b=budget: bench.peer(p, vs_n, b), need_s=20)
    for n in sizes[1:]:
        selection_rows(n)
    for n in sizes[1:2]:
        uwe_rows(n)
    errors = [r for r in run.report["rows"] if "error" in r]
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
