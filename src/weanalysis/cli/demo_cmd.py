"""``weanalysis demo``: a demo app with realistic synthetic data, ingested the real way, served.

By default it ends by serving the API and the dashboard (``weanalysis serve``); ``--no-serve``
prints the 7-day portrait as the WeChat API returns it instead, for scripts.
"""

from __future__ import annotations

import errno
import socket
import sys
from datetime import datetime, timedelta

import click

from weanalysis import demo, settings
from weanalysis.cli import serve_cmd
from weanalysis.cli.common import echo_json, fail, listen_options, open_store
from weanalysis.ingest import Ingestor
from weanalysis.portrait.embedded import EmbeddedSource
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
@click.option(
    "--serve/--no-serve",
    default=True,
    show_default=True,
    help="Serve the API and dashboard afterwards; with --no-serve, print the 7-day portrait "
    "(WeChat's JSON) and exit.",
)
@listen_options
@click.pass_context
def demo_cmd(ctx, users, days, seed, serve, host, port) -> None:
    """Create the demo app, generate and ingest its data, then serve the dashboard.

    Prints the dashboard's URL and the demo app's AppID and AppSecret to sign in with.
    """
    host, port = settings.value("host", host), settings.value("port", port)
    if serve:
        _check_port_free(host, port)  # before a minute of work, not after
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
        filtered = ", ".join(f"{n} {why}" for why, n in sorted(total.filtered_reasons.items()))
        line = (
            f"{kind}s: {total.accepted} accepted, {total.duplicates} duplicates, "
            f"{total.filtered} filtered"
            + (f" ({filtered})" if filtered else "")
            + f", {total.rejected} rejected"
        )
        if total.rejected:
            line += " (the demo writes one broken line on purpose, to show a reject)"
        click.echo(line, err=True)
    end = datetime.now(app.tz).date() - timedelta(days=1)
    q = PortraitQuery.of(DEMO_APPID, end - timedelta(days=6), end)
    result = compute(EmbeddedSource.of(store, DEMO_APPID), q)
    if not serve:
        click.echo(f"demo app: {DEMO_APPID}  secret: {DEMO_SECRET}  data: {store.dir}", err=True)
        click.echo(
            f"portrait of the last 7 days ({q.ref_date}), as the WeChat API returns it:", err=True
        )
        echo_json(portrait_document(result), pretty=True)
        return
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    url = f"http://[{shown}]:{port}/" if ":" in shown else f"http://{shown}:{port}/"
    click.echo(
        "\n"
        f"  weanalysis demo is ready: open {url}\n"
        f"    AppID      {DEMO_APPID}\n"
        f"    AppSecret  {DEMO_SECRET}\n"
        f"    last 7 days ({q.ref_date}): {result.active.total:,} active users, "
        f"{result.new.total:,} new\n"
        f"    data       {store.dir}\n"
        "  Press Ctrl+C to stop.\n",
        err=True,
    )
    store.close()
    ctx.invoke(serve_cmd.serve, host=host, port=port, log_level="warning")


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                fail(f"port {port} on {host} is in use: stop what runs there or pass --port")
            fail(f"cannot listen on {host}:{port}: {e.strerror}")
