"""Dormant rows of the numba engine's sketched k-center greedy: rows whose D stays below a
probed threshold skip the per-pick passes until a wake. Picks and distances must stay those of
the brute force bit for bit however the threshold is set (too high: many wakes; above every D:
every row dormant), and k-means++ never has dormant rows."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("numba")

from uwe_kernels.numba import pruned, sketched  # noqa: E402
from uwe_kernels.numba import select as nsel  # noqa: E402

from test_sketch_engine import DTYPES, acc, low_rank, mask_of, near_ties  # noqa: E402

MODES = ("plain", "adaptive", "pruned")


def overestimate(factor: float) -> Any:
    """A probe estimate `factor` times the engine's own (too high: the picks fall below it)."""
    real = pruned._probe_threshold
    return lambda probe_d, budget, unlabelled: factor * real(probe_d, budget, unlabelled)


def check(x: np.ndarray, mask: np.ndarray, budget: int, mode: str, width: int = 4) -> dict[str, Any]:
    """Picks and distances equal to the brute force; the dormancy stats consistent."""
    want, want_d = nsel.kcenter_greedy(x, mask, budget, None, algorithm="brute", progress=None, accum_dtype=acc(x))
    picks, dists, stats = pruned.kcenter_greedy_stats(x, mask, budget, None, mode=mode, sketch_width=width,
                                                      accum_dtype=acc(x))
    np.testing.assert_array_equal(picks, want, err_msg=mode)
    np.testing.assert_array_equal(dists, want_d, err_msg=mode)
    free = len(x) - int(mask.sum())
    assert 0 <= stats["woken_rows"] <= stats["dormant_rows"] <= free
    assert stats["wake_rounds"] >= (1 if stats["woken_rows"] else 0)
    if mode == "plain":  # a dormant row's sketch is read by no pick until it wakes
        assert stats["sketch_tests"] <= (budget - 1) * (free - stats["dormant_rows"] + stats["woken_rows"])
    return stats


@pytest.mark.parametrize("mode", MODES)
def test_most_rows_sleep_and_an_overestimated_threshold_wakes_them_in_rounds(mode: str,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    x = low_rank(np.random.default_rng(31), 5000, 40, 6, 0.05).astype(np.float32)
    mask = mask_of(len(x), 60)
    stats = check(x, mask, 150, mode)
    assert stats["dormant_rows"] > 0.8 * (len(x) - 60)
    monkeypatch.setattr(pruned, "_probe_threshold", overestimate(1.3))
    more = check(x, mask, 150, mode)
    assert more["dormant_rows"] > stats["dormant_rows"]
    assert more["wake_rounds"] >= 3 and more["woken_rows"] > stats["woken_rows"]


@pytest.mark.parametrize("dtype", list(DTYPES), ids=list(DTYPES))
@pytest.mark.parametrize("mode", MODES)
def test_near_ties_and_duplicates_in_every_pool_dtype(dtype: str, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    x = near_ties(np.random.default_rng(32), 900, 17).astype(DTYPES[dtype])
    mask = mask_of(len(x), 12)
    assert check(x, mask, 70, mode)["dormant_rows"] > 0
    monkeypatch.setattr(pruned, "_probe_threshold", overestimate(1.5))
    assert check(x, mask, 70, mode)["wake_rounds"] >= 1


@pytest.mark.parametrize("mode", MODES)
def test_a_budget_close_to_the_unlabelled_rows(mode: str) -> None:
    x = near_ties(np.random.default_rng(33), 300, 9).astype(np.float32)
    mask = mask_of(len(x), 20)
    free = len(x) - 20
    for budget in (free - 5, free - 1):
        check(x, mask, budget, mode)
    assert check(x, mask, free, mode)["dormant_rows"] == 0  # every row is picked: none may sleep


def copies_of_labelled(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """40 distinct rows and 300 exact copies of the 20 labelled ones (D = 0)."""
    rows = low_rank(rng, 60, 12, 4, 0.1).astype(np.float32)
    x = np.concatenate([rows, rows[np.arange(300) % 20]])
    mask = np.zeros(len(x), dtype=bool)
    mask[:20] = True
    return x, mask


@pytest.mark.parametrize("mode", MODES)
def test_every_row_dormant_wakes_when_no_live_row_is_left(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    x, mask = copies_of_labelled(np.random.default_rng(34))
    monkeypatch.setattr(pruned, "_probe_threshold", lambda probe_d, budget, unlabelled: float(np.max(probe_d)) + 1.0)
    stats = check(x, mask, 60, mode)
    assert stats["dormant_rows"] == stats["woken_rows"] == len(x) - 20


@pytest.mark.parametrize("mode", MODES)
def test_copies_of_labelled_rows_wake_when_the_picks_reach_zero(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The copies (D = 0) sleep under a small threshold; once the 40 distinct rows are picked,
    the argmax is 0 and every one of them wakes (the picks then go by lowest index)."""
    x, mask = copies_of_labelled(np.random.default_rng(35))
    monkeypatch.setattr(pruned, "_probe_threshold",
                        lambda probe_d, budget, unlabelled: float(np.min(probe_d[probe_d > 0])) / 2)
    stats = check(x, mask, 70, mode)
    assert stats["dormant_rows"] == stats["woken_rows"] == 300


def test_labelled_pass_over_several_centre_blocks_and_row_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows that went dormant against one block of labelled rows skip the later blocks; wakes
    read every block of centres (labelled and picked)."""
    x = low_rank(np.random.default_rng(36), 9000, 24, 5, 0.05).astype(np.float32)
    mask = mask_of(len(x), 45)
    monkeypatch.setattr(sketched, "SEED_CENTRES", 8)
    check(x, mask, 90, "plain")
    monkeypatch.setattr(pruned, "_probe_threshold", overestimate(2.0))
    assert check(x, mask, 90, "adaptive")["wake_rounds"] >= 2


def test_serial_and_parallel_runs_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    from uwe_kernels import _threads

    x = low_rank(np.random.default_rng(37), 6000, 32, 6, 0.05).astype(np.float32)
    mask = mask_of(len(x), 30)
    monkeypatch.setattr(pruned, "_probe_threshold", overestimate(2.0))
    runs = []
    for team in (1, 2):
        monkeypatch.setattr(_threads.TeamTuner, "threads", lambda self, team=team: team)
        runs.append(pruned.kcenter_greedy_stats(x, mask, 80, None, mode="plain", sketch_width=4))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert runs[0][2] == {**runs[1][2], "sketch_build_seconds": runs[0][2]["sketch_build_seconds"]}


def test_no_dormant_rows_for_kmeans_without_a_sketch_or_without_labelled_rows() -> None:
    x = low_rank(np.random.default_rng(38), 3000, 32, 6, 0.05).astype(np.float32)
    mask = mask_of(len(x), 30)
    _, stats = pruned.kmeans_pp_stats(x, mask, 60, 3, "max_norm", mode="plain", sketch_width=4)
    assert stats["dormant_rows"] == stats["woken_rows"] == stats["wake_rounds"] == 0
    for width, labelled in ((0, mask), (4, np.zeros(len(x), bool))):
        _, _, stats = pruned.kcenter_greedy_stats(x, labelled, 60, None, mode="plain", sketch_width=width)
        assert stats["dormant_rows"] == stats["woken_rows"] == stats["wake_rounds"] == 0
