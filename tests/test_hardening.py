"""Regression tests for the holes of the attack run (issue 12), in-process through the real app.

Numbers in the test names are the issue's. The subprocess ones (slow clients, read-only and
damaged folders, FIFOs) are in test_hardening_cli.py.
"""

from __future__ import annotations

import json
import logging
import re
import threading

import pytest
from starlette.testclient import TestClient

from weanalysis.api.app import create_app
from weanalysis.api.collect_routes import CollectLimits
from weanalysis.store import Store
from weanalysis.store import catalog as catalog_module

CT = "application/json; encoding=utf-8"
RID = re.compile(r" rid: [0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}$")
APPID, SECRET = "wxA", "secret-A-123"
PROXY = "10.9.8.7"


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "data")
    s.catalog.add_app(APPID, SECRET)
    yield s
    s.close()


@pytest.fixture
def hashes(monkeypatch):
    """The PBKDF2 runs, with the thread each ran on (a spy on the catalog's hash)."""
    calls: list[str] = []
    real = catalog_module._hash_secret

    def spy(secret, salt):
        calls.append(threading.current_thread().name)
        return real(secret, salt)

    monkeypatch.setattr(catalog_module, "_hash_secret", spy)
    return calls


def client_for(store, **kw) -> TestClient:
    limits = CollectLimits(trusted_proxies=(PROXY,))
    return TestClient(create_app(store, limits=limits, **kw), client=(PROXY, 5000))


def wechat_error(r) -> int:
    """The errcode of a WeChat-shaped error answer (and checks that shape exactly)."""
    assert r.status_code == 200 and r.headers["content-type"] == CT, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"errcode", "errmsg"} and RID.search(body["errmsg"]), body
    return body["errcode"]


def dashboard_error(r) -> tuple[int, str]:
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    return r.status_code, body["error"]["code"]


def token_get(c, appid=APPID, secret="wrong-secret", ip="1.1.1.1"):
    q = {"grant_type": "client_credential", "appid": appid, "secret": secret}
    return c.get("/cgi-bin/token", params=q, headers={"x-forwarded-for": ip})


def stable_post(c, appid=APPID, secret="wrong-secret", ip="1.1.1.1"):
    body = {"grant_type": "client_credential", "appid": appid, "secret": secret}
    return c.post("/cgi-bin/stable_token", json=body, headers={"x-forwarded-for": ip})


def sign_in(c, appid=APPID, secret="wrong-secret", ip="1.1.1.1"):
    return c.post(
        "/api/v1/session",
        json={"appid": appid, "secret": secret},
        headers={"x-forwarded-for": ip},
    )


# -- 1. unlimited secret guessing -------------------------------------------------------------


@pytest.mark.parametrize("route", [token_get, stable_post])
def test_1_wechat_secret_guessing_is_throttled_with_45011_and_no_hashing(
    store, hashes, route, monkeypatch
):
    monkeypatch.setenv("WEANALYSIS_SECRET_FAILURES", "5")
    c = client_for(store)
    for _ in range(5):
        assert wechat_error(route(c)) == 40125
    assert len(hashes) == 5
    # over the limit: 45011 in WeChat's shape, HTTP 200, even with the right secret, no hash
    r = route(c, secret=SECRET)
    assert wechat_error(r) == 45011
    assert r.json()["errmsg"].startswith("api minute-quota reach limit")
    assert len(hashes) == 5
    # another client IP is not throttled (per IP), and the right secret works for it
    assert "access_token" in route(c, secret=SECRET, ip="2.2.2.2").json()


def test_1_sign_in_shares_the_throttle_and_answers_in_its_own_shape(store, hashes, monkeypatch):
    monkeypatch.setenv("WEANALYSIS_SECRET_FAILURES", "3")
    c = client_for(store)
    assert wechat_error(token_get(c)) == 40125
    assert wechat_error(stable_post(c)) == 40125
    assert dashboard_error(sign_in(c)) == (401, "invalid_credentials")
    r = sign_in(c, secret=SECRET)
    assert dashboard_error(r) == (429, "too_many_attempts") and int(r.headers["retry-after"]) > 0
    assert wechat_error(token_get(c, secret=SECRET)) == 45011
    assert len(hashes) == 3


