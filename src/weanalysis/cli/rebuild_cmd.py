"""``weanalysis rebuild``: re-derive an app's derived structures from its stored raw records."""

from __future__ import annotations

import sys
import time

import click
from tqdm import tqdm

from weanalysis.cli.common import echo_json, fail, open_store, registered_app


@click.command()
@click.option("--appid", required=True, help="The registered app.")
@click.option("--no-progress", is_flag=True, help="No progress bar on standard error.")
@click.pass_context
def rebuild(ctx: click.Context, appid: str, no_progress: bool) -> None:
    """Re-derive APPID's day summaries, first days, person logs and device names from its
    stored raw records, and publish them at once (readers keep their snapshot meanwhile).

    Converts a data folder written by an older weanalysis to this storage format; every
    portrait is the same before and after. Prints a one-line JSON summary.
    """
    store = open_store(ctx, create=False)
    app = registered_app(store, appid)
    if not (store.app_dir(appid) / "manifest.json").exists():
        fail(f"app {appid!r} has no stored records: nothing to rebuild")
    bar = tqdm(
        total=0, unit="rows", unit_scale=True, desc="rebuild", file=sys.stderr, disable=no_progress
    )

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    t0 = time.perf_counter()
    writer = store.writer()
    try:
        m = writer.rebuild(app, progress=progress)
    finally:
        writer.close()
        bar.close()
    echo_json(
        {
            "appid": appid,
            "version": m["version"],
            "visits": m["counts"]["visits"],
            "profiles": m["counts"]["profiles"],
            "days": len(m["days"]),
            "seconds": round(time.perf_counter() - t0, 2),
        }
    )
