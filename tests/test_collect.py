"""Live collection: /collect and /api/v1/records, limits, rate limits, proxies, durability."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import requests
from starlette.testclient import TestClient

from tests.servers import free_port, wait_healthy
from weanalysis.api.app import create_app
from weanalysis.api.collect_routes import CollectLimits
from weanalysis.collect.ratelimit import RateLimiter
from weanalysis.portrait.embedded import EmbeddedSource
from weanalysis.portrait.engine import compute
from weanalysis.portrait.query import PortraitQuery
from weanalysis.store import Store

TZ = ZoneInfo("Asia/Shanghai")
TODAY = datetime.now(TZ).date()
NOW_MS = int(time.time() * 1000)


def visit(openid, i=0, **kw):
    return {
        "openid": openid,
        "time": NOW_MS - i,
        "event_id": f"{openid}-{i}",
        "platform": "ios",
        **kw,
    }


@pytest.fixture
def store(make_store):
    return make_store({"wxC": "secret-C-123", "wxD": "secret-D-123"})


def make_client(store, **limits):
    return TestClient(
        create_app(store, limits=CollectLimits(**limits)), client=("203.0.113.9", 5555)
    )


def active_today(store, appid) -> int:
    q = PortraitQuery.of(appid, TODAY, TODAY)
    return compute(EmbeddedSource(store.snapshot(appid)), q).active.total


def test_collect_answers_the_fate_of_each_record(store):
    with make_client(store) as c:
        body = [
            visit("u1"),
            visit("u1"),  # the same event twice in one request: one is a duplicate
            visit("u2", platform="devtools"),
            visit(
                "u3",
                user_agent="Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            ),
            {"openid": "u4"},  # no time
            "not an object",
            visit("u5", appid="wxD"),  # another app in this app's request
            visit("u6", kind="profile"),  # profiles are not for the beacon
        ]
        r = c.post("/collect?appid=wxC", json=body)
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "*"
        assert r.json() == {
            "errcode": 0,
            "accepted": 1,
            "duplicates": 1,
            "filtered": 2,
            "rejected": [
                {"index": 4, "reason": "time: missing"},
                {"index": 5, "reason": "not a JSON object"},
                {"index": 6, "reason": "appid: 'wxD' differs from the request's app 'wxC'"},
                {"index": 7, "reason": "kind: must be visit"},
            ],
        }
        # re-sending after a lost answer creates no duplicate visit
        again = c.post("/collect?appid=wxC", json=[visit("u1")]).json()
        assert again["accepted"] == 0 and again["duplicates"] == 1
        # one object (not an array) is fine too, and the appid may come from the record
        one = c.post("/collect", content=json.dumps(visit("u7", appid="wxC"))).json()
        assert one["accepted"] == 1
    assert active_today(store, "wxC") == 2
    raw = store.snapshot("wxC").raw_files()
    import pyarrow.parquet as pq

    ips = {ip for f in raw for ip in pq.read_table(f, columns=["ip"]).column("ip").to_pylist()}
    assert ips == {"203.0.113.9"}  # the IP comes from the connection


def test_collect_refusals(store):
    with make_client(store) as c:
        cases = [
            (c.post("/collect?appid=wxNOPE", json=[visit("a")]), 40013),
            (c.post("/collect", json=[{"openid": "a"}]), 41002),
            (c.post("/collect?appid=wxC", content=b""), 44002),
            (c.post("/collect?appid=wxC", content=b"{oops"), 47001),
            (c.post("/collect?appid=wxC", content=b"42"), 47001),
            (c.post("/collect?appid=wxC", json=[visit("a", i) for i in range(501)]), 47001),
            (c.post("/collect?appid=wxC", content=b"[" + b" " * (300 * 1024) + b"]"), 47001),
            (c.get("/collect?appid=wxC"), 43002),
        ]
        for r, code in cases:
            assert r.status_code == 200 and r.json()["errcode"] == code, (code, r.text)
        pre = c.options(
            "/collect",
            headers={"origin": "https://h5.example", "access-control-request-method": "POST"},
        )
        assert (
            pre.status_code == 204
            and pre.headers["access-control-allow-methods"] == "POST, OPTIONS"
        )


def test_rate_limits_answer_45011(store):
    with make_client(store, ip_rate=2, app_rate=1000) as c:
        codes = [c.post("/collect?appid=wxC", json=[visit(f"r{i}")]).status_code for i in range(12)]
        assert 429 in codes and codes[0] == 200
        r = c.post("/collect?appid=wxC", json=[visit("late")])
        assert (
            r.status_code == 429
            and r.json()["errcode"] == 45011
            and r.headers["retry-after"] == "1"
        )
    limiter = RateLimiter(rate=10, burst=10)
    assert all(limiter.allow("k", now=100.0) for _ in range(10))
    assert not limiter.allow("k", now=100.0)
    assert limiter.allow("k", now=100.2)  # refilled two tokens
    assert RateLimiter(rate=0).allow("anything")


def test_forwarded_for_only_from_a_trusted_proxy(store):
    with make_client(store) as c:  # no trusted proxy: a spoofed header is ignored
        c.post("/collect?appid=wxC", json=[visit("s1")], headers={"x-forwarded-for": "1.2.3.4"})
    app = create_app(store, limits=CollectLimits(trusted_proxies=("10.0.0.1",)))
    with TestClient(app, client=("10.0.0.1", 1)) as c:
        c.post(
            "/collect?appid=wxC",
            json=[visit("s2")],
            headers={"x-forwarded-for": "6.6.6.6, 202.96.128.86"},
        )
    import pyarrow.parquet as pq

    snap = store.snapshot("wxC")
    openids = snap.openids()  # raw segments keep user ids; the user segments their openids
    rows = [
        r for f in snap.raw_files() for r in pq.read_table(f, columns=["uid", "ip"]).to_pylist()
    ]
    got = {openids[r["uid"]]: r["ip"] for r in rows}
    assert got == {"s1": "203.0.113.9", "s2": "202.96.128.86"}


def test_records_api_takes_visits_and_profiles_of_the_tokens_app(store):
    with make_client(store) as c:
        tok = c.get(
            "/cgi-bin/token",
            params={"grant_type": "client_credential", "appid": "wxC", "secret": "secret-C-123"},
        ).json()["access_token"]
        body = [
            visit("p1", ip="202.96.128.86"),
            {"kind": "profile", "openid": "p1", "gender": "女", "age": 30},
            {"kind": "nonsense", "openid": "p1"},
            visit("p2", appid="wxD"),
        ]
        r = c.post("/api/v1/records", params={"access_token": tok}, json=body)
        assert r.json() == {
            "errcode": 0,
            "accepted": 2,
            "duplicates": 0,
            "filtered": 0,
            "rejected": [
                {"index": 2, "reason": "kind: must be visit or profile"},
                {"index": 3, "reason": "appid: 'wxD' differs from the request's app 'wxC'"},
            ],
        }
        assert c.post("/api/v1/records", json=body).json()["errcode"] == 41001
        assert (
            c.post("/api/v1/records", params={"access_token": "bad"}, json=body).json()["errcode"]
            == 40001
        )
    result = compute(EmbeddedSource(store.snapshot("wxC")), PortraitQuery.of("wxC", TODAY, TODAY))
    assert [(i.name, i.value) for i in result.active.genders] == [("女", 1)]
    assert [(i.id, i.value) for i in result.active.city] == [(4401, 1)]


def test_concurrent_requests_are_committed_in_groups(store):
    before = store.snapshot("wxC").version
    app = create_app(store, limits=CollectLimits(ip_rate=0, app_rate=0))
    with TestClient(app) as c:

        def send(k):
            for j in range(5):
                r = c.post(
                    "/collect?appid=wxC",
                    json=[visit(f"g{k}", j) for j in range(j * 10, j * 10 + 10)],
                )
                assert r.json()["accepted"] == 10

        threads = [threading.Thread(target=send, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    snap = store.snapshot("wxC")
    assert snap.version - before < 40  # 40 requests, fewer commits (one manifest version each)
    assert snap.manifest["counts"]["visits"] == 400


@pytest.mark.slow
def test_kill_9_loses_nothing_acknowledged_and_counts_nothing_twice(tmp_path):
    """A client streams batches; the server is killed with SIGKILL again and again."""
    env = {**os.environ, "WEANALYSIS_DATA": str(tmp_path / "data")}
    subprocess.run(
        [sys.executable, "-m", "weanalysis", "app", "add", "wxK", "--secret", "secret-K-123"],
        env=env,
        check=True,
        capture_output=True,
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}/collect?appid=wxK"

    def start():
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "weanalysis",
                "serve",
                "--port",
                str(port),
                "--collect-ip-rate",
                "0",
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_healthy(port, proc)
        return proc

    acked: set[str] = set()
    sent_batches = [[visit(f"k{b}", j) for j in range(20)] for b in range(60)]
    proc = start()
    kills = 0
    b = 0
    kill_at = {10, 25, 40}
    while b < len(sent_batches):
        if b in kill_at:  # kill -9 while batches are flowing
            kill_at.discard(b)
            killer = threading.Timer(0.01, proc.send_signal, args=(signal.SIGKILL,))
            killer.start()
        try:
            r = requests.post(url, json=sent_batches[b], timeout=5)
            out = r.json()
            assert out["errcode"] == 0
            assert out["accepted"] + out["duplicates"] == 20
            acked.update(v["event_id"] for v in sent_batches[b])
            b += 1
        except (requests.ConnectionError, requests.Timeout):
            if proc.poll() is None:  # not our kill: end it anyway, the test is about restarts
                proc.kill()
            proc.wait(timeout=10)
            kills += 1
            proc = start()  # the client re-sends the same batch: nothing is double counted
        if proc.poll() is not None:
            kills += 1
            proc = start()
    proc.terminate()
    proc.wait()
    assert kills >= 3
    store = Store(tmp_path / "data")
    import pyarrow.parquet as pq

    stored = [
        e
        for f in store.snapshot("wxK").raw_files()
        for e in pq.read_table(f, columns=["event_id"]).column("event_id").to_pylist()
    ]
    assert len(stored) == len(set(stored))  # nothing twice
    assert acked <= set(stored)  # nothing acknowledged lost
    assert set(stored) == {v["event_id"] for batch in sent_batches for v in batch}
    assert active_today(store, "wxK") == 60
    store.close()
