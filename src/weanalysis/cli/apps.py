"""``weanalysis app``: register and list apps."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from click.core import ParameterSource

from weanalysis.cli.common import echo_json, fail, open_store, registered_app
from weanalysis.errors import StoreDamagedError
from weanalysis.settings import data_dir
from weanalysis.store import CatalogError
from weanalysis.store.catalog import DEFAULT_TIMEZONE, MAX_RETENTION_DAYS

KEEP_ALL = ("none", "0")


class RetentionDays(click.ParamType):
    """``N`` (1-36500 days), or ``none`` / ``0``: keep everything. Converts to int or None."""

    name = "N|none"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, int):
            return value
        text = str(value).strip().lower()
        if text in KEEP_ALL:
            return None
        if text.isdigit() and 1 <= int(text) <= MAX_RETENTION_DAYS:
            return int(text)
        self.fail(f"{value!r}: a number of days 1-{MAX_RETENTION_DAYS}, or none", param, ctx)


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
    damaged = 0
    for a in apps:
        row = {
            "appid": a.appid,
            "timezone": a.timezone,
            "created_at": datetime.fromtimestamp(a.created_at, UTC).isoformat(timespec="seconds"),
            "min_users": store.catalog.min_users(a.appid),
            "retention_days": a.retention_days,
        }
        try:  # one damaged app does not hide the others
            snap = store.snapshot(a.appid)
        except StoreDamagedError as e:
            damaged += 1
            row["damaged"] = str(e)
        else:
            row["users"] = snap.num_users
            row["visits"] = snap.record_count("visit")
            row["profiles"] = snap.record_count("profile")
            row["retained_from"] = _retained_from(snap)
            snap.close()
        rows.append(row)
    if as_json:
        echo_json(rows)
    elif not rows:
        click.echo("no apps yet: weanalysis app add APPID --secret SECRET")
    else:
        head = ("appid", "timezone", "users", "visits", "profiles", "retention")
        click.echo("{:<24} {:<20} {:>10} {:>12} {:>10} {:>10}".format(*head))
        for r in rows:
            if "damaged" in r:
                click.echo(f"{r['appid']:<24} {r['timezone']:<20} DAMAGED: {r['damaged']}")
                continue
            keep = "all" if r["retention_days"] is None else f"{r['retention_days']} days"
            cells = (r["appid"], r["timezone"], r["users"], r["visits"], r["profiles"], keep)
            click.echo("{:<24} {:<20} {:>10} {:>12} {:>10} {:>10}".format(*cells))
    if damaged:
        ctx.exit(1)  # weanalysis check names every damaged file


def _retained_from(snap) -> str | None:
    from weanalysis.store.days import day_date
    from weanalysis.store.retention import retained_from

    start = retained_from(snap.manifest)
    return None if start is None else day_date(start).isoformat()


@app.command("set")
@click.argument("appid")
@click.option(
    "--timezone",
    default=None,
    help="A new IANA time zone: the days of every stored record are re-derived in it.",
)
@click.option(
    "--min-users",
    type=click.IntRange(0),
    default=None,
    metavar="K",
    help="Withhold every list item, cross-tab cell and segment total of fewer than K users from "
    "every output of the app (WeChat API, own API, dashboard, CSV); 0 withholds nothing.",
)
@click.option(
    "--retention-days",
    "retention",
    type=RetentionDays(),
    default=None,
    help="Keep the records of today and the N days before it (in the app's time zone); older "
    "ones are deleted at the next commit and by `weanalysis gc` (each user's first visit day "
    "and gender/age before them are kept, so windows inside the range keep their answers). "
    "none or 0: keep everything (the default).",
)
@click.pass_context
def set_app(
    ctx: click.Context,
    appid: str,
    timezone: str | None,
    min_users: int | None,
    retention: int | None,
):
    """Change APPID's settings: time zone, small-group withholding, retention."""
    from weanalysis.store import maintenance

    # "none" and "not given" are both None: the option's source tells them apart
    set_retention = ctx.get_parameter_source("retention") is not ParameterSource.DEFAULT
    if timezone is None and min_users is None and not set_retention:
        fail("nothing to change: give --timezone, --min-users and/or --retention-days")
    store = open_store(ctx, create=False)
    registered_app(store, appid)
    try:
        if min_users is not None:
            store.catalog.set_min_users(appid, min_users)
            what = "nothing" if min_users == 0 else f"values of fewer than {min_users} users"
            click.echo(f"{appid}: min users {min_users} ({what} withheld)")
        if timezone is not None:
            n = maintenance.set_timezone(store.dir, store.catalog, appid, timezone)
            click.echo(f"{appid}: time zone {timezone} ({n} stored visits re-dated)")
        if set_retention:
            store.catalog.set_retention_days(appid, retention)
            click.echo(_retention_line(store, appid, retention))
    except CatalogError as e:
        fail(str(e))


def _retention_line(store, appid: str, days: int | None) -> str:
    from weanalysis.store import retention as r
    from weanalysis.store.days import day_date
    from weanalysis.store.snapshot import read_manifest

    manifest = read_manifest(store.app_dir(appid))
    start = r.retained_from(manifest)
    gone = "" if start is None else f"; records before {day_date(start).isoformat()} are gone"
    if days is None:
        return f"{appid}: retention off, every record is kept from now on{gone}"
    tz = r.zone_of(manifest, store.catalog.get(appid).timezone)
    cutoff = day_date(r.cutoff_of(days, tz)).isoformat()
    return (
        f"{appid}: retention {days} days: records of days before {cutoff} (moving daily) are "
        f"deleted at the next commit or by weanalysis gc{gone}"
    )


@app.command("rotate-secret")
@click.argument("appid")
@click.option("--secret", default=None, help="The new secret (default: a random one, printed).")
@click.pass_context
def rotate_secret(ctx: click.Context, appid: str, secret: str | None) -> None:
    """Give APPID a new secret: its access tokens, stable tokens and dashboard sessions stop
    working at once, in every running server."""
    import secrets as random

    store = open_store(ctx, create=False)
    registered_app(store, appid)
    new = secret if secret is not None else random.token_hex(16)
    try:
        store.catalog.rotate_secret(appid, new)
    except CatalogError as e:
        fail(str(e))
    if secret is None:
        click.echo(new)
        click.echo(
            f"{appid}: new secret above (shown once); old tokens and sessions revoked", err=True
        )
    else:
        click.echo(f"{appid}: secret rotated; old tokens and sessions revoked")


@app.command("remove")
@click.argument("appid")
@click.option("--yes", is_flag=True, help="Confirm: the app's records are deleted for good.")
@click.pass_context
def remove(ctx: click.Context, appid: str, yes: bool) -> None:
    """Remove APPID: its records, summaries, tokens and sessions are deleted; the appid is
    unknown afterwards (errcode 40013)."""
    from weanalysis.store import housekeeping

    if not yes:
        fail(f"removing {appid} deletes all its records for good: add --yes to confirm")
    store = open_store(ctx, create=False)
    registered_app(store, appid)
    try:
        housekeeping.remove_app(store.dir, store.catalog, appid)
    except CatalogError as e:
        fail(str(e))
    click.echo(f"removed {appid}")
