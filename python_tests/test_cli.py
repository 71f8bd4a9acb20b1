from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import uwe_kernels as uk
from uwe_kernels import cli
from helpers import gaussian_pool, logits

PACKAGE_PARENT = str(Path(uk.__file__).resolve().parent.parent)


@pytest.fixture
def files(tmp_path):
    scores, feats = logits(60, 5, seed=1), gaussian_pool(60, 7, seed=2)
    np.save(tmp_path / "S.npy", scores)
    np.save(tmp_path / "F.npy", feats)
    np.savez(tmp_path / "run.npz", logits=scores, feats=feats)
    np.savez(tmp_path / "S1.npz", a=scores)
    np.savez(tmp_path / "F1.npz", a=feats)
    np.save(tmp_path / "L.npy", np.array([4, 9, 9, 30]))
    mask = np.zeros(60, dtype=bool)
    mask[[4, 9, 30]] = True
    np.save(tmp_path / "M.npy", mask)
    (tmp_path / "L.csv").write_text("4\n9\n30\n")
    np.save(tmp_path / "F_short.npy", feats[:50])
    return tmp_path, scores, feats


def run_cli(args, capsys):
    rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def io_args(tmp, scores="S.npy", features="F.npy"):
    return ["--scores", tmp / scores, "--features", tmp / features]


@pytest.mark.parametrize("method", ["uwe", "badge", "coreset", "uncertainty", "random"])
def test_select_npy_round_trip_matches_public_select(files, capsys, method):
    tmp, scores, feats = files
    rc, _, err = run_cli(["select", *io_args(tmp), "--method", method, "--budget", 8, "--labelled", tmp / "L.npy",
                          "--seed", 5, "--out", tmp / "p.npy"], capsys)
    assert rc == 0 and "wrote 8 picks" in err
    want = uk.select(scores, feats, 8, method=method, labelled_idx=[4, 9, 30], seed=5)
    got = np.load(tmp / "p.npy")
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)


def test_select_npz_with_shared_key_and_separate_keys(files, capsys):
    tmp, scores, feats = files
    want = uk.select(scores, feats, 6, method="uwe", kind="bvsb", tau=0.5)
    rc, _, _ = run_cli(["select", *io_args(tmp, "S1.npz", "F1.npz"), "--key", "a", "--method", "uwe", "--kind",
                        "bvsb", "--tau", 0.5, "--budget", 6, "--out", tmp / "p1.npy"], capsys)
    assert rc == 0
    np.testing.assert_array_equal(np.load(tmp / "p1.npy"), want)
    rc, _, _ = run_cli(["select", *io_args(tmp, "run.npz", "run.npz"), "--scores-key", "logits", "--features-key",
                        "feats", "--kind", "bvsb", "--tau", 0.5, "--budget", 6, "--out", tmp / "p2.npy"], capsys)
    assert rc == 0
    np.testing.assert_array_equal(np.load(tmp / "p2.npy"), want)


def test_select_csv_and_npz_outputs(files, capsys):
    tmp, scores, feats = files
    want = uk.select(scores, feats, 7, method="coreset")
    assert run_cli(["select", *io_args(tmp), "--method", "coreset", "--budget", 7, "--out", tmp / "p.csv"],
                   capsys)[0] == 0
    np.testing.assert_array_equal(np.loadtxt(tmp / "p.csv", dtype=np.int64), want)
    assert run_cli(["select", *io_args(tmp), "--method", "coreset", "--budget", 7, "--out", tmp / "p.npz"],
                   capsys)[0] == 0
    np.testing.assert_array_equal(np.load(tmp / "p.npz")["picks"], want)


@pytest.mark.parametrize("labelled", ["L.npy", "M.npy", "L.csv"])
def test_select_labelled_as_indices_mask_or_csv(files, capsys, labelled):
    tmp, scores, feats = files
    rc, _, _ = run_cli(["select", *io_args(tmp), "--budget", 57, "--labelled", tmp / labelled,
                        "--out", tmp / "p.npy"], capsys)
    assert rc == 0
    picks = np.load(tmp / "p.npy")
    assert sorted(picks.tolist()) == sorted(set(range(60)) - {4, 9, 30})


def test_inputs_are_memory_mapped_and_unchanged(files):
    tmp, scores, _ = files
    arr = cli.load_array(str(tmp / "S.npy"))
    assert isinstance(arr, np.memmap) and arr.mode == "r"
    np.testing.assert_array_equal(arr, scores)


