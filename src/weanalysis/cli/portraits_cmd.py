"""``weanalysis portraits import``: serve portraits computed by a cluster (weanalysis spark)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from weanalysis.cli.common import echo_json, fail, open_store, registered_app
from weanalysis.portrait.imported import ImportRefused, import_windows


@click.group()
def portraits() -> None:
    """Portraits computed elsewhere (by `weanalysis spark portraits`)."""


@portraits.command("import")
@click.option("--appid", required=True, help="The registered app the windows belong to.")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.pass_context
def import_cmd(ctx, appid, files, as_json) -> None:
    """Load FILE... (the --out of `weanalysis spark portraits`; '-': standard input).

    `weanalysis serve` then answers the WeChat API and the dashboard for those windows, with the
    documents exactly as computed. The app must be registered and hold no stored records (an app
    is either embedded or imported); a window imported again is replaced. Every line is checked
    before anything is written: one bad line and nothing is imported.
    """
    store = open_store(ctx, create=False)
    registered_app(store, appid)
    sources = []
    for path in files:
        try:
            data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
        except OSError as e:
            fail(f"cannot read {path}: {e.strerror}")
        sources.append((path, data))
    try:
        count, replaced = import_windows(store.dir, store.app_dir(appid), appid, sources)
    except ImportRefused as e:
        fail(str(e))
    if as_json:
        echo_json({"appid": appid, "imported": count, "replaced": replaced})
    else:
        click.echo(f"imported {count} windows for {appid} ({replaced} replaced)")
