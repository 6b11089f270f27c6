"""``weanalysis demo``: a demo app with realistic synthetic data, ingested the real way."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta

import click

from weanalysis import demo
from weanalysis.cli.common import echo_json, fail, open_store
from weanalysis.ingest import Ingestor
from weanalysis.portrait.engine import compute
from weanalysis.portrait.query import PortraitQuery
from weanalysis.records.validate import PROFILE, VISIT
from weanalysis.store import CatalogError
from weanalysis.wechat.dialect import portrait_document

DEMO_APPID = "wxdemo0000000000"
DEMO_SECRET = "demo-secret-0000"


@click.command("demo")
@click.option(
    "--users",
    type=click.IntRange(100),
    default=30_000,
    show_default=True,
    help="Users in the demo app.",
)
@click.option(
    "--days",
    type=click.IntRange(30, 400),
    default=60,
    show_default=True,
    help="Days of history, ending yesterday.",
)
@click.option(
    "--seed", type=int, default=7, show_default=True, help="Random seed (same seed, same data)."
)
@click.pass_context
def demo_cmd(ctx, users, days, seed) -> None:
    """Create the demo app, generate and ingest its data, print its 7-day portrait."""
    store = open_store(ctx)
    app = store.catalog.get(DEMO_APPID)
    if app is None:
        try:
            app = store.catalog.add_app(DEMO_APPID, DEMO_SECRET)
        except CatalogError as e:
            fail(str(e))
    out = store.dir / "demo-input"
    from tqdm import tqdm

    with tqdm(total=days, desc="generate", unit="day", file=sys.stderr, disable=None) as bar:
        files = demo.generate(
            out, DEMO_APPID, users=users, days=days, seed=seed, progress=bar.update
        )
    for kind, path in (
        (VISIT, files.visits),
        (PROFILE, files.profiles),
    ):
        ing = Ingestor(store, kind)
        with tqdm(
            total=path.stat().st_size,
            desc=f"ingest {kind}s",
            unit="B",
            unit_scale=True,
            file=sys.stderr,
            disable=None,
        ) as bar:
            total, _ = ing.ingest_sources(
                [(str(path), "jsonl")], progress=lambda n, bar=bar: bar.update(n)
            )
        ing.close()
        click.echo(
            f"{kind}s: {total.accepted} accepted, {total.duplicates} duplicates, "
            f"{total.filtered} filtered {dict(total.filtered_reasons)}, {total.rejected} rejected",
            err=True,
        )
    end = datetime.now(app.tz).date() - timedelta(days=1)
    q = PortraitQuery.of(DEMO_APPID, end - timedelta(days=6), end)
    click.echo(f"demo app: {DEMO_APPID}  secret: {DEMO_SECRET}  data: {store.dir}", err=True)
    click.echo(
        f"portrait of the last 7 days ({q.ref_date}), as the WeChat API returns it:", err=True
    )
    echo_json(portrait_document(compute(store.snapshot(DEMO_APPID), q)), pretty=True)
