"""Records into a store the way users put them there: a JSON Lines file through the Ingestor."""

from __future__ import annotations

import json
from pathlib import Path

from weanalysis.ingest import Ingestor, Summary
from weanalysis.store import Store


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    return path


def ingest_file(store: Store, path: Path, kind: str = "visit", chunk_rows: int = 1000) -> Summary:
    """Ingest one JSON Lines file; the total summary."""
    ing = Ingestor(store, kind)
    try:
        total, _ = ing.ingest_sources([(str(path), "jsonl")], chunk_rows=chunk_rows)
    finally:
        ing.close()
    return total


def ingest_rows(store: Store, path: Path, rows: list[dict], kind: str = "visit") -> Summary:
    """Write ``rows`` to ``path`` as JSON Lines and ingest them."""
    return ingest_file(store, write_jsonl(path, rows), kind)
