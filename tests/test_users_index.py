"""The writer's openid -> uid index gives exactly what a dict of every openid gives: over
several commits, for known, unknown and erased (null) openids, built from the user segments
or grown commit by commit, and when different openids share a hash."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.records import ingest_file, ingest_rows, write_jsonl
from weanalysis.store import AppSnapshot, Store, files, users
from weanalysis.store.dedup import _splitmix
from weanalysis.store.users import UserIndex, hash_openids

ALPHABETS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_",
    "用户画像微信小程序广东北京",
    "éüßø€",
    "😀🎉🐼",
]


def random_openid(rng: random.Random) -> str:
    """1-128 characters (SPEC.md 2), mostly openid-like, some non-ASCII, a few long."""
    shape = rng.random()
    if shape < 0.6:
        return "".join(rng.choices(ALPHABETS[0], k=28))
    n = (
        rng.choice([1, 2, 7, 8, 9, 15, 16, 17, 64, 127, 128])
        if shape < 0.9
        else rng.randint(1, 128)
    )
    alphabet = "".join(rng.sample(ALPHABETS, rng.randint(1, len(ALPHABETS))))
    return "".join(rng.choices(alphabet, k=n))


def reference_hash(s: str) -> int:
    """:func:`hash_openids` of one string, a word at a time in plain Python."""
    data = s.encode()
    h = _splitmix(np.array([users.SEED ^ np.uint64(len(data))], dtype=np.uint64))
    with np.errstate(over="ignore"):
        for k in range(0, len(data), 8):
            w = np.uint64(int.from_bytes(data[k : k + 8], "little"))
            h = _splitmix(h * users.MUL ^ w)
    return int(h[0])


class Model:
    """What the writer did before: a dict of every (non-null) openid."""

    def __init__(self) -> None:
        self.uid_of: dict[str, int] = {}
        self.size = 0

    def add(self, openids: list[str | None]) -> None:
        for i, o in enumerate(openids):
            if o is not None:
                self.uid_of[o] = self.size + i
        self.size += len(openids)

    def lookup(self, distinct: list[str | None]) -> list[int]:
        return [-1 if o is None else self.uid_of.get(o, -1) for o in distinct]


def commits(seed: int, rounds: int, pool_size: int = 600):
    """(new users of a commit, distinct openids a batch looks up) for a number of commits:
    new users (some null: erased), then batches mixing known, new and never-added openids."""
    rng = random.Random(seed)
    # "" is no valid openid (SPEC.md 2), but the index needs no such promise
    pool = list(dict.fromkeys([*(random_openid(rng) for _ in range(pool_size)), ""]))
    rng.shuffle(pool)
    added: list[str] = []
    for _ in range(rounds):
        k = rng.choice([0, 1, 2, 5, 40, 150])
        new, pool = pool[:k], pool[k:]
        new = [None if rng.random() < 0.05 else o for o in new]
        added += [o for o in new if o is not None]
        asked = rng.sample(added, min(len(added), rng.randint(0, 60)))
        asked += rng.sample(pool, min(len(pool), rng.randint(0, 20)))
        asked += [o + "x" for o in rng.sample(added, min(len(added), 3))]  # near misses
        asked = list(dict.fromkeys(asked))
        rng.shuffle(asked)
        yield new, asked


def run_model(index: UserIndex, model: Model, seed: int, rounds: int) -> None:
    for new, asked in commits(seed, rounds):
        new = [o for o in new if o not in model.uid_of]  # as the writer: only unknown ones
        got = index.lookup(pa.array(asked, pa.string()))
        assert got.dtype == np.int64
        assert got.tolist() == model.lookup(asked)
        index.add(pa.array(new, pa.string()), len(index))
        model.add(new)
        assert len(index) == model.size
    everything = list(model.uid_of)
    assert index.lookup(pa.array(everything, pa.string())).tolist() == model.lookup(everything)


def weak_hash(arr: pa.Array) -> np.ndarray:
    """A hash with four values: most openids share theirs with many others."""
    lengths = pa.compute.binary_length(arr.cast(pa.string())).fill_null(0)
    return (lengths.to_numpy(zero_copy_only=False) % 4).astype(np.uint64)


def test_hash_is_the_strings_alone_and_matches_a_word_by_word_reference():
    rng = random.Random(1)
    strings = [random_openid(rng) for _ in range(400)] + ["", "a", "a\u0000", "ab" * 300]
    h = hash_openids(pa.array(strings, pa.string()))
    assert h.tolist() == [reference_hash(s) for s in strings]
    # another array type, another position, other neighbours: the same hashes
    wide = pa.array(["zz" * 50, *strings], pa.large_string()).slice(1)
    assert hash_openids(wide).tolist() == h.tolist()
    assert hash_openids(pa.array(strings[::-1], pa.string())).tolist() == h.tolist()[::-1]
    assert len(set(h.tolist())) == len(set(strings))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_lookups_over_commits_equal_a_dict(seed):
    run_model(UserIndex(), Model(), seed, rounds=40)


@pytest.mark.parametrize("seed", [4, 5])
def test_equal_hashes_of_different_openids_still_give_their_own_uid(monkeypatch, seed):
    monkeypatch.setattr(users, "hash_openids", weak_hash)
    index = UserIndex()
    run_model(index, Model(), seed, rounds=30)
    assert sum(len(h) for h, _ in index._runs) > 100  # long runs of equal hashes were searched


def test_weak_hash_index_built_from_segments(monkeypatch, tmp_path):
    monkeypatch.setattr(users, "hash_openids", weak_hash)
    paths, model = write_segments(tmp_path, seed=6)
    run_model(UserIndex.of_segments(paths), model, seed=7, rounds=10)


def write_segments(folder: Path, seed: int) -> tuple[list[Path], Model]:
    model = Model()
    paths = []
    for i, (new, _) in enumerate(commits(seed, 12)):
        if not new:
            continue
        paths.append(folder / f"openids-{i:03d}.arrow")
        files.write_arrow(paths[-1], pa.table({"openid": pa.array(new, pa.string())}))
        model.add(new)
    return paths, model


def test_built_from_segments_equals_one_grown_commit_by_commit(tmp_path):
    paths, model = write_segments(tmp_path, seed=8)
    built = UserIndex.of_segments(paths)
    grown = UserIndex()
    for p in paths:
        grown.add(files.read_arrow(p).column("openid").combine_chunks(), len(grown))
    assert len(built) == len(grown) == model.size
    everything = [*model.uid_of, "never-seen", "用户"]
    want = model.lookup(everything)
    assert built.lookup(pa.array(everything)).tolist() == want
    assert grown.lookup(pa.array(everything)).tolist() == want
    uids = np.arange(model.size)
    assert built.openids(uids).to_pylist() == grown.openids(uids).to_pylist()
    run_model(built, model, seed=9, rounds=10)  # and it grows like the other


def test_no_segment_stays_memory_mapped(tmp_path):
    """Merged user segments are deleted while the writer runs: their arrays must not keep the
    files (and their disk space)."""
    maps = Path("/proc/self/maps")
    if not maps.exists():
        pytest.skip("no /proc/self/maps here")
    paths, _ = write_segments(tmp_path, seed=10)
    # one without compression too (its arrays could be slices of a mapped file's bytes)
    plain = tmp_path / "openids-plain.arrow"
    with pa.ipc.new_file(str(plain), pa.schema([("openid", pa.string())])) as w:
        w.write_table(pa.table({"openid": pa.array(["p1", None, "p2"], pa.string())}))
    index = UserIndex.of_segments([*paths, plain])
    assert str(tmp_path) not in maps.read_text()
    assert index.lookup(pa.array(["p2", "p1"])).tolist() == [len(index) - 1, len(index) - 3]


def test_openids_by_uid_across_chunks_and_nulls():
    index = UserIndex()
    model: list[str | None] = []
    rng = random.Random(11)
    for _ in range(30):
        new = [
            None if rng.random() < 0.1 else f"u{len(model) + i}" for i in range(rng.randint(1, 9))
        ]
        index.add(pa.array(new, pa.string()), len(model))
        model += new
    assert len(index._chunks) <= 8  # merged as they grow
    uids = np.array(rng.choices(range(len(model)), k=200))
    assert index.openids(uids).to_pylist() == [model[u] for u in uids]
    assert index.openids(np.zeros(0, np.int64)).to_pylist() == []
    with pytest.raises(IndexError):
        index.openids(np.array([len(model)]))
    with pytest.raises(IndexError):
        index.openids(np.array([-1]))


def test_many_small_commits_keep_few_runs_and_chunks():
    index = UserIndex()
    for i in range(500):
        index.add(pa.array([f"user-{i}-{j}" for j in range(3)]), len(index))
    assert len(index._runs) <= users.MAX_RUNS
    assert len(index._chunks) <= 12
    asked = [f"user-{i}-{j}" for i in range(0, 500, 7) for j in range(3)] + ["user-500-0"]
    want = [3 * i + j for i in range(0, 500, 7) for j in range(3)] + [-1]
    assert index.lookup(pa.array(asked)).tolist() == want


def test_new_users_must_follow_the_last_uid():
    index = UserIndex()
    index.add(pa.array(["a", "b"]), 0)
    with pytest.raises(ValueError, match="start at uid 2"):
        index.add(pa.array(["c"]), 3)
    index.add(pa.array([], pa.string()), 2)
    assert len(index) == 2
    assert UserIndex().lookup(pa.array(["a"])).tolist() == [-1]
    assert index.lookup(pa.array([], pa.string())).tolist() == []


def test_writer_keeps_uids_across_commits_and_restarts(tmp_path):
    """Known openids keep their uid in later commits, in this writer and in a new one (which
    builds its index from the user segments); new users are numbered in order of first row."""
    store = Store(tmp_path / "data")
    store.catalog.add_app("wx1", "secret-123", "Asia/Shanghai")
    t = "2017-06-01T10:00:00+08:00"

    def rows(names):
        return [{"appid": "wx1", "openid": o, "time": t, "event_id": f"{o}-{i}"} for i, o in names]

    first = rows([(0, "b"), (0, "a"), (1, "b"), (0, "用户")])
    ingest_file(store, write_jsonl(tmp_path / "a.jsonl", first), chunk_rows=2)  # two commits
    ingest_rows(store, tmp_path / "b.jsonl", rows([(2, "a"), (0, "c"), (2, "用户"), (3, "b")]))
    snap = store.snapshot("wx1")
    assert snap.openids() == ["b", "a", "用户", "c"]
    uid_of = {o: i for i, o in enumerate(snap.openids())}
    got = []
    for path in snap.raw_files():
        got += pq.read_table(path, columns=["uid", "event_id"]).to_pylist()
    assert sorted((r["event_id"], r["uid"]) for r in got) == sorted(
        (f"{o}-{i}", uid_of[o])
        for i, o in [
            (0, "b"),
            (0, "a"),
            (1, "b"),
            (0, "用户"),
            (2, "a"),
            (0, "c"),
            (2, "用户"),
            (3, "b"),
        ]
    )
    assert AppSnapshot(store.app_dir("wx1")).manifest["users"] == 4
    store.close()
