"""Measures what the operations of issue 11 cost on a synthetic app (not part of the tests).

    .venv/bin/python scripts/measure_ops.py --dau 100000 --days 30

Builds a store in a temporary folder (DAU users a day, from a pool of 3x DAU, over DAYS days),
then times: a 30-day portrait in a fresh process with the checksum verification of its first
read, the same read again (verified files cached), without verification; ``check``; ``forget``
of 10 users; a change of time zone; a full and an incremental backup; ``gc`` with a retention
of half the days (and the app folder's size before and after), then ``forget`` on the trimmed app.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

TZ = ZoneInfo("Asia/Shanghai")

PORTRAIT = """
import sys, time
from datetime import date
from weanalysis.store import Store
from weanalysis.store import integrity
from weanalysis.portrait.embedded import EmbeddedSource
from weanalysis.portrait.engine import compute
from weanalysis.portrait.query import PortraitQuery
if sys.argv[3] == "off":
    integrity.VERIFIED.check = lambda path, want: None
store = Store(sys.argv[1])
end = date.fromisoformat(sys.argv[2])
q = PortraitQuery.of("wxA", end.fromordinal(end.toordinal() - 29), end)
for i in range(3):
    t = time.perf_counter()
    compute(EmbeddedSource(store.snapshot("wxA")), q)
    print(f"{(time.perf_counter() - t) * 1000:.0f}", end=" ")
if sys.argv[3] == "on":  # the verification alone: every file but raw, users and keys
    snap = store.snapshot("wxA")
    rels = [r for r in snap.manifest["checksums"] if r.split("/")[0] in ("days", "persons", "meta")]
    size = sum((snap.dir / r).stat().st_size for r in rels)
    t = time.perf_counter()
    for r in rels:
        integrity.file_checksum(snap.dir / r)
    ms = (time.perf_counter() - t) * 1000
    print(f"| CRC-32 of the {len(rels)} files portraits read ({size / 2**20:.0f} MiB): {ms:.0f} ms")
"""


def build(data: Path, dau: int, days: int, end: date) -> int:
    rng = np.random.default_rng(1)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "weanalysis",
            "--data",
            str(data),
            "app",
            "add",
            "wxA",
            "--secret",
            "secret-A-123",
        ],
        check=True,
        capture_output=True,
    )
    pool = 3 * dau
    rows = 0
    for k in range(days):
        day = end - timedelta(days=days - 1 - k)
        start = int(datetime(day.year, day.month, day.day, tzinfo=TZ).timestamp() * 1000)
        users = rng.choice(pool, size=dau, replace=False)
        n = len(users)
        t = pa.table(
            {
                "appid": pa.array(["wxA"] * n),
                "openid": pa.array([f"user{u}" for u in users]),
                "time": pa.array(start + rng.integers(0, 86_400_000, n), pa.int64()),
                "province": pa.array(rng.choice(["广东", "北京", "浙江", "四川", "上海"], n)),
                "platform": pa.array(rng.choice(["ios", "android"], n)),
                "gender": pa.array(rng.integers(0, 3, n)),
                "age": pa.array(rng.integers(10, 70, n)),
            }
        )
        path = data.parent / f"day{k}.parquet"
        pq.write_table(t, path)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "weanalysis",
                "--data",
                str(data),
                "ingest",
                str(path),
                "--no-progress",
            ],
            check=True,
            capture_output=True,
        )
        path.unlink()
        rows += n
    return rows


def timed(args: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "weanalysis", *args], check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--dau", type=int, default=100_000)
    p.add_argument("--days", type=int, default=30)
    a = p.parse_args()
    end = datetime.now(TZ).date() - timedelta(days=1)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        t = time.perf_counter()
        rows = build(data, a.dau, a.days, end)
        print(f"built {rows} visits in {time.perf_counter() - t:.1f}s")
        for mode in ("on", "off"):
            out = subprocess.run(
                [sys.executable, "-c", PORTRAIT, str(data), end.isoformat(), mode],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            print(f"30-day portrait, verification {mode}: runs 1-3 (ms): {out}")
        d = str(data)
        print(f"check: {timed(['--data', d, 'check']):.2f}s")
        print(f"backup (full): {timed(['--data', d, 'backup', tmp + '/b', '--quiet']):.2f}s")
        print(f"backup (incremental): {timed(['--data', d, 'backup', tmp + '/b', '--quiet']):.2f}s")
        ids = [x for i in range(10) for x in ("--openid", f"user{i}")]
        print(f"forget 10 users: {timed(['--data', d, 'forget', '--appid', 'wxA', *ids]):.2f}s")
        tz = ["--data", d, "app", "set", "wxA", "--timezone", "Asia/Urumqi"]
        print(f"new time zone: {timed(tz):.2f}s")
        keep = a.days // 2
        timed(["--data", d, "app", "set", "wxA", "--retention-days", str(keep)])
        before = _mib(data / "apps" / "wxA")
        took = timed(["--data", d, "gc", "--no-progress"])
        after = _mib(data / "apps" / "wxA")
        print(f"gc, retention {keep} days: {took:.2f}s; app folder {before:.0f} -> {after:.0f} MiB")
        ids = [x for i in range(10, 20) for x in ("--openid", f"user{i}")]
        took = timed(["--data", d, "forget", "--appid", "wxA", *ids])
        print(f"forget 10 users after retention: {took:.2f}s")


def _mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


if __name__ == "__main__":
    main()
