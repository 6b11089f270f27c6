"""Retention against the oracle on random data.

Records of days before the cutoff are deleted; every window inside the retained range must
still equal the oracle over the *full* history (users whose first visit, or whose latest gender
or age, lies before the cutoff included), through the embedded store, after a rebuild, and
through DuckDB over the raw records plus the retained state; every window that reaches before it
is refused. Records that arrive late (days before the cutoff) are folded in by the next pass;
forget after retention erases the users from the retained state too.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import oracle
from tests.test_portrait_oracle import DAYS, START, a_history, content_key
from weanalysis.enrich import devices
from weanalysis.ingest import Ingestor
from weanalysis.portrait.duck import DuckSource
from weanalysis.portrait.embedded import EmbeddedSource
from weanalysis.portrait.engine import compute
from weanalysis.portrait.explore import dimension, trend
from weanalysis.portrait.query import PortraitQuery
from weanalysis.store import Store, maintenance, retention
from weanalysis.store.days import day_number
from weanalysis.store.integrity import check_app
from weanalysis.store.retention import WindowBeforeRetention
from weanalysis.wechat.dialect import portrait_document

APP = "wxapp"
SETTINGS = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


class History:
    """A store fed part by part, with the accepted records in storage order (the oracle's)."""

    def __init__(self, tmp, tz_name: str):
        self.tmp = tmp
        self.store = Store(tmp / "data")
        self.store.catalog.add_app(APP, "secret-123", tz_name)
        self.tz = ZoneInfo(tz_name)
        self.stored: list[oracle.Rec] = []
        self.seen: set = set()
        self.parts = 0

    @property
    def app(self):
        return self.store.catalog.get(APP)

    def ingest(self, recs, chunk_rows: int) -> None:
        self.parts += 1
        for kind in ("visit", "profile"):
            lines = []
            want = 0
            for rec, canon in recs:
                if canon.kind != kind:
                    continue
                if isinstance(canon.device, tuple):
                    canon.device = devices.device_name(*canon.device)
                lines.append(json.dumps(rec, ensure_ascii=False))
                key = content_key(rec, canon)
                if key not in self.seen:
                    self.seen.add(key)
                    self.stored.append(canon)
                    want += 1
            if not lines:
                continue
            path = self.tmp / f"{kind}-{self.parts}.jsonl"
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
            ing = Ingestor(self.store, kind)
            total, _ = ing.ingest_sources([(str(path), "jsonl")], chunk_rows=chunk_rows)
            ing.close()
            assert total.rejected == 0 and total.accepted == want, total.as_dict()


def windows():
    for length in (1, 2, 7):
        for end_off in range(0, DAYS + 1):
            end = START + timedelta(days=end_off)
            yield end - timedelta(days=length - 1), end


def assert_retained_equals_oracle(h: History, stored, first_kept: date, duck: bool = True):
    snap = h.store.snapshot(APP)
    sources = [EmbeddedSource(snap)] + ([DuckSource.of_snapshot(snap)] if duck else [])
    for begin, end in windows():
        q = PortraitQuery.of(APP, begin, end)
        try:
            want = oracle.retained_portrait(stored, h.tz, begin, end, first_kept)
        except oracle.BeforeRetention:
            for src in sources:
                with pytest.raises(WindowBeforeRetention):
                    compute(src, q)
            continue
        for src in sources:
            assert portrait_document(compute(src, q)) == want, (begin, end, type(src).__name__)
    if duck:
        sources[1].close()
    snap.close()


def assert_consistent(h: History, first_kept: date, stored) -> None:
    m = h.store.snapshot(APP).manifest
    _, problems = check_app(h.store.app_dir(APP), m, h.store.dir)
    assert problems == []
    assert retention.retained_from(m) == day_number(first_kept)

    def kept(r: oracle.Rec) -> bool:
        return r.time_ms is None or oracle.local_day(r.time_ms, h.tz) >= first_kept

    # the raw records left are exactly those of retained days (and undated profiles)
    assert m["counts"] == {
        "visits": sum(r.kind == "visit" and kept(r) for r in stored),
        "profiles": sum(r.kind == "profile" and kept(r) for r in stored),
    }
    assert all(int(d) >= day_number(first_kept) for d in m["days"])


@pytest.mark.slow
@SETTINGS
@given(
    history=a_history(),
    split=st.floats(0.2, 1.0),
    first=st.integers(0, DAYS),
    more=st.integers(0, 3),
    pick=st.integers(0, 63),
)
def test_retention_equals_oracle_on_the_full_history(
    tmp_path_factory, history, split, first, more, pick
):
    tz_name, recs, chunk = history
    h = History(tmp_path_factory.mktemp("retention"), tz_name)
    cut = int(len(recs) * split)
    h.ingest(recs[:cut], chunk)
    first_kept = START + timedelta(days=first)
    out = retention.retain(h.store.dir, h.app, day_number(first_kept))
    assert out.from_day == day_number(first_kept)
    assert_retained_equals_oracle(h, h.stored, first_kept)
    assert_consistent(h, first_kept, h.stored)

    # late records (some of days before the cutoff), then a later pass folds them in
    h.ingest(recs[cut:], max(1, chunk // 2))
    first_kept += timedelta(days=more)
    retention.retain(h.store.dir, h.app, day_number(first_kept))
    assert_retained_equals_oracle(h, h.stored, first_kept)
    assert_consistent(h, first_kept, h.stored)

    # a rebuild re-derives from the retained state and the raw records: the same answers
    writer = h.store.writer()
    writer.rebuild(h.app)
    writer.close()
    assert_retained_equals_oracle(h, h.stored, first_kept, duck=False)

    # forget after retention: the users leave the retained state too
    users = sorted({r.openid for r in h.stored})
    gone = {u for i, u in enumerate(users) if pick >> i & 1}
    maintenance.forget(h.store.dir, h.app, gone)
    kept = [r for r in h.stored if r.openid not in gone]
    assert_retained_equals_oracle(h, kept, first_kept)
    assert_consistent(h, first_kept, kept)
    h.store.close()


def test_users_whose_first_visit_and_profile_lie_before_the_cutoff(tmp_path):
    """The cases by hand: a user seen before the cutoff and again after it is not new after
    it, and keeps the gender of a record before it; a user whose only records lie before it
    is gone from every retained window; a window before it is refused by every path."""
    h = History(tmp_path, "Asia/Shanghai")
    rows = [
        ("old", "2017-06-01T10:00:00+08:00", {"gender": "女", "age": 33, "platform": "ios"}),
        ("old", "2017-06-05T10:00:00+08:00", {"platform": "android"}),
        ("gone", "2017-06-02T10:00:00+08:00", {"gender": "男"}),
        ("fresh", "2017-06-05T11:00:00+08:00", {"age": 18}),
    ]
    recs = []
    for openid, t, extra in rows:
        rec = {"appid": APP, "openid": openid, "time": t, **extra}
        ms = int(datetime.fromisoformat(t).timestamp() * 1000)
        canon = oracle.Rec(
            "visit", openid, ms, gender={"女": 2, "男": 1}.get(extra.get("gender"), 0)
        )
        canon.age = extra.get("age")
        canon.platform = {"ios": 1, "android": 2}.get(extra.get("platform"), 0)
        recs.append((rec, canon))
    h.ingest(recs, 10)
    first_kept = date(2017, 6, 4)
    out = retention.retain(h.store.dir, h.app, day_number(first_kept))
    assert (out.visits, out.profiles, out.users) == (2, 0, 2)  # old and gone keep a first day
    b, e = date(2017, 6, 4), date(2017, 6, 5)
    doc = portrait_document(
        compute(EmbeddedSource(h.store.snapshot(APP)), PortraitQuery.of(APP, b, e))
    )
    assert doc == oracle.portrait(h.stored, h.tz, b, e)
    assert [(g["name"], g["value"]) for g in doc["visit_uv"]["genders"]] == [("未知", 1), ("女", 1)]
    assert sum(p["value"] for p in doc["visit_uv_new"]["platforms"]) == 1  # fresh only
    for begin in (date(2017, 6, 3), date(2017, 5, 30)):
        q = PortraitQuery.of(APP, begin, date(2017, 6, 5))
        with pytest.raises(WindowBeforeRetention, match="2017-06-04"):
            compute(EmbeddedSource(h.store.snapshot(APP)), q)
    src = EmbeddedSource(h.store.snapshot(APP))
    with pytest.raises(WindowBeforeRetention):
        trend(src, PortraitQuery.of(APP, date(2017, 6, 3), date(2017, 6, 5)), dimension("genders"))
    # a backup restores the retained state too: the same answers, the same refusals
    from weanalysis.store import backup

    made = backup.backup(h.store.dir, tmp_path / "backups")
    backup.restore(made.path, tmp_path / "restored")
    again = Store(tmp_path / "restored")
    src = EmbeddedSource(again.snapshot(APP))
    assert portrait_document(compute(src, PortraitQuery.of(APP, b, e))) == doc
    with pytest.raises(WindowBeforeRetention):
        compute(src, PortraitQuery.of(APP, date(2017, 6, 3), e))
    again.close()
    # the time zone cannot be changed any more: the deleted records' days are gone
    with pytest.raises(maintenance.CatalogError, match="retention"):
        maintenance.set_timezone(h.store.dir, h.store.catalog, APP, "UTC")
    # nothing of the deleted records is left in the raw segments
    snap = h.store.snapshot(APP)
    days = np.concatenate([np.asarray(pq.read_table(p).column("day")) for p in snap.raw_files()])
    assert days.min() >= day_number(first_kept)
    h.store.close()


def test_a_commit_applies_the_retention_and_folds_in_late_records(tmp_path):
    """With a retention set, the commit that finds it due trims; a later commit that stores
    records of days before the range runs a pass again: they leave the raw records, and what
    they say about first visits and gender/age is kept."""
    from tests.records import ingest_rows

    tz = ZoneInfo("Asia/Shanghai")
    today = datetime.now(tz).date()
    store = Store(tmp_path / "data")
    store.catalog.add_app(APP, "secret-123")
    store.catalog.set_retention_days(APP, 3)

    def at(back: int, openid: str, **extra) -> dict:
        day = today - timedelta(days=back)
        return {"appid": APP, "openid": openid, "time": f"{day}T09:00:00+08:00", **extra}

    ingest_rows(store, tmp_path / "a.jsonl", [at(9, "u1"), at(1, "u1"), at(1, "u2")])
    m = store.snapshot(APP).manifest
    first_kept = day_number(today) - 3
    assert retention.retained_from(m) == first_kept and m["counts"]["visits"] == 2
    # late: u2 visited long ago (no longer new), u3 is 女 since a day before the range
    late = [at(6, "u2"), at(5, "u3", gender="女"), at(1, "u3")]
    ingest_rows(store, tmp_path / "b.jsonl", late)
    m = store.snapshot(APP).manifest
    assert m["counts"]["visits"] == 3 and retention.retained_from(m) == first_kept
    kept = retention.load(store.app_dir(APP), m)
    assert sorted(kept["first_uid"].tolist()) == [0, 1, 2]
    assert kept["gender_val"].tolist() == [2]
    yesterday = today - timedelta(days=1)
    q = PortraitQuery.of(APP, yesterday, yesterday)
    doc = portrait_document(compute(EmbeddedSource(store.snapshot(APP)), q))
    assert doc["visit_uv_new"]["genders"] == []  # all three first visited before the range
    assert doc["visit_uv"]["genders"] == [
        {"id": 0, "name": "未知", "value": 2},
        {"id": 2, "name": "女", "value": 1},
    ]
    store.close()


@pytest.mark.parametrize(
    ("start", "days", "oldest", "want"),
    [
        (None, None, None, None),  # no retention: never
        (None, 10, None, 90),  # the first pass
        (90, 10, None, None),  # done for today
        (89, 10, None, 90),  # a new day
        (90, 10, 95, None),  # a commit of days inside the range
        (90, 10, 89, 90),  # a commit of a day before it
        (95, 10, None, None),  # a longer retention brings nothing back
        (95, 10, 93, 95),  # ... and records of days before what is kept still go
        (95, None, 93, None),  # retention off: late records stay
    ],
)
def test_when_a_pass_is_due(start, days, oldest, want):
    m = {"version": 3}
    if start is not None:
        m["retained"] = {"from_day": start, "dir": "meta/retained-v000002"}
    assert retention.due(m, days, ZoneInfo("UTC"), today_day=100, oldest=oldest) == want
    assert retention.due({"version": 0}, 10, ZoneInfo("UTC"), today_day=100) is None


def test_a_manifest_with_a_garbled_retained_entry_is_refused(tmp_path):
    from weanalysis.errors import StoreDamagedError
    from weanalysis.store.snapshot import check_manifest, empty_manifest

    m = {**empty_manifest(), "retained": {"from_day": "x", "dir": "meta/retained-v1"}}
    with pytest.raises(StoreDamagedError, match="retained"):
        check_manifest(tmp_path / "manifest.json", m)
    m["retained"] = {"from_day": 3, "dir": "../../etc"}
    with pytest.raises(StoreDamagedError, match="outside"):
        check_manifest(tmp_path / "manifest.json", m)
