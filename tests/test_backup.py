"""Backups taken while a server takes /collect load and a file ingest runs restore to a folder
whose answers are exactly those of one committed state: the oracle over the source's records
stored before that state (by storage position), for every window. The second backup reuses the
first one's unchanged files."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from tests import oracle
from weanalysis.api.app import create_app
from weanalysis.cli.main import cli
from weanalysis.ingest import Ingestor
from weanalysis.portrait.embedded import EmbeddedSource
from weanalysis.portrait.engine import compute
from weanalysis.portrait.query import PortraitQuery
from weanalysis.store import AppSnapshot, Store
from weanalysis.store.backup import BACKUP_FILE, BackupError, backup, restore
from weanalysis.wechat.dialect import portrait_document

TZ = ZoneInfo("Asia/Shanghai")
TODAY = datetime.now(TZ).date()
DAYS = 8
PROVINCES = ["广东", "北京", "浙江", "四川", "上海"]


def random_visits(rng, n, prefix):
    out = []
    for i in range(n):
        day = TODAY - timedelta(days=int(rng.integers(1, DAYS + 1)))
        r = {
            "openid": f"u{int(rng.integers(0, 150))}",
            "time": f"{day.isoformat()}T{int(rng.integers(0, 24)):02d}:{int(rng.integers(0, 60)):02d}:00+08:00",
            "province": PROVINCES[int(rng.integers(0, len(PROVINCES)))],
            "platform": ["ios", "android", "ohos"][int(rng.integers(0, 3))],
            "event_id": f"{prefix}-{i}",
        }
        if rng.integers(0, 3) == 0:
            r["gender"] = int(rng.integers(0, 3))
        if rng.integers(0, 3) == 0:
            r["age"] = int(rng.integers(10, 70))
        out.append(r)
    return out


def source_records(data, next_seq: int) -> list[oracle.Rec]:
    """The source's stored records with storage position below ``next_seq``, in that order."""
    manifest = json.loads((data / "apps" / "wxA" / "manifest.json").read_text())
    # raw segments keep user ids; the user segments their openids
    openids = AppSnapshot(data / "apps" / "wxA", manifest).openids()
    rows = []
    for rel in manifest["raw"]:
        t = pq.read_table(data / "apps" / "wxA" / rel).to_pylist()
        kind = "visit" if "visits" in rel else "profile"
        rows.extend((r["seq"], kind, r) for r in t if r["seq"] < next_seq)
    rows.sort(key=lambda x: x[0])
    return [
        oracle.Rec(
            kind=kind,
            openid=openids[r["uid"]],
            time_ms=r["time_ms"],
            province=r.get("province_id") or 0,
            city=r.get("city_id") or 0,
            platform=r.get("platform") or 0,
            device=r.get("device"),
            gender=r["gender"],
            age=r["age"],
        )
        for _, kind, r in rows
    ]


def windows():
    for back in range(1, DAYS + 1):
        d = TODAY - timedelta(days=back)
        yield d, d
    yield TODAY - timedelta(days=7), TODAY - timedelta(days=1)


