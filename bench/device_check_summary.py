"""summary.md for a bench/device_check.sh run: the steps, then one line per benchmark row."""
from __future__ import annotations

import json
import pathlib
import sys


def fmt(row: dict) -> str:
    if "skipped" in row:
        return f"| {row['row']} | skipped: {row['skipped']} |"
    if "error" in row:
        return f"| {row['row']} | ERROR {row['error'][:160]} |"
    parts = []
    for key in ("pick_s", "s", "floor_s"):
        if key in row:
            parts.append(f"{key} {row[key] * 1e3:.3f} ms")
    if "floor_fraction" in row:
        parts.append(f"{100 * row['floor_fraction']:.0f}% of floor")
    for key in ("copy_Bps", "read_Bps"):
        if key in row:
            parts.append(f"{key[:-4]} {row[key] / 1e9:.0f} GB/s")
    for key in ("kcenter_greedy", "kmeans_pp"):
        if key in row and isinstance(row[key], bool):
            parts.append(f"{key} same picks: {row[key]}")
    return f"| {row['row']} | {', '.join(parts)} |"


def main() -> None:
    out = pathlib.Path(sys.argv[1])
    print("# Device check\n")
    steps = out / "steps.tsv"
    if steps.exists():
        print("| step | rc | seconds |\n| --- | --- | --- |")
        for line in steps.read_text().splitlines()[1:]:
            print("| " + " | ".join(line.split("\t")) + " |")
    report_path = out / "device_check.json"
    if not report_path.exists():
        print("\nno device_check.json: the benchmark step did not start")
        return
    report = json.loads(report_path.read_text())
    env = report.get("env", {})
    print(f"\n{env.get('gpu', 'no GPU')} (capability {env.get('capability')}), torch {env.get('torch')}, "
          f"package {report.get('package')}, rehearse={report.get('rehearse')}\n")
    print("| row | result |\n| --- | --- |")
    for row in report["rows"]:
        print(fmt(row))
    peers = {r["provider"]: r for r in report["rows"] if "provider" in r and "pick_s" in r}
    if "uwe_kernels" in peers:
        ours = peers["uwe_kernels"]["pick_s"]
        print()
        for name, row in peers.items():
            if name != "uwe_kernels":
                print(f"- uwe_kernels is {row['pick_s'] / ours:.1f}x faster per pick than {name} "
                      f"(n = {row['n']:,}, budget {row['budget']}, "
                      f"same leading picks: {row.get('same_leading_picks')})")


if __name__ == "__main__":
    main()
