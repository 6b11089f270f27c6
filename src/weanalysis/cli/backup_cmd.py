"""``weanalysis backup`` and ``restore``: consistent copies of the whole data folder."""

from __future__ import annotations

import click

from weanalysis.cli.common import fail
from weanalysis.settings import data_dir


@click.command("backup")
@click.argument("dest", type=click.Path(file_okay=False))
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def backup_cmd(ctx, dest: str, quiet: bool) -> None:
    """Write a consistent copy of the data folder into a new DEST/backup-<UTC time>/.

    Safe while the server serves and ingests run: the copy is one committed state of every app
    (the write lock is held only while the files are listed). Files unchanged since the latest
    backup in DEST are hard-linked from it, not copied. Every file is verified on the way.
    """
    from weanalysis.store.backup import BackupError, backup

    src = data_dir(ctx.obj.get("data") if ctx.obj else None)
    bar = None
    if not quiet:
        from tqdm import tqdm

        bar = tqdm(unit=" files", leave=False)
    try:
        r = backup(src, dest, progress=bar.update if bar is not None else None)
    except (BackupError, OSError) as e:
        fail(str(e))
    finally:
        if bar is not None:
            bar.close()
    mib = r.bytes_copied / 2**20
    click.echo(
        f"backup {r.path}: {r.files} files, {r.copied} copied ({mib:.1f} MiB), "
        f"{r.reused} reused from the previous backup"
    )


@click.command("restore")
@click.argument("source", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--data",
    "target",
    metavar="DIR",
    default=None,
    help="The new data folder (must not exist or be empty). Default: the global --data.",
)
@click.pass_context
def restore_cmd(ctx, source: str, target: str | None) -> None:
    """Restore SOURCE (a backup, or a folder of backups: the newest) into a new data folder.

    Every file is verified against the backup's checksums. Serve the folder afterwards with
    weanalysis --data DIR serve; its portraits are those of the backed-up state.
    """
    from weanalysis.store.backup import BackupError, restore

    dest = data_dir(target or (ctx.obj.get("data") if ctx.obj else None))
    try:
        r = restore(source, dest)
    except (BackupError, OSError) as e:
        fail(str(e))
    click.echo(f"restored {r.source} into {dest}: {r.files} files ({r.bytes / 2**20:.1f} MiB)")
