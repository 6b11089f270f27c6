"""``weanalysis forget``, ``check`` and ``gc``: erasure, integrity and retention."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from weanalysis.cli.common import echo_json, fail, open_store, registered_app
from weanalysis.records import fields

MAX_OPENIDS_PER_RUN = 1_000_000


def selected_apps(store, appid: str | None) -> list:
    """Every registered app, or the one ``--appid`` names (a usage error if unknown)."""
    return store.catalog.list() if appid is None else [registered_app(store, appid)]


def read_openids(values: tuple[str, ...], path: str | None) -> list[str]:
    """Openids from the options and from a file (one a line, ``-`` for standard input)."""
    out = list(values)
    if path is not None:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        # openids are opaque: only the line ending goes (a blank line is skipped)
        lines = (line.removesuffix("\r") for line in text.split("\n"))
        out.extend(line for line in lines if line)
    bad = []
    for o in out:
        try:
            if fields.parse_openid(o) is None:
                bad.append(o)
        except fields.FieldError:
            bad.append(o)
    if bad:
        raise click.BadParameter(f"not an openid: {bad[0]!r}")
    return out


@click.command("forget")
@click.option("--appid", required=True, help="The registered app.")
@click.option("--openid", "openids", multiple=True, help="A user to erase (repeatable).")
@click.option(
    "--file",
    "path",
    metavar="PATH",
    default=None,
    help="A file of openids, one a line (- for standard input).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the counts as one JSON object.")
@click.pass_context
def forget(ctx, appid: str, openids: tuple[str, ...], path: str | None, as_json: bool) -> None:
    """Erase users of APPID from everything the data folder holds (PIPL art. 47).

    Their records, summaries, person data, idempotency keys and kept answers go in one durable
    commit; afterwards every portrait is the one computed as if their records had never been
    ingested, and records of theirs sent again are stored as new. An unknown openid erases
    nothing (not an error).
    """
    from weanalysis.store import maintenance

    try:
        users = read_openids(openids, path)
    except (click.BadParameter, OSError, UnicodeDecodeError) as e:
        fail(e.message if isinstance(e, click.BadParameter) else f"--file {path}: {e}")
    if not users:
        fail("give --openid OPENID (repeatable) or --file PATH")
    if len(users) > MAX_OPENIDS_PER_RUN:
        fail(f"{len(users)} openids: at most {MAX_OPENIDS_PER_RUN} per run")
    store = open_store(ctx, create=False)
    app = registered_app(store, appid)
    erased = maintenance.forget(store.dir, app, users)
    if as_json:
        echo_json(erased.as_dict())
    else:
        click.echo(
            f"erased {erased.users} of {len(set(users))} users: {erased.visits} visits, "
            f"{erased.profiles} profiles"
        )


@click.command("check")
@click.option("--appid", default=None, help="Check one app (default: every app).")
@click.pass_context
def check(ctx, appid: str | None) -> None:
    """Verify every stored file against the checksum in its app's manifest.

    Names each damaged or missing file; exits 1 when any is found (restore the data folder
    from a backup), 0 when everything matches.
    """
    from weanalysis.store.integrity import Problem, check_app
    from weanalysis.store.snapshot import MANIFEST, read_manifest

    store = open_store(ctx, create=False)
    apps = selected_apps(store, appid)
    problems: list[Problem] = []
    total = 0
    (ok,) = store.catalog.db.execute("PRAGMA quick_check").fetchone()
    if ok != "ok":
        problems.append(Problem("catalog.sqlite", f"SQLite quick_check: {ok}"))
    for a in apps:
        d = store.app_dir(a.appid)
        try:
            manifest = read_manifest(d)
        except Exception as e:  # a damaged manifest: name it, check the other apps
            problems.append(Problem(f"apps/{a.appid}/{MANIFEST}", str(e).split(": ", 1)[-1]))
            continue
        n, found = check_app(d, manifest, store.dir)
        total += n
        problems.extend(found)
    for p in problems:
        click.echo(f"DAMAGED {p.path}: {p.detail}")
    summary = f"checked {total} files of {len(apps)} apps: {len(problems)} problems"
    if problems:
        click.echo(summary, err=True)
        sys.exit(1)
    click.echo(summary)


@click.command("gc")
@click.option("--appid", default=None, help="One app (default: every app).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per app on standard output.")
@click.option("--no-progress", is_flag=True, help="No progress bar on standard error.")
@click.pass_context
def gc(ctx, appid: str | None, as_json: bool, no_progress: bool) -> None:
    """Apply each app's retention now (`app set A --retention-days N`).

    Deletes the records of days before today - N (today in the app's time zone), keeping each
    user's first visit day and gender and age before them, so every window inside the retained
    range keeps its answer; windows before it are refused from then on. One durable commit per
    app. Commits do the same when they find it due; run this daily (cron, a systemd timer) so
    that apps that receive nothing are trimmed too. Prints what it erased per app.
    """
    import time

    from tqdm import tqdm

    from weanalysis.store import retention
    from weanalysis.store.days import day_date
    from weanalysis.store.snapshot import read_manifest

    store = open_store(ctx, create=False)
    apps = selected_apps(store, appid)
    for a in apps:
        bar = tqdm(
            total=0,
            unit="rows",
            unit_scale=True,
            desc=a.appid,
            file=sys.stderr,
            leave=False,
            disable=no_progress,
        )

        def progress(done: int, total: int, bar=bar) -> None:
            bar.total = total
            bar.update(done - bar.n)

        t0 = time.perf_counter()
        try:
            out = retention.apply(store.dir, a, a.retention_days, progress=progress)
        finally:
            bar.close()
        row = {"appid": a.appid, "retention_days": a.retention_days}
        if out is not None:
            row.update(out.as_dict(), seconds=round(time.perf_counter() - t0, 2))
        if as_json:
            echo_json(row)
        elif a.retention_days is None:
            click.echo(f"{a.appid}: no retention (every record is kept)")
        elif out is None:
            start = retention.retained_from(read_manifest(store.app_dir(a.appid)))
            since = "" if start is None else f", records kept from {day_date(start).isoformat()}"
            click.echo(f"{a.appid}: retention {a.retention_days} days: nothing to erase{since}")
        else:
            click.echo(
                f"{a.appid}: retention {a.retention_days} days: erased {out.visits} visits and "
                f"{out.profiles} profiles of days before {day_date(out.from_day).isoformat()} "
                f"({out.users} users' first visit days kept) in {row['seconds']} s"
            )
