"""Executor side: whole input files -> validated, enriched rows, rejects and filter verdicts.

Runs inside Spark's Python workers through ``mapInArrow``; it uses exactly the code of
``weanalysis ingest`` (readers, :class:`~weanalysis.records.validate.Validator`,
:func:`~weanalysis.enrich.pipeline.enrich`, the content part of the idempotency key), so a record
gets the same verdict and the same values on both paths. Nothing here imports PySpark.

Every output row carries its input position ``(file, line)``: files are numbered in input order
(``--visits`` arguments, then ``--profiles``; by name within a glob), lines are line numbers
(CSV, JSON Lines), record numbers (a JSON array) or row numbers (Parquet). That position is the
"stored later" order of SPEC.md sections 2 and 3.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa

from weanalysis.enrich.pipeline import enrich
from weanalysis.ingest import age_buckets, content_lanes
from weanalysis.records import fields
from weanalysis.records.readers import RawChunk, read_csv, read_jsonl, read_parquet
from weanalysis.records.validate import PROFILE, TIME_ABSENT, VISIT, Validator
from weanalysis.spark.catalogue import packed_locations
from weanalysis.store.days import local_days

# what an output row is
ROW, REJECT, FILTERED, SOURCE_ERROR = 0, 1, 2, 3
KIND_CODES = {VISIT: 0, PROFILE: 1}
CHUNK_ROWS = 200_000
LINE_BITS = 40  # seq = file << 40 | line: 2^40 lines per file, 2^23 files

OUT_SCHEMA = pa.schema(
    [
        ("rec", pa.int8()),
        ("kind", pa.int8()),
        ("file", pa.int32()),
        ("line", pa.int64()),
        ("openid", pa.string()),
        ("time_ms", pa.int64()),  # null: an undated profile
        ("day", pa.int32()),  # local day number in the app's time zone; null when undated
        ("event_id", pa.string()),
        ("c0", pa.int64()),  # the content part of the idempotency key (two 64-bit lanes)
        ("c1", pa.int64()),
        ("loc", pa.int32()),  # province_id * 10**6 + city_id, 0 unknown
        ("plat", pa.int8()),
        ("dev", pa.string()),
        ("gender", pa.int8()),
        ("age", pa.int8()),  # age bucket, 0 unknown
        ("reason", pa.string()),  # filter reason, reject bucket, or a source error
        ("detail", pa.string()),  # the reject's reason
        ("text", pa.string()),  # the reject's original text
    ]
)


@dataclass(frozen=True)
class InputFile:
    index: int
    kind: str  # visit | profile
    fmt: str  # jsonl | csv | parquet
    source: str  # the name shown in rejects


@dataclass(frozen=True)
class JobContext:
    """What every executor needs to judge records exactly as the driver would."""

    appid: str
    timezone: str
    now_ms: int  # one "now" for the whole job: the time check must not depend on the executor
    files: dict[str, InputFile]  # by the path Spark reports


class JobValidator(Validator):
    """The ingest validator, for one app: records of another appid are rejected (field appid)."""

    def __init__(self, kind: str, appid: str, now_ms: int):
        super().__init__(kind, lambda a: a == appid, now_ms)
        self.job_appid = appid

    def _appid(self, value: object) -> str | None:
        appid = fields.parse_appid(value)
        if appid is not None and appid != self.job_appid:
            raise fields.FieldError(f"app {appid!r} is not this job's app ({self.job_appid})")
        return appid


def _chunks(content: bytes, f: InputFile) -> Iterator[RawChunk]:
    if f.fmt == "parquet":
        yield from read_parquet(pa.BufferReader(content), CHUNK_ROWS, f.source)
    elif f.fmt == "csv":
        yield from read_csv(io.BufferedReader(io.BytesIO(content)), f.source, CHUNK_ROWS)
    else:
        yield from read_jsonl(io.BufferedReader(io.BytesIO(content)), f.source, CHUNK_ROWS)


def _table(n: int, **cols) -> pa.RecordBatch:
    arrays = []
    for fld in OUT_SCHEMA:
        v = cols.get(fld.name)
        if v is None:
            arrays.append(pa.nulls(n, fld.type))
        else:
            arrays.append(
                pa.array(v, fld.type) if not isinstance(v, pa.Array) else v.cast(fld.type)
            )
    return pa.RecordBatch.from_arrays(arrays, schema=OUT_SCHEMA)


def prepare_chunk(chunk: RawChunk, f: InputFile, ctx: JobContext, tz: ZoneInfo):
    """One raw chunk -> output batches (accepted candidates, rejects, filtered)."""
    validator = JobValidator(f.kind, ctx.appid, ctx.now_ms)
    valid, rejects = validator.validate(chunk)
    kind = KIND_CODES[f.kind]
    if rejects:
        r = len(rejects)
        yield _table(
            r,
            rec=np.full(r, REJECT, np.int8),
            kind=np.full(r, kind, np.int8),
            file=np.full(r, f.index, np.int32),
            line=[x.line for x in rejects],
            reason=[x.kind for x in rejects],
            detail=[x.reason for x in rejects],
            text=[x.text for x in rejects],
        )
    if len(valid) == 0:
        return
    if f.kind == VISIT:
        e = enrich(valid)
        keep = e.filtered == None  # noqa: E711
        dropped = np.flatnonzero(~keep)
        if len(dropped):
            yield _table(
                len(dropped),
                rec=np.full(len(dropped), FILTERED, np.int8),
                kind=np.full(len(dropped), kind, np.int8),
                file=np.full(len(dropped), f.index, np.int32),
                line=valid.lines[dropped],
                reason=list(e.filtered[dropped]),
            )
    else:
        e = None
        keep = np.ones(len(valid), dtype=bool)
    rows = np.flatnonzero(keep)
    if len(rows) == 0:
        return
    take = pa.array(rows, type=pa.int64())
    time_ms = valid.time_ms[rows]
    dated = time_ms != TIME_ABSENT
    day = np.zeros(len(rows), dtype=np.int32)
    day[dated] = local_days(time_ms[dated], tz)
    lanes = content_lanes(valid, rows).view(np.int64)
    n = len(rows)
    cols = dict(
        rec=np.full(n, ROW, np.int8),
        kind=np.full(n, kind, np.int8),
        file=np.full(n, f.index, np.int32),
        line=valid.lines[rows],
        openid=valid.openid.take(take),
        time_ms=pa.array(time_ms, pa.int64(), mask=~dated),
        day=pa.array(day, pa.int32(), mask=~dated),
        event_id=valid.event_id.take(take),
        c0=lanes[:, 0],
        c1=lanes[:, 1],
        gender=valid.gender[rows],
        age=age_buckets(valid.age[rows]),
    )
    if e is not None:
        cols.update(
            loc=packed_locations(e.location[rows]),
            plat=e.platform[rows],
            dev=e.device.take(rows).arrow(),
        )
    yield _table(n, **cols)


def prepare_files(batches: Iterator[pa.RecordBatch], ctx: JobContext) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` body: batches of (path, content) of whole files -> :data:`OUT_SCHEMA`."""
    tz = ZoneInfo(ctx.timezone)
    for batch in batches:
        paths = batch.column("path").to_pylist()
        contents = batch.column("content")
        for i, path in enumerate(paths):
            f = ctx.files.get(path)
            if f is None:  # Spark names a file the driver did not list: never guess its order
                yield _table(1, rec=[SOURCE_ERROR], reason=[f"{path}: not among the listed inputs"])
                continue
            content = contents[i].as_py()
            try:
                for chunk in _chunks(content, f):
                    yield from prepare_chunk(chunk, f, ctx, tz)
            except (ValueError, OSError, UnicodeDecodeError, pa.ArrowException) as e:
                msg = str(e) if str(e).startswith(f.source) else f"{f.source}: {e}"
                yield _table(1, rec=[SOURCE_ERROR], file=[f.index], reason=[msg])
