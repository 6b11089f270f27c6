"""``weanalysis ingest``: files of visits or profiles into the store."""

from __future__ import annotations

import os
import sys

import click
import orjson

from weanalysis.cli.common import echo_json, open_store
from weanalysis.errors import StoreReadOnlyError
from weanalysis.ingest import Ingestor, SourceError, Summary
from weanalysis.records.readers import (
    DEFAULT_CHUNK_ROWS,
    FORMATS,
    Reject,
    check_readable,
    check_source,
    detect_format,
    is_regular,
)
from weanalysis.records.validate import KINDS, VISIT

SHOWN_REJECTS = 5  # without --rejects, the first few are printed so the user sees why


@click.command()
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option(
    "--kind",
    type=click.Choice(KINDS),
    default=VISIT,
    show_default=True,
    help="What the files hold.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="Force the format (default: by extension; '-' is JSON Lines).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the summary as one JSON object on standard output.",
)
@click.option(
    "--rejects",
    metavar="FILE",
    default=None,
    help="Write rejected records (file, line, reason, text) as JSON Lines; '-': stderr.",
)
@click.option(
    "--chunk-rows",
    type=click.IntRange(1000),
    default=DEFAULT_CHUNK_ROWS,
    show_default=True,
    help="Records per commit.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar (default: when standard error is a terminal).",
)
@click.pass_context
def ingest(ctx, files, kind, fmt, as_json, rejects, chunk_rows, progress) -> None:
    """Ingest FILE... (JSON Lines, CSV or Parquet; '-' reads standard input).

    Prints accepted / duplicates / filtered / rejected counts. Exit status: 0 when no record was
    rejected, 1 when some were, 2 for a usage error or an unreadable file (what was read before
    it stays stored, and the summary says so).
    """
    sources = []
    for path in files:
        check_source(path)  # a FIFO or a device is read as a stream
        f = detect_format(path, fmt)
        check_readable(path, f)
        sources.append((path, f))
    store = open_store(ctx)
    if store.catalog.read_only:
        raise StoreReadOnlyError(store.dir, "ingest records")
    shown: list[Reject] = []
    if rejects == "-":
        rej_file = sys.stderr.buffer
    else:
        rej_file = open(rejects, "wb") if rejects else None  # noqa: SIM115 - closed below

    def on_reject(r: Reject) -> None:
        if rej_file:
            rej_file.write(orjson.dumps(r.as_dict()) + b"\n")
        elif len(shown) < SHOWN_REJECTS:
            shown.append(r)

    total_bytes = sum(os.path.getsize(p) for p, _ in sources if p != "-" and is_regular(p))
    show = progress if progress is not None else sys.stderr.isatty()
    bar = None
    if show:
        from tqdm import tqdm

        bar = tqdm(
            total=total_bytes or None, unit="B", unit_scale=True, desc="ingest", file=sys.stderr
        )
    ing = Ingestor(store, kind, on_reject=on_reject)
    error = None
    try:
        total, per_file = ing.ingest_sources(
            sources,
            chunk_rows=chunk_rows,
            stdin=sys.stdin.buffer,
            progress=bar.update if bar else None,
        )
    except SourceError as e:
        error, total, per_file = str(e), e.total, e.per_file
    finally:
        ing.close()
        if bar:
            bar.close()
        if rej_file and rej_file is not sys.stderr.buffer:
            rej_file.close()
    report(total, per_file, as_json, rejects, shown, error)
    if error:
        sys.exit(2)
    sys.exit(1 if total.rejected else 0)


def report(total: Summary, per_file, as_json: bool, rejects, shown: list[Reject], error) -> None:
    if as_json:
        out = total.as_dict()
        out["files"] = [{"file": p, **s.as_dict()} for p, s in per_file]
        if error:
            out["error"] = error
        echo_json(out)
    else:
        for p, s in per_file:
            click.echo(
                f"{p}: {s.accepted} accepted, {s.duplicates} duplicates, "
                f"{s.filtered} filtered, {s.rejected} rejected"
            )
        if len(per_file) > 1:
            click.echo(
                f"total: {total.accepted} accepted, {total.duplicates} duplicates, "
                f"{total.filtered} filtered, {total.rejected} rejected"
            )
        for reason, n in sorted(total.filtered_reasons.items()):
            click.echo(f"  filtered ({reason}): {n}")
        for reason, n in sorted(total.rejected_reasons.items()):
            click.echo(f"  rejected ({reason}): {n}")
        for r in shown:
            click.echo(f"  {r.source}:{r.line}: {r.reason}")
        if total.rejected and not rejects:
            more = " (the first ones above)" if shown else ""
            click.echo(f"  all rejected records with their reasons{more}: add --rejects FILE")
        elif total.rejected and rejects not in (None, "-"):
            click.echo(f"rejected records written to {rejects}")
    if error:
        click.echo(
            f"error: {error} (the records above were stored; re-running is harmless)", err=True
        )
