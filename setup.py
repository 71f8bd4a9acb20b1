"""Builds the compiled modules with one CMake project (pattern of pybind/cmake_example).

Environment knobs, each turned into a CMake -D option:
  UWE_KERNELS_CUDA=auto|on|off      build _ext_cuda where it can run: nvcc found and a GPU visible (auto),
                                    always (on: a missing nvcc is an error), never (off)
  UWE_KERNELS_CUDA_ARCHS="80;90"    CMAKE_CUDA_ARCHITECTURES (default "80-real;90")
  UWE_KERNELS_NATIVE=1|0            -march=native for this host (default 1); 0 for portable wheels
  UWE_KERNELS_OPENMP=auto|on|off    OpenMP when found (auto)
  CMAKE_ARGS, CMAKE_BUILD_PARALLEL_LEVEL are honoured as usual.

A repeated `pip install .` from the same clone reuses the compiled modules of an earlier build
with the same sources, knobs, compilers and Python (build/uwe_kernels-cache/<key>/): pip builds in
a fresh temporary environment each time, so CMake's own incremental build cannot carry over.
"""
from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from sysconfig import get_config_var

ROOT = Path(__file__).resolve().parent


class CMakeExtension(Extension):
    def __init__(self, name: str) -> None:
        super().__init__(name, sources=[])


def _tristate(var: str, default: str) -> str:
    value = os.environ.get(var, default).strip().lower()
    if value not in ("auto", "on", "off", "1", "0"):
        raise SystemExit(f"{var} must be auto, on or off, got {value!r}")
    return {"1": "on", "0": "off"}.get(value, value)


def _gpu_visible() -> bool:
    """An NVIDIA GPU on this machine (the driver lists one), found without CUDA or torch."""
    gpus = Path("/proc/driver/nvidia/gpus")
    if gpus.is_dir() and any(gpus.iterdir()):
        return True
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "GPU" in listed


def _cuda_setting() -> str:
    """ON / OFF / AUTO for CMake. auto builds the CUDA module only where it can run: nvcc can
    be found (CMake's AUTO) and a GPU is visible; elsewhere it would cost minutes for nothing."""
    setting = _tristate("UWE_KERNELS_CUDA", "auto")
    if setting == "auto" and not _gpu_visible():
        print("uwe_kernels: no GPU visible, _ext_cuda is not built (UWE_KERNELS_CUDA=on builds it)")
        return "OFF"
    return setting.upper()


def _tool_version(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "none"


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text(errors="replace").splitlines() if cpuinfo.exists() else []
    return next((line for line in lines if line.startswith(("model name", "flags"))), platform.processor())


def _build_key(args: list[str]) -> str:
    """What the compiled modules depend on: sources, build files, knobs, compilers, Python."""
    digest = hashlib.sha256()
    sources = [ROOT / "CMakeLists.txt", ROOT / "setup.py", *sorted((ROOT / "csrc").rglob("*"))]
    for path in sources:
        if path.is_file():
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    import pybind11

    cxx = os.environ.get("CXX") or shutil.which("c++") or "c++"
    toolchain = [_tool_version([cxx, "--version"]), platform.machine(), _cpu_model()]  # -march=native
    if "-DUWE_KERNELS_CUDA=OFF" not in args:
        toolchain.append(_tool_version([os.environ.get("CUDACXX") or shutil.which("nvcc") or "nvcc", "--version"]))
    for part in (*args, *toolchain, sys.version, str(get_config_var("EXT_SUFFIX")), pybind11.__version__,
                 os.environ.get("CMAKE_ARGS", "")):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:16]


CACHE = ROOT / "build" / "uwe_kernels-cache"


