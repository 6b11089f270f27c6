"""The Spark plan of the portrait: a handful of shuffles, and only the final lists collected.

1. **Prepare** (no shuffle): whole input files go through :func:`.prepare.prepare_files` in the
   executors (``mapInArrow``): the project's own readers, validator and enrichment.
2. **Dedup** (shuffle 1): group by idempotency key (the event id, else kind + user + content
   lanes); the record first in input order is kept (``min`` over a struct led by its position).
3. **User days** (shuffle 2, by user): one row per (user, day) -- undated profiles on a slot before
   every day -- holding each attribute's latest known value that day, packed ``slot * 2^32 +
   value`` so that "latest in the window" is a plain ``max``; a sort inside each user's partition
   marks the user's first day and the (user, day) rows where gender or age changed. The result
   is cached, partitioned by user.
4. **Per end day** (no shuffle: the cache is already partitioned by user): one pass groups the
   rows of the longest window plus the person change points by user and gives every window
   ending that day at once; the per-user values are exploded into (window, set) rows and counted
   with GROUPING SETS (shuffle 3, a few thousand rows). Only those counts reach the driver.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from weanalysis import dims
from weanalysis.errors import UserError
from weanalysis.portrait.query import PortraitQuery, PortraitResult
from weanalysis.records.readers import FORMATS, detect_format
from weanalysis.spark import catalogue
from weanalysis.spark.prepare import (
    FILTERED,
    KIND_CODES,
    LINE_BITS,
    OUT_SCHEMA,
    REJECT,
    ROW,
    SOURCE_ERROR,
    InputFile,
    JobContext,
    prepare_files,
)

# mapInArrow checks the pandas version (it uses no pandas feature): its warning is noise
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
VISIT, PROFILE = KIND_CODES["visit"], KIND_CODES["profile"]
LONG_MIN = -(2**63)
SLOT_SHIFT = 32  # visit attributes: slot << 32 | value
PERSON_SHIFT = dims.VALUE_BITS  # gender, age bucket: slot << 4 | value
UNDATED_SLOT = 1  # day d sits on slot d + 2; an undated profile before every day
SETS = {0: "new", 1: "active"}


class JobError(UserError):
    """Bad input for the job (no such file, unreadable file...): one line for the user."""


@dataclass
class Inputs:
    files: dict[str, InputFile] = field(default_factory=dict)  # by the path Spark reports

    def by_index(self) -> dict[int, InputFile]:
        return {f.index: f for f in self.files.values()}


def session(
    master: str | None, conf: dict[str, str] | None = None, app_name: str = "weanalysis"
) -> SparkSession:
    """A SparkSession; local masters get a quiet one (no UI) with few shuffle partitions."""
    b = SparkSession.builder.appName(app_name)
    conf = dict(conf or {})
    if master:
        b = b.master(master)
    if master and master.startswith("local"):
        # executors are Python workers of this very interpreter (and its installed packages)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        conf.setdefault("spark.ui.enabled", "false")
        conf.setdefault("spark.sql.shuffle.partitions", "4")
        conf.setdefault("spark.ui.showConsoleProgress", "false")
    for k, v in conf.items():
        b = b.config(k, v)
    spark = b.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


# -- inputs ---------------------------------------------------------------------------------


def _hadoop_fs(spark: SparkSession, pattern: str):
    jvm = spark._jvm
    path = jvm.org.apache.hadoop.fs.Path(pattern)
    return path, path.getFileSystem(spark._jsc.hadoopConfiguration())


def list_files(spark: SparkSession, pattern: str) -> list[str]:
    """The files a path, directory or glob names (any Hadoop file system), sorted by name."""
    path, fs = _hadoop_fs(spark, pattern)
    statuses = fs.globStatus(path)
    if not statuses:
        raise JobError(f"no file matches {pattern}")
    out: list[str] = []
    for st in statuses:
        if st.isDirectory():
            for child in fs.listStatus(st.getPath()):
                name = child.getPath().getName()
                if child.isFile() and not name.startswith(("_", ".")):
                    out.append(child.getPath().toString())
        else:
            out.append(st.getPath().toString())
    if not out:
        raise JobError(f"{pattern} holds no files")
    return sorted(out)


def _shown(path: str) -> str:
    """The name a reject shows: local paths without the ``file:`` scheme, as ingest shows them."""
    return path[len("file:") :] if path.startswith("file:/") else path


def list_inputs(
    spark: SparkSession, visits: Iterable[str], profiles: Iterable[str], fmt: str | None
) -> Inputs:
    """Number every input file in input order: visits first, then profiles (argument order,
    then by name within a glob) -- the order two ``weanalysis ingest`` runs would store them."""
    if fmt is not None and fmt not in FORMATS:
        raise JobError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    inputs = Inputs()
    for kind, patterns in (("visit", visits), ("profile", profiles)):
        for pattern in patterns:
            for path in list_files(spark, pattern):
                if path in inputs.files:
                    raise JobError(f"{_shown(path)} is named twice in the inputs")
                try:
                    f = detect_format(path, fmt)
                except ValueError as e:
                    raise JobError(str(e)) from None
                inputs.files[path] = InputFile(len(inputs.files), kind, f, _shown(path))
    if not inputs.files:
        raise JobError("no input: give --visits (and --profiles) or --store")
    return inputs


def prepared(spark: SparkSession, inputs: Inputs, ctx: JobContext) -> DataFrame:
    """Every input record as an output row of :func:`prepare_files` (cached: read once)."""
    # one file per Arrow batch: a worker holds one file's bytes at a time; and one file per task
    # (a file is never split: its lines need their numbers), so files spread over the executors
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "1")
    spark.conf.set("spark.sql.files.maxPartitionBytes", "1m")
    raw = spark.read.format("binaryFile").load(list(inputs.files)).select("path", "content")
    schema = from_arrow_schema(OUT_SCHEMA)
    out = raw.mapInArrow(functools.partial(prepare_files, ctx=ctx), schema)
    return out.persist(StorageLevel.MEMORY_AND_DISK)


def records_of_store(spark: SparkSession, app_dir: Path, manifest: dict) -> DataFrame:
    """An embedded data folder's stored records (already validated, enriched and deduplicated)
    as deduplicated rows; ``seq`` is the store's own storage order."""
    ages = F.array(*[F.lit(b) for b in catalogue.AGE_BUCKETS])
    frames = []
    for kind, prefix in ((VISIT, "raw/visits-"), (PROFILE, "raw/profiles-")):
        segs = [str(app_dir / s) for s in manifest["raw"] if s.startswith(prefix)]
        if not segs:
            continue
        df = spark.read.parquet(*segs)
        age = F.when(F.col("age").isNull(), F.lit(0)).otherwise(
            F.element_at(ages, F.col("age").cast("int") + 1)
        )
        if kind == VISIT:
            loc = F.col("province_id").cast("int") * catalogue.LOC_PACK + F.col("city_id")
            plat, dev = F.col("platform"), F.col("device")
        else:
            loc, plat, dev = F.lit(0), F.lit(0), F.lit(None).cast("string")
        frames.append(
            df.select(
                F.col("seq").cast("long").alias("seq"),
                F.lit(kind).cast("byte").alias("kind"),
                # the user's dense id stands for the openid (one per user; raw segments
                # keep no openids since storage format 4)
                F.col("uid").cast("string").alias("openid"),
                F.col("time_ms").cast("long").alias("time_ms"),
                F.col("day").cast("int").alias("day"),
                loc.cast("int").alias("loc"),
                plat.cast("byte").alias("plat"),
                dev.alias("dev"),
                F.col("gender").cast("byte").alias("gender"),
                age.cast("byte").alias("age"),
            )
        )
    if not frames:
        return None
    out = frames[0]
    for f in frames[1:]:
        out = out.unionByName(f)
    return out


