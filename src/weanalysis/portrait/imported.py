"""Imported portraits: documents computed elsewhere (``weanalysis spark portraits``), served as is.

An app is either *embedded* (its records are stored here and the engine computes any window) or
*imported* (its windows were computed by a cluster and loaded with ``weanalysis portraits
import``): never a silent mix. Importing into an app with stored records is refused, and so are
records for an imported app (rejected, field ``appid``). A window that was not imported is not
answered with made-up zeros: :class:`NotImported` (the WeChat API answers errcode 61501).

The windows live in ``apps/<appid>/imported.jsonl``, one ``{"appid", "begin", "end",
"document"}`` per line (the Spark job's ``--out`` format), replaced atomically on each import.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterable
from pathlib import Path

import orjson

from weanalysis.errors import InputError
from weanalysis.portrait.explore import Explore, ExploreError, previous_window
from weanalysis.portrait.query import DateFormatError, PortraitQuery, PortraitResult, parse_date
from weanalysis.portrait.withhold import withhold_result
from weanalysis.store.days import day_number
from weanalysis.store.files import atomic_write_bytes
from weanalysis.store.snapshot import read_manifest
from weanalysis.store.writer import WriterLock
from weanalysis.wechat.dialect import portrait_result

IMPORTED_FILE = "imported.jsonl"


class NotImported(LookupError):
    """The app is imported and this window is not among its imported windows."""


class ImportRefused(InputError):
    """An import that cannot be done; the message says why (nothing was imported)."""


def is_imported(app_dir: Path) -> bool:
    return (app_dir / IMPORTED_FILE).exists()


def parse_line(appid: str, line: bytes, where: str) -> tuple[tuple[int, int], PortraitResult]:
    """One line of a Spark job's output -> ((begin, end), result); ValueError says what is wrong."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as err:
        raise ValueError(f"{where}: not JSON ({err})") from None
    if not isinstance(obj, dict) or set(obj) != {"appid", "begin", "end", "document"}:
        raise ValueError(f"{where}: expected an object with appid, begin, end, document")
    if obj["appid"] != appid:
        raise ValueError(f"{where}: a window of app {obj['appid']!r}, not {appid!r}")
    try:
        begin, end = parse_date(obj["begin"]), parse_date(obj["end"])
    except DateFormatError as err:
        raise ValueError(f"{where}: {err}") from None
    if begin > end:
        raise ValueError(f"{where}: begin {obj['begin']} is after end {obj['end']}")
    q = PortraitQuery.of(appid, begin, end)
    try:
        result = portrait_result(q, obj["document"])
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    return (q.begin, q.end), result


class ImportedPortraits:
    """The imported windows of one app, reread when the file changes."""

    def __init__(self, app_dir: Path, appid: str):
        self.path = app_dir / IMPORTED_FILE
        self.appid = appid
        self._stat: tuple[int, int] | None = None
        self._windows: dict[tuple[int, int], PortraitResult] = {}

    def _load(self) -> dict[tuple[int, int], PortraitResult]:
        st = self.path.stat()
        stat = (st.st_mtime_ns, st.st_ino)
        if stat != self._stat:
            windows = {}
            for i, line in enumerate(self.path.read_bytes().splitlines(), 1):
                if line.strip():
                    key, result = parse_line(self.appid, line, f"{self.path}:{i}")
                    windows[key] = result
            self._windows, self._stat = windows, stat
        return self._windows

    def get(self, begin: int, end: int) -> PortraitResult:
        result = self._load().get((begin, end))
        if result is None:
            raise NotImported(f"no portrait was imported for {self.appid} {begin}-{end}")
        return result

    def days(self) -> list[int]:
        """The days covered by imported windows, ascending."""
        return sorted({d for b, e in self._load() for d in range(b, e + 1)})


def import_windows(
    data_dir: Path, app_dir: Path, appid: str, sources: Iterable[tuple[str, bytes]]
) -> tuple[int, int]:
    """Check every line of every source, then merge them into the app's imported windows
    (a window imported again is replaced). Returns (windows imported, of which replaced)."""
    _refuse_embedded(app_dir, appid)  # before reading anything: the likeliest mistake
    new: dict[tuple[int, int], bytes] = {}
    for name, data in sources:
        for i, line in enumerate(data.splitlines(), 1):
            if not line.strip():
                continue
            try:
                key, _ = parse_line(appid, line, f"{name}:{i}")
            except ValueError as e:
                raise ImportRefused(str(e)) from None
            new[key] = line.strip()
    if not new:
        raise ImportRefused("nothing to import: no windows in the input")
    app_dir.mkdir(parents=True, exist_ok=True)
    with WriterLock(data_dir):  # no ingest can store records for the app meanwhile
        _refuse_embedded(app_dir, appid)
        old: dict[tuple[int, int], bytes] = {}
        path = app_dir / IMPORTED_FILE
        if path.exists():
            for line in path.read_bytes().splitlines():
                if line.strip():
                    obj = orjson.loads(line)
                    key = (
                        day_number(parse_date(obj["begin"])),
                        day_number(parse_date(obj["end"])),
                    )
                    old[key] = line.strip()
        replaced = len(set(old) & set(new))
        merged = {**old, **new}
        body = b"".join(merged[k] + b"\n" for k in sorted(merged))
        atomic_write_bytes(path, body)
    return len(new), replaced


def _refuse_embedded(app_dir: Path, appid: str) -> None:
    if read_manifest(app_dir)["version"] > 0:
        raise ImportRefused(
            f"app {appid!r} has stored records (it is computed here, embedded): import the "
            "cluster's portraits into an app of its own"
        )


def explore_imported(imp: ImportedPortraits, q: PortraitQuery, ex: Explore) -> PortraitResult:
    """An imported window with what the explorer can add without the records: the previous
    window (when it was imported too) and small groups withheld. Segments and cross-tabs need
    each user's values, which an imported app does not have: :class:`ExploreError`."""
    if ex.where or ex.crosstab is not None:
        raise ExploreError(
            f"app {q.appid} holds imported portraits, not records: --where and --crosstab need "
            "the records"
        )
    result = copy.deepcopy(imp.get(q.begin, q.end))  # withholding must not touch the kept one
    if ex.compare:
        p = previous_window(q)
        with contextlib.suppress(NotImported):
            result.previous = copy.deepcopy(imp.get(p.begin, p.end))
    if ex.min_users > 0:
        withhold_result(result, ex.min_users)
    return result
