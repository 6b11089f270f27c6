"""Phase timing and memory, logged to standard error."""

from __future__ import annotations

import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Phase:
    name: str
    seconds: float
    peak_rss_mb: float
    note: str = ""


@dataclass
class PhaseLog:
    phases: list[Phase] = field(default_factory=list)

    @contextmanager
    def phase(self, name: str) -> Iterator[Phase]:
        log(f"{name} ...")
        p = Phase(name, 0.0, 0.0)
        t0 = time.perf_counter()
        try:
            yield p
        finally:
            p.seconds = time.perf_counter() - t0
            p.peak_rss_mb = peak_rss_mb()
            self.phases.append(p)
            extra = f" ({p.note})" if p.note else ""
            log(
                f"{name}: {p.seconds:.2f} s{extra}; RSS {rss_mb():,.0f} MB, "
                f"peak so far {p.peak_rss_mb:,.0f} MB"
            )


def timed_runs(fn: Callable[[], T], repeat: int, label: str) -> tuple[float, list[float], T]:
    """1 warm-up + ``repeat`` timed calls; returns (median seconds, all timed seconds, result)."""
    t0 = time.perf_counter()
    result = fn()
    warm = time.perf_counter() - t0
    times: list[float] = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times) if times else warm
    runs = ", ".join(f"{t * 1000:.0f}" for t in times)
    log(f"  {label}: warm-up {warm * 1000:.0f} ms, runs [{runs}] ms, median {med * 1000:.0f} ms")
    return med, times, result


def peak_allocated(fn: Callable[[], object]) -> int:
    """Bytes allocated at the peak of one call of ``fn`` (tracemalloc: Python objects and numpy
    arrays; memory-mapped store files are the page cache's, not the query's)."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
