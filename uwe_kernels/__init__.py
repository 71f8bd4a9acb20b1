"""uwe_kernels: uncertainty-weighted embeddings and exact, fast k-center-greedy / k-means++
selection for active learning. See API.md (mirrored in the README) for the contract."""
from __future__ import annotations

from .embeddings import (
    badge_embedding,
    badge_factored,
    uncertainty,
    uwe,
    uwe_detection,
    uwe_factored,
    uwe_segmentation,
)
from .errors import BackendUnavailable, NonFiniteError
from .factored import FactoredEmbedding
from .registry import backends
from .selection import kcenter_greedy, kmeans_pp, min_distances, select
from ._threads import get_num_threads, set_num_threads

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailable",
    "FactoredEmbedding",
    "NonFiniteError",
    "__version__",
    "backends",
    "badge_embedding",
    "badge_factored",
    "build_info",
    "get_num_threads",
    "kcenter_greedy",
    "kmeans_pp",
    "min_distances",
    "select",
    "set_num_threads",
    "uncertainty",
    "uwe",
    "uwe_detection",
    "uwe_factored",
    "uwe_segmentation",
]


def build_info() -> dict[str, object]:
    """Build metadata of the compiled modules (each entry, or why it did not load)."""
    from .info import collect

    build: dict[str, object] = collect()["build"]
    return build
