"""The results table (Markdown, printed and written to ``results.md``) and machine facts."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

DASH = "–"


@dataclass
class Row:
    measure: str
    ours: str
    baseline: str = DASH
    ratio: str = DASH
    target: str = DASH


def render(rows: list[Row]) -> str:
    head = Row("measure", "weanalysis", "DuckDB baseline", "ratio", "target")
    cells = [[r.measure, r.ours, r.baseline, r.ratio, r.target] for r in [head, *rows]]
    widths = [max(len(c[i]) for c in cells) for i in range(5)]

    def line(c: list[str]) -> str:
        return "| " + " | ".join(s.ljust(w) for s, w in zip(c, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), sep, *(line(c) for c in cells[1:])])


def ms(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1000:.1f} ms" if seconds < 0.1 else f"{seconds * 1000:.0f} ms"


def rate(n: float, seconds: float) -> str:
    return f"{n / seconds:,.0f}/s" if seconds > 0 else DASH


def mb(nbytes: float) -> str:
    return f"{nbytes / 1e6:,.0f} MB" if nbytes >= 1e7 else f"{nbytes / 1e6:,.1f} MB"


def tick(ok: bool) -> str:
    return "✓" if ok else "✗ MISSED"


def du(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024**2:.0f} GiB"
    except OSError:
        pass
    return "?"


def _git_head() -> str:
    try:
        root = Path(__file__).resolve().parent.parent
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return head + (" + uncommitted src changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "?"


def machine_rows() -> list[Row]:
    cores = os.cpu_count() or 0
    versions = (
        f"python {platform.python_version()}, numpy {np.__version__}, "
        f"pyarrow {pa.__version__}, duckdb {duckdb.__version__}"
    )
    return [
        Row("machine", f"{cores} cores, {_memory()}, {_cpu_model()}"),
        Row("software", versions),
        Row("weanalysis commit", _git_head()),
        Row("command", " ".join(["python -m bench", *sys.argv[1:]])),
    ]
