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


_peak_before_kb = 0  # this process's peak before the last restart_peak()


def _maxrss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux reports KiB


def peak_rss_mb() -> float:
    """Peak resident set size of this process over its whole life so far."""
    return max(_peak_before_kb, _maxrss_kb()) / 1024


def restart_peak() -> None:
    """Make :func:`peak_since_mb` the peak from now on: on Linux, writing 5 to
    ``/proc/self/clear_refs`` resets the high-water mark to the current RSS (elsewhere the
    peak stays the lifetime one, an overestimate). :func:`peak_rss_mb` keeps the lifetime peak."""
    global _peak_before_kb
    _peak_before_kb = max(_peak_before_kb, _maxrss_kb())
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_since_mb() -> float:
    """Peak resident set size since the last :func:`restart_peak` (see there)."""
    return _maxrss_kb() / 1024


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
