"""The ``weanalysis`` command line: apps, ingest, portrait."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from weanalysis.cli import (
    apps,
    backup_cmd,
    demo_cmd,
    ingest_cmd,
    maintain_cmd,
    portrait_cmd,
    portraits_cmd,
    rebuild_cmd,
    serve_cmd,
    spark_cmd,
)
from weanalysis.errors import UserError
from weanalysis.settings import help_text


class Cli(click.Group):
    """The one error handler of the command line: a user error is one line and exit status 2.

    Every command raises :class:`~weanalysis.errors.UserError` (or a subclass) for what the user
    can fix; nothing else is caught, so a bug still shows its traceback.
    """

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(e.exit_code)


@click.group(cls=Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data", "data", metavar="DIR", default=None, help=help_text("data"))
@click.version_option(package_name="weanalysis")
@click.pass_context
def cli(ctx: click.Context, data: str | None) -> None:
    """weanalysis: the exact user portrait (用户画像) of your app's own visits.

    Register an app, ingest visit and profile files, print the portrait of any window.
    """
    ctx.obj = {"data": data}


cli.add_command(apps.app)
cli.add_command(ingest_cmd.ingest)
cli.add_command(portrait_cmd.portrait)
cli.add_command(portrait_cmd.trend_cmd)
cli.add_command(demo_cmd.demo_cmd)
cli.add_command(serve_cmd.serve)
cli.add_command(spark_cmd.spark)
cli.add_command(portraits_cmd.portraits)
cli.add_command(maintain_cmd.forget)
cli.add_command(maintain_cmd.check)
cli.add_command(maintain_cmd.gc)
cli.add_command(backup_cmd.backup_cmd)
cli.add_command(backup_cmd.restore_cmd)
cli.add_command(rebuild_cmd.rebuild)


def main() -> None:
    cli(prog_name=Path(sys.argv[0]).name if sys.argv else "weanalysis")
