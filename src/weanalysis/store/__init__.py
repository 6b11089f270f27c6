"""The embedded store: an app registry (SQLite) and, per app, immutable columnar files named by
an atomically replaced manifest. One writer at a time, any number of concurrent readers."""

from __future__ import annotations

from pathlib import Path

from weanalysis.errors import StoreError
from weanalysis.store.catalog import App, Catalog, CatalogError
from weanalysis.store.snapshot import AppSnapshot
from weanalysis.store.writer import Batch, CommitResult, Writer

__all__ = [
    "App",
    "AppSnapshot",
    "Batch",
    "Catalog",
    "CatalogError",
    "CommitResult",
    "Store",
    "Writer",
]


class Store:
    """A data folder: ``catalog.sqlite``, ``writer.lock`` and ``apps/<appid>/``."""

    def __init__(self, data_dir: Path | str):
        self.dir = Path(data_dir)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            (self.dir / "apps").mkdir(exist_ok=True)
        except FileExistsError:
            raise StoreError(f"cannot use {self.dir} as the data folder: not a folder") from None
        except OSError as e:
            if not (self.dir / "apps").is_dir():  # a read-only folder that has it is fine
                why = e.strerror
                raise StoreError(f"cannot use {self.dir} as the data folder: {why}") from None
        self.catalog = Catalog(self.dir / "catalog.sqlite")

    def close(self) -> None:
        self.catalog.close()

    def app_dir(self, appid: str) -> Path:
        return self.dir / "apps" / appid

    def snapshot(self, appid: str) -> AppSnapshot:
        return AppSnapshot(self.app_dir(appid))

    def writer(self) -> Writer:
        return Writer(self.dir)