def test_embed_uwe_badge_and_factored(files, capsys):
    tmp, scores, feats = files
    assert run_cli(["embed", *io_args(tmp), "--kind", "margin", "--tau", 2, "--out", tmp / "e.npy"], capsys)[0] == 0
    np.testing.assert_allclose(np.load(tmp / "e.npy"), uk.uwe(scores, feats, "margin", 2.0), rtol=1e-6)
    assert run_cli(["embed", *io_args(tmp), "--type", "badge", "--out", tmp / "b.npz"], capsys)[0] == 0
    np.testing.assert_allclose(np.load(tmp / "b.npz")["embedding"], uk.badge_embedding(scores, feats), rtol=1e-6)
    assert run_cli(["embed", *io_args(tmp), "--type", "factored", "--out", tmp / "f.npz"], capsys)[0] == 0
    with np.load(tmp / "f.npz") as z:
        got = uk.FactoredEmbedding(z["weights"], z["features"]).materialize()
    np.testing.assert_allclose(got, uk.uwe(scores, feats), rtol=1e-6, atol=1e-7)


def test_embed_probabilities_flag(files, capsys):
    tmp, scores, feats = files
    probs = np.exp(scores) / np.exp(scores).sum(1, keepdims=True)
    np.save(tmp / "P.npy", probs.astype(np.float32))
    assert run_cli(["embed", *io_args(tmp, "P.npy"), "--probabilities", "--out", tmp / "e.npy"], capsys)[0] == 0
    np.testing.assert_allclose(np.load(tmp / "e.npy"), uk.uwe(scores, feats), rtol=1e-4, atol=1e-6)