# -- the plan -------------------------------------------------------------------------------


def deduplicated(rows: DataFrame) -> DataFrame:
    """SPEC.md 2.1: a record with an event id is keyed by it (across kinds), one without by its
    kind, user and content; the first in input order is kept."""
    rows = rows.filter(F.col("rec") == ROW)
    has_event = F.col("event_id").isNotNull()
    seq = F.shiftleft(F.col("file").cast("long"), LINE_BITS).bitwiseOR(F.col("line"))
    keyed = rows.select(
        F.col("event_id").alias("k_event"),
        *[F.when(~has_event, F.col(c)).alias(f"k_{c}") for c in ("kind", "openid", "c0", "c1")],
        F.struct(
            seq.alias("seq"),
            *[F.col(c) for c in ("kind", "openid", "time_ms", "day", "loc", "plat", "dev")],
            *[F.col(c) for c in ("gender", "age")],
        ).alias("r"),
    )
    first = keyed.groupBy("k_event", "k_kind", "k_openid", "k_c0", "k_c1").agg(
        F.min("r").alias("r")
    )
    return first.select("r.*")


def _latest(cond: Column, value: str) -> Column:
    """The value of the latest row (by time, then input order) where ``cond`` holds."""
    t = F.coalesce(F.col("time_ms"), F.lit(LONG_MIN))
    return F.max(F.when(cond, F.struct(t.alias("t"), F.col("seq"), F.col(value).alias("v")))).v


