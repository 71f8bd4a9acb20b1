"""The `uwe-kernels` command: info, embed, select, demo, bench.

A user mistake (missing file, wrong shape, bad option value, unavailable backend) ends in one
line on stderr and exit code 2; nothing else is caught, so real bugs keep their traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import zipfile
from typing import Any, Callable, Sequence

import numpy as np

USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError, OSError, KeyError, ImportError)
SELECT_METHODS = ("uwe", "badge", "coreset", "uncertainty", "random")
KINDS = ("entropy", "bvsb", "margin", "least_confidence")


class UserError(ValueError):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block) so every mistake reads the same."""

    def error(self, message: str) -> Any:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


# ----------------------------------------------------------------- file helpers


NPY_MAGIC = b"\x93NUMPY"
# Library argument names as the command line spells them, for messages about values.
FLAG_OF = {"scores": "--scores", "features": "--features", "emb": "--features", "labelled_idx": "--labelled"}


def _npy_header(path: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a .npy header, refusing what numpy would fail on with a raw
    message (empty file, another format, object arrays, a damaged header, a short file)."""
    fmt = np.lib.format
    with open(path, "rb") as fh:
        if fh.read(len(NPY_MAGIC)) != NPY_MAGIC:
            what = "an empty file" if os.path.getsize(path) == 0 else "not a .npy file (no numpy header)"
            raise UserError(f"{path} is {what}; save arrays with numpy.save")
        fh.seek(0)
        try:
            version = fmt.read_magic(fh)
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, dtype = read(fh)
        except (ValueError, EOFError, OverflowError, SyntaxError) as exc:
            raise UserError(f"{path} has a damaged .npy header ({exc})") from None
        data_start = fh.tell()
    if any(int(s) < 0 for s in shape):
        raise UserError(f"{path} has a damaged .npy header (negative shape {shape})")
    if dtype.hasobject:
        raise UserError(f"{path} holds Python objects (dtype {dtype}); save numeric arrays")
    need = data_start + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if os.path.getsize(path) < need:
        raise UserError(f"{path} is truncated: its header promises {need} bytes, the file has "
                        f"{os.path.getsize(path)}")
    return shape, dtype


def _npz_array(path: str, key: str | None) -> np.ndarray:
    try:
        archive = np.load(path)
    except (ValueError, EOFError, OSError, zipfile.BadZipFile) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise UserError(f"{path} is not a readable .npz archive ({type(exc).__name__}: {exc})") from None
    with archive:
        if key is None:
            if len(archive.files) != 1:
                raise UserError(f"{path} holds {', '.join(archive.files) or 'no arrays'}: name one with --key")
            key = archive.files[0]
        if key not in archive.files:
            raise UserError(f"{path} has no array {key!r}; it holds {', '.join(archive.files)}")
        try:
            return np.asarray(archive[key])
        except ValueError as exc:
            if "allow_pickle" in str(exc):
                raise UserError(f"array {key!r} in {path} holds Python objects; save numeric arrays") from None
            raise UserError(f"array {key!r} in {path} is not readable ({exc})") from None
        except (EOFError, OSError, zipfile.BadZipFile) as exc:
            raise UserError(f"array {key!r} in {path} is damaged ({type(exc).__name__}: {exc})") from None


def load_array(path: str, key: str | None = None) -> np.ndarray:
    """A .npy file memory-mapped read-only, or one array of an .npz (by key; the only one if
    the archive holds one array). A file numpy cannot read ends in a UserError naming it."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    if os.path.isdir(path):
        raise UserError(f"{path} is a folder, not a .npy or .npz file")
    if path.endswith(".npz"):
        return _npz_array(path, key)
    if path.endswith(".npy"):
        shape, _ = _npy_header(path)
        if 0 in shape:  # numpy cannot memory-map an empty array
            empty: np.ndarray = np.load(path)
            return empty
        try:
            mapped: np.ndarray = np.load(path, mmap_mode="r")  # an np.memmap: rows are read as needed
            return mapped
        except (ValueError, EOFError, OverflowError) as exc:
            raise UserError(f"{path} is not a readable .npy file ({exc})") from None
    raise UserError(f"{path}: inputs must be .npy or .npz")


def _write_npy(fh: Any, arr: Any, name: str) -> None:
    np.save(fh, np.asarray(arr))


def _write_npz(fh: Any, arr: Any, name: str) -> None:
    arrays: dict[str, Any] = {name: np.asarray(arr)}
    np.savez(fh, **arrays)


def _write_csv(fh: Any, arr: Any, name: str) -> None:
    arr = np.asarray(arr)
    fmt = "%d" if arr.dtype.kind in "iub" else "%.9g"
    np.savetxt(fh, arr.reshape(len(arr), -1), fmt=fmt, delimiter=",")


WRITERS = {".npy": _write_npy, ".npz": _write_npz, ".csv": _write_csv}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomically(path: str, write: Callable[[Any], None]) -> None:
    """Write through `write(file)` into a temporary file beside `path`, then rename it over
    `path`: a failed write leaves the previous file whole, and a symlink at `path` is
    replaced, never followed."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".uwe-kernels-", suffix=".part", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; give it a normal file's mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_array(path: str, arr: Any, name: str = "arr") -> None:
    writer = WRITERS.get(os.path.splitext(path)[1])
    if writer is None:
        raise UserError(f"{path}: output must end in .npy, .npz or .csv")
    write_atomically(path, lambda fh: writer(fh, arr, name))


def _check_out(path: str, allowed: tuple[str, ...] = (".npy", ".npz", ".csv")) -> None:
    """Fail before any work when the output could not be written: unknown format, a folder
    in the way, a missing or read-only destination folder."""
    if not path.endswith(allowed):
        raise UserError(f"{path}: output must end in {', '.join(allowed[:-1])} or {allowed[-1]}")
    if os.path.isdir(path):
        raise UserError(f"--out {path} is a folder; name a file inside it")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UserError(f"--out {path}: the folder {directory} does not exist; create it first")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UserError(f"--out {path}: the folder {directory} is not writable")


def _labelled(path: str | None, key: str | None) -> np.ndarray | None:
    if path is None:
        return None
    if path.endswith(".csv"):
        if not os.path.exists(path):
            raise FileNotFoundError(f"no such file: {path}")
        try:
            return np.loadtxt(path, dtype=np.int64, delimiter=",", ndmin=1)
        except ValueError as exc:
            raise UserError(f"--labelled {path} must hold one integer index per line ({exc})") from None
    return np.asarray(load_array(path, key))


def _float_input(arr: np.ndarray, flag: str, path: str, layout: str) -> None:
    """dtype and shape checks with the command line's names and advice (no data pass)."""
    if arr.dtype not in (np.float16, np.float32, np.float64):
        raise UserError(f"{flag} {path} holds {arr.dtype}; uwe-kernels reads float16, float32 or float64 "
                        "arrays: save it as float32 first")
    if arr.ndim != 2:
        raise UserError(f"{flag} {path} must be 2-D {layout}, got shape {arr.shape}")


def _inputs(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    scores = load_array(args.scores, args.scores_key or args.key)
    features = load_array(args.features, args.features_key or args.key)
    _float_input(scores, "--scores", args.scores, "[n, K]")
    _float_input(features, "--features", args.features, "[n, d]")
    if scores.shape[1] < 2:
        raise UserError(f"--scores {args.scores} must have K >= 2 classes, got shape {scores.shape}")
    if len(scores) != len(features):
        raise UserError(f"--scores has {len(scores)} rows but --features has {len(features)}; they must match")
    return scores, features


def _labelled_mask(args: argparse.Namespace, n: int) -> np.ndarray | None:
    labelled = _labelled(args.labelled, args.labelled_key)
    if labelled is None:
        return None
    from .validation import labelled_mask

    return labelled_mask(labelled, n, name="--labelled")


def _check_budget(budget: int, n: int, mask: np.ndarray | None) -> None:
    n_lab = 0 if mask is None else int(mask.sum())
    if not 0 <= budget <= n - n_lab:
        raise UserError(f"--budget must be between 0 and {n - n_lab} (the pool has {n} rows, {n_lab} of them "
                        f"labelled), got {budget}")


def _tau(args: argparse.Namespace, applies_to: tuple[str, ...], choice: str, flag: str) -> float:
    """--tau and --kind follow one rule: given where they have no meaning, they are refused."""
    if args.tau is not None and choice not in applies_to:
        raise UserError(f"--tau applies to {flag} {' and '.join(applies_to)}, not {choice}")
    return 1.0 if args.tau is None else float(args.tau)


# ----------------------------------------------------------------- subcommands


def cmd_info(args: argparse.Namespace) -> int:
    from . import info

    data = info.collect()
    if args.json:
        import json

        print(json.dumps(data, indent=1, default=str))
    else:
        print(info.render(data))
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    import uwe_kernels as uk

    _check_out(args.out, (".npy", ".npz"))
    if args.type == "factored" and not args.out.endswith(".npz"):
        raise UserError("--type factored writes weights and features: --out must end in .npz")
    if args.kind is not None and args.type == "badge":
        raise UserError("--kind applies to --type uwe and factored, not badge")
    tau = _tau(args, ("uwe", "factored"), args.type, "--type")
    kind = args.kind or "entropy"
    scores, features = _inputs(args)
    from_logits = not args.probabilities
    if args.type == "uwe":
        emb = uk.uwe(scores, features, kind, tau, from_logits=from_logits, backend=args.backend)
        save_array(args.out, emb, "embedding")
    elif args.type == "badge":
        save_array(args.out, uk.badge_embedding(scores, features, from_logits=from_logits), "embedding")
    else:
        fe = uk.uwe_factored(scores, features, kind, tau, from_logits=from_logits, backend=args.backend)
        write_atomically(args.out, lambda fh: np.savez(fh, weights=np.asarray(fe.weights),
                                                          features=np.asarray(fe.features)))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def cmd_select(args: argparse.Namespace) -> int:
    import uwe_kernels as uk

    _check_out(args.out)
    if args.kind is not None and args.method not in ("uwe", "uncertainty"):
        raise UserError(f"--kind applies to --method uwe and uncertainty, not {args.method}")
    tau = _tau(args, ("uwe",), args.method, "--method")
    scores, features = _inputs(args)
    labelled = _labelled_mask(args, len(scores))
    _check_budget(args.budget, len(scores), labelled)
    kind = args.kind or "entropy"
    bar = not args.no_progress
    from ._arrays import prepare
    from .validation import check_values

    if args.method == "uwe":
        emb = uk.uwe(scores, features, kind, tau, backend=args.backend)
        picks = uk.kcenter_greedy(emb, labelled, args.budget, backend=args.backend, progress=bar)
    elif args.method == "coreset":
        check_values(prepare(scores, "scores"), "scores")  # every input given is validated, as in select()
        picks = uk.kcenter_greedy(features, labelled, args.budget, backend=args.backend, progress=bar)
    elif args.method == "badge":
        emb = uk.badge_factored(scores, features, backend=args.backend)
        picks = uk.kmeans_pp(emb, args.budget, labelled_idx=labelled, seed=args.seed, backend=args.backend,
                             progress=bar)
    else:
        picks = uk.select(scores, features, args.budget, method=args.method, labelled_idx=labelled,
                          kind=args.kind, seed=args.seed, backend=args.backend)
    save_array(args.out, np.asarray(picks, dtype=np.int64), "picks")
    print(f"wrote {len(picks)} picks to {args.out}", file=sys.stderr)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import dataclasses

    from . import demo

    cfg = demo.DemoConfig.quick() if args.quick else demo.DemoConfig()
    overrides = {k: getattr(args, k) for k in ("seeds", "cycles", "initial", "budget", "epochs", "pool", "tau",
                                               "threads") if getattr(args, k) is not None}
    if args.strategies:
        overrides["strategies"] = tuple(s.strip() for s in args.strategies.split(",") if s.strip())
    cfg = dataclasses.replace(cfg, backend=args.backend, progress=not args.no_progress, **overrides)
    for name in ("seeds", "cycles", "initial", "epochs"):
        if getattr(cfg, name) < 1:
            raise UserError(f"--{name} must be >= 1, got {getattr(cfg, name)}")
    demo.main(cfg, args.out_dir)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if not os.path.isdir(args.bench_dir):
        raise FileNotFoundError(f"no benchmark folder {args.bench_dir} (run from the source tree)")
    env = dict(os.environ, UWE_BENCH_SIZE="full" if args.full else "quick")
    cmd = [sys.executable, "-m", "pytest", args.bench_dir, "--benchmark-only", *args.pytest_args]
    return subprocess.call(cmd, env=env)


# ----------------------------------------------------------------- parser


def _common_io(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scores", required=True, help="scores/logits [n, K] (.npy memory-mapped, or .npz)")
    p.add_argument("--features", required=True, help="features [n, d] (.npy memory-mapped, or .npz)")
    p.add_argument("--key", help="array name inside .npz inputs (both files)")
    p.add_argument("--scores-key", help="array name inside the scores .npz (overrides --key)")
    p.add_argument("--features-key", help="array name inside the features .npz (overrides --key)")
    p.add_argument("--tau", type=float, help="uncertainty power tau >= 0 for uwe (default 1)")
    p.add_argument("--backend", default="auto",
                   choices=("auto", "cuda", "triton", "cpp", "numba", "reference"), help="kernel backend (default auto)")


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog="uwe-kernels", formatter_class=fmt,
        description="Uncertainty-weighted embeddings and k-center-greedy / k-means++ selection.",
        epilog="examples:\n  uwe-kernels info\n  uwe-kernels select --scores S.npy --features F.npy "
               "--method uwe --budget 100 --out picks.npy\n  uwe-kernels demo --quick")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{info,embed,select,demo,bench}")

    p = sub.add_parser("info", help="backends with reasons and build metadata", formatter_class=fmt,
                       epilog="example:\n  uwe-kernels info --json")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("embed", help="scores + features -> UWE, factored UWE or BADGE embedding", formatter_class=fmt,
                       epilog="examples:\n  uwe-kernels embed --scores S.npy --features F.npy --out E.npy\n"
                              "  uwe-kernels embed --scores out.npz --features out.npz --scores-key logits "
                              "--features-key feats --type factored --out E.npz")
    _common_io(p)
    p.add_argument("--type", choices=("uwe", "factored", "badge"), default="uwe",
                   help="uwe: [n, d] dense; factored: .npz with weights [n] and features [n, d]; "
                        "badge: gradient embedding [n, K*d] (default uwe)")
    p.add_argument("--kind", choices=KINDS, help="uncertainty measure for uwe / factored (default entropy)")
    p.add_argument("--probabilities", action="store_true", help="scores are probabilities, not logits")
    p.add_argument("--out", required=True, help="output .npy or .npz (.npz for --type factored)")
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("select", help="pick the next batch to label", formatter_class=fmt,
                       epilog="examples:\n  uwe-kernels select --scores S.npy --features F.npy --method uwe "
                              "--budget 100 --labelled L.npy --tau 1 --out picks.npy\n"
                              "  uwe-kernels select --scores run.npz --features run.npz --scores-key logits "
                              "--features-key feats --method badge --budget 50 --seed 3 --out picks.csv")
    _common_io(p)
    p.add_argument("--method", choices=SELECT_METHODS, default="uwe", help="selection strategy (default uwe)")
    p.add_argument("--budget", type=int, required=True, help="number of rows to pick")
    p.add_argument("--labelled", help="already labelled rows: indices or a boolean mask (.npy, .npz or .csv)")
    p.add_argument("--labelled-key", help="array name inside a labelled .npz")
    p.add_argument("--kind", choices=KINDS, help="uncertainty measure for uwe / uncertainty (default entropy)")
    p.add_argument("--seed", type=int, default=0, help="seed for badge and random (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--out", required=True, help="picks, int64: .npy, .npz (key 'picks') or .csv (one per line)")
    p.set_defaults(func=cmd_select)

    p = sub.add_parser("demo", help="active learning on scikit-learn's digits, every strategy", formatter_class=fmt,
                       description="Runs every strategy over several seeds on the bundled digits data with a "
                                   "small PyTorch MLP; prints accuracy per cycle, the pairwise penalty matrix, "
                                   "the Fig. 1 correlations and timings; writes accuracy.png, results.json and "
                                   "results.csv. Needs torch, scikit-learn, scipy and matplotlib.",
                       epilog="examples:\n  uwe-kernels demo\n  uwe-kernels demo --quick --out-dir demo_results\n"
                              "  uwe-kernels demo --seeds 1 --cycles 2 --strategies random,uwe,badge")
    p.add_argument("--quick", action="store_true", help="small pool, 2 seeds, 3 cycles: under a minute")
    p.add_argument("--out-dir", default="uwe_demo_results", help="output folder (default ./uwe_demo_results)")
    p.add_argument("--seeds", type=int, help="number of seeds (default 3)")
    p.add_argument("--cycles", type=int, help="training cycles (default 5)")
    p.add_argument("--initial", type=int, help="initial labelled batch (default 20)")
    p.add_argument("--budget", type=int, help="rows picked per cycle (default 20)")
    p.add_argument("--epochs", type=int, help="training epochs per cycle (default 60)")
    p.add_argument("--pool", type=int, help="rows of the train pool to use (default all 1297)")
    p.add_argument("--tau", type=float, help="UWE's tau (default 1)")
    p.add_argument("--strategies", help="comma-separated subset, e.g. random,uwe,badge,coreset,uncertainty-entropy")
    p.add_argument("--threads", type=int, help="torch threads (default 1: fastest for this tiny model)")
    p.add_argument("--backend", default="auto", help="kernel backend (default auto)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("bench", help="run the benchmark suite (pytest bench --benchmark-only)", formatter_class=fmt,
                       description="Runs `python -m pytest bench --benchmark-only` with the quick sizes "
                                   "(UWE_BENCH_SIZE=quick; --full sets it to full) and passes its output and exit code through. "
                                   "Needs pytest-benchmark and the source tree's bench/ folder.",
                       epilog="examples:\n  uwe-kernels bench\n  uwe-kernels bench --full -- -k kcenter")
    p.add_argument("--full", action="store_true", help="full sizes instead of the quick ones")
    p.add_argument("--bench-dir", default="bench", help="benchmark folder (default ./bench)")
    p.add_argument("pytest_args", nargs=argparse.REMAINDER, help="extra pytest arguments after --")
    p.set_defaults(func=cmd_bench)
    return parser


def _in_cli_terms(exc: BaseException) -> str:
    """A library message about a value, with the argument named as the command line names it
    (library messages start with the argument's name)."""
    text = str(exc)
    first, _, rest = text.partition(" ")
    return f"{FLAG_OF[first]} {rest}" if isinstance(exc, ValueError) and first in FLAG_OF else text


def main(argv: Sequence[str] | None = None) -> int:
    from .errors import BackendUnavailable

    args = build_parser().parse_args(argv)
    if getattr(args, "pytest_args", None) and args.pytest_args[0] == "--":
        args.pytest_args = args.pytest_args[1:]
    try:
        return int(args.func(args))
    except USER_ERRORS + (BackendUnavailable,) as exc:
        msg = " ".join(_in_cli_terms(exc).split()) or type(exc).__name__
        print(f"uwe-kernels {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
