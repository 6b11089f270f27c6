"""Property test: the engine equals the brute-force oracle on random records.

Random users, times around local midnight in several time zones, every accepted spelling of
every field, profiles dated and undated, duplicates by event_id and by content, late records,
and ingestion in random chunk sizes (so merges of day summaries and person logs are exercised).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from unittest import mock
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import oracle
from weanalysis.enrich import devices
from weanalysis.ingest import Ingestor
from weanalysis.portrait import embedded
from weanalysis.portrait import explore as explore_mod
from weanalysis.portrait.duck import DuckSource
from weanalysis.portrait.embedded import EmbeddedSource
from weanalysis.portrait.engine import compute
from weanalysis.portrait.explore import (
    Explore,
    dimension,
    explore,
    parse_crosstab,
    parse_where,
    trend,
)
from weanalysis.portrait.query import PortraitQuery
from weanalysis.store import Store
from weanalysis.wechat.dialect import portrait_document, trend_document

ZONES = ["Asia/Shanghai", "America/New_York", "UTC", "Asia/Kolkata", "Pacific/Chatham"]
START = date(2017, 6, 1)
DAYS = 8
# (province spellings, city spellings, province id, city id)
PLACES = [
    (["广东", "广东省", "44", 440000], ["广州", "广州市", "4401", 440100], 44, 4401),
    (["广东省", 44], ["深圳", "440300"], 44, 4403),
    (["北京", "北京市", 11], ["北京", 1100], 11, 1100),
    (["吉林", "吉林省"], ["吉林", "吉林市", 2202], 22, 2202),
    (["浙江"], [None], 33, 0),
]
PLATFORMS = [
    ("ios", 1),
    ("iPhone", 1),
    ("android", 2),
    ("ohos", 3),
    ("windows", 3),
    ("mac", 3),
    ("其他", 3),
]
PHONES = [
    ("iPhone", "iPhone 12 Pro<iPhone13,3>"),
    ("HUAWEI", "NOH-AN00"),
    ("OPPO", "OPPO R9m"),
    ("Xiaomi", "M2012K11AC"),
]
GENDERS = [
    (0, 0),
    (1, 1),
    (2, 2),
    ("未知", 0),
    ("男", 1),
    ("女", 2),
    ("unknown", 0),
    ("male", 1),
    ("female", 2),
]


@st.composite
def a_record(draw, tz_name: str, users: int, days: int):
    tz = ZoneInfo(tz_name)
    kind = draw(st.sampled_from(["visit", "visit", "visit", "profile"]))
    openid = draw(st.sampled_from(["u1", "u2", "u3", "u4", "u5", "用户6"][:users]))
    day = START + timedelta(days=draw(st.integers(0, days - 1)))
    # minutes around local midnight, or anywhere in the day
    # a few instants around midnight (so equal times, ties broken by storage order, are common)
    # or anywhere in the day
    minute = draw(st.one_of(st.sampled_from([-1, 0, 1]), st.integers(0, 24 * 60 - 1)))
    local = datetime(day.year, day.month, day.day, tzinfo=tz) + timedelta(
        minutes=minute, seconds=draw(st.sampled_from([0, 0, 30, 59]))
    )
    t_ms = int(local.timestamp()) * 1000
    rec: dict = {"appid": "wxapp", "openid": openid}
    canon = oracle.Rec(kind=kind, openid=openid, time_ms=t_ms)
    spelling = draw(st.integers(0, 4))
    if kind == "profile" and draw(st.booleans()):
        canon.time_ms = None
    else:
        rec["time"] = [
            local.isoformat(),
            local.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            t_ms // 1000,
            t_ms,
            str(t_ms // 1000),
        ][spelling]
    if kind == "visit":
        if draw(st.booleans()):
            provs, cities, pid, cid = draw(st.sampled_from(PLACES))
            city = draw(st.sampled_from(cities))
            if draw(st.booleans()) or city is None:
                rec["province"] = draw(st.sampled_from(provs))
            if city is not None:
                rec["city"] = city
            canon.province, canon.city = pid, cid
        if draw(st.booleans()):
            word, pid = draw(st.sampled_from(PLATFORMS))
            rec["platform"] = word
            canon.platform = pid
        if draw(st.booleans()):
            brand, model = draw(st.sampled_from(PHONES))
            rec["brand"], rec["model"] = brand, model
            canon.device = (brand, model)  # named after drawing: the detector uses `random`
    if draw(st.booleans()):
        word, gid = draw(st.sampled_from(GENDERS))
        rec["gender"] = word
        canon.gender = gid
    if draw(st.booleans()):
        age = draw(st.sampled_from([5, 17, 18, 24, 25, 33, 45, 50, 99]))
        rec["age"] = draw(st.sampled_from([age, str(age)]))
        canon.age = age
    if draw(st.integers(0, 3)) == 0:
        rec["event_id"] = draw(st.sampled_from(["e1", "e2", "e3", "e4"]))
    return rec, canon


def content_key(rec: dict, canon: oracle.Rec) -> tuple:
    if "event_id" in rec:
        return ("event", rec["event_id"])
    return (
        "content",
        canon.kind,
        canon.openid,
        canon.time_ms,
        canon.province,
        canon.city,
        canon.platform,
        canon.device,
        canon.gender,
        canon.age,
        rec.get("brand"),
        rec.get("model"),
    )


@st.composite
def a_history(draw):
    tz = draw(st.sampled_from(ZONES))
    # few users over few days make collisions (same user, same day) common
    users, days = draw(st.integers(1, 6)), draw(st.integers(1, DAYS))
    recs = draw(st.lists(a_record(tz, users, days), min_size=1, max_size=40))
    # exact re-sends of earlier records: duplicates by content or by event id
    for _ in range(draw(st.integers(0, 5))):
        recs.append(draw(st.sampled_from(recs)))
    chunk = draw(st.integers(1, 12))
    return tz, recs, chunk


def ingest_history(tmp, history, compact: bool = False) -> tuple[Store, list[oracle.Rec], ZoneInfo]:
    """Ingests the drawn records as the README says; returns the store and the accepted records
    in storage order (visits file first, then profiles). Without compaction at the end by
    default, so that reads of several runs per day and log are checked."""
    tz_name, recs, chunk_rows = history
    for _, canon in recs:
        if isinstance(canon.device, tuple):
            canon.device = devices.device_name(*canon.device)
    store = Store(tmp / "data")
    store.catalog.add_app("wxapp", "secret-123", tz_name)
    accepted: dict[str, list[oracle.Rec]] = {"visit": [], "profile": []}
    seen: set = set()  # event ids are unique per app across kinds (SPEC 2.1)
    files = {}
    for kind in ("visit", "profile"):
        lines = []
        for rec, canon in recs:
            if canon.kind != kind:
                continue
            lines.append(json.dumps(rec, ensure_ascii=False))
            key = content_key(rec, canon)
            if key not in seen:
                seen.add(key)
                accepted[kind].append(canon)
        path = tmp / f"{kind}.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        files[kind] = path
    for kind in ("visit", "profile"):
        ing = Ingestor(store, kind, compact=compact)
        total, _ = ing.ingest_sources([(str(files[kind]), "jsonl")], chunk_rows=chunk_rows)
        ing.close()
        assert total.rejected == 0, total.as_dict()
        assert total.accepted == len(accepted[kind])
    return store, accepted["visit"] + accepted["profile"], ZoneInfo(tz_name)


@pytest.mark.slow
@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(a_history())
def test_engine_equals_oracle(tmp_path_factory, history):
    store, stored, tz = ingest_history(tmp_path_factory.mktemp("store"), history)
    wants = {}
    for compacted in (False, True):
        if compacted:  # then the same answers from one run per day and log, the view, counts
            writer = store.writer()
            writer.compact(store.catalog.get("wxapp"))
            writer.close()
        snap = store.snapshot("wxapp")
        # the same engine over a second source, DuckDB over the raw records alone: the store's
        # derived structures (day summaries, person logs, first days) must agree with it
        duck = DuckSource.of_snapshot(snap) if not compacted else None
        for length in (1, 2, 7):
            for end_off in range(0, DAYS + 1):
                end = START + timedelta(days=end_off)
                begin = end - timedelta(days=length - 1)
                q = PortraitQuery.of("wxapp", begin, end)
                got = portrait_document(compute(EmbeddedSource(snap), q))
                if (begin, end) not in wants:
                    wants[(begin, end)] = oracle.portrait(stored, tz, begin, end)
                want = wants[(begin, end)]
                assert got == want, (begin, end, compacted)
                # the same with the two-thread path (halves of the uid space) a large app takes
                with mock.patch.object(embedded, "PARALLEL_ROWS", 1):
                    split = portrait_document(compute(EmbeddedSource(snap), q))
                assert split == want, ("two threads", begin, end, compacted)
                if duck is not None:
                    assert portrait_document(compute(duck, q)) == want, ("duckdb", begin, end)
        if duck is not None:
            duck.close()
        snap.close()
    store.close()


# every id the random records can hold, and a few they never do (an empty segment)
WHERE_VALUES = {
    "province": [0, 11, 22, 33, 44, 81],
    "city": [0, 1100, 2202, 4401, 4403, 8100],
    "genders": [0, 1, 2],
    "gender": [0, 1, 2],
    "platforms": [0, 1, 2, 3],
    "platform": [0, 1, 2, 3],
    "ages": [0, 1, 2, 3, 4, 5, 6],
    "age": [0, 2, 6],
    "devices": ["未知"],
    "device": ["未知"],
}


@st.composite
def an_exploration(draw):
    """A --where list (names of stored devices filled in later), a cross-tab, compare, K."""
    where = []
    for _ in range(draw(st.integers(0, 3))):
        dim = draw(st.sampled_from(sorted(WHERE_VALUES)))
        if dim.startswith("device"):
            where.append((dim, None))  # a stored device name or 未知, drawn from the data
        else:
            where.append((dim, draw(st.sampled_from(WHERE_VALUES[dim]))))
    crosstab = draw(st.one_of(st.none(), st.tuples(*[st.sampled_from(sorted(WHERE_VALUES))] * 2)))
    return where, crosstab, draw(st.booleans()), draw(st.sampled_from([0, 0, 1, 2, 3]))


@pytest.mark.slow
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(a_history(), an_exploration(), st.data())
def test_explorer_equals_oracle(tmp_path_factory, history, exploration, data):
    """--where, --crosstab, --compare, --min-users and trend against the oracle, on random data."""
    store, stored, tz = ingest_history(tmp_path_factory.mktemp("store"), history)
    src = EmbeddedSource(store.snapshot("wxapp"))
    names = sorted({r.device for r in stored if r.device} | {"未知"})
    raw_where, pair, compare, k = exploration
    where = [
        f"{d}={v if v is not None else data.draw(st.sampled_from(names))}" for d, v in raw_where
    ]
    seg = parse_where(where)
    ct = None
    if pair is not None:
        a, b = parse_crosstab(",".join(pair))
        ct = (a.list_name, b.list_name)
    ex = Explore(where=seg, crosstab=ct, compare=compare, min_users=k)
    # cross-tabs count a slice of users at a time: slices of 3 users make several of them here
    many_slices = mock.patch.object(
        explore_mod, "BINCOUNT_SLICE", data.draw(st.sampled_from([3, 1 << 16]))
    )
    for length in (1, 3, 7):
        for end_off in (length - 1, DAYS // 2, DAYS):
            end = START + timedelta(days=end_off)
            begin = end - timedelta(days=length - 1)
            q = PortraitQuery.of("wxapp", begin, end)
            with many_slices:
                got = portrait_document(explore(src, q, ex))
            want = oracle.explore(stored, tz, begin, end, where, pair, compare, k)
            assert got == want, (begin, end, where, pair, compare, k)
            if length == 1 and not (seg or ct or compare or k):
                assert got == oracle.portrait(stored, tz, begin, end)
    dim = data.draw(st.sampled_from(sorted(WHERE_VALUES)))
    users = data.draw(st.sampled_from(["new", "active"]))
    begin, end = START - timedelta(days=1), START + timedelta(days=DAYS)
    tq = PortraitQuery.of("wxapp", begin, end)
    want = oracle.trend(stored, tz, begin, end, dim, users, where, k)
    assert trend_document(trend(src, tq, dimension(dim), users, seg, k)) == want
    # the same explorer over the second source (DuckDB over the raw records alone)
    duck = DuckSource.of_snapshot(store.snapshot("wxapp"))
    assert trend_document(trend(duck, tq, dimension(dim), users, seg, k)) == want
    q = PortraitQuery.of("wxapp", START, START + timedelta(days=DAYS - 1))
    assert portrait_document(explore(duck, q, ex)) == portrait_document(explore(src, q, ex))
    duck.close()
    # compacted, each day holds its 1-day answer as counts: an unsegmented trend reads them
    writer = store.writer()
    writer.compact(store.catalog.get("wxapp"))
    writer.close()
    compacted = EmbeddedSource(store.snapshot("wxapp"))
    scattered: list[tuple[int, int]] = []
    window = compacted.window
    compacted.window = lambda b, e: (scattered.append((b, e)), window(b, e))[1]  # type: ignore[method-assign]
    assert trend_document(trend(compacted, tq, dimension(dim), users, seg, k)) == want
    if not seg:
        assert not scattered, scattered
    store.close()


def test_oracle_sanity_latest_wins_and_new_users():
    """The oracle itself on a hand-made case (so a bug in it cannot hide an engine bug)."""
    tz = ZoneInfo("Asia/Shanghai")

    def t(d: int, h: int) -> int:
        return int(datetime(2017, 6, d, h, tzinfo=tz).timestamp() * 1000)

    recs = [
        oracle.Rec("visit", "a", t(1, 9), 44, 4401, 1, "苹果iPhone X", 1, 20),
        oracle.Rec("visit", "a", t(3, 9), 11, 1100, 0, None),
        oracle.Rec("visit", "b", t(3, 23), 0, 0, 2, "OPPO R9"),
        oracle.Rec("profile", "b", None, gender=2, age=60),
    ]
    doc = oracle.portrait(recs, tz, date(2017, 6, 3), date(2017, 6, 3))
    assert doc["ref_date"] == "20170603"
    assert doc["visit_uv"]["province"] == [
        {"id": 0, "name": "未知", "value": 1},
        {"id": 11, "name": "北京市", "value": 1},
    ]
    assert doc["visit_uv"]["platforms"] == [
        {"id": 0, "name": "未知", "value": 1},
        {"id": 2, "name": "android", "value": 1},
    ]
    assert doc["visit_uv_new"]["genders"] == [{"id": 2, "name": "女", "value": 1}]
    assert doc["visit_uv"]["ages"] == [
        {"id": 2, "name": "18-24岁", "value": 1},
        {"id": 6, "name": "50岁以上", "value": 1},
    ]
    assert doc["visit_uv"]["devices"] == [
        {"name": "OPPO R9", "value": 1},
        {"name": "未知", "value": 1},
    ]


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])


@pytest.mark.parametrize("dtype, bins", [(np.uint8, 54), (np.uint8, 256), (np.uint16, 700)])
@pytest.mark.parametrize("n", [0, 1, 2, 5, 70_001])
def test_cross_tab_counting_equals_bincount(dtype, bins, n, monkeypatch):
    """Byte codes are counted in pairs, wider ones a slice at a time: both are bincount."""
    monkeypatch.setattr(explore_mod, "BINCOUNT_SLICE", 1000)
    codes = np.random.default_rng(n).integers(0, bins, n).astype(dtype)
    got = explore_mod._bincount(codes, bins)
    assert got.tolist() == np.bincount(codes, minlength=bins).tolist()
