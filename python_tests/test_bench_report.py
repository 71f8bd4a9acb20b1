"""bench/report.py on the JSON of a real smoke run of the benchmark suite, so that the report
cannot drift from what the benchmarks record. python_tests/data/bench_smoke.json comes from
`UWE_BENCH_SIZE=smoke python -m pytest bench --benchmark-json=...`, with the fields the report
does not read (per-round data, options, commit) left out."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMOKE_JSON = Path(__file__).resolve().parent / "data" / "bench_smoke.json"


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "bench" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def recorded() -> dict:
    data: dict = json.loads(SMOKE_JSON.read_text())
    return data


def test_the_fixture_is_a_smoke_run_of_every_benchmark_file(recorded):
    files = {b["fullname"].split("::")[0].rsplit("/", 1)[-1] for b in recorded["benchmarks"]}
    assert files == {p.name for p in (ROOT / "bench").glob("bench_*.py")}
    assert {b["extra_info"].get("size") for b in recorded["benchmarks"]} - {None} == {"smoke"}


def test_report_renders_every_group_table2_and_the_goals(report, recorded, tmp_path, capsys):
    assert report.main([str(SMOKE_JSON), "--out", str(tmp_path)]) == 0
    summary = (tmp_path / "summary.md").read_text()
    assert capsys.readouterr().out.startswith(summary)
    groups = {b["group"] for b in recorded["benchmarks"]}
    for group in groups - {g for g in groups if g.startswith("table2:")}:
        assert f"### {group}\n" in summary
    table2 = summary.split("## Table 2 (paper layout)")[1].split("## All groups")[0]
    cifar10_uwe = next(line for line in table2.splitlines() if line.startswith("| CIFAR-10 | UWE | 512 |"))
    cells = [c.strip() for c in cifar10_uwe.split("|")]
    assert "—" not in (cells[5], cells[8]) and cells[10] == "ext: cpp, sel: cpp", cifar10_uwe
    goals = summary.split("## Goals")[1].split("## Table 2")[0]
    assert goals.count("\n| ") >= 8 and "not measured" not in goals.split("| fused CPU UWE")[1].split("\n")[0]


def test_report_rows_carry_the_numbers_of_the_json(report, recorded):
    rows, machine = report.load([SMOKE_JSON])
    assert len(rows) == len(recorded["benchmarks"]) and machine
    by_name = {b["fullname"]: b for b in recorded["benchmarks"]}
    for row in rows:
        raw = by_name[row.raw["fullname"]]
        assert row.best == raw["stats"]["min"] and row.median == raw["stats"]["median"]
        assert row.provider == raw["extra_info"].get("provider", raw["name"])


def test_report_plots_the_scaling_sweeps(report, tmp_path):
    pytest.importorskip("matplotlib")
    rows, _ = report.load([SMOKE_JSON])
    written = report.plots(rows, tmp_path)
    assert sorted(p.name for p in written) == ["select_vs_budget.png", "select_vs_d.png", "select_vs_n.png"]
    assert all(p.stat().st_size > 1000 for p in written)
