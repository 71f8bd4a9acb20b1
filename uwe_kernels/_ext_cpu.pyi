"""Type stub of the compiled CPU module (csrc/bindings_cpu.cpp)."""
from typing import Any

def build_info() -> dict[str, Any]:
    """Compiler, OpenMP and vectorisation settings of this build."""

def get_num_threads() -> int:
    """Threads an OpenMP region will use (1 without OpenMP)."""

def set_num_threads(n: int) -> None:
    """Threads for later calls (no effect without OpenMP); n >= 1."""

# Kernel functions are registered per family (csrc/cpu/<family>_cpu.cpp).
def __getattr__(name: str) -> Any: ...
