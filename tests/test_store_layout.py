"""The store's layout: run merges (unit tests against brute force), small commits that write
little, reader leases and garbage, orphans of killed commits, and ``rebuild``."""

from __future__ import annotations

import json
import os
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import servers
from tests.records import ingest_file as ingest
from tests.test_store import START, all_windows, visits_file
from weanalysis.cli.main import cli
from weanalysis.ingest import Ingestor, SourceError
from weanalysis.portrait.embedded import EmbeddedSource
from weanalysis.portrait.engine import compute
from weanalysis.portrait.query import PortraitQuery
from weanalysis.store import AppSnapshot
from weanalysis.store.snapshot import StoreFormatError
from weanalysis.store.summaries import (
    SLOT_BITS,
    VISIT_ATTRS,
    base_run,
    log_of_base,
    merge_day,
    merge_logs,
    merge_summaries,
    new_entries,
    person_values,
)
from weanalysis.wechat.dialect import portrait_document


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# -- day summaries -------------------------------------------------------------------------


def brute_day(rows):
    """rows: (uid, t, loc, plat, dev) in storage order -> {uid: {attr: (value, t)}}."""
    out: dict[int, dict[str, tuple[int, int]]] = {}
    for uid, t, *vals in rows:
        d = out.setdefault(uid, {a: (0, 0) for a in VISIT_ATTRS})
        for a, v in zip(VISIT_ATTRS, vals, strict=True):
            if v != 0 and (d[a][0] == 0 or t >= d[a][1]):  # a later-stored row wins a tie
                d[a] = (v, t)
    return out


def summary_of(rows):
    uid = np.array([r[0] for r in rows], dtype=np.uint32)
    t = np.array([r[1] for r in rows], dtype=np.int32)
    vals = {a: np.array([r[2 + i] for r in rows]) for i, a in enumerate(VISIT_ATTRS)}
    return merge_day(None, uid, t, vals)


def as_dict(s):
    return {
        int(u): {a: (int(s[a][i]), int(s[a + "_t"][i])) for a in VISIT_ATTRS}
        for i, u in enumerate(s["uid"])
    }


