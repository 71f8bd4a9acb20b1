from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_readme_hook", ROOT / "docs" / "hooks" / "bench_readme.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for module, extra in (("mkdocs", "docs"), ("mkdocstrings_handlers.python", "docs")):
        pytest.importorskip(module, reason=f"{module} not installed: pip install \".[{extra}]\"")
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return out


def test_docs_build_strict_with_every_page(site: Path) -> None:
    for page in ("index.html", "internals/index.html", "choosing-tau/index.html", "benchmarks/index.html",
                 "howto/classification/index.html", "howto/segmentation/index.html",
                 "howto/detection/index.html", "howto/frameworks/index.html"):
        assert (site / page).is_file(), page


def test_api_reference_comes_from_docstrings(site: Path) -> None:
    selection = (site / "reference" / "selection" / "index.html").read_text()
    assert "K-Center-Greedy (paper Algorithm 1)" in selection
    assert "kmeans_pp" in selection and "min_distances" in selection
    embeddings = (site / "reference" / "embeddings" / "index.html").read_text()
    assert "Uncertainty-weighted embedding" in embeddings
    adapters = (site / "reference" / "integrations" / "index.html").read_text()
    assert "uwe_strategy" in adapters and "CoreSet" in adapters and "Coreset" in adapters


def test_bench_readme_links_become_text(tmp_path: Path) -> None:
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "README.md").write_text(
        "# Results\n\nSee [kcg](bench_kcg.py), ![plot](plot.png) and [paper](https://example.org/p).\n"
        "```bash\n# comment stays\n```\n"
    )
    text = _hook().bench_readme(tmp_path)
    assert "## Results" in text
    assert "kcg (`bench/bench_kcg.py`)" in text
    assert "image `bench/plot.png`" in text
    assert "[paper](https://example.org/p)" in text
    assert "\n# comment stays\n" in text


def test_bench_readme_absent_says_so(tmp_path: Path) -> None:
    assert "not in this checkout" in _hook().bench_readme(tmp_path)
