"""Erasure and a change of time zone, against the oracle on random data.

After ``forget`` every window equals the oracle over the accepted records without the erased
users (including users whose first visit or latest profile is erased); after a new time zone
every window equals the oracle in that zone.
"""

from __future__ import annotations

import json
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import oracle
from tests.test_portrait_oracle import DAYS, START, a_history, ingest_history
from weanalysis.ingest import Ingestor
from weanalysis.portrait.embedded import EmbeddedSource
from weanalysis.portrait.engine import compute
from weanalysis.portrait.query import PortraitQuery
from weanalysis.store import Store, files, maintenance
from weanalysis.store.days import day_number
from weanalysis.store.integrity import check_app
from weanalysis.wechat.dialect import portrait_document

APP = "wxapp"
SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def windows(first_begin: int = -(10**9)):
    for length in (1, 2, 7):
        for end_off in range(0, DAYS + 1):
            end = START + timedelta(days=end_off)
            begin = end - timedelta(days=length - 1)
            if day_number(begin) >= first_begin:
                yield begin, end


def assert_equals_oracle(store: Store, stored: list[oracle.Rec], tz, first_begin=-(10**9)):
    snap = store.snapshot(APP)
    for begin, end in windows(first_begin):
        got = portrait_document(compute(EmbeddedSource(snap), PortraitQuery.of(APP, begin, end)))
        assert got == oracle.portrait(stored, tz, begin, end), (begin, end)


def assert_consistent(store: Store):
    d = store.app_dir(APP)
    checked, problems = check_app(d, store.snapshot(APP).manifest, store.dir)
    assert problems == []


@pytest.mark.slow
@SETTINGS
@given(history=a_history(), pick=st.integers(0, 63))
def test_forget_equals_oracle_without_the_users(tmp_path_factory, history, pick):
    tmp = tmp_path_factory.mktemp("forget")
    store, stored, _ = ingest_history(tmp, history, compact=True)
    users = sorted({r.openid for r in stored})
    gone = {u for i, u in enumerate(users) if pick >> i & 1} | {"never-seen"}
    app = store.catalog.get(APP)
    erased = maintenance.forget(store.dir, app, gone)
    kept = [r for r in stored if r.openid not in gone]
    assert erased.users == len(gone & set(users))
    assert erased.visits == sum(r.kind == "visit" for r in stored if r.openid in gone)
    assert erased.profiles == sum(r.kind == "profile" for r in stored if r.openid in gone)
    assert_equals_oracle(store, kept, ZoneInfo(history[0]))
    assert_consistent(store)
    m = store.snapshot(APP).manifest
    assert m["counts"] == {
        "visits": sum(r.kind == "visit" for r in kept),
        "profiles": sum(r.kind == "profile" for r in kept),
    }
    # nothing of theirs is left in any file the app names (openids are stored as text)
    for path in store.app_dir(APP).rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            users_of = None  # a user segment's openids, decoded
            if path.suffix == ".arrow":
                users_of = set(files.read_arrow(path).column("openid").to_pylist())
            for u in gone - {"never-seen"}:
                assert users_of is None or u not in users_of, path
                # short ids occur by chance in binary data: numbers (.npy), and the zstd output
                # of other openids and tombstones (.arrow: "u2", "\0erased:4", "u3" holds "u4")
                short_ok = len(u) < 3 and path.suffix in (".npy", ".arrow")
                assert u.encode() not in data or short_ok, path
    store.close()


def test_forget_then_resend_stores_them_again_as_new(tmp_path):
    store = Store(tmp_path / "data")
    store.catalog.add_app(APP, "secret-123", "Asia/Shanghai")
    rows = [
        {
            "appid": APP,
            "openid": "alice",
            "time": "2017-06-01T10:00:00+08:00",
            "event_id": "e1",
            "province": "广东",
            "gender": "女",
        },
        {"appid": APP, "openid": "alice", "time": "2017-06-02T10:00:00+08:00", "platform": "ios"},
        {"appid": APP, "openid": "bob", "time": "2017-06-02T11:00:00+08:00", "event_id": "e2"},
    ]
    path = tmp_path / "v.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))

    def ingest():
        ing = Ingestor(store, "visit")
        total, _ = ing.ingest_sources([(str(path), "jsonl")])
        ing.close()
        return total

    assert ingest().accepted == 3
    app = store.catalog.get(APP)
    erased = maintenance.forget(store.dir, app, ["alice", "nobody"])
    assert erased.as_dict() == {"users": 1, "visits": 2, "profiles": 0}
    again = ingest()  # alice's records are new again; bob's are duplicates
    assert (again.accepted, again.duplicates) == (2, 1)
    doc = portrait_document(
        compute(
            EmbeddedSource(store.snapshot(APP)),
            PortraitQuery.of(APP, START, START + timedelta(days=1)),
        )
    )
    assert [g["value"] for g in doc["visit_uv"]["genders"]] == [1, 1]
    assert maintenance.forget(store.dir, app, ["nobody"]).as_dict() == {
        "users": 0,
        "visits": 0,
        "profiles": 0,
    }
    store.close()


@pytest.mark.slow
@SETTINGS
@given(history=a_history(), zone=st.sampled_from(["UTC", "Asia/Kolkata", "America/New_York"]))
def test_new_time_zone_rederives_days(tmp_path_factory, history, zone):
    tmp = tmp_path_factory.mktemp("tz")
    store, stored, _ = ingest_history(tmp, history, compact=True)
    maintenance.set_timezone(store.dir, store.catalog, APP, zone)
    assert store.catalog.get(APP).timezone == zone
    assert_equals_oracle(store, stored, ZoneInfo(zone))
    assert_consistent(store)
    store.close()
