"""Latency of kept (cached) portrait answers through the real server, at a fixed request rate.

Starts ``weanalysis serve`` on loopback over an existing data folder, fetches a token, asks once
for the 1-, 7- and 30-day windows ending yesterday (so they are computed and kept), then sends
an open-loop stream of POSTs at ``--rate`` requests/s for ``--seconds`` seconds, cycling the
three windows. Latency is measured from each request's *scheduled* start, so a server that falls
behind shows it (no coordinated omission). Loopback only; the loop is bounded in count and time.

    python -m bench.latency --data bench/.data/store --appid wxbench --secret ...
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

PATH = "/datacube/getweanalysisappiduserportrait"
LOADGEN = Path(__file__).with_name("loadgen.mjs")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "WEANALYSIS_DATA": data}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "weanalysis",
            "serve",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_healthy(port)
    except RuntimeError:
        proc.kill()
        raise
    return proc


def wait_healthy(port: int, seconds: float = 30) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    raise RuntimeError("the server did not start")


def _load(
    base: str, token: str, bodies: list[bytes], rate: float, seconds: float, conns: int
) -> dict:
    """The open-loop load itself runs in Node (a Python client tops out near 500 requests/s)."""
    url = f"{base}{PATH}?access_token={token}"
    args = [
        "node",
        str(LOADGEN),
        url,
        str(rate),
        str(seconds),
        str(conns),
        *(b.decode() for b in bodies),
    ]
    out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60, check=True)
    return json.loads(out.stdout)


def measure(
    data: str,
    appid: str,
    secret: str,
    rate: float = 1000,
    seconds: float = 10,
    conns: int = 32,
    end: date | None = None,
) -> dict:
    """Run the server and the load; returns p50/p99/max latency (ms), achieved rate and errors."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(data, port)
    try:
        qs = urllib.parse.urlencode(
            {"grant_type": "client_credential", "appid": appid, "secret": secret}
        )
        with urllib.request.urlopen(f"{base}/cgi-bin/token?{qs}", timeout=30) as resp:
            r = json.loads(resp.read())
        token = r["access_token"]
        # the app's "yesterday" is the last allowed end date; the data may end earlier
        end = end or datetime.now(ZoneInfo("Asia/Shanghai")).date() - timedelta(days=1)
        bodies = []
        for days in (1, 7, 30):
            begin = end - timedelta(days=days - 1)
            body = f'{{"begin_date":"{begin:%Y%m%d}","end_date":"{end:%Y%m%d}"}}'.encode()
            t = time.perf_counter()
            req = urllib.request.Request(f"{base}{PATH}?access_token={token}", data=body)
            with urllib.request.urlopen(req, timeout=120) as resp:
                content = resp.read()
            assert b"visit_uv" in content, content[:500]
            ms = 1000 * (time.perf_counter() - t)
            print(f"  first {days:>2}-day answer (computed): {ms:.0f} ms", file=sys.stderr)
            bodies.append(body)
        return _load(base, token, bodies, rate, seconds, conns)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", required=True, help="data folder of an existing store")
    p.add_argument("--appid", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--rate", type=float, default=1000, help="requests per second (default 1000)")
    p.add_argument("--seconds", type=float, default=10, help="duration of the load (default 10)")
    p.add_argument(
        "--connections", type=int, default=32, help="keep-alive connections (default 32)"
    )
    a = p.parse_args()
    r = measure(a.data, a.appid, a.secret, a.rate, a.seconds, a.connections)
    print(
        f"{r['requests']} requests at {r['rate']:.0f}/s: p50 {r['p50_ms']:.2f} ms, "
        f"p99 {r['p99_ms']:.2f} ms, max {r['max_ms']:.1f} ms, errors {r['errors']}"
    )


if __name__ == "__main__":
    main()