@pytest.mark.slow
def test_backup_under_load_restores_one_committed_state(tmp_path):
    data = tmp_path / "data"
    store = Store(data)
    store.catalog.add_app("wxA", "secret-A-123")
    rng = np.random.default_rng(7)
    stop = threading.Event()
    errors: list[BaseException] = []

    def collect_load(c):
        i = 0
        try:
            while not stop.is_set():
                batch = random_visits(np.random.default_rng(i), 20, f"c{i}")
                assert c.post("/collect?appid=wxA", json=batch).json()["errcode"] == 0
                i += 1
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    def file_load():
        try:
            other = Store(data)  # another writer, as a CLI ingest would be
            ing = Ingestor(other, "visit")
            k = 0
            while not stop.is_set():
                path = tmp_path / f"f{k}.jsonl"
                rows = [{**r, "appid": "wxA"} for r in random_visits(rng, 60, f"f{k}")]
                path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
                ing.ingest_sources([(str(path), "jsonl")], chunk_rows=25)
                k += 1
            ing.close()
            other.close()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    backups = tmp_path / "backups"
    results = []
    with TestClient(create_app(store)) as c:
        threads = [
            threading.Thread(target=collect_load, args=(c,)),
            threading.Thread(target=file_load),
        ]
        for t in threads:
            t.start()
        time.sleep(1.5)
        results.append(backup(data, backups))
        time.sleep(1.0)
        results.append(backup(data, backups))
        stop.set()
        for t in threads:
            t.join(30)
        # once the load stops, the next backup reuses what the one before it copied (under
        # load, the runs merged between two backups may have replaced every file)
        time.sleep(0.1)
        third = backup(data, backups)
    store.close()
    assert not errors, errors
    first, second = results
    for b in (second, third):
        assert b.files == b.copied + b.reused
    assert third.reused > 0
    # a reused file is the same file (hard link), not a copy
    reused = [
        rel
        for rel, s in json.loads((third.path / BACKUP_FILE).read_text())["files"].items()
        if json.loads((second.path / BACKUP_FILE).read_text())["files"].get(rel) == s
        and rel.startswith("apps/")
        and not rel.endswith("manifest.json")
    ]
    assert (
        reused and (second.path / reused[0]).stat().st_ino == (third.path / reused[0]).stat().st_ino
    )
    for i, r in enumerate(results):
        target = tmp_path / f"restored{i}"
        restore(r.path, target)
        restored = Store(target)
        snap = restored.snapshot("wxA")
        assert snap.version == r.versions["wxA"]
        recs = source_records(data, snap.manifest["next_seq"])
        assert len(recs) == snap.manifest["counts"]["visits"] > 0
        for b, e in windows():
            got = portrait_document(compute(EmbeddedSource(snap), PortraitQuery.of("wxA", b, e)))
            assert got == oracle.portrait(recs, TZ, b, e), (i, b, e)
        assert CliRunner().invoke(cli, ["--data", str(target), "check"]).exit_code == 0
        assert restored.catalog.check_secret("wxA", "secret-A-123")
        restored.close()
    # the CLI: a second restore into a used folder is refused; the newest backup is picked
    r = CliRunner().invoke(cli, ["restore", str(backups), "--data", str(tmp_path / "restored0")])
    assert r.exit_code == 2 and "not empty" in r.output
    r = CliRunner().invoke(cli, ["restore", str(backups), "--data", str(tmp_path / "r3")])
    assert r.exit_code == 0 and str(third.path) in r.output


def test_backup_refuses_a_damaged_file_and_bad_places(tmp_path):
    data = tmp_path / "data"
    store = Store(data)
    store.catalog.add_app("wxA", "secret-A-123")
    path = tmp_path / "v.jsonl"
    rows = [{**r, "appid": "wxA"} for r in random_visits(np.random.default_rng(1), 30, "x")]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    ing = Ingestor(store, "visit")
    ing.ingest_sources([(str(path), "jsonl")])
    ing.close()
    store.close()
    runner = CliRunner()
    r = runner.invoke(cli, ["--data", str(data), "backup", str(tmp_path / "b")])  # with a bar
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith(f"backup {tmp_path / 'b'}/backup-")
    with pytest.raises(BackupError, match="outside the data folder"):
        backup(data, data / "inside")
    manifest = json.loads((data / "apps" / "wxA" / "manifest.json").read_text())
    victim = data / "apps" / "wxA" / manifest["first_day"][0][0]
    raw = bytearray(victim.read_bytes())
    raw[-1] ^= 1
    victim.write_bytes(bytes(raw))
    # an incremental backup takes the unchanged file from the previous backup (not re-read)
    r = runner.invoke(cli, ["--data", str(data), "backup", str(tmp_path / "b"), "--quiet"])
    assert r.exit_code == 0 and "0 copied" not in r.output
    # a full one reads it, and stops with its name
    r = runner.invoke(cli, ["--data", str(data), "backup", str(tmp_path / "c"), "--quiet"])
    assert r.exit_code == 2 and f"damaged file {victim}" in r.output
    assert list((tmp_path / "c").iterdir()) == []  # nothing half-written left
    assert not list(data.glob(".backup-staging-*"))
    r = runner.invoke(
        cli, ["restore", str(tmp_path / "nothing-here"), "--data", str(tmp_path / "x")]
    )
    assert r.exit_code == 2


def test_backup_keeps_an_imported_apps_documents(tmp_path):
    data = tmp_path / "data"
    store = Store(data)
    store.catalog.add_app("wxI", "secret-I-123")
    store.close()
    imported = data / "apps" / "wxI" / "imported.jsonl"
    imported.parent.mkdir(parents=True)
    imported.write_bytes(b'{"appid": "wxI", "begin": "20261101", "end": "20261101"}\n')
    r = backup(data, tmp_path / "b")
    restore(r.path, tmp_path / "r")
    assert (
        tmp_path / "r" / "apps" / "wxI" / "imported.jsonl"
    ).read_bytes() == imported.read_bytes()
