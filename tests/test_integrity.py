"""Integrity: ``check`` finds one flipped byte in every kind of stored file, and a read that
meets a damaged file fails with a clear error (WeChat -1, CLI: one error line, exit 2), never a wrong number."""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from weanalysis.api.app import create_app
from weanalysis.cli.main import cli
from weanalysis.ingest import Ingestor
from weanalysis.store import Store
from weanalysis.store.integrity import named_files

TZ = ZoneInfo("Asia/Shanghai")
YESTERDAY = datetime.now(TZ).date() - timedelta(days=1)
PORTRAIT = "/datacube/getweanalysisappiduserportrait"


def run(data, *args):
    return CliRunner().invoke(cli, ["--data", str(data), *args])


def kinds(rel: str) -> str:
    """The kind of a stored file: its folder and stem and, for the folders of runs and of the
    view, its column (days: one kind for every day)."""
    parts = rel.split("/")
    stem = parts[1].split("-")[0]
    if parts[0] == "days":
        return f"days/{parts[2]}"
    if len(parts) == 3:
        return f"{parts[0]}/{stem}/{parts[2]}"
    return f"{parts[0]}/{stem}{os.path.splitext(rel)[1]}"


@pytest.fixture
def data(tmp_path):
    data = tmp_path / "data"
    store = Store(data)
    store.catalog.add_app("wxA", "secret-A-123")
    rows = []
    for back in range(12):
        day = YESTERDAY - timedelta(days=back)
        for u in range(5):
            rows.append(
                {
                    "appid": "wxA",
                    "openid": f"u{u}",
                    "time": f"{day.isoformat()}T0{u}:00:00+08:00",
                    "province": "广东",
                    "platform": "android",
                    "brand": "HUAWEI",
                    "model": "NOH-AN00",
                    "gender": 1 + u % 2,
                    "age": 20 + u,
                }
            )
    path = tmp_path / "v.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    ing = Ingestor(store, "visit")
    ing.ingest_sources([(str(path), "jsonl")], chunk_rows=17)
    ing.close()
    prof = tmp_path / "p.jsonl"
    prof.write_text(json.dumps({"appid": "wxA", "openid": "u1", "gender": "女"}) + "\n")
    ing = Ingestor(store, "profile")
    ing.ingest_sources([(str(prof), "jsonl")])
    ing.close()
    store.close()
    # then a live commit after the bulk ingests' compaction: runs of days and first days on top
    # of the compacted ones, next to the view and the per-day counts
    with TestClient(create_app(Store(data))) as c:
        late = f"{YESTERDAY.isoformat()}T22:00:00+08:00"
        row = {"openid": "u9", "time": late, "province": "广东", "platform": "ios"}
        assert c.post("/collect?appid=wxA", json=[row]).json()["accepted"] == 1
    return data


def flip(path, at=None):
    raw = bytearray(path.read_bytes())
    i = len(raw) // 2 if at is None else at
    raw[i] ^= 0x01
    path.write_bytes(bytes(raw))
    return bytes(raw)


def test_a_fresh_folder_checks_clean(data):
    r = run(data, "check")
    assert r.exit_code == 0, r.output
    assert r.output.startswith("checked ") and r.output.endswith(" 0 problems\n")


def test_check_finds_one_flipped_byte_in_every_kind_of_file(data):
    app_dir = data / "apps" / "wxA"
    manifest = json.loads((app_dir / "manifest.json").read_text())
    names = named_files(app_dir, manifest)
    by_kind: dict[str, str] = {}
    for rel in names:
        by_kind.setdefault(kinds(rel), rel)
    present = set(by_kind)
    # every kind of file format 4 writes: segments, keys, runs of days (packed columns, their
    # compressed times, partial rows), first days, person logs (base runs by user), device
    # names, the compaction's recent-window view and per-day counts
    assert present >= {
        "raw/visits.parquet",
        "raw/profiles.parquet",
        "users/openids.arrow",
        "keys/keys.parquet",
        "meta/first_day.npy",
        "meta/devices.json",
        "meta/counts.npy",
        "days/times.parquet",
        *(f"days/{c}.npy" for c in ("uid", "packed", "partial")),
        *(
            f"persons/{p}/{c}.npy"
            for p in ("gender", "age")
            for c in ("off", "slot", "t", "val", "cur")
        ),
    }, present
    assert any(k.startswith("meta/view/") for k in present)
    for kind, rel in sorted(by_kind.items()):
        path = app_dir / rel
        good = path.read_bytes()
        flip(path)
        r = run(data, "check")
        assert r.exit_code == 1, (kind, r.output)
        assert r.stdout.startswith(f"DAMAGED apps/wxA/{rel}: checksum crc32:"), (kind, r.output)
        assert r.stdout.count("DAMAGED") == 1
        path.write_bytes(good)
    assert run(data, "check").exit_code == 0
    # the manifest itself, one byte inside a number
    mpath = app_dir / "manifest.json"
    good = mpath.read_bytes()
    at = good.index(b'"next_seq": ') + len(b'"next_seq": ')
    flip(mpath, at)  # a digit becomes another digit: still valid JSON
    r = run(data, "check")
    assert (
        r.exit_code == 1 and "apps/wxA/manifest.json: does not match its own checksum" in r.output
    )
    mpath.write_bytes(good)
    # a missing file
    victim = app_dir / by_kind["meta/first_day.npy"]
    victim.unlink()
    r = run(data, "check", "--appid", "wxA")
    assert (
        r.exit_code == 1
        and f"DAMAGED apps/wxA/{by_kind['meta/first_day.npy']}: missing" in r.output
    )
    assert run(data, "check", "--appid", "nope").exit_code == 2


