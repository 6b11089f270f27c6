"""``weanalysis spark``: the portrait computed by Apache Spark (optional extra ``spark``)."""

from __future__ import annotations

import os
import sys
from importlib import resources

import click

from weanalysis.cli.common import echo_json, fail
from weanalysis.portrait.query import DateFormatError, parse_date
from weanalysis.records import fields
from weanalysis.records.readers import FORMATS
from weanalysis.store.catalog import DEFAULT_TIMEZONE, check_timezone
from weanalysis.store.days import day_number

# set by the spark-submit entry script: the master then comes from spark-submit
SUBMITTED_ENV = "WEANALYSIS_SPARK_SUBMIT"
DEFAULT_DAYS = "1,7,30"
MAX_WINDOW_DAYS = 366


@click.group()
def spark() -> None:
    """Compute portraits with Apache Spark (pip install 'weanalysis[spark]'; Java 17+)."""


def _day(value: str, option: str) -> int:
    try:
        return day_number(parse_date(value))
    except DateFormatError as e:
        fail(f"{option}: {e}")


def _lengths(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part.isascii() or not part.isdigit() or not 1 <= int(part) <= MAX_WINDOW_DAYS:
            fail(f"--days: {text!r} is not a list of window lengths in days (e.g. 1,7,30)")
        if int(part) not in out:
            out.append(int(part))
    return out


def _conf(pairs: tuple[str, ...]) -> dict[str, str]:
    conf = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not key.strip():
            fail(f"--conf {p!r}: expected KEY=VALUE")
        conf[key.strip()] = value
    return conf


@spark.command("portraits")
@click.option(
    "--master",
    default=None,
    help="Spark master (local[2], yarn, k8s://..., spark://...). Default: the one spark-submit "
    "gives, else local[*].",
)
@click.option("--appid", required=True, help="The app whose records these are.")
@click.option(
    "--timezone",
    default=None,
    help=f"IANA time zone of the app's days. Default: the app's, with --store; else "
    f"{DEFAULT_TIMEZONE}.",
)
@click.option(
    "--visits",
    multiple=True,
    metavar="PATH",
    help="Visit files: a file, directory or glob, any path Spark reads (hdfs://, s3a://). "
    "Repeatable; input order is argument order, then by name within a glob.",
)
@click.option("--profiles", multiple=True, metavar="PATH", help="Profile files, like --visits.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="Force the format of every input (default: by extension).",
)
@click.option(
    "--store",
    metavar="DATA_DIR",
    default=None,
    help="Read an embedded data folder's stored records instead of files.",
)
@click.option("--end", default=None, help="Last day of the windows (yyyymmdd or yyyy-mm-dd).")
@click.option("--end-from", default=None, help="First of a range of last days (a backfill).")
@click.option("--end-to", default=None, help="Last of a range of last days (inclusive).")
@click.option(
    "--days",
    default=DEFAULT_DAYS,
    show_default=True,
    help="Window lengths in days, comma-separated (WeChat: 1,7,30).",
)
@click.option(
    "--out",
    required=True,
    metavar="FILE",
    help="Where the documents go, one JSON object per window; '-': standard output.",
)
@click.option(
    "--rejects",
    metavar="DIR",
    default=None,
    help="Directory for the rejected records (JSON Lines part files: file, line, reason, text).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option(
    "--conf",
    "confs",
    multiple=True,
    metavar="KEY=VALUE",
    help="Extra Spark configuration (repeatable), e.g. spark.driver.memory=8g.",
)
@click.option(
    "--partitions",
    type=click.IntRange(1),
    default=None,
    help="Partitions of the per-user data (default: spark.sql.shuffle.partitions).",
)
def portraits(
    master,
    appid,
    timezone,
    visits,
    profiles,
    fmt,
    store,
    end,
    end_from,
    end_to,
    days,
    out,
    rejects,
    as_json,
    confs,
    partitions,
) -> None:
    """Compute the portraits of every window with Apache Spark.

    Reads the same files as `weanalysis ingest` (or an embedded data folder with --store),
    validates and enriches them inside the executors with weanalysis' own code, and writes one
    line per window to --out: {"appid", "begin", "end", "document"}, where document is exactly
    what the WeChat API returns. Exit status: 0, or 1 when some records were rejected (the
    documents are written all the same), 2 for a usage error or an unreadable input.
    """
    try:
        fields.parse_appid(appid)
    except fields.FieldError as e:
        fail(f"--appid: {e}")
    if store and (visits or profiles):
        fail("give either --store or --visits/--profiles, not both")
    if not store and not visits and not profiles:
        fail("nothing to read: give --visits (and --profiles) or --store")
    if out != "-" and "://" not in out:
        parent = os.path.dirname(os.path.abspath(out))
        if not os.path.isdir(parent) or os.path.isdir(out):
            fail(f"--out {out}: not a file in an existing folder")
    if as_json and out == "-":
        fail("--json and --out - both want standard output: give --out a file")
    if end and (end_from or end_to):
        fail("give either --end or --end-from/--end-to, not both")
    if end:
        ends = [_day(end, "--end")]
    elif end_from and end_to:
        lo, hi = _day(end_from, "--end-from"), _day(end_to, "--end-to")
        if lo > hi:
            fail(f"--end-from {end_from} is after --end-to {end_to}")
        ends = list(range(lo, hi + 1))
    else:
        fail("give --end, or both --end-from and --end-to")
    lengths = _lengths(days)
    if timezone is not None:
        try:
            check_timezone(timezone)
        except ValueError as e:
            fail(f"--timezone: {e}")
    conf = _conf(confs)
    try:
        from weanalysis.spark import job, plan
    except ImportError as e:  # pragma: no cover - depends on the installation
        fail(f"PySpark is not installed ({e}): pip install 'weanalysis[spark]'")

    spec = job.JobSpec(
        appid=appid, timezone=timezone or DEFAULT_TIMEZONE, ends=ends, lengths=lengths
    )
    spec.partitions = partitions
    if store:
        _from_store(spec, store, timezone)
    else:
        spec.visits, spec.profiles, spec.fmt, spec.rejects = (
            list(visits),
            list(profiles),
            fmt,
            rejects,
        )
    if master is None and not os.environ.get(SUBMITTED_ENV):
        master = "local[*]"

    def progress(msg: str) -> None:
        if not as_json or sys.stderr.isatty():
            click.echo(f"spark: {msg}", err=True)

    progress(f"starting Spark ({master or 'from spark-submit'})")
    session = plan.session(master, conf, app_name=f"weanalysis portraits {appid}")
    try:
        result = job.run(session, spec, progress)
        job.write_out(session, out, appid, result.windows)
    except plan.JobError as e:
        fail(str(e))
    if as_json:
        body = result.summary.as_dict()
        body["kinds"] = {k: s.as_dict() for k, s in result.by_kind.items()}
        body["windows"] = len(result.windows)
        echo_json(body)
    else:
        s = result.summary
        click.echo(
            f"{s.accepted} accepted, {s.duplicates} duplicates, {s.filtered} filtered, "
            f"{s.rejected} rejected; {len(result.windows)} windows written to {out}",
            err=out == "-",
        )
    sys.exit(1 if result.summary.rejected else 0)


_HELD_SNAPSHOTS: list = []


def _from_store(spec, data: str, timezone: str | None) -> None:
    from pathlib import Path

    from weanalysis.store.catalog import Catalog
    from weanalysis.store.snapshot import AppSnapshot, StoreFormatError

    path = Path(data)
    if not (path / "catalog.sqlite").exists():
        fail(f"no data folder at {path}")
    catalog = Catalog(path / "catalog.sqlite")
    try:
        app = catalog.get(spec.appid)
    finally:
        catalog.close()
    if app is None:
        fail(f"app {spec.appid!r} is not registered in {path}")
    spec.timezone = timezone or app.timezone
    spec.store_app_dir = (path / "apps" / spec.appid).resolve()
    try:
        # the snapshot holds a reader lease for the life of this process, so the raw segments
        # its manifest names stay on disk while the job reads them (a writer merging small
        # segments meanwhile deletes the old ones only once no lease covers them)
        snap = AppSnapshot(spec.store_app_dir)
    except StoreFormatError as e:
        fail(str(e))
    from weanalysis.store.days import day_date
    from weanalysis.store.retention import retained_from

    start = retained_from(snap.manifest)
    if start is not None:
        # the job derives first visits and gender/age from raw records alone: once retention
        # deleted some, its answers would differ from the store's, so it does not run
        snap.close()
        fail(
            f"app {spec.appid}'s retention deleted its records of days before "
            f"{day_date(start).isoformat()}: the cluster job reads raw records only and cannot "
            "compute its portraits (serve them from this data folder instead)"
        )
    _HELD_SNAPSHOTS.append(snap)
    spec.store_manifest = snap.manifest


@spark.command("job-path")
def job_path() -> None:
    """Print the path of the job's entry script, for spark-submit."""
    click.echo(str(resources.files("weanalysis.spark") / "entry.py"))
