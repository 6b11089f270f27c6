"""Fixtures shared by the test modules: a data folder with apps, and records ingested into it
through the real ingest path (:mod:`tests.records`)."""

from __future__ import annotations

import pytest

from weanalysis.store import Store


@pytest.fixture
def make_store(tmp_path):
    """``make_store({"wxA": "secret-A-123", ...})`` -> a new data folder with those apps."""
    opened: list[Store] = []

    def make(apps: dict[str, str], name: str = "data") -> Store:
        s = Store(tmp_path / name)
        for appid, secret in apps.items():
            s.catalog.add_app(appid, secret)
        opened.append(s)
        return s

    yield make
    for s in opened:
        s.close()
