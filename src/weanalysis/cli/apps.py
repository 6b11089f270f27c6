"""``weanalysis app``: register and list apps."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from weanalysis.cli.common import echo_json, fail, open_store
from weanalysis.settings import data_dir
from weanalysis.store import CatalogError
from weanalysis.store.catalog import DEFAULT_TIMEZONE


@click.group()
def app() -> None:
    """Register and list apps."""


@app.command("add")
@click.argument("appid")
@click.option(
    "--secret",
    required=True,
    help="The app secret (8-128 characters); only a salted hash is stored.",
)
@click.option(
    "--timezone",
    default=DEFAULT_TIMEZONE,
    show_default=True,
    help="IANA time zone of the app's days.",
)
@click.pass_context
def add(ctx: click.Context, appid: str, secret: str, timezone: str) -> None:
    """Register APPID with its secret and time zone."""
    store = open_store(ctx)
    try:
        a = store.catalog.add_app(appid, secret, timezone)
    except CatalogError as e:
        fail(str(e))
    click.echo(f"registered {a.appid} (time zone {a.timezone})")


@app.command("set")
@click.argument("appid")
@click.option(
    "--min-users",
    type=click.IntRange(0),
    required=True,
    metavar="K",
    help="Withhold every list item, cross-tab cell and segment total of fewer than K users from "
    "every output of the app (WeChat API, own API, dashboard, CSV); 0 withholds nothing.",
)
@click.pass_context
def set_app(ctx: click.Context, appid: str, min_users: int) -> None:
    """Change a setting of APPID."""
    store = open_store(ctx, create=False)
    try:
        store.catalog.set_min_users(appid, min_users)
    except CatalogError as e:
        fail(str(e))
    what = "nothing" if min_users == 0 else f"values of fewer than {min_users} users"
    click.echo(f"{appid}: min users {min_users} ({what} withheld)")


@app.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array on standard output.")
@click.pass_context
def list_apps(ctx: click.Context, as_json: bool) -> None:
    """List the registered apps."""
    path = data_dir(ctx.obj.get("data") if ctx.obj else None)
    if not (path / "catalog.sqlite").exists():
        if as_json:
            echo_json([])
        else:
            click.echo(
                f"no apps yet (no data folder at {path}): weanalysis app add APPID --secret S"
            )
        return
    store = open_store(ctx)
    apps = store.catalog.list()
    rows = []
    for a in apps:
        snap = store.snapshot(a.appid)
        rows.append(
            {
                "appid": a.appid,
                "timezone": a.timezone,
                "created_at": datetime.fromtimestamp(a.created_at, UTC).isoformat(
                    timespec="seconds"
                ),
                "users": snap.num_users,
                "visits": snap.record_count("visit"),
                "profiles": snap.record_count("profile"),
                "min_users": store.catalog.min_users(a.appid),
            }
        )
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no apps yet: weanalysis app add APPID --secret SECRET")
        return
    click.echo(f"{'appid':<24} {'timezone':<20} {'users':>10} {'visits':>12} {'profiles':>10}")
    for r in rows:
        cells = (r["appid"], r["timezone"], r["users"], r["visits"], r["profiles"])
        click.echo("{:<24} {:<20} {:>10} {:>12} {:>10}".format(*cells))
