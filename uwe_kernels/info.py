"""`python -m uwe_kernels.info`: backends with reasons, build metadata and versions."""
from __future__ import annotations

import platform
import sys
from typing import Any

from . import _lazy, registry


def _version(module: str) -> str:
    err = _lazy.error_of(module)
    return f"not importable ({err})" if err else str(getattr(_lazy.load_module(module), "__version__", "?"))


def collect() -> dict[str, Any]:
    build: dict[str, Any] = {}
    for key, module in _lazy.EXTENSIONS.items():
        err = _lazy.error_of(module)
        build[key] = {"error": err} if err else dict(_lazy.load(key).build_info())
    return {
        "uwe_kernels": __import__("uwe_kernels").__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": {m: _version(m) for m in ("numpy", "ml_dtypes", "numba", "torch", "triton")},
        "backends": registry.backends(),
        "build": build,
    }


def render(info: dict[str, Any]) -> str:
    lines = [f"uwe_kernels {info['uwe_kernels']}  python {info['python']}  {info['platform']}", "", "backends:"]
    for name, (ok, why) in info["backends"].items():
        lines.append(f"  {name:<10} {'available' if ok else 'unavailable':<12} {why}")
    lines += ["", "build:"]
    for key, meta in info["build"].items():
        if "error" in meta:
            lines.append(f"  _ext_{key:<5} not loaded: {meta['error']}")
        else:
            lines.append(f"  _ext_{key:<5} " + ", ".join(f"{k}={v}" for k, v in meta.items() if k != "module"))
    lines += ["", "versions:"]
    lines += [f"  {m:<10} {v}" for m, v in info["versions"].items()]
    return "\n".join(lines)


def main() -> None:
    print(render(collect()))


if __name__ == "__main__":
    main()
