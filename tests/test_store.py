"""The store: late data, snapshots under concurrent writes, crashes of the writer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import date, timedelta

import numpy as np
import pytest

from tests.records import ingest_file
from weanalysis.portrait.embedded import EmbeddedSource
from weanalysis.portrait.engine import compute
from weanalysis.portrait.query import PortraitQuery
from weanalysis.wechat.dialect import portrait_document

START = date(2017, 6, 1)


def visits_file(path, n_users, days, seed=0, extra=None):
    rng = np.random.default_rng(seed)
    rows = []
    for d in range(days):
        day = START + timedelta(days=d)
        for u in rng.choice(n_users, size=max(1, n_users // 3), replace=False):
            rows.append(
                {
                    "appid": "wx1",
                    "openid": f"user{u}",
                    "time": f"{day.isoformat()}T{rng.integers(0, 24):02d}:{rng.integers(0, 60):02d}:00+08:00",
                    "province": ["广东", "北京", "浙江", "四川"][rng.integers(0, 4)],
                    "platform": ["ios", "android"][rng.integers(0, 2)],
                }
            )
    rows.extend(extra or [])
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    return rows


def all_windows(store, days):
    snap = store.snapshot("wx1")
    out = {}
    for e in range(days):
        for length in (1, 3, 7):
            end = START + timedelta(days=e)
            q = PortraitQuery.of("wx1", end - timedelta(days=length - 1), end)
            out[(length, e)] = portrait_document(compute(EmbeddedSource(snap), q))
    return out


@pytest.fixture
def store(make_store):
    return make_store({"wx1": "secret-123"})


def test_late_record_changes_only_windows_ending_on_or_after_its_day(store, tmp_path):
    visits_file(tmp_path / "v.jsonl", 30, 10)
    ingest_file(store, tmp_path / "v.jsonl")
    before = all_windows(store, 10)
    late = [
        {
            "appid": "wx1",
            "openid": "newcomer",
            "time": "2017-06-04T12:00:00+08:00",
            "province": "西藏",
        },
        {"appid": "wx1", "openid": "user1", "time": "2017-06-04T23:59:59+08:00", "gender": "女"},
    ]
    (tmp_path / "late.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in late)
    )
    assert ingest_file(store, tmp_path / "late.jsonl").accepted == 2
    after = all_windows(store, 10)
    changed = {k for k in before if before[k] != after[k]}
    # the answer for [b, e] depends only on records of days <= e (SPEC.md 3)
    assert all(e >= 3 for _, e in changed)
    # every window that contains the day sees the newcomer
    assert {(length, e) for length, e in before if e >= 3 and e - length + 1 <= 3} <= changed


def test_old_snapshot_stays_consistent_while_a_writer_commits(store, tmp_path):
    visits_file(tmp_path / "a.jsonl", 50, 5, seed=1)
    ingest_file(store, tmp_path / "a.jsonl")
    old = store.snapshot("wx1")
    q = PortraitQuery.of("wx1", START, START + timedelta(days=4))
    first = portrait_document(compute(EmbeddedSource(old), q))
    visits_file(tmp_path / "b.jsonl", 80, 5, seed=2)
    ingest_file(store, tmp_path / "b.jsonl")
    assert not old.is_current()
    assert (
        portrait_document(compute(EmbeddedSource(old), q)) == first
    )  # files of old versions are kept a while
    assert portrait_document(compute(EmbeddedSource(store.snapshot("wx1")), q)) != first


@pytest.mark.slow
def test_reading_while_another_process_ingests(store, tmp_path):
    """A reader in this process and a CLI ingest in another: every read is a whole commit."""
    rows = visits_file(tmp_path / "big.jsonl", 3000, 20, seed=3)
    env = {**os.environ, "WEANALYSIS_DATA": str(store.dir)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "weanalysis",
            "ingest",
            "--chunk-rows",
            "1000",
            "--json",
            str(tmp_path / "big.jsonl"),
        ],
        env=env,
        stdout=subprocess.PIPE,
    )
    q = PortraitQuery.of("wx1", START, START + timedelta(days=19))
    seen_versions = set()
    totals = []
    while proc.poll() is None:
        snap = store.snapshot("wx1")
        doc = portrait_document(compute(EmbeddedSource(snap), q))
        seen_versions.add(snap.version)
        totals.append(sum(it["value"] for it in doc["visit_uv"]["platforms"]))
        time.sleep(0.01)
    out = json.loads(proc.communicate()[0])
    assert proc.returncode == 0 and out["accepted"] == len(rows)
    assert totals == sorted(totals)  # users only ever appear, commit by commit
    assert len(seen_versions) >= 2
    final = portrait_document(compute(EmbeddedSource(store.snapshot("wx1")), q))
    assert sum(it["value"] for it in final["visit_uv"]["platforms"]) == len(
        {r["openid"] for r in rows}
    )


@pytest.mark.slow
def test_kill_9_during_ingest_loses_nothing_committed_and_counts_nothing_twice(
    store, tmp_path, make_store
):
    rows = visits_file(tmp_path / "big.jsonl", 4000, 30, seed=4)
    env = {**os.environ, "WEANALYSIS_DATA": str(store.dir)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "weanalysis",
            "ingest",
            "--chunk-rows",
            "1000",
            str(tmp_path / "big.jsonl"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    # kill it once some commits have landed
    deadline = time.time() + 60
    while time.time() < deadline and store.snapshot("wx1").version < 3:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = store.snapshot("wx1").manifest["counts"]["visits"]
    assert 0 < partial < len(rows)
    # the store is readable, and re-sending the whole file completes it exactly once
    total = ingest_file(store, tmp_path / "big.jsonl")
    assert total.accepted + total.duplicates == len(rows)
    assert total.duplicates >= partial
    assert store.snapshot("wx1").manifest["counts"]["visits"] == len(rows)
    reference = make_store({"wx1": "secret-123"}, name="ref")
    ingest_file(reference, tmp_path / "big.jsonl")
    assert all_windows(store, 30) == all_windows(reference, 30)


def test_string_hash_depends_on_the_string_alone():
    import pyarrow as pa

    from weanalysis.store.dedup import string_lanes

    alone = string_lanes(pa.array(["HUAWEI"]))
    for company in (["HUAWEI", "x" * 40], ["y" * 300, "HUAWEI"], [None, "HUAWEI"]):
        arr = pa.array(company)
        h0, h1 = string_lanes(arr)
        i = company.index("HUAWEI")
        assert (h0[i], h1[i]) == (alone[0][0], alone[1][0])
    sliced = pa.array(["zz", "HUAWEI"]).slice(1)
    assert string_lanes(sliced)[0][0] == alone[0][0]
    h0, _ = string_lanes(pa.array(["ab", "ab\x00", "ba", ""]))
    assert len(set(h0.tolist())) == 4
