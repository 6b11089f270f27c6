"""A tiny run of ``python -m bench``, so the benchmark can never break unnoticed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_tiny_bench_runs_and_every_engine_agrees(tmp_path: Path) -> None:
    work = tmp_path / "bench"
    args = ["--dau", "1500", "--days", "31", "--jsonl-rows", "500", "--repeat", "1"]
    args += ["--server-seconds", "0", "--no-progress", "--workdir", str(work)]
    out = subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    table = out.stdout
    assert "| documents equal (1/7/30 d)" in table
    line = next(ln for ln in table.splitlines() if ln.startswith("| documents equal"))
    assert "| yes" in line
    rows = ("Polars packed peer 30 d", "DuckDB packed peer 30 d", "bytes per stored visit")
    for row in (*rows, "portrait memory, peak allocated", "30 d ending the day before"):
        assert row in table
    assert "peak disk while ingesting" in table and "peak RSS" in table
    assert (work / "results.md").exists()


@pytest.mark.slow
def test_small_collect_requests_grow_the_folder_by_their_own_size(tmp_path: Path) -> None:
    from bench import collect_disk

    r = collect_disk.run(tmp_path, base_visits=30_000, requests=20, batch=10, progress=False)
    assert r["stored"] == 200
    # a store that copied the day per commit would grow by 20 × the day; O(own records) grows by
    # a few kilobytes a request
    assert r["largest_growth_bytes"] < r["before_bytes"] / 2, r
