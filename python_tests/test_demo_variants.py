"""The loop and demo side of the authors' UWE variant, the demo's speed step, its files and its
progress output."""
from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import sys

import numpy as np
import pytest

import uwe_kernels as uk
from uwe_kernels import demo_speed, loop

pytest.importorskip("sklearn")
torch = pytest.importorskip("torch")
from uwe_kernels import demo  # noqa: E402

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(uk.__file__)))


@pytest.fixture(scope="module")
def tiny_digits():
    torch.set_num_threads(1)
    return demo.digits_dataset(pool=200)


def _tiny_cfg(**kw):
    base = dict(seeds=2, cycles=2, initial=10, budget=10, epochs=5, hidden=8, progress=False,
                strategies=("random", "uwe", "uwe_authors"), speed_rows=3000, speed_budget=8)
    return dataclasses.replace(demo.DemoConfig(), **{**base, **kw})


def test_default_strategies_hold_both_uwe_variants():
    by_name = {s.name: s for s in loop.default_strategies()}
    assert (by_name["uwe"].normalize, by_name["uwe"].start) == (None, "labelled")
    assert (by_name["uwe_authors"].normalize, by_name["uwe_authors"].start) == ("minmax", "pool")
    assert loop.ABLATION["U+F"] == "uwe" and loop.ABLATION["U+F (authors' code)"] == "uwe_authors"


@pytest.mark.parametrize("kwargs, match", [
    (dict(method="coreset", normalize="minmax"), "normalize applies"),
    (dict(method="uwe_kmpp", start="pool"), "start applies"),
    (dict(method="uwe", normalize="l2"), "unknown normalize"),
    (dict(method="uwe", start="everything"), "unknown start"),
])
def test_strategy_rejects_options_that_do_not_apply(kwargs, match):
    with pytest.raises(ValueError, match=match):
        loop.Strategy("x", **kwargs)


def test_select_batch_authors_variant_is_select_with_start_pool():
    rng = np.random.default_rng(5)
    s, f = rng.standard_normal((80, 4)).astype(np.float32), rng.standard_normal((80, 6)).astype(np.float32)
    mask = np.zeros(80, dtype=bool)
    mask[[3, 9, 40]] = True
    got = loop.select_batch(loop.authors_uwe(), s, f, mask, 7)
    want = uk.select(s, f, 7, labelled_idx=mask, normalize="minmax", start="pool")
    np.testing.assert_array_equal(got, want)
    kmpp = loop.Strategy("k", "uwe_kmpp", normalize="minmax")
    emb = uk.uwe(s, f, normalize="minmax", pool=~mask)
    np.testing.assert_array_equal(loop.select_batch(kmpp, s, f, mask, 7, seed=3),
                                  uk.kmeans_pp(emb, 7, labelled_idx=mask, seed=3))


def test_both_variants_get_checks_over_the_same_seeds(tiny_digits):
    res = demo.run_demo(_tiny_cfg(), tiny_digits)
    assert {(c.strategy, c.seed) for c in res.checks} == {(s, seed) for s in ("uwe", "uwe_authors")
                                                         for seed in (0, 1)}
    sections = demo.report_sections(res)
    assert "U+F (authors' code)" in sections["ablation"]
    assert "Checks against BADGE (uwe runs'" in sections["checks"]
    assert "Checks against BADGE (uwe_authors runs'" in sections["checks"]
    assert "over 2 seeds" in sections["accuracy"]


def test_main_writes_tables_plots_and_the_speed_step(tiny_digits, tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "digits_dataset", lambda pool=None, seed=0: tiny_digits)
    out = io.StringIO()
    demo.main(_tiny_cfg(), str(tmp_path), stream=out)
    text = out.getvalue()
    for name in ("accuracy", "ablation", "penalty", "checks", "timings", "speed"):
        written = (tmp_path / f"{name}.txt").read_text()
        assert written.strip() and written.strip() in text
    for png in ("accuracy.png", "speed.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
    assert "identical picks" in (tmp_path / "speed.txt").read_text()


def test_speed_step_picks_agree_with_the_numpy_loop():
    r = demo_speed.run(rows=4000, dim=16, classes=5, budget=12, labelled=7, seed=2)
    assert r.same_picks and r.agreeing_prefix == 12
    assert r.package_s > 0 and r.numpy_s > 0 and r.speedup == r.numpy_s / r.package_s
    assert "speed-up" in demo_speed.report(r)


def test_progress_is_silent_when_stderr_is_not_a_terminal(tmp_path):
    env = {**os.environ, "PYTHONPATH": PACKAGE_PARENT}
    proc = subprocess.run([sys.executable, "-m", "uwe_kernels", "demo", "--quick", "--seeds", "1", "--cycles", "2",
                           "--pool", "120", "--epochs", "3", "--strategies", "random,uwe_authors",
                           "--out-dir", str(tmp_path / "res")], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for control in ("\r", "\x1b"):
        assert control not in proc.stderr and control not in proc.stdout
    assert "Speed: UWE + k-center greedy" in proc.stdout