def user_days(records: DataFrame, partitions: int | None = None) -> DataFrame:
    """One row per (user, slot), partitioned by user and cached (see the module docstring)."""
    slot = F.coalesce(F.col("day") + 2, F.lit(UNDATED_SLOT))
    visit = F.col("kind") == VISIT
    by_user = (
        records.repartition(partitions, "openid") if partitions else records.repartition("openid")
    )
    days = by_user.groupBy("openid", slot.alias("slot")).agg(
        F.max(F.when(visit, 1).otherwise(0)).alias("active"),
        _latest(visit & (F.col("loc") != 0), "loc").alias("loc"),
        _latest(visit & (F.col("plat") != 0), "plat").alias("plat"),
        _latest(visit & F.col("dev").isNotNull(), "dev").alias("dev"),
        _latest(F.col("gender") > 0, "gender").alias("g"),
        _latest(F.col("age") > 0, "age").alias("a"),
        F.sum(F.when(visit, 1).otherwise(0)).alias("n_visits"),
        F.sum(F.when(visit, 0).otherwise(1)).alias("n_profiles"),
    )
    user = Window.partitionBy("openid")
    before = user.orderBy("slot").rowsBetween(Window.unboundedPreceding, -1)
    day = F.col("slot") - 2
    slot_hi = F.col("slot").cast("long")

    def changed(c: str) -> Column:
        prev = F.last(F.col(c), ignorenulls=True).over(before)
        return F.col(c).isNotNull() & (prev.isNull() | (prev != F.col(c)))

    def packed(c: str) -> Column:
        return F.when(F.col(c).isNotNull(), F.shiftleft(slot_hi, SLOT_SHIFT) + F.col(c))

    out = days.select(
        "openid",
        "slot",
        F.when(F.col("slot") != UNDATED_SLOT, day).alias("day"),
        "active",
        (
            (F.col("active") == 1) & (day == F.min(F.when(F.col("active") == 1, day)).over(user))
        ).alias("first"),
        packed("loc").alias("locp"),
        packed("plat").alias("platp"),
        F.when(
            F.col("dev").isNotNull(), F.struct(slot_hi.alias("s"), F.col("dev").alias("v"))
        ).alias("devs"),
        F.when(changed("g"), F.shiftleft(slot_hi, PERSON_SHIFT) + F.col("g")).alias("gp"),
        F.when(changed("a"), F.shiftleft(slot_hi, PERSON_SHIFT) + F.col("a")).alias("ap"),
        "n_visits",
        "n_profiles",
    )
    return out.persist(StorageLevel.MEMORY_AND_DISK)


