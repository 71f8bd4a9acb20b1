from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import uwe_kernels as uk
from uwe_kernels import registry
from uwe_kernels._arrays import BFLOAT16

from helpers import gaussian_pool, logits


def _package_parent() -> str:
    """Run subprocesses where the package under test (in-place build or installed) is found."""
    return str(Path(uk.__file__).resolve().parent.parent)


@pytest.fixture
def data():
    return logits(20, 5, seed=1), gaussian_pool(20, 7, seed=2)


def test_public_names_match_the_contract():
    for name in ("uncertainty", "uwe", "badge_embedding", "FactoredEmbedding", "uwe_factored",
                 "badge_factored", "uwe_segmentation", "uwe_detection", "kcenter_greedy", "kmeans_pp",
                 "min_distances", "select", "backends", "BackendUnavailable"):
        assert hasattr(uk, name), name


def test_backends_reports_every_backend_with_a_reason():
    b = uk.backends()
    assert list(b) == ["cuda", "triton", "cpp", "numba", "reference"]
    for ok, why in b.values():
        assert isinstance(ok, bool) and why
    assert b["reference"][0] and b["cpp"][0] and b["numba"][0]


def test_info_module_prints_backends_and_build():
    out = subprocess.run([sys.executable, "-m", "uwe_kernels.info"], capture_output=True, text=True, check=True,
                         cwd=_package_parent()).stdout
    for word in ("cuda", "triton", "cpp", "numba", "reference", "_ext_cpu", "compiler", "openmp"):
        assert word in out


def test_build_info_has_openmp_and_cuda_archs():
    info = uk.build_info()
    assert info["cpu"]["openmp"] in (True, False) and info["cpu"]["max_threads"] >= 1
    if "error" not in info["cuda"]:
        assert "80" in info["cuda"]["cuda_archs"] and "90" in info["cuda"]["cuda_archs"]


@pytest.mark.parametrize("bad", [np.int64, np.int32, np.complex64, np.bool_])
def test_non_float_features_raise_type_error_with_cast_hint(data, bad):
    s, f = data
    with pytest.raises(TypeError, match=r"astype\(np.float32\)"):
        uk.uwe(s, f.astype(bad), backend="reference")


def test_torch_integer_input_hints_float():
    with pytest.raises(TypeError, match=r"\.float\(\)"):
        uk.uncertainty(torch.ones(3, 4, dtype=torch.int64), backend="reference")


def test_single_class_scores_are_refused(data):
    _, f = data
    with pytest.raises(ValueError, match="K >= 2"):
        uk.uwe(np.ones((20, 1), np.float32), f, backend="reference")


def test_nan_names_the_first_bad_row(data):
    s, f = data
    f = f.copy()
    f[7, 3] = np.nan
    f[9, 0] = np.inf
    with pytest.raises(ValueError, match="row 7"):
        uk.uwe(s, f, backend="reference")
    with pytest.raises(ValueError, match="row 7"):
        uk.kcenter_greedy(f, None, 3, backend="reference")


def test_negative_probabilities_are_refused_without_logits():
    p = np.full((4, 3), 1 / 3, np.float32)
    p[2, 1] = -0.1
    with pytest.raises(ValueError, match="negative value in row 2"):
        uk.uncertainty(p, "bvsb", from_logits=False, backend="reference")


@pytest.mark.parametrize("tau", [-1.0, float("nan"), float("inf")])
def test_bad_tau(data, tau):
    s, f = data
    with pytest.raises(ValueError, match="tau"):
        uk.uwe(s, f, tau=tau, backend="reference")


def test_unknown_kind_lists_the_kinds(data):
    s, f = data
    with pytest.raises(ValueError, match="entropy, bvsb, margin, least_confidence"):
        uk.uwe(s, f, kind="gini", backend="reference")


def test_mismatched_rows(data):
    s, f = data
    with pytest.raises(ValueError, match="19 rows but scores has 20"):
        uk.uwe(s, f[:19], backend="reference")


@pytest.mark.parametrize("idx", [[20], [-1], [0, 25]])
def test_labelled_out_of_range_never_wraps(data, idx):
    _, f = data
    with pytest.raises(ValueError, match="out of range"):
        uk.kcenter_greedy(f, idx, 2, backend="reference")


@pytest.mark.parametrize("budget, match", [(-1, ">= 0"), (18, "larger than the unlabelled pool")])
def test_budget_bounds(data, budget, match):
    _, f = data
    with pytest.raises(ValueError, match=match):
        uk.kcenter_greedy(f, [0, 1, 2], budget, backend="reference")


def test_budget_must_be_an_integer(data):
    _, f = data
    with pytest.raises(TypeError, match="budget"):
        uk.kcenter_greedy(f, None, 2.0, backend="reference")


def test_labelled_mask_of_wrong_length(data):
    _, f = data
    with pytest.raises(ValueError, match=r"shape \(20,\)"):
        uk.kcenter_greedy(f, np.zeros(19, bool), 2, backend="reference")


def test_first_with_a_labelled_set_is_refused(data):
    _, f = data
    with pytest.raises(ValueError, match="first"):
        uk.kcenter_greedy(f, [1], 2, first=3, backend="reference")


def test_unknown_backend_and_env_override(data, monkeypatch):
    s, _ = data
    with pytest.raises(ValueError, match="unknown backend 'fast'"):
        uk.uncertainty(s, backend="fast")
    monkeypatch.setenv("UWE_KERNELS_BACKEND", "nope")
    with pytest.raises(ValueError, match="UWE_KERNELS_BACKEND"):
        uk.uncertainty(s)


