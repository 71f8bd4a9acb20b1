"""Builds the compiled modules with one CMake project (pattern of pybind/cmake_example).

Environment knobs, each turned into a CMake -D option:
  UWE_KERNELS_CUDA=auto|on|off      build _ext_cuda when nvcc is found (auto), always (on), never (off)
  UWE_KERNELS_CUDA_ARCHS="80;90"    CMAKE_CUDA_ARCHITECTURES (default "80-real;90")
  UWE_KERNELS_NATIVE=1|0            -march=native for this host (default 1); 0 for portable wheels
  UWE_KERNELS_OPENMP=auto|on|off    OpenMP when found (auto)
  CMAKE_ARGS, CMAKE_BUILD_PARALLEL_LEVEL are honoured as usual.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class CMakeExtension(Extension):
    def __init__(self, name: str) -> None:
        super().__init__(name, sources=[])


def _tristate(var: str, default: str) -> str:
    value = os.environ.get(var, default).strip().lower()
    if value not in ("auto", "on", "off", "1", "0"):
        raise SystemExit(f"{var} must be auto, on or off, got {value!r}")
    return {"1": "on", "0": "off"}.get(value, value)


class CMakeBuild(build_ext):
    def build_extension(self, ext: Extension) -> None:
        if ext.name != "uwe_kernels._ext_cpu":
            return  # one CMake run builds every module; the others ride along
        out_dir = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        build_type = os.environ.get("UWE_KERNELS_BUILD_TYPE", "Release")
        import pybind11

        args = [
            f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={out_dir}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
            f"-DCMAKE_BUILD_TYPE={build_type}",
            f"-DUWE_KERNELS_CUDA={_tristate('UWE_KERNELS_CUDA', 'auto').upper()}",
            f"-DUWE_KERNELS_OPENMP={_tristate('UWE_KERNELS_OPENMP', 'auto').upper()}",
            f"-DUWE_KERNELS_NATIVE={'OFF' if _tristate('UWE_KERNELS_NATIVE', 'on') == 'off' else 'ON'}",
        ]
        archs = os.environ.get("UWE_KERNELS_CUDA_ARCHS")
        if archs:
            args.append(f"-DCMAKE_CUDA_ARCHITECTURES={archs}")
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

    def copy_extensions_to_source(self) -> None:
        # `--inplace`: _ext_cuda is a by-product of the one CMake run, not an Extension of
        # its own (it may not exist), so copy whatever compiled modules the run produced.
        super().copy_extensions_to_source()
        built = Path(self.build_lib).resolve() / "uwe_kernels"
        for module in built.glob("_ext_cuda*" + Path(self.get_ext_filename("x")).suffix):
            shutil.copy2(module, ROOT / "uwe_kernels" / module.name)


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
