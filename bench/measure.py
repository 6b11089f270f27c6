"""What is measured: ingest through the CLI's Ingestor, and portraits through compute()."""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from bench.phases import peak_since_mb, restart_peak
from weanalysis.ingest import Ingestor, Summary
from weanalysis.portrait.embedded import EmbeddedSource
from weanalysis.portrait.engine import compute
from weanalysis.portrait.query import PortraitQuery
from weanalysis.records.readers import DEFAULT_CHUNK_ROWS, Reject
from weanalysis.store import AppSnapshot, Store
from weanalysis.wechat.dialect import portrait_document


@dataclass
class IngestResult:
    summary: Summary
    seconds: float
    peak_rss_mb: float = 0.0  # the process's, from the start of this ingest to its end

    @property
    def records(self) -> int:
        s = self.summary
        return s.accepted + s.duplicates + s.filtered + s.rejected


def ingest_files(
    store: Store, kind: str, files: list[tuple[Path, str]], desc: str, progress: bool = True
) -> IngestResult:
    """What ``weanalysis ingest --kind KIND FILE...`` does, with the CLI's default chunk size."""
    rejects: list[Reject] = []
    total_bytes = sum(os.path.getsize(p) for p, _ in files)
    bar = tqdm(
        total=total_bytes,
        unit="B",
        unit_scale=True,
        desc=desc,
        file=sys.stderr,
        disable=not progress,
    )

    def on_progress(*args: object) -> None:  # (path, bytes) or (bytes), by weanalysis version
        n = args[-1]
        bar.update(n if isinstance(n, int) else 0)

    restart_peak()  # what the ingest holds at its peak, not what ran before it
    t0 = time.perf_counter()
    ing = Ingestor(store, kind, on_reject=rejects.append)
    try:
        total, _ = ing.ingest_sources(
            [(str(p), fmt) for p, fmt in files],
            chunk_rows=DEFAULT_CHUNK_ROWS,
            progress=on_progress,
        )
    finally:
        ing.close()
        bar.close()
    return IngestResult(total, time.perf_counter() - t0, peak_since_mb())


def weanalysis_document(store: Store, q: PortraitQuery) -> dict:
    """One portrait on a fresh snapshot: nothing is cached across calls."""
    snap = store.snapshot(q.appid)
    return portrait_document(compute(EmbeddedSource(snap), q))


def live_bytes(app_dir: Path) -> int:
    """Bytes of the files an app's manifest names (the rest is garbage readers may still use)."""
    return sum(live_parts(app_dir).values())


def live_parts(app_dir: Path) -> dict[str, int]:
    """:func:`live_bytes` by part of the store: its top folder (raw segments, day summaries,
    keys, person logs, user segments, and meta: first days, the view, per-day counts)."""
    snap = AppSnapshot(app_dir)
    parts: dict[str, int] = {}
    try:
        for f in snap.live_files():
            top = f.relative_to(app_dir).parts[0]
            parts[top] = parts.get(top, 0) + f.stat().st_size
        return parts
    finally:
        snap.close()


class DiskSampler:
    """The largest size of a folder seen while inside ``with``, sampled in a thread."""

    def __init__(self, path: Path, every_s: float = 0.2):
        self.path = path
        self.every_s = every_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> None:
        total = 0
        for root, _, names in os.walk(self.path):
            for n in names:
                try:
                    total += os.lstat(os.path.join(root, n)).st_size
                except FileNotFoundError:
                    pass  # removed while walking
        self.peak = max(self.peak, total)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.sample()

    def __enter__(self) -> DiskSampler:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self.sample()