def test_env_forces_a_backend_that_then_explains_itself(data, monkeypatch):
    s, _ = data
    monkeypatch.setenv("UWE_KERNELS_BACKEND", "cuda")
    with pytest.raises(uk.BackendUnavailable, match="cuda:") as err:
        uk.uncertainty(s)
    assert list(err.value.reasons) == ["cuda"]


def test_device_input_without_a_device_backend_lists_every_reason():
    call = registry.Call(op="uwe", device="cuda:0", dtypes=(np.dtype(np.float32),))
    with pytest.raises(uk.BackendUnavailable) as err:
        registry.resolve("uwe", call)
    reasons = err.value.reasons
    assert set(reasons) == set(registry.PRIORITY)
    assert "no silent device transfers" in " ".join(reasons["cpp"])
    assert all(reasons.values())


def test_torch_in_torch_out_and_inputs_untouched(data):
    s, f = data
    ts, tf = torch.from_numpy(s.copy()), torch.from_numpy(f.copy())
    out = uk.uwe(ts, tf, backend="reference")
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == (20, 7)
    assert torch.equal(ts, torch.from_numpy(s)) and torch.equal(tf, torch.from_numpy(f))
    picks = uk.kcenter_greedy(tf, torch.tensor([0, 3]), 4, backend="reference")
    assert isinstance(picks, torch.Tensor) and picks.dtype == torch.int64


def test_torch_bfloat16_round_trip(data):
    s, f = data
    tf = torch.from_numpy(f).to(torch.bfloat16)
    out = uk.uwe(torch.from_numpy(s).to(torch.bfloat16), tf, backend="reference")
    assert out.dtype == torch.bfloat16


def test_numpy_bfloat16_and_out_dtype(data):
    s, f = data
    assert uk.uwe(s.astype(BFLOAT16), f.astype(BFLOAT16), backend="reference").dtype == BFLOAT16
    assert uk.uwe(s, f, out_dtype=np.float64, backend="reference").dtype == np.float64
    with pytest.raises(TypeError, match="out_dtype"):
        uk.uwe(s, f, out_dtype=np.int32, backend="reference")


def test_mixed_dtypes_promote(data):
    s, f = data
    assert uk.uwe(s.astype(np.float64), f, backend="reference").dtype == np.float64
    assert uk.uwe(s.astype(np.float16), f.astype(BFLOAT16), backend="reference").dtype == np.float32


def test_non_contiguous_inputs_are_accepted(data):
    s, f = data
    wide = np.zeros((20, 14), np.float32)
    wide[:, ::2] = f
    np.testing.assert_allclose(uk.uwe(s, wide[:, ::2], backend="reference"), uk.uwe(s, f, backend="reference"))


def test_duplicates_and_sets_in_labelled_idx(data):
    _, f = data
    a = uk.kcenter_greedy(f, [2, 2, 5], 3, backend="reference")
    b = uk.kcenter_greedy(f, {2, 5}, 3, backend="reference")
    c = uk.kcenter_greedy(f, np.isin(np.arange(20), [2, 5]), 3, backend="reference")
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


def test_factored_embedding_shapes_and_materialize(data):
    s, f = data
    fe = uk.badge_factored(s, f, backend="reference")
    assert fe.shape == (20, 35) and fe.is_badge and len(fe) == 20
    np.testing.assert_allclose(fe.materialize(), uk.badge_embedding(s, f, backend="reference"), rtol=1e-6)
    fu = uk.uwe_factored(s, f, "margin", 0.5, backend="reference")
    np.testing.assert_allclose(fu.materialize(), uk.uwe(s, f, "margin", 0.5, backend="reference"), rtol=1e-6)


def test_factored_embedding_validates_its_factors():
    with pytest.raises(ValueError, match="rows"):
        uk.FactoredEmbedding(np.ones(3, np.float32), np.ones((4, 2), np.float32))
    with pytest.raises(TypeError):
        uk.FactoredEmbedding(np.ones(4, np.int64), np.ones((4, 2), np.float32))


@pytest.mark.parametrize("method", ["uwe", "badge", "coreset", "uncertainty", "random"])
def test_select_methods_give_unique_unlabelled_picks(data, method):
    s, f = data
    picks = uk.select(s, f, 6, method=method, labelled_idx=[0, 1], backend="reference")
    assert picks.dtype == np.int64 and len(set(picks.tolist())) == 6
    assert not set(picks.tolist()) & {0, 1}


def test_select_random_depends_on_seed_only(data):
    s, f = data
    a = uk.select(s, f, 8, method="random", seed=3)
    assert np.array_equal(a, uk.select(s, f, 8, method="random", seed=3))
    assert not np.array_equal(a, uk.select(s, f, 8, method="random", seed=4))


def test_select_uncertainty_is_top_k(data):
    s, f = data
    u = uk.uncertainty(s, backend="reference")
    picks = uk.select(s, f, 5, method="uncertainty", backend="reference")
    assert set(picks.tolist()) == set(np.argsort(-u, kind="stable")[:5].tolist())


def test_select_refuses_kind_where_unused(data):
    s, f = data
    with pytest.raises(ValueError, match="kind applies"):
        uk.select(s, f, 2, method="coreset", kind="bvsb")


def test_importing_never_needs_optional_modules():
    code = ("import sys; sys.modules['numba'] = None; sys.modules['triton'] = None; "
            "import uwe_kernels as uk; b = uk.backends(); "
            "assert not b['numba'][0] and 'numba' in b['numba'][1]; assert not b['triton'][0]")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=_package_parent())