def test_1_guesses_spread_over_many_ips_are_throttled_per_appid(store, hashes, monkeypatch):
    monkeypatch.setenv("WEANALYSIS_SECRET_FAILURES", "2")  # per appid: 5 times the per-IP limit
    c = client_for(store)
    for i in range(10):
        assert wechat_error(token_get(c, ip=f"3.3.3.{i}")) == 40125
    assert wechat_error(token_get(c, secret=SECRET, ip="4.4.4.4")) == 45011
    assert len(hashes) == 10


def test_1_the_hash_runs_off_the_event_loop(store, hashes):
    c = client_for(store)
    token_get(c)
    sign_in(c)
    assert hashes and all(name.startswith("secret-check") for name in hashes), hashes


# -- 2. timing tells which appids exist ------------------------------------------------------


def test_2_an_unknown_appid_costs_the_same_hash_as_a_wrong_secret(store, hashes):
    c = client_for(store)
    assert wechat_error(token_get(c, appid="wxNobody")) == 40013
    assert len(hashes) == 1
    assert wechat_error(token_get(c, appid=APPID)) == 40125
    assert len(hashes) == 2
    assert dashboard_error(sign_in(c, appid="wxNobody")) == (401, "invalid_credentials")
    assert len(hashes) == 3


# -- 3. access-log forging -------------------------------------------------------------------


def test_3_logged_fields_never_carry_control_characters(store, caplog):
    c = client_for(store)
    caplog.set_level(logging.INFO, logger="weanalysis")
    assert wechat_error(c.get("/cgi-bin/x%0aFORGED%20LINE%1b[31m")) == 40066
    c.get("/static/a%0d%0aFORGED%e2%80%aeRTL")
    lines = [r.getMessage() for r in caplog.records if r.name == "weanalysis.access"]
    assert len(lines) == 2
    for line in lines:
        assert not re.search(r"[\x00-\x1f\x7f\u202e]", line), line
    assert "/cgi-bin/x\\x0aFORGED LINE\\x1b[31m" in lines[0]
    assert "\\x0d\\x0aFORGED\\u202eRTL" in lines[1]


# -- 4. HTTP 500 on sign-in ------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"\xff",
        b'{"appid": "\xff\xfe", "secret": "x"}',
        b'{"appid": "\\ud800", "secret": "secret-A-123"}',
        b'{"appid": "wxA", "secret": "\\udfff"}',
        b'{"appid": "wxA\\u0000", "secret": "secret-A-123"}',
    ],
)
def test_4_undecodable_sign_ins_are_400_bad_request(store, caplog, body):
    c = client_for(store)
    caplog.set_level(logging.INFO)
    r = c.post("/api/v1/session", content=body, headers={"content-type": "application/json"})
    assert r.status_code in (400, 401), r.text
    if r.status_code == 400:
        assert dashboard_error(r) == (400, "bad_request")
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]


# -- 5. WeChat's shape under /cgi-bin/ and /datacube/ --------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "errcode"),
    [
        ("TRACE", "/cgi-bin/token", 43001),
        ("PROPFIND", "/cgi-bin/token", 43001),
        ("TRACE", "/cgi-bin/stable_token", 43002),
        ("PROPFIND", "/datacube/getweanalysisappiduserportrait", 43002),
        ("MKCOL", "/datacube/anything", 40066),
        ("GET", "/cgi-bin/x%0aFORGED", 40066),
        ("POST", "/datacube/%0a", 40066),
        ("GET", "/cgi-bin/", 40066),
    ],
)
def test_5_every_method_and_path_gets_a_wechat_errcode(store, method, path, errcode):
    assert wechat_error(client_for(store).request(method, path)) == errcode


