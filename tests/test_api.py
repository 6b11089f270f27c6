"""The WeChat-compatible API in-process: every errcode of SPEC.md section 5, tokens, caching."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from tests.records import ingest_rows
from weanalysis.api.app import create_app
from weanalysis.auth.tokens import TokenService
from weanalysis.portrait.embedded import EmbeddedSource
from weanalysis.portrait.engine import compute
from weanalysis.portrait.query import PortraitQuery
from weanalysis.wechat.dialect import portrait_document

PORTRAIT = "/datacube/getweanalysisappiduserportrait"
CT = "application/json; encoding=utf-8"
RID = re.compile(r" rid: [0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}$")
TZ = ZoneInfo("Asia/Shanghai")
YESTERDAY = datetime.now(TZ).date() - timedelta(days=1)


def ymd(d):
    return d.strftime("%Y%m%d")


@pytest.fixture
def store(tmp_path, make_store):
    s = make_store({"wxA": "secret-A-123", "wxB": "secret-B-123"})
    rows = []
    for back in range(1, 10):
        day = YESTERDAY - timedelta(days=back - 1)
        for u in range(back):
            rows.append(
                {
                    "appid": "wxA",
                    "openid": f"a{u}",
                    "time": f"{day.isoformat()}T12:00:00+08:00",
                    "province": "广东",
                    "platform": "ios",
                }
            )
    rows.append(
        {
            "appid": "wxB",
            "openid": "b0",
            "time": f"{YESTERDAY.isoformat()}T12:00:00+08:00",
            "province": "北京",
        }
    )
    ingest_rows(s, tmp_path / "v.jsonl", rows)
    return s


@pytest.fixture
def client(store):
    with TestClient(create_app(store, token_ttl=7200)) as c:
        yield c


def errcode_of(resp) -> int:
    assert resp.status_code == 200
    assert resp.headers["content-type"] == CT
    body = resp.json()
    if "errcode" in body:
        assert RID.search(body["errmsg"]), body
    return body.get("errcode", 0)


def token(client, appid="wxA", secret="secret-A-123") -> str:
    r = client.get(
        "/cgi-bin/token",
        params={"grant_type": "client_credential", "appid": appid, "secret": secret},
    )
    assert errcode_of(r) == 0
    body = r.json()
    assert set(body) == {"access_token", "expires_in"} and body["expires_in"] == 7200
    return body["access_token"]


def portrait(client, tok, body, **kw):
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.post(
        PORTRAIT, params={"access_token": tok} if tok is not None else None, content=data, **kw
    )


def test_token_errors(client):
    base = {"grant_type": "client_credential", "appid": "wxA", "secret": "secret-A-123"}
    cases = [
        ({**base, "grant_type": "password"}, 40002),
        ({k: v for k, v in base.items() if k != "grant_type"}, 40002),
        ({k: v for k, v in base.items() if k != "appid"}, 41002),
        ({k: v for k, v in base.items() if k != "secret"}, 41004),
        ({**base, "appid": "wxNOPE"}, 40013),
        ({**base, "secret": "wrong-secret"}, 40125),
    ]
    for params, code in cases:
        assert errcode_of(client.get("/cgi-bin/token", params=params)) == code, params
        assert (
            client.get("/cgi-bin/token", params=params)
            .json()["errmsg"]
            .startswith(
                {
                    40002: "invalid grant_type",
                    41002: "appid missing",
                    41004: "appsecret missing",
                    40013: "invalid appid",
                    40125: "invalid appsecret",
                }[code]
            )
        )
    assert errcode_of(client.put("/cgi-bin/token", params=base)) == 43001


def test_stable_token_rules(client):
    body = {"grant_type": "client_credential", "appid": "wxA", "secret": "secret-A-123"}
    a = client.post("/cgi-bin/stable_token", json=body).json()
    b = client.post("/cgi-bin/stable_token", content=json.dumps(body)).json()  # no content type
    assert a["access_token"] == b["access_token"] and 7190 <= b["expires_in"] <= 7200
    c = client.post("/cgi-bin/stable_token", json={**body, "force_refresh": True}).json()
    assert c["access_token"] != a["access_token"]
    # the old stable token is invalid at once; the new one works
    assert (
        errcode_of(
            portrait(
                client,
                a["access_token"],
                {"begin_date": ymd(YESTERDAY), "end_date": ymd(YESTERDAY)},
            )
        )
        == 40001
    )
    assert (
        errcode_of(
            portrait(
                client,
                c["access_token"],
                {"begin_date": ymd(YESTERDAY), "end_date": ymd(YESTERDAY)},
            )
        )
        == 0
    )
    # the /cgi-bin/token pool and the stable pool do not invalidate each other
    t = token(client)
    d = client.post("/cgi-bin/stable_token", json=body).json()
    assert d["access_token"] == c["access_token"]
    assert (
        errcode_of(portrait(client, t, {"begin_date": ymd(YESTERDAY), "end_date": ymd(YESTERDAY)}))
        == 0
    )
    cases = [
        ("get", None, 43002),
        ("post", b"", 44002),
        ("post", b"not json", 47001),
        ("post", b"[1]", 47001),
        ("post", json.dumps({**body, "force_refresh": "yes"}).encode(), 47001),
        ("post", json.dumps({**body, "grant_type": "x"}).encode(), 40002),
        ("post", json.dumps({**body, "secret": "bad"}).encode(), 40125),
        ("post", json.dumps({"grant_type": "client_credential", "secret": "x"}).encode(), 41002),
        ("post", json.dumps({"grant_type": "client_credential", "appid": "wxA"}).encode(), 41004),
        ("post", json.dumps({**body, "appid": "wxZZ"}).encode(), 40013),
    ]
    for method, content, code in cases:
        r = (
            client.get("/cgi-bin/stable_token")
            if method == "get"
            else client.post("/cgi-bin/stable_token", content=content)
        )
        assert errcode_of(r) == code, (content, r.json())


def test_portrait_errors(client):
    tok = token(client)
    y, w = ymd(YESTERDAY), ymd(YESTERDAY - timedelta(days=6))
    ok = {"begin_date": w, "end_date": y}
    today = datetime.now(TZ).date()
    cases = [
        (None, ok, 41001),
        ("", ok, 41001),
        ("garbage-token", ok, 40001),
        (tok, b"", 44002),
        (tok, b"   ", 44002),
        (tok, b"{", 47001),
        (tok, b'"20170611"', 47001),
        (tok, b"[]", 47001),
        (tok, b"x" * (70 * 1024), 47001),
        (tok, {"begin_date": 20170611, "end_date": "20170611"}, 47001),
        (tok, {"end_date": y}, 61500),
        (tok, {"begin_date": "2017/06/11", "end_date": y}, 61500),
        (tok, {"begin_date": "20170631", "end_date": "20170631"}, 61500),
        (tok, {"begin_date": "2017-6-1", "end_date": y}, 61500),
        (tok, {"begin_date": y, "end_date": w}, 61501),
        (tok, {"begin_date": ymd(YESTERDAY - timedelta(days=2)), "end_date": y}, 61501),
        (tok, {"begin_date": ymd(today), "end_date": ymd(today)}, 61501),
        (tok, {"begin_date": ymd(today - timedelta(days=6)), "end_date": ymd(today)}, 61501),
    ]
    for t, body, code in cases:
        assert errcode_of(portrait(client, t, body)) == code, (t, body)
    assert errcode_of(client.get(PORTRAIT, params={"access_token": tok})) == 43002
    assert errcode_of(client.delete(PORTRAIT, params={"access_token": tok})) == 43002
    for path in ("/datacube/getweanalysisappidvisitpage", "/cgi-bin/nothing/here", "/datacube/"):
        assert errcode_of(client.post(path)) == 40066
    assert (
        client.post(PORTRAIT, params={"access_token": "x"}, content=b"{}")
        .json()["errmsg"]
        .startswith("invalid credential, access_token is invalid or not latest")
    )


def test_expired_token_says_so(store):
    now = [1_000_000.0]
    app = create_app(store, token_ttl=10)
    app.state.tokens.clock = lambda: now[0]
    with TestClient(app) as c:
        tok = token_ttl_client(c)
        body = {"begin_date": ymd(YESTERDAY), "end_date": ymd(YESTERDAY)}
        assert errcode_of(portrait(c, tok, body)) == 0
        now[0] += 11
        r = portrait(c, tok, body)
        assert errcode_of(r) == 42001 and r.json()["errmsg"].startswith("access_token expired")


def token_ttl_client(c) -> str:
    r = c.get(
        "/cgi-bin/token",
        params={"grant_type": "client_credential", "appid": "wxA", "secret": "secret-A-123"},
    )
    return r.json()["access_token"]


def test_portrait_equals_cli_document_for_every_span_and_spelling(client, store):
    tok = token(client)
    snap = store.snapshot("wxA")
    for days in (1, 7, 30):
        begin = YESTERDAY - timedelta(days=days - 1)
        want = portrait_document(
            compute(EmbeddedSource(snap), PortraitQuery.of("wxA", begin, YESTERDAY))
        )
        for spell in (ymd, lambda d: d.isoformat()):
            r = portrait(client, tok, {"begin_date": spell(begin), "end_date": spell(YESTERDAY)})
            assert errcode_of(r) == 0
            assert r.json() == want
    # the raw text is UTF-8, unescaped
    assert (
        "广东省".encode()
        in portrait(client, tok, {"begin_date": ymd(YESTERDAY), "end_date": ymd(YESTERDAY)}).content
    )


def test_a_token_reads_only_its_own_app(client):
    body = {"begin_date": ymd(YESTERDAY), "end_date": ymd(YESTERDAY)}
    a = portrait(client, token(client, "wxA", "secret-A-123"), body).json()
    b = portrait(client, token(client, "wxB", "secret-B-123"), body).json()
    assert a["visit_uv"]["province"] == [{"id": 44, "name": "广东省", "value": 1}]
    assert b["visit_uv"]["province"] == [{"id": 11, "name": "北京市", "value": 1}]


def kept_answers(client) -> tuple[float, float]:
    """(hits, misses) of the WeChat API's kept answers, as /metrics publishes them."""
    out = {}
    for fam in text_string_to_metric_families(client.get("/metrics").text):
        for s in fam.samples:
            if s.name == "weanalysis_kept_answers_total" and s.labels["api"] == "wechat":
                out[s.labels["result"]] = s.value
    return out.get("hit", 0.0), out.get("miss", 0.0)


