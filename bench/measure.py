"""What is measured: ingest through the CLI's Ingestor, and portraits through compute()."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from weanalysis.ingest import Ingestor, Summary
from weanalysis.portrait.embedded import EmbeddedSource
from weanalysis.portrait.engine import compute
from weanalysis.portrait.query import PortraitQuery
from weanalysis.records.readers import DEFAULT_CHUNK_ROWS, Reject
from weanalysis.store import Store
from weanalysis.wechat.dialect import portrait_document


@dataclass
class IngestResult:
    summary: Summary
    seconds: float

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
    return IngestResult(total, time.perf_counter() - t0)


def weanalysis_document(store: Store, q: PortraitQuery) -> dict:
    """One portrait on a fresh snapshot: nothing is cached across calls."""
    snap = store.snapshot(q.appid)
    return portrait_document(compute(EmbeddedSource(snap), q))


def live_bytes(app_dir: Path) -> int:
    """Bytes of the files an app's manifest names (the rest is garbage within its grace time)."""
    m = json.loads((app_dir / "manifest.json").read_text())
    names = [*m["raw"], *m["user_segments"], *m["keys"], *m["days"].values()]
    names += [n for n in (m["first_day"], m["devices"], *m["persons"].values()) if n]
    total = 0
    for n in names:
        p = app_dir / n
        files = [p] if p.is_file() else [f for f in p.rglob("*") if f.is_file()]
        total += sum(f.stat().st_size for f in files)
    return total