def test_5_options_on_our_routes_is_our_405(store):
    c = client_for(store)
    for method, path in (("OPTIONS", "/api/v1/session"), ("TRACE", "/api/v1/portrait")):
        r = c.request(method, path)
        assert dashboard_error(r) == (405, "method_not_allowed"), (method, path)
    assert c.request("OPTIONS", "/api/v1/session").headers["allow"] == "DELETE, GET, POST"


# -- 7. hostile strings in records ------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("brand", "Apple\u0000"),
        ("brand", "\u202eRTL"),
        ("model", "iPhone\u2066x"),
        ("model", "a\x1b[31mred"),
        ("user_agent", "Mozilla\u202d"),
        ("openid", "   "),
        ("openid", "\u200b"),
        ("openid", "\u3000\ufeff"),
        ("openid", "a\u202eb"),
        ("event_id", "e\u0007"),
    ],
)
def test_7_hostile_text_is_rejected(store, field, value):
    c = client_for(store)
    record = {"openid": "u1", "time": 1_700_000_000, "platform": "ios", field: value}
    r = c.post(f"/collect?appid={APPID}", json=[record], headers={"x-forwarded-for": "5.5.5.5"})
    body = r.json()
    assert body["accepted"] == 0 and len(body["rejected"]) == 1, body
    assert body["rejected"][0]["reason"].startswith(field), body


# -- 11. TLS proxy, headers on every page ---------------------------------------------------


def test_11_secure_cookie_behind_a_trusted_tls_proxy_only(store):
    c = client_for(store)
    r = c.post(
        "/api/v1/session",
        json={"appid": APPID, "secret": SECRET},
        headers={"x-forwarded-proto": "https", "x-forwarded-for": "6.6.6.6"},
    )
    assert r.status_code == 200
    assert "Secure" in [p.strip() for p in r.headers["set-cookie"].split(";")]
    # the same header from a peer that is not a trusted proxy is not believed
    other = TestClient(create_app(store), client=("7.7.7.7", 5000))
    r = other.post(
        "/api/v1/session",
        json={"appid": APPID, "secret": SECRET},
        headers={"x-forwarded-proto": "https"},
    )
    assert r.status_code == 200
    assert "Secure" not in [p.strip() for p in r.headers["set-cookie"].split(";")]


def test_11_every_page_has_the_security_headers(store):
    c = client_for(store)
    for path in ("/", "/static/index.html", "/static/app.js", "/static/style.css"):
        r = c.get(path)
        assert r.status_code == 200, path
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"], path
        assert r.headers["x-content-type-options"] == "nosniff", path


# -- 12. appids that differ by case, appids that read as options ---------------------------


def test_12_case_twins_and_option_like_appids_are_refused(store):
    from weanalysis.store import CatalogError

    for bad in ("WXA", "Wxa", "-rf", "-", "_x", "--data"):
        with pytest.raises(CatalogError) as e:
            store.catalog.add_app(bad, "secret-X-123")
        assert bad in str(e.value)
    assert [a.appid for a in store.catalog.list()] == [APPID]


# -- the malformed WeChat list: every one answered in WeChat's shape ------------------------

