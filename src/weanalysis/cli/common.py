"""Helpers shared by the CLI commands."""

from __future__ import annotations

import sys
from typing import NoReturn

import click
import orjson

from weanalysis.errors import UserError
from weanalysis.settings import data_dir, help_text
from weanalysis.store import App, Store


def open_store(ctx: click.Context, create: bool = True) -> Store:
    """The data folder's store; read-only commands pass ``create=False``: absent is an error."""
    path = data_dir(ctx.obj.get("data") if ctx.obj else None)
    if not create and not (path / "catalog.sqlite").exists():
        fail(f"no data folder at {path} (set --data or WEANALYSIS_DATA, or run weanalysis app add)")
    return Store(path)


def registered_app(store: Store, appid: str) -> App:
    """The registered app ``appid``; a usage error (exit 2) naming it otherwise."""
    app = store.catalog.get(appid)
    if app is None:
        fail(
            f"app {appid!r} is not registered (weanalysis app list shows the apps; "
            "weanalysis app add registers one)"
        )
    return app


def echo_json(obj: object, pretty: bool = False) -> None:
    opts = orjson.OPT_INDENT_2 if pretty else 0
    sys.stdout.buffer.write(orjson.dumps(obj, option=opts) + b"\n")
    sys.stdout.flush()


class UsageError(UserError):
    """A command given what it cannot do (printed as one line, exit status 2)."""


def fail(message: str) -> NoReturn:
    raise UsageError(message)


def listen_options(f):
    """--host and --port, shared by the commands that run the server."""
    f = click.option("--port", type=click.IntRange(1, 65535), default=None, help=help_text("port"))(
        f
    )
    return click.option("--host", default=None, help=help_text("host"))(f)
