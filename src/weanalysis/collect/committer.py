"""Group commit: records of many concurrent requests, stored together, each request answered.

A request's records are queued; one writer thread takes everything queued (up to ``max_rows``,
waiting at most ``max_wait_s`` for more), validates and enriches it as one chunk per kind,
commits it durably (fsync, then the manifest), and only then resolves each request's future
with the fate of each of its records. So an answered request is on disk, a request that got no
answer can be re-sent (its records come back as duplicates), and throughput comes from large
commits rather than many small ones.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from weanalysis.errors import StoreError, WeanalysisError
from weanalysis.ingest import ACCEPTED, DUPLICATE, FILTERED, Ingestor
from weanalysis.records.readers import rows_to_chunk
from weanalysis.records.validate import KINDS, PROFILE, VISIT
from weanalysis.store import Store

log = logging.getLogger("weanalysis.collect")
_OUTCOME = {ACCEPTED: "accepted", DUPLICATE: "duplicate"}


@dataclass
class Submission:
    """The records of one request. ``appid``/``ip`` fill records that lack them."""

    rows: list
    appid: str | None = None
    ip: str | None = None
    profiles: bool = False  # whether records may be profiles ("kind": "profile"); else visits
    source: str = "collect"  # for metrics: collect (the beacon) or records_api
    future: Future = field(default_factory=Future)


@dataclass
class Outcome:
    accepted: int = 0
    duplicates: int = 0
    filtered: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "errcode": 0,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "filtered": self.filtered,
            "rejected": [{"index": i, "reason": r} for i, r in sorted(self.rejected)],
        }


class Closed(WeanalysisError, RuntimeError):
    """The committer is shutting down: the request was not stored; send it again later."""


class GroupCommitter:
    def __init__(
        self, store: Store, max_wait_s: float = 0.02, max_rows: int = 200_000, observer=None
    ):
        self.store = store
        # metrics: observe_records(source, outcome, reason, n), observe_commit(seconds, rows)
        self.observer = observer
        self._counts: Counter = Counter()
        self.max_wait_s = max_wait_s
        self.max_rows = max_rows
        self._queue: queue.Queue[Submission | None] = queue.Queue()
        self._writer = store.writer()
        self._ingestors = {k: Ingestor(store, k, writer=self._writer) for k in KINDS}
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()
        self.commits = 0

    def submit(self, sub: Submission) -> Future:
        if self._closed:
            raise Closed("shutting down")
        self._queue.put(sub)
        return sub.future

    def close(self, timeout: float = 30) -> None:
        """Store what is queued, then stop."""
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout)
        self._writer.close()

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                break
            group = [first]
            rows = len(first.rows)
            deadline = time.monotonic() + self.max_wait_s
            while rows < self.max_rows:
                try:
                    nxt = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                group.append(nxt)
                rows += len(nxt.rows)
            started = time.perf_counter()
            try:
                outcomes = self._store(group)
            except Exception as e:  # nothing of the group is acknowledged; clients re-send
                self._counts.clear()  # nothing was stored: nothing to count
                if isinstance(e, StoreError):  # read-only or damaged folder: the message says it
                    log.error("group commit of %d requests failed: %s", len(group), e)
                else:
                    log.exception("group commit of %d requests failed", len(group))
                for sub in group:
                    sub.future.set_exception(e)
                continue
            self.commits += 1
            self._flush_counts()
            if self.observer is not None:
                self.observer.observe_commit(time.perf_counter() - started, rows)
            for sub, out in zip(group, outcomes, strict=True):
                sub.future.set_result(out)
        # anything still queued after close: refuse it, so that its clients re-send
        while True:
            try:
                sub = self._queue.get_nowait()
            except queue.Empty:
                break
            if sub is not None:
                sub.future.set_exception(Closed("shutting down"))

    def _store(self, group: list[Submission]) -> list[Outcome]:
        outcomes = [Outcome() for _ in group]
        by_kind: dict[str, tuple[list[dict], list[tuple[int, int]]]] = {k: ([], []) for k in KINDS}
        for s, sub in enumerate(group):
            for i, row in enumerate(sub.rows):
                kind, rec, reason = _prepare(row, sub)
                if reason is not None:
                    outcomes[s].rejected.append((i, reason))
                    self._observe(sub.source, "rejected", "envelope")
                    continue
                by_kind[kind][0].append(rec)
                by_kind[kind][1].append((s, i))
        for kind in (VISIT, PROFILE):  # visits first: a user's profile may follow its visit
            recs, where = by_kind[kind]
            if not recs:
                continue
            n = len(recs)
            chunk = rows_to_chunk("request", recs, list(range(n)), [""] * n, [])
            result = self._ingestors[kind].process_chunk(chunk)
            for r in result.rejects:
                s, i = where[r.index]
                outcomes[s].rejected.append((i, r.reason))
                self._observe(group[s].source, "rejected", r.kind)
            for pos, reason in result.filtered.items():
                self._observe(group[where[pos][0]].source, "filtered", reason)
            status = result.status
            for code, attr in (
                (ACCEPTED, "accepted"),
                (DUPLICATE, "duplicates"),
                (FILTERED, "filtered"),
            ):
                for pos in np.flatnonzero(status == code):
                    o = outcomes[where[pos][0]]
                    setattr(o, attr, getattr(o, attr) + 1)
                    if code != FILTERED:
                        self._observe(group[where[pos][0]].source, _OUTCOME[code], "")
        return outcomes

    def _observe(self, source: str, outcome: str, reason: str) -> None:
        self._counts[(source, outcome, reason)] += 1

    def _flush_counts(self) -> None:
        if self.observer is not None:
            for (source, outcome, reason), n in self._counts.items():
                self.observer.observe_records(source, outcome, reason, n)
        self._counts.clear()


def _prepare(row: object, sub: Submission) -> tuple[str, dict, str | None]:
    """Check the envelope of one record and fill in what the request knows."""
    if not isinstance(row, dict):
        return "", {}, "not a JSON object"
    kind = row.get("kind", VISIT)
    if kind not in KINDS or (kind == PROFILE and not sub.profiles):
        allowed = "visit or profile" if sub.profiles else "visit"
        return "", {}, f"kind: must be {allowed}"
    rec = row
    if sub.appid is not None:
        appid = row.get("appid")
        if appid is None:
            rec = {**rec, "appid": sub.appid}
        elif appid != sub.appid:
            return "", {}, f"appid: {appid!r} differs from the request's app {sub.appid!r}"
    if kind == VISIT and sub.ip and rec.get("ip") is None:
        rec = {**rec, "ip": sub.ip}
    return kind, rec, None