def test_a_read_meeting_a_damaged_file_fails_clearly(data, caplog):
    app_dir = data / "apps" / "wxA"
    manifest = json.loads((app_dir / "manifest.json").read_text())
    # a day inside the 7-day window below, which the view cannot answer (the live commit
    # changed its last day): the query reads this day's run
    day = str(max(int(d) for d in manifest["days"]) - 3)
    target = app_dir / manifest["days"][day][0][0] / "packed.npy"
    store = Store(data)
    with TestClient(create_app(store)) as c:
        tok = c.get(
            "/cgi-bin/token",
            params={"grant_type": "client_credential", "appid": "wxA", "secret": "secret-A-123"},
        ).json()["access_token"]
        d = YESTERDAY.strftime("%Y%m%d")
        body = {"begin_date": d, "end_date": d}
        good = c.post(PORTRAIT, params={"access_token": tok}, json=body).json()
        assert good["visit_uv"]["province"][0]["value"] == 6  # u0-u4 and the live u9
        # flipped while the server runs: a new read verifies again (the file changed)
        raw = bytearray(target.read_bytes())
        raw[-1] ^= 0x04  # in the last packed row: other values if it were believed
        target.write_bytes(bytes(raw))
        os.utime(target, ns=(1, 1_000_000_000))  # even with an old mtime
        d2 = (YESTERDAY - timedelta(days=6)).strftime("%Y%m%d")
        with caplog.at_level(logging.ERROR):
            r = c.post(
                PORTRAIT, params={"access_token": tok}, json={"begin_date": d2, "end_date": d}
            ).json()
        assert r["errcode"] == -1 and r["errmsg"].startswith("system error rid: ")
        assert str(target) in caplog.text
    store.close()
    r = run(data, "portrait", "--appid", "wxA", "--begin", d2, "--end", d)
    assert r.exit_code == 2 and f"damaged file {target}" in r.output


def test_an_ingest_meeting_a_damaged_file_stops_with_its_name(data, tmp_path):
    app_dir = data / "apps" / "wxA"
    manifest = json.loads((app_dir / "manifest.json").read_text())
    victim = app_dir / manifest["keys"][0]
    flip(victim)
    path = tmp_path / "more.jsonl"
    t = f"{YESTERDAY.isoformat()}T20:00:00+08:00"
    path.write_text(json.dumps({"appid": "wxA", "openid": "new", "time": t}) + "\n")
    r = run(data, "ingest", str(path))
    assert r.exit_code == 2 and r.output.startswith(
        f"error: damaged data folder: damaged file {victim}: checksum"
    )
    assert "Traceback" not in r.output
    after = json.loads((app_dir / "manifest.json").read_text())
    assert after["version"] == manifest["version"]  # nothing was committed over it


@pytest.mark.parametrize("command", ["forget", "timezone", "rebuild"])
def test_a_rederivation_meeting_a_damaged_raw_segment_stops_with_its_name(data, command):
    app_dir = data / "apps" / "wxA"
    manifest = json.loads((app_dir / "manifest.json").read_text())
    victim = app_dir / manifest["raw"][0]
    flip(victim)
    args = {
        "forget": ["forget", "--appid", "wxA", "--openid", "u1"],
        "timezone": ["app", "set", "wxA", "--timezone", "UTC"],
        "rebuild": ["rebuild", "--appid", "wxA"],
    }[command]
    r = run(data, *args)
    assert r.exit_code == 2, r.output
    assert f"damaged file {victim}: checksum" in r.output and "Traceback" not in r.output
    after = json.loads((app_dir / "manifest.json").read_text())
    assert after["version"] == manifest["version"]  # nothing was derived from it


def test_checksums_noted_by_commits_do_not_pile_up(data):
    from weanalysis.store import files

    with TestClient(create_app(Store(data))) as c:
        for i in range(30):  # live commits: each writes runs and segments, merging some away
            row = {"openid": f"n{i}", "time": f"{YESTERDAY.isoformat()}T21:00:00+08:00"}
            assert c.post("/collect?appid=wxA", json=[row]).json()["accepted"] == 1
    assert files.WRITTEN.noted_under(data / "apps") == []
    assert run(data, "check").exit_code == 0


