"""``GET /metrics`` (Prometheus text format) and ``--log-format json``: what they count, and that
no secret, token or openid ever appears in a metric or a log line."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from weanalysis import logs
from weanalysis.api.app import create_app
from weanalysis.store import Store

TZ = ZoneInfo("Asia/Shanghai")
YESTERDAY = datetime.now(TZ).date() - timedelta(days=1)
PORTRAIT = "/datacube/getweanalysisappiduserportrait"
SECRET = "secret-A-123"
OPENID = "openid-very-private-42"


def samples(text: str) -> dict[tuple, float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(m, name, **labels):
    return m.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_requests_records_commits_and_kept_answers(tmp_path, caplog):
    store = Store(tmp_path / "data")
    store.catalog.add_app("wxA", SECRET)
    with TestClient(create_app(store)) as c, caplog.at_level(logging.DEBUG):
        t = f"{YESTERDAY.isoformat()}T12:00:00+08:00"
        batch = [
            {"openid": OPENID, "time": t, "province": "广东", "event_id": "e1"},
            {"openid": OPENID, "time": t, "event_id": "e1"},  # duplicate
            {"openid": "u2", "time": t, "platform": "devtools"},  # filtered
            {"openid": "u3", "time": "yesterday"},  # rejected: time
            "not an object",  # rejected: envelope
        ]
        r = c.post("/collect?appid=wxA", json=batch).json()
        assert (r["accepted"], r["duplicates"], r["filtered"], len(r["rejected"])) == (1, 1, 1, 2)
        tok = c.get(
            "/cgi-bin/token",
            params={"grant_type": "client_credential", "appid": "wxA", "secret": SECRET},
        ).json()["access_token"]
        d = YESTERDAY.strftime("%Y%m%d")
        for _ in range(3):
            body = c.post(
                PORTRAIT, params={"access_token": tok}, json={"begin_date": d, "end_date": d}
            )
            assert body.json()["visit_uv"]["province"][0]["value"] == 1
        assert c.post(PORTRAIT, params={"access_token": "nope"}, json={}).json()["errcode"] == 40001
        c.post(
            "/api/v1/records",
            params={"access_token": tok},
            json=[{"kind": "profile", "openid": "u9", "gender": "男"}],
        )
        assert c.get("/cgi-bin/no-such-thing").json()["errcode"] == 40066
        assert c.get("/x/y").status_code == 404
        resp = c.get("/metrics")
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/plain; version=")
        text = resp.text
    store.close()
    m = samples(text)
    R = "weanalysis_records_total"
    assert value(m, R, source="collect", outcome="accepted", reason="") == 1
    assert value(m, R, source="collect", outcome="duplicate", reason="") == 1
    assert value(m, R, source="collect", outcome="filtered", reason="devtools") == 1
    assert value(m, R, source="collect", outcome="rejected", reason="time") == 1
    assert value(m, R, source="collect", outcome="rejected", reason="envelope") == 1
    assert value(m, R, source="records_api", outcome="accepted", reason="") == 1
    H = "weanalysis_http_requests_total"
    assert value(m, H, route=PORTRAIT, method="POST", status="200", errcode="0") == 3
    assert value(m, H, route=PORTRAIT, method="POST", status="200", errcode="40001") == 1
    assert value(m, H, route="/collect", method="POST", status="200", errcode="0") == 1
    assert value(m, "weanalysis_http_request_duration_seconds_count", route=PORTRAIT) == 4
    assert value(m, "weanalysis_kept_answers_total", api="wechat", result="miss") == 1
    assert value(m, "weanalysis_kept_answers_total", api="wechat", result="hit") == 2
    assert value(m, "weanalysis_commit_duration_seconds_count") == 2
    assert value(m, "weanalysis_commit_records_sum") == 6
    assert value(m, "weanalysis_stored_records", appid="wxA", kind="visit") == 1
    assert value(m, "weanalysis_stored_records", appid="wxA", kind="profile") == 1
    assert value(m, "weanalysis_stored_users", appid="wxA") == 2
    assert value(m, "weanalysis_store_bytes", appid="wxA") > 1000
    # never a secret, a token or an openid, in metrics or logs
    ours = "\n".join(
        r.getMessage() for r in caplog.records if r.name.startswith(("weanalysis", "uvicorn"))
    )
    assert "POST /collect 200 errcode=0" in ours
    for leak in (SECRET, tok, OPENID):
        assert leak not in text
        assert leak not in ours
    assert value(m, H, route="/cgi-bin/*", method="GET", status="200", errcode="40066") == 1
    assert value(m, H, route="other", method="GET", status="404", errcode="-") == 1


def test_json_log_lines():
    record = logging.LogRecord(
        "weanalysis.access", logging.INFO, __file__, 1, "GET %s", ("/x",), None
    )
    doc = json.loads(logs.JsonFormatter().format(record))
    assert doc["level"] == "info" and doc["logger"] == "weanalysis.access"
    assert doc["message"] == "GET /x" and doc["time"].endswith("+00:00")
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    doc = json.loads(logs.JsonFormatter().format(record))
    assert "ValueError: boom" in doc["exception"]


def test_serve_log_format_json_every_line_is_json(tmp_path):
    import os
    import subprocess
    import sys
    import urllib.request

    from tests.servers import cli, free_port, wait_healthy

    env = {**os.environ, "WEANALYSIS_DATA": str(tmp_path / "data")}
    assert cli(env, "app", "add", "wxA", "--secret", SECRET).returncode == 0
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "weanalysis", "serve", "--port", str(port), "--log-format", "json"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_healthy(port, proc)
        url = f"http://127.0.0.1:{port}/cgi-bin/token?grant_type=client_credential&appid=wxA&secret={SECRET}"
        with urllib.request.urlopen(url) as r:
            tok = json.loads(r.read())["access_token"]
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    lines = [ln for ln in err.decode().splitlines() if ln.strip() and not ln.startswith("serving ")]
    docs = [json.loads(ln) for ln in lines]  # every line is one JSON object
    assert any(
        d["logger"] == "weanalysis.access" and "/cgi-bin/token" in d["message"] for d in docs
    )
    assert any(d["logger"].startswith("uvicorn") for d in docs)
    assert SECRET not in err.decode() and tok not in err.decode()