day_rows = st.lists(
    st.tuples(
        st.integers(0, 6), st.integers(0, 4), st.integers(0, 3), st.integers(0, 2),
        st.integers(0, 3),
    ),
    min_size=1,
    max_size=30,
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(day_rows, st.lists(st.integers(1, 29), max_size=3))
def test_day_runs_merged_equal_one_summary_of_all_rows(rows, cuts):
    """However the rows are split into runs (in storage order), merging the runs gives the
    summary of all rows: latest known value per attribute, ties to the later-stored row."""
    bounds = sorted({c for c in cuts if c < len(rows)})
    parts = [rows[a:b] for a, b in zip([0, *bounds], [*bounds, len(rows)], strict=True)]
    merged = summary_of(parts[0])
    for p in parts[1:]:
        merged = merge_summaries(merged, summary_of(p))
    assert as_dict(merged) == {
        u: {a: (v, t if v else 0) for a, (v, t) in d.items()} for u, d in brute_day(rows).items()
    }
    # merge_day folding new rows into a stored summary says the same
    again = summary_of(parts[0])
    for p in parts[1:]:
        again = merge_day(again, *_cols(p))
    assert as_dict(again) == as_dict(merged)


def _cols(rows):
    uid = np.array([r[0] for r in rows], dtype=np.uint32)
    t = np.array([r[1] for r in rows], dtype=np.int32)
    return uid, t, {a: np.array([r[2 + i] for r in rows]) for i, a in enumerate(VISIT_ATTRS)}


def test_day_summary_unknown_values_never_override_known_ones():
    s = summary_of([(1, 5, 3, 1, 7), (1, 9, 0, 0, 0)])
    assert as_dict(s) == {1: {"loc": (3, 5), "plat": (1, 5), "dev": (7, 5)}}
    later = merge_summaries(s, summary_of([(1, 5, 4, 0, 0), (2, 1, 0, 2, 0)]))
    assert as_dict(later) == {
        1: {"loc": (4, 5), "plat": (1, 5), "dev": (7, 5)},  # same time, stored later: wins
        2: {"loc": (0, 0), "plat": (2, 1), "dev": (0, 0)},
    }


# -- person logs ---------------------------------------------------------------------------

person_rows = st.lists(
    st.tuples(st.integers(0, 4), st.integers(1, 8), st.integers(0, 3), st.integers(1, 2)),
    min_size=1,
    max_size=30,
)  # (uid, slot, t, value) in storage order


def brute_person(rows, users, end_slot):
    best: dict[int, tuple[int, int, int, int]] = {}  # uid -> (slot, t, order, value)
    for order, (u, slot, t, v) in enumerate(rows):
        if slot <= end_slot:
            cand = (slot, t, order, v)
            if u not in best or cand[:3] > best[u][:3]:
                best[u] = cand
    return [best[u][3] if u in best else 0 for u in users]


def run_of(rows):
    a = np.array(rows, dtype=np.int64).reshape(-1, 4)
    return new_entries(a[:, 0], a[:, 1], a[:, 2], a[:, 3])


@settings(max_examples=300, deadline=None)
@given(person_rows, st.lists(st.integers(1, 29), max_size=3), st.integers(-2, 8))
def test_person_values_over_runs_equal_brute_force(rows, cuts, end_day):
    """A log as a base run (by user) plus recent runs answers like a scan of all rows:
    the latest slot <= the end, on a tie the latest time, then the later-stored row."""
    bounds = sorted({c for c in cuts if c < len(rows)})
    parts = [rows[a:b] for a, b in zip([0, *bounds], [*bounds, len(rows)], strict=True)]
    base = run_of(parts[0])
    runs = [base_run(base, 5), *(run_of(p) for p in parts[1:])]
    users = np.arange(6, dtype=np.uint32)  # user 5 has no entry at all
    end_slot = end_day + 2
    want = brute_person(rows, users.tolist(), end_slot)
    assert person_values(runs, users, end_day).tolist() == want
    # one merged log (what the compactor writes) answers the same
    log = run_of(parts[0])
    for p in parts[1:]:
        log = merge_logs(log, run_of(p))
    whole = [base_run(log, 6)]
    assert person_values(whole, users, end_day).tolist() == want
    # and a base run read back for a merge is the log it was made of
    back = log_of_base(whole[0])
    assert all(np.array_equal(back[k], log[k]) for k in ("key", "t", "val"))


def test_a_base_run_keeps_each_users_entries_and_last_entry():
    log = run_of([(0, 3, 0, 1), (0, 5, 0, 2), (0, 9, 0, 1), (2, 4, 0, 2)])
    b = base_run(log, 4)
    assert [(c >> 4, c & 15) for c in b["cur"].tolist()] == [(9, 1), (0, 0), (4, 2), (0, 0)]
    assert b["off"].tolist() == [0, 3, 3, 4, 4] and b["slot"].tolist() == [3, 5, 9, 4]
    assert b["slot"].dtype == np.uint16 and b["t"].dtype == np.int32
    assert (log["key"] >> SLOT_BITS).tolist() == [0, 0, 0, 2]
    # a window ending before the last two entries searches the user's slots
    users = np.arange(4, dtype=np.uint32)
    assert person_values([b], users, 8 - 2).tolist() == [2, 0, 2, 0]
    assert person_values([b], users, 4 - 2).tolist() == [1, 0, 2, 0]
    assert person_values([b], users, 3 - 2).tolist() == [1, 0, 0, 0]
    assert person_values([b], users, 2 - 2).tolist() == [0, 0, 0, 0]


def test_log_times_are_exact_int32_offsets_from_the_entrys_day():
    from weanalysis.store.days import MS_PER_DAY
    from weanalysis.store.summaries import T_ABSENT, day_slot, log_times

    day = np.array([20000, 20000, 20001, 0], dtype=np.int64)
    t = day * MS_PER_DAY + np.array([-8 * 3600_000, 16 * 3600_000 - 1, 0, 5])
    got = log_times(day_slot(day), t)
    assert got.dtype == np.int32 and got.tolist() == [-8 * 3600_000, 16 * 3600_000 - 1, 0, 5]
    assert log_times(np.array([1]), np.array([np.iinfo(np.int64).min])).tolist() == [T_ABSENT]


# -- commits, leases, garbage, orphans ------------------------------------------------------


@pytest.fixture
def store(make_store):
    return make_store({"wx1": "secret-123"})


def one_visit_file(path: Path, k: int, n: int = 10) -> None:
    rows = [
        {
            "appid": "wx1",
            "openid": f"late{k}-{i}",
            "time": f"{START.isoformat()}T12:{i % 60:02d}:{k % 60:02d}+08:00",
            "province": "广东",
            "platform": "ios",
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def test_small_commits_write_little_and_superseded_files_go_at_once(store, tmp_path):
    visits_file(tmp_path / "big.jsonl", 30_000, 1)  # one day with 10,000 users
    ingest(store, tmp_path / "big.jsonl", chunk_rows=100_000)
    app = store.app_dir("wx1")
    day_run = du(app / "days")
    before = du(app)
    for k in range(40):  # 40 commits of 10 visits into the same day
        one_visit_file(tmp_path / "s.jsonl", k)
        ingest(store, tmp_path / "s.jsonl")
    grown = du(app) - before
    # copying the day on each commit would add 40 × the day's run; runs add O(their rows)
    assert grown < 2 * day_run, (grown, day_run)
    m = store.snapshot("wx1").manifest
    assert len(m["days"][str((START - date(1970, 1, 1)).days)]) <= 8
    # small raw and user segments are merged too: a handful of files, not one per commit
    assert len(m["raw"]) <= 8 and len(m["user_segments"]) <= 8, (m["raw"], m["user_segments"])
    # no reader holds an old snapshot: nothing superseded is left on disk
    on_disk = {f"{p.parent.name}/{p.name}" for p in app.glob("*/*") if p.parent.name != "leases"}
    named = {str(p.relative_to(app)) for p in store.snapshot("wx1").live_files()}
    named = {"/".join(n.split("/")[:2]) for n in named}
    assert on_disk == named


def test_a_reader_keeps_its_files_until_it_lets_go(store, tmp_path):
    visits_file(tmp_path / "a.jsonl", 60, 5, seed=1)
    ingest(store, tmp_path / "a.jsonl")
    old = store.snapshot("wx1")
    q = PortraitQuery.of("wx1", START, START + timedelta(days=4))
    before = portrait_document(compute(EmbeddedSource(old), q))
    held = [p for p in old.live_files() if "/days/" in str(p)]
    visits_file(tmp_path / "b.jsonl", 60, 5, seed=2)
    ingest(store, tmp_path / "b.jsonl")
    ingest(store, tmp_path / "b.jsonl")  # another commit: its garbage pass sees the lease
    assert all(p.exists() for p in held)  # superseded, but a reader holds them
    assert portrait_document(compute(EmbeddedSource(old), q)) == before
    old.close()
    one_visit_file(tmp_path / "c.jsonl", 1)
    ingest(store, tmp_path / "c.jsonl")  # the next commit reclaims them
    still = {str(p) for p in store.snapshot("wx1").live_files()}
    superseded = [p for p in held if str(p) not in still]
    assert superseded and not any(p.exists() for p in superseded)


def test_orphans_of_a_killed_commit_are_removed_when_a_writer_opens_the_app(store, tmp_path):
    visits_file(tmp_path / "a.jsonl", 30, 3)
    ingest(store, tmp_path / "a.jsonl")
    app = store.app_dir("wx1")
    (app / "days" / "17000-v999999").mkdir()
    (app / "days" / "17000-v999999" / "uid.npy").write_bytes(b"half")
    (app / "raw" / "visits-v999999.parquet").write_bytes(b"half")
    (app / ".manifest.json.tmp123").write_bytes(b"{")
    before = all_windows(store, 3)
    one_visit_file(tmp_path / "b.jsonl", 2)
    ingest(store, tmp_path / "b.jsonl")
    assert not (app / "days" / "17000-v999999").exists()
    assert not (app / "raw" / "visits-v999999.parquet").exists()
    assert not (app / ".manifest.json.tmp123").exists()
    assert all_windows(store, 3)[(1, 2)] == before[(1, 2)]


# -- rebuild ---------------------------------------------------------------------------------


def run_cli(args, data: Path):
    from click.testing import CliRunner

    return CliRunner().invoke(cli, ["--data", str(data), *args])


def test_rebuild_gives_the_same_portraits(store, tmp_path):
    visits_file(tmp_path / "a.jsonl", 80, 8, seed=3)
    ingest(store, tmp_path / "a.jsonl", chunk_rows=37)
    profiles = tmp_path / "p.jsonl"
    profiles.write_text(
        "".join(
            json.dumps({"appid": "wx1", "openid": f"user{u}", "gender": "男", "age": 20 + u}) + "\n"
            for u in range(0, 80, 3)
        )
    )
    ingest(store, profiles, kind="profile")
    before = all_windows(store, 8)
    r = run_cli(["rebuild", "--appid", "wx1", "--no-progress"], store.dir)
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.strip().splitlines()[-1])["appid"] == "wx1"
    assert all_windows(store, 8) == before
    # and the store keeps taking records afterwards
    visits_file(tmp_path / "b.jsonl", 80, 8, seed=4)
    ingest(store, tmp_path / "b.jsonl")
    assert all_windows(store, 8) != before


def test_an_old_format_folder_is_refused_with_the_way_out_and_rebuilt(store, tmp_path):
    visits_file(tmp_path / "a.jsonl", 50, 4, seed=5)
    ingest(store, tmp_path / "a.jsonl", chunk_rows=50)
    before = all_windows(store, 4)
    app = store.app_dir("wx1")
    m = json.loads((app / "manifest.json").read_text())
    # the format-2 shape: one name per derived structure (rebuild reads only raw and users)
    m["format"] = 2
    m["days"] = {d: runs[0][0] for d, runs in m["days"].items()}
    m["first_day"] = m["first_day"][0][0]
    m["persons"] = {k: (v[0][0] if v else None) for k, v in m["persons"].items()}
    (app / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(StoreFormatError, match="weanalysis rebuild --appid wx1"):
        store.snapshot("wx1")
    env = {**os.environ, "WEANALYSIS_DATA": str(store.dir)}
    args = ("portrait", "--appid", "wx1", "--begin", "20170601", "--end", "20170602")
    p = servers.cli(env, *args)  # the installed command: one line, exit status 2
    assert p.returncode == 2 and p.stdout == b""
    assert p.stderr.decode().strip().splitlines() == [
        f"error: {store.app_dir('wx1')} holds storage format 2, this weanalysis reads format 4: "
        "run `weanalysis rebuild --appid wx1` to convert it"
    ]
    r = run_cli(["rebuild", "--appid", "wx1", "--no-progress"], store.dir)
    assert r.exit_code == 0, r.output
    assert all_windows(store, 4) == before
    assert not os.path.exists(app / m["first_day"])  # the old derived files are gone


def test_a_format3_folder_is_migrated_by_rebuild(make_store, tmp_path):
    """A data folder written by storage format 3 (tests/data/make_format3_store.py): refused
    with the way out, then `rebuild` writes its raw segments without openids, its keys in 88
    bits and everything derived anew: the same answers as the same inputs ingested today, and
    the records sent again are all duplicates (the migrated keys still match)."""
    import tarfile

    import pyarrow.parquet as pq

    with tarfile.open(Path(__file__).parent / "data" / "format3-store.tar.gz") as tar:
        tar.extractall(tmp_path / "old", filter="data")
    data, inputs = tmp_path / "old" / "data", tmp_path / "old" / "inputs"
    app = data / "apps" / "wx1"
    env = {**os.environ, "WEANALYSIS_DATA": str(data)}
    p = servers.cli(env, "portrait", "--appid", "wx1", "--begin", "20170601", "--end", "20170606")
    assert p.returncode == 2 and p.stdout == b""
    assert p.stderr.decode().strip().splitlines() == [
        f"error: {app} holds storage format 3, this weanalysis reads format 4: "
        "run `weanalysis rebuild --appid wx1` to convert it"
    ]
    old = json.loads((app / "manifest.json").read_text())
    r = run_cli(["rebuild", "--appid", "wx1", "--no-progress"], data)
    assert r.exit_code == 0, r.output
    m = json.loads((app / "manifest.json").read_text())
    assert m["format"] == 4 and m["counts"] == old["counts"] and m["users"] == old["users"]
    for rel in m["raw"]:
        assert "openid" not in pq.read_schema(app / rel).names
    assert all(k.endswith(".parquet") for k in m["keys"])
    for rel in [*old["raw"], *old["keys"], *old["user_segments"]]:
        assert not (app / rel).exists()  # superseded, and no reader holds them
    check = run_cli(["check"], data)
    assert check.exit_code == 0, check.output

    fresh = make_store({"wx1": "secret-123"}, name="fresh")
    for kind in ("visit", "profile"):
        ingest(fresh, inputs / f"{kind}s.jsonl", kind=kind, chunk_rows=20)
    from weanalysis.store import Store

    migrated = Store(data)
    try:
        assert all_windows(migrated, 6) == all_windows(fresh, 6)
        assert AppSnapshot(app).openids() == fresh.snapshot("wx1").openids()
        for kind in ("visit", "profile"):
            again = ingest(migrated, inputs / f"{kind}s.jsonl", kind=kind)
            assert again.accepted == 0 and again.duplicates > 0
    finally:
        migrated.close()


def test_the_recent_window_view_and_day_aggregates_answer_like_the_day_scatter(store, tmp_path):
    visits_file(tmp_path / "a.jsonl", 120, 12, seed=7)
    ingest(store, tmp_path / "a.jsonl", chunk_rows=41)  # ends with a compaction: a view
    profiles = tmp_path / "p.jsonl"
    profiles.write_text(
        "".join(
            json.dumps({"appid": "wx1", "openid": f"user{u}", "gender": "女", "age": 30 + u}) + "\n"
            for u in range(0, 120, 4)
        )
    )
    ingest(store, profiles, kind="profile")
    snap = store.snapshot("wx1")
    e = max(snap.day_numbers())
    assert snap.manifest["view"]["day"] == e
    without = dict(snap.manifest)
    without["view"] = None
    without["day_counts"] = {}
    plain = AppSnapshot(snap.dir, without)
    for d in snap.day_numbers():  # every day's stored 1-day answer equals the computed one
        assert snap.day_counts(d) is not None
        q = PortraitQuery("wx1", d, d)
        got = portrait_document(compute(EmbeddedSource(snap), q))
        assert got == portrait_document(compute(EmbeddedSource(plain), q)), d
    end = date(1970, 1, 1) + timedelta(days=e)
    used = 0
    for length in (1, 2, 7, 12, 31, 32):
        q = PortraitQuery.of("wx1", end - timedelta(days=length - 1), end)
        used += snap.view(q.begin, q.end) is not None
        got = portrait_document(compute(EmbeddedSource(snap), q))
        assert got == portrait_document(compute(EmbeddedSource(plain), q)), length
    assert used == 5  # every window but the one longer than the view
    # a late record for a day in the window: the view is no longer used, answers stay exact
    one_visit_file(tmp_path / "late.jsonl", 3)
    ingest_no_compact = Ingestor(store, "visit", compact=False)
    ingest_no_compact.ingest_sources([(str(tmp_path / "late.jsonl"), "jsonl")])
    ingest_no_compact.close()
    snap = store.snapshot("wx1")
    q = PortraitQuery.of("wx1", end - timedelta(days=30), end)
    assert snap.view(q.begin, q.end) is None
    assert snap.day_counts(min(snap.day_numbers())) is None  # the late record's day
    assert snap.day_counts(e) is None  # and every day after it


def test_a_commit_that_fails_on_a_full_disk_leaves_nothing_and_the_next_one_reclaims(
    store, tmp_path, monkeypatch
):
    visits_file(tmp_path / "a.jsonl", 200, 3, seed=9)
    ingest(store, tmp_path / "a.jsonl", chunk_rows=150)
    reader = store.snapshot("wx1")  # holds its files while the next commits supersede them
    one_visit_file(tmp_path / "b.jsonl", 1)
    ingest(store, tmp_path / "b.jsonl")
    app = store.app_dir("wx1")
    assert store.snapshot("wx1").manifest["garbage"]  # kept for the reader
    before = all_windows(store, 3)
    reader.close()

    from weanalysis.store import files

    real = files.write_npy
    calls = {"n": 0}

    def full_disk(path, arr):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        real(path, arr)

    monkeypatch.setattr(files, "write_npy", full_disk)
    one_visit_file(tmp_path / "c.jsonl", 2)
    with pytest.raises((OSError, SourceError), match="No space left"):
        ingest(store, tmp_path / "c.jsonl")
    monkeypatch.setattr(files, "write_npy", real)
    assert all_windows(store, 3) == before  # the failed commit is not visible
    one_visit_file(tmp_path / "d.jsonl", 3)
    ingest(store, tmp_path / "d.jsonl")  # the next commit: orphans and garbage go first
    snap = store.snapshot("wx1")
    named = {"/".join(str(p.relative_to(app)).split("/")[:2]) for p in snap.live_files()}
    on_disk = {f"{p.parent.name}/{p.name}" for p in app.glob("*/*") if p.parent.name != "leases"}
    assert on_disk == named
    assert all_windows(store, 3) != before


def test_rebuild_over_rewritten_raw_segments_forgets_their_records(make_store, tmp_path):
    """What forget and retention do (helper code of issue 11 calls the same function): write
    raw segments without some records, then re-derive everything from them."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    store = make_store({"wx1": "secret-123"})
    rows = visits_file(tmp_path / "a.jsonl", 60, 5, seed=11)
    ingest(store, tmp_path / "a.jsonl", chunk_rows=70)
    reference = make_store({"wx1": "secret-123"}, name="reference")
    kept = [r for r in rows if r["openid"] != "user7"]
    assert len(kept) < len(rows)
    (tmp_path / "kept.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept)
    )
    ingest(reference, tmp_path / "kept.jsonl")

    app = store.app_dir("wx1")
    m = store.snapshot("wx1").manifest
    new_raw: list[str] = []

    uid7 = store.snapshot("wx1").openids().index("user7")  # raw segments keep user ids only

    def without_user7(app_dir, manifest, tag):
        for i, name in enumerate(manifest["raw"]):
            table = pq.read_table(app_dir / name)
            table = table.filter(pc.not_equal(table.column("uid"), uid7))
            out = f"raw/visits-{tag}-{i}.parquet"
            pq.write_table(table, app_dir / out)
            new_raw.append(out)
        return new_raw

    writer = store.writer()
    try:
        published = writer.rebuild(store.catalog.get("wx1"), rewrite_raw=without_user7)
    finally:
        writer.close()
    assert published["raw"] == new_raw
    assert published["counts"]["visits"] == len(kept)
    assert not any((app / name).exists() for name in m["raw"])  # no reader: gone at once
    assert all_windows(store, 5) == all_windows(reference, 5)


def test_packed_rows_are_stored_as_int32_when_they_fit_and_widened_where_days_mix():
    from weanalysis.portrait.embedded import _window_part
    from weanalysis.store.summaries import pack, partial_rows, stored_packed

    def day(loc, plat, dev):
        cols = {"uid": np.array([0], np.uint32)}
        cols.update(loc=np.array([loc]), plat=np.array([plat]), dev=np.array([dev]))
        return cols["uid"], stored_packed(pack(cols)), partial_rows(cols)

    wide, small = day(3, 1, 1 << 30), day(5, 0, 0)
    assert wide[1].dtype == np.int64 and small[1].dtype == np.int32
    # an earlier day's device code too wide for int32, kept where the later day's is unknown
    w = _window_part([wide, small], np.zeros(1, np.int32), 0, 1)
    assert [int(w.values[c][0]) for c in ("loc", "plat", "dev")] == [5, 1, 1 << 30]


def test_closing_a_writer_lets_go_of_its_users_and_keys_at_once(store, tmp_path):
    """An ingest's writer state (openids, key sets: ~1 GB at 6.5M users) must not wait for
    the cycle collector: the next ingest of the same process would hold two copies."""
    import gc
    import weakref

    visits_file(tmp_path / "a.jsonl", 50, 3, seed=4)
    ing = Ingestor(store, "visit")
    ing.ingest_sources([(str(tmp_path / "a.jsonl"), "jsonl")])
    keys = weakref.ref(ing.writer._states["wx1"].keys[0])
    gc.disable()  # only reference counting from here on
    try:
        ing.close()
        del ing
        assert keys() is None
    finally:
        gc.enable()