def test_a_lost_manifest_is_damage_not_an_empty_app_and_its_files_stay(data, tmp_path):
    app_dir = data / "apps" / "wxA"
    files_before = sorted(p for p in app_dir.rglob("*") if p.is_file() and "leases" not in p.parts)
    (app_dir / "manifest.json").unlink()
    manifest_path = app_dir / "manifest.json"
    d = YESTERDAY.strftime("%Y%m%d")
    r = run(data, "portrait", "--appid", "wxA", "--begin", d, "--end", d)
    assert r.exit_code == 2 and f"{manifest_path}: is missing" in r.output, r.output
    assert "restore the folder from a backup" in r.output
    r = run(data, "check")
    assert r.exit_code != 0 and str(manifest_path) in r.output, r.output
    r = run(data, "app", "list")  # the app is listed as damaged, the command says so
    assert r.exit_code == 1 and "wxA" in r.output and "DAMAGED" in r.output, r.output
    r = run(data, "backup", str(tmp_path / "backups"))  # no backup silently without the app
    assert r.exit_code == 2 and "is missing" in r.output, r.output
    # a writer must not take the stored files for orphans of a killed commit and delete them
    path = tmp_path / "more.jsonl"
    t = f"{YESTERDAY.isoformat()}T20:00:00+08:00"
    path.write_text(json.dumps({"appid": "wxA", "openid": "new", "time": t}) + "\n")
    r = run(data, "ingest", str(path))
    assert r.exit_code == 2 and "is missing" in r.output and "Traceback" not in r.output
    files_after = sorted(p for p in app_dir.rglob("*") if p.is_file() and "leases" not in p.parts)
    assert [p for p in files_before if p.name != "manifest.json"] == files_after


def test_a_first_commit_that_fails_leaves_an_empty_app_and_its_files_go(tmp_path, monkeypatch):
    from weanalysis.store import files

    data = tmp_path / "data"
    store = Store(data)
    store.catalog.add_app("wxB", "secret-B-123")
    path = tmp_path / "v.jsonl"
    t = f"{YESTERDAY.isoformat()}T20:00:00+08:00"
    path.write_text(json.dumps({"appid": "wxB", "openid": "a", "time": t}) + "\n")
    real = files.write_parquet

    def write_then_fail(p, table):
        real(p, table)  # the raw segment is on disk, then the commit dies before its manifest
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files, "write_parquet", write_then_fail)
    ing = Ingestor(store, "visit")
    with pytest.raises(Exception):  # noqa: B017 - whatever the ingest makes of it
        ing.ingest_sources([(str(path), "jsonl")])
    ing.close()
    monkeypatch.setattr(files, "write_parquet", real)
    app_dir = data / "apps" / "wxB"
    # the empty manifest was published before anything was written: the leftover is an orphan
    assert json.loads((app_dir / "manifest.json").read_text())["version"] == 0
    assert list((app_dir / "raw").iterdir())
    assert store.snapshot("wxB").record_count("visit") == 0
    store.close()
    r = run(data, "ingest", str(path))
    assert r.exit_code == 0, r.output
    assert len(list((app_dir / "raw").iterdir())) == 1  # the orphan went, the new one stays
    assert Store(data).snapshot("wxB").record_count("visit") == 1


def test_the_retained_state_is_checked_and_a_rederivation_stops_at_a_damaged_one(data):
    from weanalysis.store.retention import ARRAYS

    assert run(data, "app", "set", "wxA", "--retention-days", "5").exit_code == 0
    r = run(data, "gc", "--no-progress")
    assert r.exit_code == 0 and "erased" in r.output, r.output
    app_dir = data / "apps" / "wxA"
    manifest = json.loads((app_dir / "manifest.json").read_text())
    rels = [n for n in named_files(app_dir, manifest) if n.startswith("meta/retained-")]
    assert {kinds(rel) for rel in rels} == {f"meta/retained/{n}.npy" for n in ARRAYS}
    for rel in rels:
        path = app_dir / rel
        good = path.read_bytes()
        flip(path, len(good) - 1)  # the data, after the header
        r = run(data, "check")
        assert r.exit_code == 1 and r.stdout.startswith(f"DAMAGED apps/wxA/{rel}: checksum")
        path.write_bytes(good)
    victim = app_dir / rels[0]
    good = victim.read_bytes()
    flip(victim, len(good) - 1)
    for args in (
        ["rebuild", "--appid", "wxA", "--no-progress"],
        ["forget", "--appid", "wxA", "--openid", "u1"],
    ):
        r = run(data, *args)
        assert r.exit_code == 2 and rels[0] in r.output, (args, r.output)
    victim.write_bytes(good)
    assert run(data, "check").exit_code == 0
