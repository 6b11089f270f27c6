"""Runs: the lists of sorted runs each derived structure is kept as, and their merge policy.

A commit appends a run of its own records; the newest run is merged into the one before it
while it is at least half its size (an eighth for the base run, so the recent runs a query
folds at read time stay small), or when there are too many. Every entry is thus rewritten
O(log n) times, and a commit writes O(its own records).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from weanalysis.store import files
from weanalysis.store.snapshot import NO_FIRST_DAY
from weanalysis.store.summaries import (
    LOG_COLUMNS,
    VISIT_ATTRS,
    log_of_base,
    pack,
    partial_rows,
    read_times,
    stored_packed,
    times_table,
    unpack,
)

MAX_RUNS = 8
# A recent run is merged into the base run once it reaches this fraction of it, so the recent
# runs a query folds at read time stay small next to the base.
BASE_FRACTION = 8


def merge_next(runs: list, size: int) -> bool:
    """Whether a new run of ``size`` entries merges with the newest of ``runs``: recent runs
    stay geometric (each at most half the one before), the base run stays BASE_FRACTION times
    larger than the recent ones."""
    if not runs:
        return False
    factor = BASE_FRACTION if len(runs) == 1 else 2
    return factor * size >= runs[-1][1] or len(runs) >= MAX_RUNS


def merges_into_previous(sizes: list[int], most: int = MAX_RUNS) -> bool:
    """Whether the newest of segments of these sizes (oldest first) merges into the one before
    it: while it is at least half that one's size, or there are more than ``most`` (the key
    segments' and the user index's rule: no base run)."""
    return len(sizes) >= 2 and (2 * sizes[-1] >= sizes[-2] or len(sizes) > most)


def stored_day(run: dict[str, np.ndarray]) -> dict:
    """A day run's files: uids, the packed columns and the rows with an unknown column (what
    queries read), and the times apart, compressed (see :func:`times_table`)."""
    return {
        "uid": run["uid"],
        "packed": stored_packed(pack(run)),
        "partial": partial_rows(run),
        "times": times_table(run),
    }


def load_day(path: Path) -> dict[str, np.ndarray]:
    """A day run's columns and times (read whole: a merge rewrites them)."""
    packed = files.load_npy(path / "packed.npy", mmap=False)
    run = {"uid": files.load_npy(path / "uid.npy", mmap=False)}
    times = read_times(path / "times.parquet", len(run["uid"]))
    for i, a in enumerate(VISIT_ATTRS):
        run[a] = unpack(packed, a)
        run[a + "_t"] = np.ascontiguousarray(times[:, i])
    return run


def load_person(path: Path) -> dict[str, np.ndarray]:
    """A person log run (a base run by user, or a recent run by key) as a log run of keys,
    times and values (read whole: a merge rewrites it)."""
    if (path / "off.npy").exists():
        cols = ("off", "slot", "t", "val")
        return log_of_base({c: files.load_npy(path / f"{c}.npy", mmap=False) for c in cols})
    return {c: files.load_npy(path / f"{c}.npy", mmap=False) for c in LOG_COLUMNS}


def first_base(base: np.ndarray, pairs: np.ndarray, num_users: int) -> np.ndarray:
    """A full first-day array: ``base`` lowered by (uid, day) ``pairs``."""
    out = np.full(max(num_users, len(base)), NO_FIRST_DAY, dtype=np.int32)
    out[: len(base)] = base
    u = pairs[:, 0]  # one pair per user
    out[u] = np.minimum(out[u], pairs[:, 1])
    return out


def fold_first(older: np.ndarray, newer: np.ndarray) -> np.ndarray:
    """Two runs of (uid, day) pairs as one: the earliest day per uid."""
    both = np.concatenate([older, newer])
    both = both[np.lexsort((both[:, 1], both[:, 0]))]
    first = np.ones(len(both), dtype=bool)
    first[1:] = both[1:, 0] != both[:-1, 0]
    return both[first]
