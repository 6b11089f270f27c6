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
    for row in ("Polars packed peer 30 d", "DuckDB packed peer 30 d", "bytes per stored visit"):
        assert row in table
    assert "peak disk while ingesting" in table and "peak RSS" in table
    assert (work / "results.md").exists()
