"""The whole Spark job: inputs -> summary, rejects and one WeChat document per window.

Driver-side orchestration only; the data work is in :mod:`.plan` and :mod:`.prepare`.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from weanalysis.ingest import Summary
from weanalysis.portrait.query import PortraitResult
from weanalysis.spark import plan
from weanalysis.spark.prepare import FILTERED, KIND_CODES, REJECT, ROW, SOURCE_ERROR, JobContext
from weanalysis.store.days import day_date
from weanalysis.wechat.dialect import portrait_document

KIND_NAMES = {v: k for k, v in KIND_CODES.items()}


@dataclass
class JobSpec:
    appid: str
    timezone: str
    ends: list[int]  # day numbers of the windows' last days
    lengths: list[int]  # window lengths in days
    visits: list[str] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)
    fmt: str | None = None
    store_app_dir: Path | None = None  # read an embedded data folder's records instead
    store_manifest: dict | None = None
    rejects: str | None = None  # a directory (any Hadoop path) for the rejected records
    now_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    partitions: int | None = None  # partitions of the per-user data (default: Spark's)
    measure: bool = False  # also count the (user, day) rows and their cached bytes (bench)


@dataclass
class JobResult:
    summary: Summary
    by_kind: dict[str, Summary]
    windows: list[PortraitResult]
    seconds: dict[str, float] = field(default_factory=dict)  # per phase
    measures: dict[str, int] = field(default_factory=dict)  # with JobSpec.measure


def _cached_bytes(spark: SparkSession) -> int:
    infos = spark.sparkContext._jsc.sc().getRDDStorageInfo()
    return sum(int(i.memSize()) + int(i.diskSize()) for i in infos)


def _summaries(counts: list, accepted: dict[int, int]) -> tuple[Summary, dict[str, Summary]]:
    by_kind = {k: Summary() for k in KIND_CODES}
    rows: Counter = Counter()
    for r in counts:
        kind = KIND_NAMES.get(r["kind"])
        if r["rec"] == ROW:
            rows[r["kind"]] += r["n"]
        elif r["rec"] == REJECT:
            by_kind[kind].rejected += r["n"]
            by_kind[kind].rejected_reasons[r["reason"]] += r["n"]
        elif r["rec"] == FILTERED:
            by_kind[kind].filtered += r["n"]
            by_kind[kind].filtered_reasons[r["reason"]] += r["n"]
    for code, kind in KIND_NAMES.items():
        by_kind[kind].accepted = accepted.get(code, 0)
        by_kind[kind].duplicates = rows[code] - accepted.get(code, 0)
    total = Summary()
    for s in by_kind.values():
        total.add(s)
    return total, by_kind


def run(
    spark: SparkSession, spec: JobSpec, progress: Callable[[str], None] | None = None
) -> JobResult:
    """Run the job; raises :class:`plan.JobError` for bad input (nothing is written then)."""
    say = progress or (lambda m: None)
    seconds: dict[str, float] = {}
    measures: dict[str, int] = {}
    clock = [time.perf_counter()]

    def lap(name: str) -> None:
        now = time.perf_counter()
        seconds[name] = seconds.get(name, 0.0) + now - clock[0]
        clock[0] = now

    if spec.store_app_dir is not None:
        say(f"reading the stored records of {spec.appid}")
        records = plan.records_of_store(spark, spec.store_app_dir, spec.store_manifest)
        parsed = None
    else:
        inputs = plan.list_inputs(spark, spec.visits, spec.profiles, spec.fmt)
        say(f"validating and enriching {len(inputs.files)} files in the executors")
        ctx = JobContext(spec.appid, spec.timezone, spec.now_ms, inputs.files)
        parsed = plan.prepared(spark, inputs, ctx)
        counts = plan.summary_counts(parsed)
        lap("prepare")
        if spec.measure:
            measures["input_rows"] = sum(r["n"] for r in counts)
            measures["prepared_bytes"] = _cached_bytes(spark)
        errors = [r for r in counts if r["rec"] == SOURCE_ERROR]
        if errors:
            parsed.unpersist()
            raise plan.JobError(errors[0]["reason"])
        if spec.rejects:
            _write_rejects(spark, parsed, inputs, spec.rejects)
        records = plan.deduplicated(parsed)
        lap("rejects")
    if records is None:  # an empty data folder
        days = None
        accepted: dict[int, int] = {}
    else:
        say("one row per (user, day)")
        days = plan.user_days(records, spec.partitions)
        tot = days.agg(F.sum("n_visits").alias("v"), F.sum("n_profiles").alias("p")).first()
        accepted = {
            KIND_CODES["visit"]: int(tot["v"] or 0),
            KIND_CODES["profile"]: int(tot["p"] or 0),
        }
        lap("dedup and user days")
        if spec.measure:
            before = measures.get("prepared_bytes", 0)
            measures["user_day_rows"] = days.count()
            measures["user_day_bytes"] = _cached_bytes(spark) - before
            lap("measure")
    if parsed is not None:
        total, by_kind = _summaries(counts, accepted)
    else:
        by_kind = {k: Summary() for k in KIND_CODES}
        for code, kind in KIND_NAMES.items():
            by_kind[kind].accepted = accepted.get(code, 0)
        total = Summary()
        for s in by_kind.values():
            total.add(s)
    windows: list[PortraitResult] = []
    for i, end in enumerate(spec.ends):
        say(f"windows ending {day_date(end):%Y%m%d} ({i + 1}/{len(spec.ends)})")
        if days is None:
            windows += plan.results(spec.appid, end, spec.lengths, [])
            continue
        rows = plan.window_counts(days, end, spec.lengths).collect()
        windows += plan.results(spec.appid, end, spec.lengths, rows)
        lap("windows")
    if days is not None:
        days.unpersist()
    if parsed is not None:
        parsed.unpersist()
    return JobResult(total, by_kind, windows, seconds, measures)


def _write_rejects(spark: SparkSession, parsed, inputs: plan.Inputs, where: str) -> None:
    """The rejected records as JSON Lines part files, in input order, written by the executors."""
    names = F.create_map(
        *[x for f in inputs.files.values() for x in (F.lit(f.index), F.lit(f.source))]
    )
    rej = parsed.filter(F.col("rec") == REJECT).orderBy("file", "line")
    rej.select(
        names[F.col("file")].alias("file"),
        "line",
        F.col("detail").alias("reason"),
        "text",
    ).write.mode("overwrite").option("ignoreNullFields", "false").json(where)


def window_line(appid: str, result: PortraitResult) -> bytes:
    """One line of ``--out``: ``{"appid", "begin", "end", "document"}``."""
    q = result.query
    return orjson.dumps(
        {
            "appid": appid,
            "begin": f"{day_date(q.begin):%Y%m%d}",
            "end": f"{day_date(q.end):%Y%m%d}",
            "document": portrait_document(result),
        }
    )


def write_out(spark: SparkSession, where: str, appid: str, windows: list[PortraitResult]) -> None:
    """The documents (a few KB each) to a local file, or any Hadoop path (hdfs://, s3a://)."""
    data = b"".join(window_line(appid, r) + b"\n" for r in windows)
    if where == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    if "://" not in where:
        tmp = Path(where).with_name(Path(where).name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(where)
        return
    path, fs = plan._hadoop_fs(spark, where)
    out = fs.create(path, True)
    try:
        out.write(bytearray(data))
    finally:
        out.close()
