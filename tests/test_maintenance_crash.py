"""kill -9 at random points of forget, of a time zone change, of ``gc`` and of a commit that
applies the retention leaves a consistent folder: every file the manifest names matches its
checksum, and every answer is the one before or the one after the operation (a window before
the retained range: refused after it); running it again completes it."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from tests.test_backup import random_visits
from weanalysis.ingest import Ingestor
from weanalysis.portrait.embedded import EmbeddedSource
from weanalysis.portrait.engine import compute
from weanalysis.portrait.query import PortraitQuery
from weanalysis.store import Store, maintenance
from weanalysis.store.integrity import check_app
from weanalysis.store.retention import WindowBeforeRetention
from weanalysis.wechat.dialect import portrait_document

TZ = ZoneInfo("Asia/Shanghai")
TODAY = datetime.now(TZ).date()
GONE = ["u1", "u2", "u3", "u7"]


def answers(data) -> dict:
    store = Store(data)
    snap = store.snapshot("wxA")
    out = {}
    for back in range(1, 9):
        for length in (1, 7):
            e = TODAY - timedelta(days=back)
            b = e - timedelta(days=length - 1)
            try:
                out[(b, e)] = portrait_document(
                    compute(EmbeddedSource(snap), PortraitQuery.of("wxA", b, e))
                )
            except WindowBeforeRetention:
                out[(b, e)] = "refused"
    store.close()
    return out


def consistent(data) -> None:
    store = Store(data)
    _, problems = check_app(store.app_dir("wxA"), store.snapshot("wxA").manifest, store.dir)
    store.close()
    assert problems == []


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("crash")
    data = tmp / "data"
    store = Store(data)
    store.catalog.add_app("wxA", "secret-A-123")
    rng = np.random.default_rng(3)
    ing = Ingestor(store, "visit")
    for k in range(6):
        path = tmp / f"v{k}.jsonl"
        rows = [{**r, "appid": "wxA"} for r in random_visits(rng, 8000, f"k{k}")]
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        ing.ingest_sources([(str(path), "jsonl")], chunk_rows=4000)
    ing.close()
    store.close()
    return data


def run_and_kill(data, args, delay):
    env = {**os.environ, "WEANALYSIS_DATA": str(data)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "weanalysis", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return proc.returncode


def kill_runs(source, tmp_path, seed: int, kill, finish, states: dict[str, dict]) -> set[str]:
    """Four copies of ``source``: on each, ``kill(work, rnd)`` kills the operation -9 at a
    random point; the folder must then be consistent and answer as one of ``states`` (name ->
    answers, in order); ``finish(work)`` runs it again, which must give the last state.
    Returns the names of the states seen."""
    rnd = random.Random(seed)
    last = list(states.values())[-1]
    seen = set()
    for i in range(4):
        work = tmp_path / f"w{i}"
        shutil.copytree(source, work)
        kill(work, rnd)
        consistent(work)
        got = answers(work)
        names = [name for name, state in states.items() if got == state]
        assert names, "an answer is neither of the states before, during or after"
        seen.add(names[-1])
        finish(work)
        assert answers(work) == last
        consistent(work)
        shutil.rmtree(work)
    return seen


@pytest.mark.slow
def test_kill9_during_forget(source, tmp_path):
    before = answers(source)
    done = tmp_path / "done"
    shutil.copytree(source, done)
    store = Store(done)
    maintenance.forget(store.dir, store.catalog.get("wxA"), GONE)
    store.close()
    after = answers(done)
    assert after != before
    args = ["forget", "--appid", "wxA", *(x for g in GONE for x in ("--openid", g))]
    outcomes = kill_runs(
        source,
        tmp_path,
        11,
        kill=lambda work, rnd: run_and_kill(work, args, rnd.uniform(0.8, 3.0)),
        finish=lambda work: weanalysis(work, *args),
        states={"before": before, "after": after},
    )
    print("forget outcomes seen:", outcomes)


@pytest.mark.slow
def test_kill9_during_a_time_zone_change(source, tmp_path):
    before = answers(source)
    done = tmp_path / "done"
    shutil.copytree(source, done)
    store = Store(done)
    maintenance.set_timezone(store.dir, store.catalog, "wxA", "America/New_York")
    store.close()
    after = answers(done)
    assert after != before
    args = ["app", "set", "wxA", "--timezone", "America/New_York"]

    def finish(work) -> None:
        weanalysis(work, *args)
        store = Store(work)
        assert store.catalog.get("wxA").timezone == "America/New_York"
        store.close()

    kill_runs(
        source,
        tmp_path,
        12,
        kill=lambda work, rnd: run_and_kill(work, args, rnd.uniform(0.8, 3.0)),
        finish=finish,
        states={"before": before, "after": after},
    )


def run_and_kill_while_writing(data, args, kill_after: float | None) -> float:
    """Start the command, wait until it writes its first file into the app's folder (so the
    kill lands inside the operation, not in the interpreter's start), then kill it -9 after
    ``kill_after`` seconds; None lets it finish. Returns the seconds from that first write to
    the end (the span to draw kill times from)."""
    app = data / "apps" / "wxA"

    def entries() -> set:
        return {p for p in app.rglob("*") if "leases" not in p.parts}

    before = entries()
    env = {**os.environ, "WEANALYSIS_DATA": str(data)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "weanalysis", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline and entries() <= before:
        time.sleep(0.002)
    started = time.monotonic()
    if kill_after is not None:
        time.sleep(kill_after)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    if kill_after is None:
        assert proc.returncode == 0
    return time.monotonic() - started


def weanalysis(data, *args) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "weanalysis", "--data", str(data), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert r.returncode == 0, r.stderr


def kill_runs_while_writing(source, tmp_path, seed: int, args, span: float, states) -> set[str]:
    """:func:`kill_runs` of the command ``args``, killed within 1.2 times the ``span`` it
    takes (from its first write) and completed by running it again."""
    return kill_runs(
        source,
        tmp_path,
        seed,
        kill=lambda work, rnd: run_and_kill_while_writing(work, args, rnd.uniform(0, 1.2 * span)),
        finish=lambda work: weanalysis(work, *args),
        states=states,
    )


@pytest.fixture
def with_retention(source, tmp_path):
    """The source with a retention of 4 days set (not applied yet)."""
    data = tmp_path / "retained"
    shutil.copytree(source, data)
    weanalysis(data, "app", "set", "wxA", "--retention-days", "4")
    return data


@pytest.mark.slow
def test_kill9_during_gc(with_retention, tmp_path):
    before = answers(with_retention)
    done = tmp_path / "done"
    shutil.copytree(with_retention, done)
    span = run_and_kill_while_writing(done, ["gc", "--no-progress"], None)
    after = answers(done)
    assert "refused" in after.values() and "refused" not in before.values()
    args = ["gc", "--no-progress"]
    outcomes = kill_runs_while_writing(
        with_retention, tmp_path, 13, args, span, {"before": before, "after": after}
    )
    print("gc outcomes seen:", outcomes)


@pytest.mark.slow
def test_kill9_during_a_commit_that_applies_the_retention(with_retention, tmp_path):
    """An ingest commit, then the retention pass it finds due: three consistent states."""
    rng = np.random.default_rng(5)
    new = tmp_path / "new.jsonl"
    rows = [{**r, "appid": "wxA"} for r in random_visits(rng, 3000, "late")]
    new.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    s0 = answers(with_retention)
    mid = tmp_path / "mid"  # the records stored, the retention not applied yet
    shutil.copytree(with_retention, mid)
    weanalysis(mid, "app", "set", "wxA", "--retention-days", "none")
    weanalysis(mid, "ingest", str(new), "--no-progress")
    weanalysis(mid, "app", "set", "wxA", "--retention-days", "4")
    s1 = answers(mid)
    weanalysis(mid, "gc", "--no-progress")
    s2 = answers(mid)
    assert len({str(s0), str(s1), str(s2)}) == 3
    full = tmp_path / "full"
    shutil.copytree(with_retention, full)
    span = run_and_kill_while_writing(full, ["ingest", str(new), "--no-progress"], None)
    assert answers(full) == s2
    args = ["ingest", str(new), "--no-progress"]  # again: duplicates, and the pass is due
    outcomes = kill_runs_while_writing(
        with_retention, tmp_path, 14, args, span, {"before": s0, "stored": s1, "after": s2}
    )
    print("retention commit outcomes seen:", outcomes)


@pytest.mark.slow
def test_kill9_during_forget_after_retention(with_retention, tmp_path):
    """forget on a trimmed app also rewrites the retained state: still one commit."""
    weanalysis(with_retention, "gc", "--no-progress")
    before = answers(with_retention)
    done = tmp_path / "done"
    shutil.copytree(with_retention, done)
    args = ["forget", "--appid", "wxA", *(x for g in GONE for x in ("--openid", g))]
    span = run_and_kill_while_writing(done, args, None)
    after = answers(done)
    assert after != before
    outcomes = kill_runs_while_writing(
        with_retention, tmp_path, 15, args, span, {"before": before, "after": after}
    )
    print("forget after retention outcomes seen:", outcomes)
