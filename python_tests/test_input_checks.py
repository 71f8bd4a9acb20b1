"""Every input a call is given is validated, whatever the method uses, and unusual inputs get
a message that says what to do."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import uwe_kernels as uk
from helpers import gaussian_pool, logits

METHODS = ["uwe", "badge", "coreset", "uncertainty", "random"]


def _with(arr: np.ndarray, row: int, value: float) -> np.ndarray:
    out = arr.copy()
    out[row, 1] = value
    return out


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_select_rejects_non_finite_scores_and_features_for_every_method(method, bad):
    scores, feats = logits(40, 4, seed=1), gaussian_pool(40, 6, seed=2)
    with pytest.raises(ValueError, match="scores has a non-finite value .* row 7"):
        uk.select(_with(scores, 7, bad), feats, 5, method=method, backend="reference")
    with pytest.raises(ValueError, match="(features|emb) has a non-finite value .* row 9"):
        uk.select(scores, _with(feats, 9, bad), 5, method=method, backend="reference")


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.float8_e5m2, torch.complex32])
def test_torch_dtypes_numpy_lacks_get_a_cast_hint(dtype):
    scores, feats = torch.randn(6, 3), torch.randn(6, 4)
    with pytest.raises(TypeError, match=r"scores has dtype .*cast it first, e.g. scores.float\(\)"):
        uk.uwe(scores.to(dtype), feats)
    with pytest.raises(TypeError, match=r"emb has dtype .*emb.float\(\)"):
        uk.kcenter_greedy(feats.to(dtype), None, 2)


@pytest.mark.parametrize("region", [(4,), (4, 4, 4), ()])
def test_region_of_the_wrong_length_says_so(region):
    scores = np.random.default_rng(0).random((1, 3, 8, 8), dtype=np.float32)
    feats = np.random.default_rng(1).random((1, 2, 4, 4), dtype=np.float32)
    with pytest.raises(ValueError, match=r"region must be a pair \(rh, rw\)"):
        uk.uwe_segmentation(scores, feats, region=region)
