"""Ingest: sources -> read -> validate -> enrich -> idempotency keys -> store, with a summary.

Used by the CLI for files; the HTTP collectors feed :meth:`Ingestor.process_chunk`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO

import numpy as np
import pyarrow as pa

from weanalysis import dims
from weanalysis.enrich.pipeline import enrich, load_device_names, save_device_names
from weanalysis.errors import UserError
from weanalysis.portrait.imported import is_imported
from weanalysis.records.fields import FieldError
from weanalysis.records.readers import DEFAULT_CHUNK_ROWS, RawChunk, Reject, read_records
from weanalysis.records.validate import PROFILE, VISIT, Validator, ValidChunk
from weanalysis.store import Batch, Store, Writer
from weanalysis.store.dedup import content_lanes, event_keys

DEVICE_NAMES_FILE = "device-names.json"
AGE_BUCKETS = np.array([dims.age_bucket(a) for a in range(dims.MAX_AGE + 1)], dtype=np.int8)


@dataclass
class Summary:
    accepted: int = 0
    duplicates: int = 0
    filtered: int = 0
    rejected: int = 0
    filtered_reasons: Counter = field(default_factory=Counter)
    rejected_reasons: Counter = field(default_factory=Counter)

    def add(self, other: Summary) -> None:
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.filtered += other.filtered
        self.rejected += other.rejected
        self.filtered_reasons.update(other.filtered_reasons)
        self.rejected_reasons.update(other.rejected_reasons)

    def as_dict(self) -> dict:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "filtered": self.filtered,
            "rejected": self.rejected,
            "filtered_reasons": dict(sorted(self.filtered_reasons.items())),
            "rejected_reasons": dict(sorted(self.rejected_reasons.items())),
        }


def age_buckets(age: np.ndarray) -> np.ndarray:
    out = np.zeros(len(age), dtype=np.int8)
    known = age >= 0
    out[known] = AGE_BUCKETS[age[known]]
    return out


ACCEPTED, DUPLICATE, FILTERED, REJECTED = 0, 1, 2, 3


@dataclass
class ChunkOutcome:
    """What happened to each row of a chunk, plus the rejects (also of unparsable lines)."""

    status: np.ndarray  # int8 per row: ACCEPTED, DUPLICATE, FILTERED or REJECTED
    rejects: list[Reject]
    filtered: dict[int, str]  # row -> filter reason

    def summary(self) -> Summary:
        s = Summary(
            accepted=int((self.status == ACCEPTED).sum()),
            duplicates=int((self.status == DUPLICATE).sum()),
            filtered=len(self.filtered),
            rejected=len(self.rejects),
        )
        s.filtered_reasons.update(self.filtered.values())
        s.rejected_reasons.update(r.kind for r in self.rejects)
        return s


@dataclass
class Prepared:
    """A chunk validated and enriched, with its batches ready for the store."""

    out: ChunkOutcome
    raw_index: np.ndarray  # position in the raw chunk of each valid row
    batches: list[tuple[str, np.ndarray, Batch]]


def _by_app(valid: ValidChunk, keep: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The kept rows of each app, in appid order."""
    if valid.apps is None:
        return [
            (appid, np.flatnonzero(keep & (valid.appid == appid)))
            for appid in np.unique(valid.appid[keep])
        ]
    codes = valid.apps.idx
    present = np.flatnonzero(np.bincount(codes[keep], minlength=len(valid.apps.values)))
    by_app: dict[str, list[int]] = {}  # two raw values may name one app (e.g. padded)
    for code in present.tolist():
        by_app.setdefault(valid.apps.values[code], []).append(code)
    if len(by_app) == 1:
        return [(appid, np.flatnonzero(keep)) for appid in by_app]
    return [
        (appid, np.flatnonzero(keep & np.isin(codes, by_app[appid]))) for appid in sorted(by_app)
    ]


