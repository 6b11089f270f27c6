"""``weanalysis ingest``: files of visits or profiles into the store."""

from __future__ import annotations

import os
import sys

import click
import orjson

from weanalysis.cli.common import echo_json, fail, open_store
from weanalysis.ingest import Ingestor
from weanalysis.records.readers import DEFAULT_CHUNK_ROWS, FORMATS, Reject, detect_format
from weanalysis.records.validate import KINDS, VISIT


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
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write each rejected record (file, line, reason, text) as JSON Lines to this file.",
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
    """Ingest FILE... (JSON Lines, CSV or Parquet; '-' reads JSON Lines from standard input).

    Exit status: 0 when every record was accepted, filtered or a duplicate; 1 when some were
    rejected; 2 for a usage error.
    """
    sources = []
    for path in files:
        if path != "-" and not os.path.isfile(path):
            fail(f"no such file: {path}")
        if path != "-" and not os.access(path, os.R_OK):
            fail(f"cannot read {path}")
        try:
            sources.append((path, detect_format(path, fmt)))
        except ValueError as e:
            fail(str(e))
    store = open_store(ctx)
    rej_file = open(rejects, "wb") if rejects else None  # noqa: SIM115 - closed below

    def on_reject(r: Reject) -> None:
        if rej_file:
            rej_file.write(orjson.dumps(r.as_dict()) + b"\n")

    total_bytes = sum(os.path.getsize(p) for p, _ in sources if p != "-")
    show = progress if progress is not None else sys.stderr.isatty()
    bar = None
    if show and total_bytes:
        from tqdm import tqdm

        bar = tqdm(total=total_bytes, unit="B", unit_scale=True, desc="ingest", file=sys.stderr)
    ing = Ingestor(store, kind, on_reject=on_reject)
    try:
        total, per_file = ing.ingest_sources(
            sources,
            chunk_rows=chunk_rows,
            stdin=sys.stdin.buffer,
            progress=(lambda _p, n: bar.update(n)) if bar else None,
        )
    except ValueError as e:
        fail(str(e))
    finally:
        ing.close()
        if bar:
            bar.close()
        if rej_file:
            rej_file.close()
    out = total.as_dict()
    out["files"] = [{"file": p, **s.as_dict()} for p, s in per_file]
    if as_json:
        echo_json(out)
    else:
        for p, s in per_file:
            click.echo(
                f"{p}: {s.accepted} accepted, {s.duplicates} duplicates, "
                f"{s.filtered} filtered, {s.rejected} rejected"
            )
        click.echo(
            f"total: {total.accepted} accepted, {total.duplicates} duplicates, "
            f"{total.filtered} filtered, {total.rejected} rejected"
        )
        for reason, n in sorted(total.filtered_reasons.items()):
            click.echo(f"  filtered ({reason}): {n}")
        for reason, n in sorted(total.rejected_reasons.items()):
            click.echo(f"  rejected ({reason}): {n}")
        if total.rejected and rejects:
            click.echo(f"rejected records written to {rejects}")
    sys.exit(1 if total.rejected else 0)