def test_answers_are_kept_until_a_record_for_their_window_arrives(client, store, tmp_path):
    tok = token(client)
    week = {"begin_date": ymd(YESTERDAY - timedelta(days=6)), "end_date": ymd(YESTERDAY)}
    old_week = {
        "begin_date": ymd(YESTERDAY - timedelta(days=8)),
        "end_date": ymd(YESTERDAY - timedelta(days=2)),
    }
    first = portrait(client, tok, week).json()
    portrait(client, tok, old_week)
    hits, misses = kept_answers(client)
    assert (hits, misses) == (0, 2)
    assert portrait(client, tok, week).json() == first
    assert kept_answers(client) == (hits + 1, misses)  # the kept answer, not recomputed
    # a record for yesterday: the week ending yesterday changes, the older week is kept
    late = {"appid": "wxA", "openid": "zz", "time": f"{YESTERDAY.isoformat()}T13:00:00+08:00"}
    ingest_rows(store, tmp_path / "late.jsonl", [late])
    second = portrait(client, tok, week).json()
    assert second != first and kept_answers(client) == (hits + 1, misses + 1)
    portrait(client, tok, old_week)
    assert kept_answers(client) == (hits + 2, misses + 1)


def test_healthz_and_openapi(client):
    assert client.get("/healthz").json()["status"] == "ok"
    spec = client.get("/openapi.json").json()
    assert "/healthz" in spec["paths"] and not any(p.startswith("/datacube") for p in spec["paths"])
    assert {"/collect", "/api/v1/records", "/api/v1/portrait"} <= set(spec["paths"])
    assert spec["components"]["schemas"]["Answer"]["properties"]["rejected"]["type"] == "array"
    r = client.get("/no/such/page")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_unexpected_errors_are_wechat_system_errors(client, monkeypatch):
    tok = token(client)

    def boom(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(client.app.state.portraits, "document", boom)
    r = portrait(client, tok, {"begin_date": ymd(YESTERDAY), "end_date": ymd(YESTERDAY)})
    assert errcode_of(r) == -1 and r.json()["errmsg"].startswith("system error")
    assert "fire" not in r.text and "Traceback" not in r.text


def test_logs_never_hold_secrets_or_tokens(client, caplog):
    caplog.set_level("INFO", logger="weanalysis.access")
    tok = token(client)
    portrait(client, tok, {"begin_date": ymd(YESTERDAY), "end_date": ymd(YESTERDAY)})
    text = caplog.text
    assert "secret-A-123" not in text and tok not in text and tok[:16] not in text
    assert "POST /datacube/getweanalysisappiduserportrait 200 errcode=0" in text


def test_tokens_survive_a_restart(store):
    with TestClient(create_app(store)) as c:
        tok = token(c)
        stable = c.post(
            "/cgi-bin/stable_token",
            json={"grant_type": "client_credential", "appid": "wxA", "secret": "secret-A-123"},
        ).json()
    with TestClient(create_app(store)) as c:
        body = {"begin_date": ymd(YESTERDAY), "end_date": ymd(YESTERDAY)}
        assert errcode_of(portrait(c, tok, body)) == 0
        again = c.post(
            "/cgi-bin/stable_token",
            json={"grant_type": "client_credential", "appid": "wxA", "secret": "secret-A-123"},
        ).json()
        assert again["access_token"] == stable["access_token"]


def test_reissued_token_keeps_the_previous_one_for_a_short_overlap(store):
    now = [1_000_000.0]
    svc = TokenService(store.catalog, 7200, clock=lambda: now[0])
    first = svc.issue("wxA").token
    svc.issue("wxA")
    assert svc.check(first).state.value == "valid"
    now[0] += 301
    assert svc.check(first).state.value == "expired"