MALFORMED = [
    # (method, path, query, body bytes or None, errcode)
    ("GET", "/cgi-bin/token", "", None, 40002),
    ("GET", "/cgi-bin/token", "grant_type=client_credential", None, 41002),
    ("GET", "/cgi-bin/token", "grant_type=client_credential&appid=wxA", None, 41004),
    ("GET", "/cgi-bin/token", "grant_type=x&appid=wxA&secret=s", None, 40002),
    ("GET", "/cgi-bin/token", "grant_type=client_credential&appid=%ff&secret=s", None, 40013),
    ("GET", "/cgi-bin/token", "grant_type=client_credential&appid=wxA%00&secret=s", None, 40013),
    (
        "GET",
        "/cgi-bin/token",
        "grant_type=client_credential&appid=" + "a" * 5000 + "&secret=s",
        None,
        40013,
    ),
    ("DELETE", "/cgi-bin/token", "", None, 43001),
    ("GET", "/cgi-bin/stable_token", "", None, 43002),
    ("POST", "/cgi-bin/stable_token", "", b"", 44002),
    ("POST", "/cgi-bin/stable_token", "", b"   ", 44002),
    ("POST", "/cgi-bin/stable_token", "", b"\xff\xfe", 47001),
    ("POST", "/cgi-bin/stable_token", "", b"{", 47001),
    ("POST", "/cgi-bin/stable_token", "", b"[]", 47001),
    ("POST", "/cgi-bin/stable_token", "", b"null", 47001),
    ("POST", "/cgi-bin/stable_token", "", b'"\\ud800"', 47001),
    ("POST", "/cgi-bin/stable_token", "", b'{"appid": "\\ud800"}', 47001),
    (
        "POST",
        "/cgi-bin/stable_token",
        "",
        b'{"grant_type": "client_credential", "appid": 1, "secret": "s"}',
        47001,
    ),
    (
        "POST",
        "/cgi-bin/stable_token",
        "",
        b'{"grant_type": "client_credential", "appid": "wxA", "secret": ["s"]}',
        47001,
    ),
    (
        "POST",
        "/cgi-bin/stable_token",
        "",
        b'{"grant_type": "client_credential", "appid": "wxA", "secret": "s", "force_refresh": "yes"}',
        47001,
    ),
    ("POST", "/cgi-bin/stable_token", "", b"{" + b'"a":' * 1 + b"1" * 70000 + b"}", 47001),
    ("POST", "/datacube/getweanalysisappiduserportrait", "", b"{}", 41001),
    ("POST", "/datacube/getweanalysisappiduserportrait", "access_token=", b"{}", 41001),
    ("POST", "/datacube/getweanalysisappiduserportrait", "access_token=%ff%fe", b"{}", 40001),
    (
        "POST",
        "/datacube/getweanalysisappiduserportrait",
        "access_token=" + "x" * 10000,
        b"{}",
        40001,
    ),
    ("GET", "/datacube/getweanalysisappiduserportrait", "access_token=x", None, 43002),
    ("POST", "/datacube/getweanalysisappiduserportrait%00", "", b"{}", 40066),
    ("GET", "/cgi-bin/%e2%80%ae", "", None, 40066),
]


@pytest.mark.parametrize(("method", "path", "query", "body", "errcode"), MALFORMED)
def test_malformed_wechat_requests(store, caplog, method, path, query, body, errcode):
    caplog.set_level(logging.INFO)
    c = client_for(store)
    url = path + (f"?{query}" if query else "")
    r = c.request(method, url, content=body)
    assert wechat_error(r) == errcode, r.text
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]


def test_the_errcode_table_is_whole_json():
    # the shape pinned above is WeChat's: two keys, the text then " rid: ..."
    from weanalysis.wechat import errors as E

    body = E.error_body(E.RATE_LIMITED)
    assert set(body) == {"errcode", "errmsg"} and body["errcode"] == 45011
    assert json.dumps(body)


def test_1_the_collect_limiter_does_not_forget_a_client_under_churn():
    from weanalysis.collect.ratelimit import RateLimiter

    limiter = RateLimiter(rate=1, burst=2)
    assert limiter.allow("noisy", now=0) and limiter.allow("noisy", now=0)
    assert not limiter.allow("noisy", now=0)
    for i in range(150_000):  # more keys than the old table held before it was cleared
        assert limiter.allow(f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}", now=0.1)
    assert not limiter.allow("noisy", now=0.2)  # still limited
    assert limiter.allow("noisy", now=1.5)  # refilled
    # buckets that refilled are the same as no bucket: the table shrinks by itself
    limiter.allow("late", now=100)
    for i in range(2048):
        limiter.allow(f"k{i}", now=200)
    assert len(limiter) <= 2049