class CMakeBuild(build_ext):
    def build_extension(self, ext: Extension) -> None:
        if ext.name != "uwe_kernels._ext_cpu":
            return  # one CMake run builds every module; the others ride along
        out_dir = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        build_type = os.environ.get("UWE_KERNELS_BUILD_TYPE", "Release")
        import pybind11

        knobs = [
            f"-DCMAKE_BUILD_TYPE={build_type}",
            f"-DUWE_KERNELS_CUDA={_cuda_setting()}",
            f"-DUWE_KERNELS_OPENMP={_tristate('UWE_KERNELS_OPENMP', 'auto').upper()}",
            f"-DUWE_KERNELS_NATIVE={'OFF' if _tristate('UWE_KERNELS_NATIVE', 'on') == 'off' else 'ON'}",
        ]
        archs = os.environ.get("UWE_KERNELS_CUDA_ARCHS")
        if archs:
            knobs.append(f"-DCMAKE_CUDA_ARCHITECTURES={archs}")
        cached = CACHE / _build_key(knobs)
        for stale in _modules(out_dir):  # an earlier build's (say _ext_cuda, now turned off)
            stale.unlink()
        if _reuse(cached, out_dir):
            return
        args = [
            f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={out_dir}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
            *knobs,
        ]
        if os.environ.get("CMAKE_ARGS"):
            args += [a for a in os.environ["CMAKE_ARGS"].split(" ") if a]
        if shutil.which("ninja") and not any(a.startswith("-G") for a in args):
            args += ["-G", "Ninja"]

        build_args = ["--config", build_type]
        if "CMAKE_BUILD_PARALLEL_LEVEL" not in os.environ:
            build_args += ["-j", str(os.cpu_count() or 1)]

        build_temp = Path(self.build_temp) / "cmake"
        build_temp.mkdir(parents=True, exist_ok=True)
        _drop_stale_cache(build_temp)
        subprocess.run(["cmake", str(ROOT), *args], cwd=build_temp, check=True)
        subprocess.run(["cmake", "--build", ".", *build_args], cwd=build_temp, check=True)
        _remember(out_dir, cached)

    def copy_extensions_to_source(self) -> None:
        # `--inplace`: _ext_cuda is a by-product of the one CMake run, not an Extension of
        # its own (it may not exist), so copy whatever compiled modules the run produced.
        super().copy_extensions_to_source()
        built = Path(self.build_lib).resolve() / "uwe_kernels"
        for module in built.glob("_ext_cuda*" + Path(self.get_ext_filename("x")).suffix):
            shutil.copy2(module, ROOT / "uwe_kernels" / module.name)


def _modules(folder: Path) -> list[Path]:
    return sorted(folder.glob("_ext_*" + str(get_config_var("EXT_SUFFIX"))))


def _reuse(cached: Path, out_dir: Path) -> bool:
    """Copy the modules of an identical earlier build into place; False when there is none."""
    modules = _modules(cached)
    if not (cached / "complete").exists() or not modules:
        return False
    out_dir.mkdir(parents=True, exist_ok=True)
    for module in modules:
        shutil.copy2(module, out_dir / module.name)
    print(f"uwe_kernels: reusing the compiled modules of an identical build ({cached.relative_to(ROOT)})")
    return True


def _remember(out_dir: Path, cached: Path) -> None:
    """Keep this build's modules for the next install (one build: older keys are dropped)."""
    shutil.rmtree(CACHE, ignore_errors=True)
    cached.mkdir(parents=True)
    for module in _modules(out_dir):
        shutil.copy2(module, cached / module.name)
    (cached / "complete").touch()


def _drop_stale_cache(build_temp: Path) -> None:
    """pip builds in a fresh temporary environment each time: a cache that names a build
    tool from an earlier, deleted environment would fail to configure, so start over."""
    cache = build_temp / "CMakeCache.txt"
    if not cache.exists():
        return
    for line in cache.read_text(errors="replace").splitlines():
        if line.startswith("CMAKE_MAKE_PROGRAM:"):
            tool = line.split("=", 1)[1].strip()
            if tool and not Path(tool).exists():
                cache.unlink()
                shutil.rmtree(build_temp / "CMakeFiles", ignore_errors=True)
            return


setup(
    ext_modules=[CMakeExtension("uwe_kernels._ext_cpu")],
    cmdclass={"build_ext": CMakeBuild},
)