def window_counts(days: DataFrame, end: int, lengths: list[int]) -> DataFrame:
    """Counts for every window ``[end - L + 1, end]``, L in ``lengths``: one pass, no shuffle
    but the final (tiny) GROUPING SETS one."""
    longest = max(lengths)
    d, s = F.col("day"), F.col("slot")
    e_slot = end + 2
    rows = days.filter(
        ((F.col("active") == 1) & d.between(end - longest + 1, end))
        | ((F.col("gp").isNotNull() | F.col("ap").isNotNull()) & (s <= e_slot))
    )
    aggs = [
        F.max(F.when(s <= e_slot, F.col("gp"))).alias("gp"),
        F.max(F.when(s <= e_slot, F.col("ap"))).alias("ap"),
    ]
    for L in lengths:
        inside = (F.col("active") == 1) & d.between(end - L + 1, end)
        aggs += [
            F.max(F.when(inside, 1)).alias(f"act{L}"),
            F.max(F.when(inside & F.col("first"), 1)).alias(f"new{L}"),
            F.max(F.when(inside, F.col("locp"))).alias(f"loc{L}"),
            F.max(F.when(inside, F.col("platp"))).alias(f"plat{L}"),
            F.max(F.when(inside, F.col("devs"))).alias(f"dev{L}"),
        ]
    users = rows.groupBy("openid").agg(*aggs).filter(F.col(f"act{longest}").isNotNull())
    low = (1 << SLOT_SHIFT) - 1
    person_low = (1 << PERSON_SHIFT) - 1
    g = F.coalesce(F.col("gp").bitwiseAND(person_low), F.lit(0)).cast("int")
    a = F.coalesce(F.col("ap").bitwiseAND(person_low), F.lit(0)).cast("int")
    entries = []
    for L in lengths:
        vals = [
            F.coalesce(F.col(f"loc{L}").bitwiseAND(low), F.lit(0)).cast("int").alias("loc"),
            F.coalesce(F.col(f"plat{L}").bitwiseAND(low), F.lit(0)).cast("int").alias("plat"),
            F.col(f"dev{L}").v.alias("dev"),
            g.alias("g"),
            a.alias("a"),
        ]
        for set_id, flag in ((0, f"new{L}"), (1, f"act{L}")):
            entries.append(
                F.when(
                    F.col(flag).isNotNull(),
                    F.struct(F.lit(L).alias("L"), F.lit(set_id).alias("s"), *vals),
                )
            )
    exploded = users.select(
        F.explode(F.filter(F.array(*entries), lambda x: x.isNotNull())).alias("x")
    )
    flat = exploded.select("x.*")
    base = ["L", "s"]
    return flat.groupingSets(
        [base, [*base, "loc"], [*base, "plat"], [*base, "dev"], [*base, "g"], [*base, "a"]],
        "L",
        "s",
        "loc",
        "plat",
        "dev",
        "g",
        "a",
    ).agg(F.grouping_id().alias("gid"), F.count(F.lit(1)).alias("n"))


def results(appid: str, end: int, lengths: list[int], counts: list) -> list[PortraitResult]:
    """Collected GROUPING SETS rows -> one :class:`PortraitResult` per window."""
    # grouping_id bits, highest first: L s loc plat dev g a (1 = aggregated away)
    column_of_gid = {0b0001111: "loc", 0b0010111: "plat", 0b0011011: "dev"}
    column_of_gid |= {0b0011101: "gender", 0b0011110: "age"}
    field_of = {"loc": "loc", "plat": "plat", "dev": "dev", "gender": "g", "age": "a"}
    totals = {(L, s): 0 for L in lengths for s in SETS}
    per_column: dict[tuple[int, int], dict[str, dict]] = {k: {} for k in totals}
    for row in counts:
        key = (row["L"], row["s"])
        column = column_of_gid.get(row["gid"])
        if column is None:
            totals[key] = row["n"]
        else:
            per_column[key].setdefault(column, {})[row[field_of[column]]] = row["n"]
    out = []
    for L in lengths:
        new, active = (catalogue.user_set(totals[(L, s)], per_column[(L, s)]) for s in SETS)
        out.append(PortraitResult(PortraitQuery(appid, end - L + 1, end), new, active))
    return out


def summary_counts(parsed: DataFrame) -> list:
    """(rec, kind, reason, n) for every kind of outcome: a few dozen rows."""
    return parsed.groupBy("rec", "kind", "reason").agg(F.count(F.lit(1)).alias("n")).collect()


__all__ = [
    "FILTERED",
    "REJECT",
    "SOURCE_ERROR",
    "JobError",
    "deduplicated",
    "list_inputs",
    "prepared",
    "records_of_store",
    "results",
    "session",
    "summary_counts",
    "user_days",
    "window_counts",
]
