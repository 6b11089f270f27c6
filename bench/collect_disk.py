"""Disk growth of live collection: many small /collect requests into a day that already holds
data, through the real server.

A fresh app gets a day of visits (``--base-visits``, time "now") by ``weanalysis ingest``; then
the real ``weanalysis serve`` takes ``--requests`` requests of ``--batch`` visits, one at a time
(each is its own commit: nothing for the group commit to combine). The data folder is measured
before, after every request (its largest size) and at the end. A store that copied the day on
every commit would grow by the day's size per request; the target is ≤ 10 MB for 200 requests
of 10 visits.

    python -m bench.collect_disk [--base-visits 300000] [--requests 200] [--batch 10]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench import latency
from bench.report import du

PHONES = [
    ("ios", "iPhone", "iPhone 14 Pro<iPhone15,2>"),
    ("android", "HUAWEI", "NOH-AN00"),
    ("android", "Xiaomi", "M2012K11AC"),
    ("android", "OPPO", "PGEM10"),
]
PROVINCES = ["广东", "江苏", "山东", "浙江", "河南", "四川", "北京", "上海"]


def _visit(u: int, now_ms: int, event: str) -> dict:
    platform, brand, model = PHONES[u % len(PHONES)]
    return {
        "openid": f"oDisk{u:023d}",
        "time": now_ms - (u % 1000),
        "event_id": event,
        "platform": platform,
        "brand": brand,
        "model": model,
        "province": PROVINCES[u % len(PROVINCES)],
    }


def run(workdir: Path, base_visits: int, requests: int, batch: int, progress: bool = True) -> dict:
    data = workdir / "collect-disk-store"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    env = {**os.environ, "WEANALYSIS_DATA": str(data)}
    cli = [sys.executable, "-m", "weanalysis"]
    subprocess.run(
        [*cli, "app", "add", "wxdisk", "--secret", "disk-secret-0001"],
        env=env,
        check=True,
        capture_output=True,
    )
    now_ms = int(time.time() * 1000)
    users = max(1, base_visits // 3)
    base = workdir / "collect-disk-base.jsonl"
    with base.open("w") as f:
        for i in range(base_visits):
            rec = {"appid": "wxdisk", **_visit(i % users, now_ms, f"base-{i}")}
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    subprocess.run(
        [*cli, "ingest", "--no-progress", str(base)],
        env=env,
        check=True,
        capture_output=True,
    )
    base.unlink()
    port = latency.free_port()
    proc = subprocess.Popen(
        [
            *cli,
            "serve",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--collect-ip-rate",
            "0",
            "--collect-app-rate",
            "0",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        latency.wait_healthy(port)
        before = du(data)
        largest = before
        stored = 0
        url = f"http://127.0.0.1:{port}/collect?appid=wxdisk"
        for r in range(requests):
            body = [_visit(users + r * batch + i, now_ms, f"live-{r}-{i}") for i in range(batch)]
            req = urllib.request.Request(
                url, json.dumps(body).encode(), {"content-type": "application/json"}
            )
            with urllib.request.urlopen(req, timeout=60) as resp:
                stored += json.loads(resp.read())["accepted"]
            largest = max(largest, du(data))
            if progress and (r + 1) % 50 == 0:
                print(f"collect-disk: {r + 1}/{requests} requests", file=sys.stderr)
        after = du(data)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return {
        "base_visits": base_visits,
        "requests": requests,
        "batch": batch,
        "stored": stored,
        "before_bytes": before,
        "after_bytes": after,
        "largest_bytes": largest,
        "grown_bytes": after - before,
        "largest_growth_bytes": largest - before,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--base-visits", type=int, default=300_000, help="visits already in the day")
    p.add_argument("--requests", type=int, default=200, help="number of /collect requests")
    p.add_argument("--batch", type=int, default=10, help="visits per request")
    p.add_argument("--workdir", type=Path, help="where the store goes (default: a temporary one)")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="wa-collect-disk-") as tmp:
        r = run(a.workdir or Path(tmp), a.base_visits, a.requests, a.batch, not a.no_progress)
    mb = 1e6
    print(json.dumps(r))
    print(
        f"{r['requests']} /collect requests of {r['batch']} visits ({r['stored']} stored) "
        f"into a day of {r['base_visits']:,} visits: the folder grew by "
        f"{r['grown_bytes'] / mb:.2f} MB "
        f"({r['before_bytes'] / mb:.1f} → {r['after_bytes'] / mb:.1f} MB), at most "
        f"{r['largest_growth_bytes'] / mb:.2f} MB above its start (target ≤ 10 MB)"
    )


if __name__ == "__main__":
    main()
