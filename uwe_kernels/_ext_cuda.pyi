"""Type stub of the compiled CUDA module (csrc/bindings_cuda.cpp)."""
from typing import Any

def build_info() -> dict[str, Any]:
    """CUDA version and architectures this module was built for."""

def device_status() -> tuple[int, str]:
    """(usable device count, reason when there is none)."""

# Kernel functions are registered per family (csrc/cuda/<family>_cuda.cu).
def __getattr__(name: str) -> Any: ...
