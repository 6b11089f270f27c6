"""Server phases of the benchmark: kept-answer latency and /collect throughput, on loopback.

Both start the real ``weanalysis serve`` in a subprocess and drive it from Node load generators
(``loadgen.mjs``, ``collect_load.mjs``): a Python client would be the bottleneck. Every loop is
bounded in time; only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

from bench import latency
from weanalysis.store import Store

HERE = Path(__file__).parent
COLLECT_BATCH = 50
COLLECT_CONNECTIONS = 64


def kept_answers(store_dir: Path, appid: str, secret: str, end: date, seconds: float) -> dict:
    """p50/p99 of cached 1/7/30-day answers at 1,000 requests/s."""
    return latency.measure(str(store_dir), appid, secret, rate=1000, seconds=seconds, end=end)


def collect_throughput(workdir: Path, seconds: float, users: int) -> dict:
    """Visits/s through /collect (batches of 50, enrichment and durable commits included)."""
    data = workdir / "collect-store"
    shutil.rmtree(data, ignore_errors=True)  # a fresh app each run
    store = Store(data)
    store.catalog.add_app("wxcollect", "collect-secret-01")
    store.close()
    port = latency.free_port()
    env = {**os.environ, "WEANALYSIS_DATA": str(data)}
    args = [
        sys.executable,
        "-m",
        "weanalysis",
        "serve",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    args += ["--collect-ip-rate", "0", "--collect-app-rate", "0"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        latency.wait_healthy(port)
        url = f"http://127.0.0.1:{port}/collect?appid=wxcollect"
        cmd = ["node", str(HERE / "collect_load.mjs"), url, str(seconds)]
        cmd += [str(COLLECT_CONNECTIONS), str(COLLECT_BATCH), str(users)]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120, check=True)
        result = json.loads(out.stdout)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    stored = Store(data).snapshot("wxcollect").manifest["counts"]["visits"]
    result["stored"] = stored
    return result