ERROR_CASES = {
    "missing-file": (["select", "--scores", "{t}/nope.npy", "--features", "{t}/F.npy", "--budget", "3",
                      "--out", "{t}/p.npy"], "no such file"),
    "row-mismatch": (["select", "--scores", "{t}/S.npy", "--features", "{t}/F_short.npy", "--budget", "3",
                      "--out", "{t}/p.npy"], "rows"),
    "budget-too-large": (["select", "--scores", "{t}/S.npy", "--features", "{t}/F.npy", "--budget", "61",
                          "--out", "{t}/p.npy"], "--budget"),
    "negative-budget": (["select", "--scores", "{t}/S.npy", "--features", "{t}/F.npy", "--budget", "-1",
                         "--out", "{t}/p.npy"], "budget"),
    "bad-method": (["select", "--scores", "{t}/S.npy", "--features", "{t}/F.npy", "--method", "kmeans",
                    "--budget", "3", "--out", "{t}/p.npy"], "invalid choice"),
    "missing-budget": (["select", "--scores", "{t}/S.npy", "--features", "{t}/F.npy", "--out", "{t}/p.npy"],
                       "--budget"),
    "bad-output-extension": (["select", "--scores", "{t}/S.npy", "--features", "{t}/F.npy", "--budget", "3",
                              "--out", "{t}/p.txt"], "output must end"),
    "bad-input-extension": (["select", "--scores", "{t}/L.csv", "--features", "{t}/F.npy", "--budget", "3",
                             "--out", "{t}/p.npy"], ".npy or .npz"),
    "npz-without-key": (["select", "--scores", "{t}/run.npz", "--features", "{t}/F.npy", "--budget", "3",
                         "--out", "{t}/p.npy"], "--key"),
    "npz-wrong-key": (["select", "--scores", "{t}/S1.npz", "--features", "{t}/F.npy", "--key", "zz", "--budget",
                       "3", "--out", "{t}/p.npy"], "no array 'zz'"),
    "labelled-out-of-range": (["select", "--scores", "{t}/S.npy", "--features", "{t}/F.npy", "--budget", "3",
                               "--labelled", "{t}/big.npy", "--out", "{t}/p.npy"], "range"),
    "kind-with-coreset": (["select", "--scores", "{t}/S.npy", "--features", "{t}/F.npy", "--method", "coreset",
                           "--kind", "bvsb", "--budget", "3", "--out", "{t}/p.npy"], "--kind"),
    "negative-tau": (["embed", "--scores", "{t}/S.npy", "--features", "{t}/F.npy", "--tau", "-1",
                      "--out", "{t}/e.npy"], "tau"),
    "factored-to-npy": (["embed", "--scores", "{t}/S.npy", "--features", "{t}/F.npy", "--type", "factored",
                         "--out", "{t}/e.npy"], ".npz"),
    "integer-scores": (["embed", "--scores", "{t}/L.npy", "--features", "{t}/F.npy", "--out", "{t}/e.npy"],
                       "float"),
    "not-an-npy": (["embed", "--scores", "{t}/junk.npy", "--features", "{t}/F.npy", "--out", "{t}/e.npy"],
                   "junk.npy"),
    "unavailable-backend": (["select", "--scores", "{t}/S.npy", "--features", "{t}/F.npy", "--budget", "3",
                             "--backend", "cuda", "--out", "{t}/p.npy"], "cuda"),
    "empty-npy": (["select", "--scores", "{t}/empty.npy", "--features", "{t}/F.npy", "--budget", "3",
                   "--out", "{t}/p.npy"], "empty.npy is an empty file"),
    "csv-renamed-npy": (["select", "--scores", "{t}/csv.npy", "--features", "{t}/F.npy", "--budget", "3",
                         "--out", "{t}/p.npy"], "csv.npy is not a .npy file"),
    "negative-shape": (["select", "--scores", "{t}/neg.npy", "--features", "{t}/F.npy", "--budget", "3",
                        "--out", "{t}/p.npy"], "damaged .npy header"),
    "truncated-npy": (["select", "--scores", "{t}/short.npy", "--features", "{t}/F.npy", "--budget", "3",
                       "--out", "{t}/p.npy"], "short.npy is truncated"),
    "object-npy": (["select", "--scores", "{t}/obj.npy", "--features", "{t}/F.npy", "--budget", "3",
                    "--out", "{t}/p.npy"], "Python objects"),
    "corrupt-npz": (["select", "--scores", "{t}/bad.npz", "--features", "{t}/F.npy", "--budget", "3",
                     "--out", "{t}/p.npy"], "bad.npz is not a readable .npz archive"),
    "object-npz": (["select", "--scores", "{t}/obj.npz", "--features", "{t}/F.npy", "--budget", "3",
                    "--out", "{t}/p.npy"], "Python objects"),
    "out-missing-folder": (["select", "--scores", "{t}/S.npy", "--features", "{t}/F.npy", "--budget", "3",
                            "--out", "{t}/no/p.npy"], "does not exist"),
    "out-is-a-folder": (["select", "--scores", "{t}/S.npy", "--features", "{t}/F.npy", "--budget", "3",
                         "--out", "{t}"], "output must end"),
    "out-named-like-a-folder": (["select", "--scores", "{t}/S.npy", "--features", "{t}/F.npy", "--budget", "3",
                                 "--out", "{t}/dir.npy"], "is a folder"),
    "nan-scores-random": (["select", "--scores", "{t}/S_nan.npy", "--features", "{t}/F.npy", "--method", "random",
                           "--budget", "3", "--out", "{t}/p.npy"], "--scores has a non-finite value"),
    "nan-scores-coreset": (["select", "--scores", "{t}/S_nan.npy", "--features", "{t}/F.npy", "--method",
                            "coreset", "--budget", "3", "--out", "{t}/p.npy"], "--scores has a non-finite value"),
    "nan-features-coreset": (["select", "--scores", "{t}/S.npy", "--features", "{t}/F_nan.npy", "--method",
                              "coreset", "--budget", "3", "--out", "{t}/p.npy"], "--features has a non-finite"),
    "nan-features-uncertainty": (["select", "--scores", "{t}/S.npy", "--features", "{t}/F_nan.npy", "--method",
                                  "uncertainty", "--budget", "3", "--out", "{t}/p.npy"], "--features"),
    "labelled-flag-named": (["select", "--scores", "{t}/S.npy", "--features", "{t}/F.npy", "--budget", "3",
                             "--labelled", "{t}/big.npy", "--out", "{t}/p.npy"], "--labelled holds 60"),
    "tau-with-coreset": (["select", "--scores", "{t}/S.npy", "--features", "{t}/F.npy", "--method", "coreset",
                          "--tau", "2", "--budget", "3", "--out", "{t}/p.npy"], "--tau applies to --method uwe"),
    "tau-with-badge-embedding": (["embed", "--scores", "{t}/S.npy", "--features", "{t}/F.npy", "--type", "badge",
                                  "--tau", "2", "--out", "{t}/e.npy"], "--tau"),
    "kind-with-badge-embedding": (["embed", "--scores", "{t}/S.npy", "--features", "{t}/F.npy", "--type", "badge",
                                   "--kind", "bvsb", "--out", "{t}/e.npy"], "--kind"),
    "pool-beyond-float64": (["select", "--scores", "{t}/S.npy", "--features", "{t}/F_huge.npy", "--method",
                             "coreset", "--budget", "3", "--out", "{t}/p.npy"], "--features has values up to"),
    "bench-without-folder": (["bench", "--bench-dir", "{t}/no_bench"], "no benchmark folder"),
    "no-command": ([], "required"),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_user_errors_are_one_line_with_nonzero_exit(files, capsys, case):
    tmp = files[0]
    np.save(tmp / "big.npy", np.array([60, 0]))
    (tmp / "junk.npy").write_text("not numpy")
    _write_bad_files(tmp, files[1], files[2])
    args, needle = ERROR_CASES[case]
    if case == "unavailable-backend" and uk.backends()["cuda"][0]:
        pytest.skip("cuda is available here")
    try:
        rc = cli.main([a.format(t=tmp) for a in args])
    except SystemExit as exc:
        rc = exc.code
    out, err = capsys.readouterr()
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("uwe-kernels")
    assert needle in err and "Traceback" not in err
    for python_only in ("labelled_idx", "emb ", "allow_pickle", "astype"):  # the command line's words only
        assert python_only not in err


def _write_bad_files(tmp, scores, feats):
    (tmp / "empty.npy").write_bytes(b"")
    (tmp / "csv.npy").write_text("1,2,3\n4,5,6\n")
    np.save(tmp / "neg.npy", scores)
    (tmp / "neg.npy").write_bytes((tmp / "neg.npy").read_bytes().replace(b"(60, 5)", b"(-60, 5)"))
    np.save(tmp / "short.npy", scores)
    (tmp / "short.npy").write_bytes((tmp / "short.npy").read_bytes()[:300])
    np.save(tmp / "obj.npy", np.array([[1.0, "x"]], dtype=object), allow_pickle=True)
    (tmp / "bad.npz").write_bytes(b"PK\x03\x04 not a zip archive")
    np.savez(tmp / "obj.npz", a=np.array([[1.0, "x"]], dtype=object))
    (tmp / "dir.npy").mkdir()
    bad_scores, bad_feats = scores.copy(), feats.copy()
    bad_scores[11, 2] = np.nan
    bad_feats[13, 0] = np.inf
    np.save(tmp / "S_nan.npy", bad_scores)
    np.save(tmp / "F_nan.npy", bad_feats)
    np.save(tmp / "F_huge.npy", feats.astype(np.float64) * 1e170)


def test_missing_output_folder_fails_before_any_work(files, capsys, monkeypatch):
    tmp = files[0]
    monkeypatch.setattr(uk, "uwe", lambda *a, **k: pytest.fail("the selection ran before the output was checked"))
    rc, _, err = run_cli(["select", *io_args(tmp), "--budget", 3, "--out", tmp / "missing" / "p.npy"], capsys)
    assert rc == 2 and "does not exist" in err


@pytest.mark.parametrize("out", ["p.npy", "p.npz", "p.csv"])
def test_failed_write_keeps_the_previous_output_whole(files, capsys, monkeypatch, out):
    tmp = files[0]
    assert run_cli(["select", *io_args(tmp), "--budget", 5, "--out", tmp / out], capsys)[0] == 0
    before = (tmp / out).read_bytes()

    def disk_full(fh, arr, name):
        fh.write(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setitem(cli.WRITERS, "." + out.split(".")[1], disk_full)
    rc, _, err = run_cli(["select", *io_args(tmp), "--budget", 9, "--out", tmp / out], capsys)
    assert rc == 2 and "No space left on device" in err
    assert (tmp / out).read_bytes() == before
    assert sorted(p.name for p in tmp.iterdir() if p.name.startswith(".")) == []  # no temporary file left


def test_out_replaces_a_symlink_instead_of_writing_through_it(files, capsys):
    tmp = files[0]
    target = tmp / "precious.txt"
    target.write_text("keep me")
    (tmp / "link.npy").symlink_to(target)
    assert run_cli(["select", *io_args(tmp), "--budget", 4, "--out", tmp / "link.npy"], capsys)[0] == 0
    assert target.read_text() == "keep me"
    assert not (tmp / "link.npy").is_symlink() and len(np.load(tmp / "link.npy")) == 4
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp / "link.npy").stat().st_mode & 0o777 == 0o666 & ~umask


def test_tau_given_where_it_applies_is_used(files, capsys):
    tmp, scores, feats = files
    rc, _, _ = run_cli(["select", *io_args(tmp), "--method", "uwe", "--tau", 3, "--budget", 6, "--out",
                        tmp / "p.npy"], capsys)
    assert rc == 0
    np.testing.assert_array_equal(np.load(tmp / "p.npy"), uk.select(scores, feats, 6, method="uwe", tau=3.0))


def test_error_in_subprocess_has_no_traceback(files):
    tmp = files[0]
    env = {**os.environ, "PYTHONPATH": PACKAGE_PARENT}
    proc = subprocess.run([sys.executable, "-m", "uwe_kernels", "select", "--scores", "nope.npy", "--features",
                           "F.npy", "--budget", "3", "--out", "p.npy"], cwd=tmp, env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "uwe-kernels select: error: no such file: nope.npy"


def test_info_text_and_json(capsys):
    rc, out, _ = run_cli(["info"], capsys)
    assert rc == 0 and "backends:" in out and "reference" in out and "build:" in out
    rc, out, _ = run_cli(["info", "--json"], capsys)
    data = json.loads(out)
    assert rc == 0 and data["backends"]["reference"][0] is True and data["uwe_kernels"] == uk.__version__


@pytest.mark.parametrize("command", ["", "info", "embed", "select", "demo", "bench"])
def test_help_documents_options_with_examples(capsys, command):
    with pytest.raises(SystemExit) as exc:
        cli.main([command, "--help"] if command else ["--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and "example" in out
    if command == "select":
        for opt in ("--scores", "--features", "--method", "--budget", "--labelled", "--kind", "--tau", "--seed",
                    "--backend", "--out", "--key"):
            assert opt in out
    if command == "bench":
        assert "pytest bench --benchmark-only" in out and "exit code" in out


def test_bench_passes_pytest_exit_code_through(tmp_path, capsys):
    pytest.importorskip("pytest_benchmark")
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "bench_ok.py").write_text(
        "import os\n\ndef bench_ok(benchmark):\n    assert os.environ['UWE_BENCH_SIZE'] == os.environ['WANT_SIZE']\n"
        "    benchmark(sum, [1, 2])\n")
    (bench / "conftest.py").write_text("")
    (tmp_path / "pytest.ini").write_text("[pytest]\npython_files = bench_*.py\npython_functions = bench_*\n")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        os.environ["WANT_SIZE"] = "quick"
        assert cli.main(["bench"]) == 0
        os.environ["WANT_SIZE"] = "full"
        assert cli.main(["bench", "--full"]) == 0
        os.environ["WANT_SIZE"] = "quick"
        (bench / "bench_fail.py").write_text("def bench_fail(benchmark):\n    assert False\n")
        assert cli.main(["bench"]) == 1
    finally:
        os.environ.pop("WANT_SIZE", None)
        os.chdir(cwd)


def test_demo_quick_small_run_writes_results(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    env = {**os.environ, "PYTHONPATH": PACKAGE_PARENT}
    out_dir = tmp_path / "res"
    proc = subprocess.run([sys.executable, "-m", "uwe_kernels", "demo", "--quick", "--seeds", "2", "--cycles", "2",
                           "--pool", "200", "--epochs", "5", "--strategies", "random,uwe,badge,coreset",
                           "--no-progress", "--out-dir", out_dir], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for part in ("Test accuracy on digits", "Pairwise penalty matrix", "corr(|BADGE grad|, u)", "Seconds per cycle"):
        assert part in proc.stdout
    assert (out_dir / "accuracy.png").read_bytes()[:4] == b"\x89PNG"
    data = json.loads((out_dir / "results.json").read_text())
    assert len(data["records"]) == 4 * 2 * 2
    assert (out_dir / "results.csv").read_text().startswith("dataset,strategy,seed,cycle")


def test_demo_rejects_bad_options(capsys):
    rc, _, err = run_cli(["demo", "--seeds", "0", "--no-progress"], capsys)
    assert rc == 2 and "--seeds" in err