class Ingestor:
    """Validates, enriches and stores chunks of one kind of record."""

    def __init__(
        self,
        store: Store,
        kind: str = VISIT,
        on_reject: Callable[[Reject], None] | None = None,
        writer: Writer | None = None,
        compact: bool = True,
    ):
        self.store = store
        self.kind = kind
        self.validator = Validator(kind, self._registered)
        self._own_writer = writer is None
        self.writer = writer or store.writer()
        self.on_reject = on_reject
        self._touched: set[str] = set()  # apps this ingest stored records of
        self._compact = compact
        load_device_names(store.dir / DEVICE_NAMES_FILE)

    def _registered(self, appid: str) -> bool:
        if self.store.catalog.get(appid) is None:
            return False
        if is_imported(self.store.app_dir(appid)):  # never a silent mix of the two
            raise FieldError(
                f"app {appid!r} holds portraits imported from a cluster (weanalysis portraits "
                "import): its records are not stored here"
            )
        return True

    def close(self) -> None:
        """Compact what this ingest stored (one run per day and log, for fast queries), then
        let go of the writer."""
        try:
            for appid in sorted(self._touched) if self._compact else ():
                self.writer.compact(self.store.catalog.get(appid))
        finally:
            save_device_names(self.store.dir / DEVICE_NAMES_FILE)
            if self._own_writer:
                self.writer.close()

    def process_chunk(self, chunk: RawChunk) -> ChunkOutcome:
        """Validate, enrich and store one chunk; the fate of each of its rows."""
        return self.store_prepared(self.prepare(chunk))

    def prepare(self, chunk: RawChunk) -> Prepared:
        """Everything before the store (validate, enrich, keys): safe to run in another thread."""
        out = ChunkOutcome(np.full(len(chunk), REJECTED, dtype=np.int8), [], {})
        valid, out.rejects = self.validator.validate(chunk)
        # holds no column of the raw chunk or of the valid rows: only the batches' own copies
        # stay in memory while they wait for the store
        prepared = Prepared(out, valid.raw_index, [])
        if len(valid) == 0:
            return prepared
        if self.kind == VISIT:
            e = enrich(valid)
            keep = e.filtered == None  # noqa: E711
            for i in np.flatnonzero(~keep):
                out.filtered[int(valid.raw_index[i])] = e.filtered[i]
            out.status[valid.raw_index[~keep]] = FILTERED
        else:
            e = None
            keep = np.ones(len(valid), dtype=bool)
        prepared.batches = [
            (appid, rows, self._batch(valid, e, rows)) for appid, rows in _by_app(valid, keep)
        ]
        return prepared

    def store_prepared(self, p: Prepared) -> ChunkOutcome:
        out = p.out
        if self.on_reject:
            for r in out.rejects:
                self.on_reject(r)
        for appid, rows, batch in p.batches:
            r = self.writer.commit(self.store.catalog.get(appid), batch)
            if r.accepted:
                self._touched.add(appid)
            out.status[p.raw_index[rows]] = np.where(r.kept, ACCEPTED, DUPLICATE)
        return out

    def _batch(self, v: ValidChunk, e, rows: np.ndarray) -> Batch:
        every = len(rows) == len(v)  # the common case: one app, nothing filtered
        take = pa.array(rows, type=pa.int64())

        def texts(a: pa.Array) -> pa.Array:
            return a if every else a.take(take)

        def values(a: np.ndarray) -> np.ndarray:
            return a if every else a[rows]

        age = values(v.age)
        event_id = texts(v.event_id)
        b = Batch(
            kind=v.kind,
            openid=texts(v.openid),
            time_ms=values(v.time_ms),
            content=content_lanes(v, rows),
            event_id=event_id,
            events=event_keys(event_id),
            gender=values(v.gender),
            age=age,
            age_bucket=age_buckets(age),
            raw={},
        )
        if v.kind == VISIT:
            b.location = values(e.location)
            b.platform = values(e.platform)
            b.device = e.device.take(rows)
            b.raw["ip"] = pa.array(values(v.ip), pa.string())
            for name in ("brand", "model", "user_agent"):
                b.raw[name] = getattr(v, name).take(rows).arrow()
        return b

    def ingest_sources(
        self,
        sources: Iterable[tuple[str, str]],
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        stdin: IO[bytes] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[Summary, list[tuple[str, Summary]]]:
        """Ingest every source in turn; ``progress`` gets byte counts as they are read.

        A source that cannot be read raises :class:`SourceError`, which carries what the
        sources before it (and the part of it already read) stored.
        """
        total = Summary()
        per_file: list[tuple[str, Summary]] = []
        # Two stages on two cores: the next chunk is read, validated and enriched in a worker
        # thread while this one is committed (numpy and Arrow release the GIL in bulk work).
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare") as pool:
            for path, fmt in sources:
                fs = Summary()
                per_file.append((path, fs))
                chunks = read_records(path, fmt, chunk_rows, stdin=stdin, on_bytes=progress)

                def next_prepared(chunks=chunks) -> Prepared | None:
                    chunk = next(chunks, None)
                    return None if chunk is None else self.prepare(chunk)

                try:
                    pending = pool.submit(next_prepared)
                    while (prepared := pending.result()) is not None:
                        pending = pool.submit(next_prepared)
                        fs.add(self.store_prepared(prepared).summary())
                except (ValueError, OSError, UnicodeDecodeError, pa.ArrowException) as e:
                    total.add(fs)
                    msg = str(e) if str(e).startswith(path) else f"{path}: {e}"
                    raise SourceError(msg, total, per_file) from None
                total.add(fs)
        return total, per_file


class SourceError(UserError):
    """A source could not be read; what was stored before stays stored (and is summarised)."""

    def __init__(self, message: str, total: Summary, per_file: list[tuple[str, Summary]]):
        super().__init__(message)
        self.total = total
        self.per_file = per_file


__all__ = ["PROFILE", "VISIT", "Ingestor", "SourceError", "Summary"]
