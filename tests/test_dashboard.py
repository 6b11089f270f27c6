"""The dashboard's sign-in, session cookie and JSON API, in-process through the real app."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
import pytest
from starlette.testclient import TestClient

from tests.records import ingest_rows
from weanalysis.api import dashboard_schema as S
from weanalysis.api.app import create_app
from weanalysis.auth.sessions import COOKIE_NAME, KEY_FILE, SessionSigner, load_key
from weanalysis.auth.throttle import FailureThrottle
from weanalysis.portrait.embedded import EmbeddedSource
from weanalysis.portrait.engine import compute
from weanalysis.portrait.query import PortraitQuery
from weanalysis.wechat.dialect import portrait_document

TZ = ZoneInfo("Asia/Shanghai")
YESTERDAY = datetime.now(TZ).date() - timedelta(days=1)
SECRET_A, SECRET_B = "secret-A-123", "secret-B-123"
JSON_ERROR_KEYS = {"error"}


def ymd(d):
    return d.strftime("%Y%m%d")


def at(d, hour=12):
    return f"{d.isoformat()}T{hour:02d}:00:00+08:00"


@pytest.fixture
def store(tmp_path, make_store):
    s = make_store({"wxA": SECRET_A, "wxB": SECRET_B, "wxEmpty": "secret-E-123"})
    rows = [
        # a0: new yesterday, in 广州 on an iPhone, a woman of 25
        {
            "appid": "wxA",
            "openid": "a0",
            "time": at(YESTERDAY),
            "province": "广东",
            "city": "广州",
            "platform": "ios",
            "brand": "iPhone",
            "model": "iPhone 13<iPhone14,5>",
            "gender": 2,
            "age": 25,
        },
        # a1: first seen 10 days ago, back yesterday from 成都 on android, no profile
        {
            "appid": "wxA",
            "openid": "a1",
            "time": at(YESTERDAY - timedelta(days=10)),
            "province": "北京",
        },
        {
            "appid": "wxA",
            "openid": "a1",
            "time": at(YESTERDAY),
            "province": "四川",
            "city": "成都",
            "platform": "android",
        },
        # a2: new 3 days ago, overseas
        {
            "appid": "wxA",
            "openid": "a2",
            "time": at(YESTERDAY - timedelta(days=3)),
            "province": "海外",
            "gender": "男",
            "age": 40,
        },
        {"appid": "wxB", "openid": "b0", "time": at(YESTERDAY), "province": "北京"},
    ]
    ingest_rows(s, tmp_path / "v.jsonl", rows)
    return s


@pytest.fixture
def client(store):
    with TestClient(create_app(store)) as c:
        yield c


def sign_in(client, appid="wxA", secret=SECRET_A):
    return client.post("/api/v1/session", json={"appid": appid, "secret": secret})


def error_of(resp) -> tuple[int, str]:
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert set(body) == JSON_ERROR_KEYS and set(body["error"]) == {"code", "message"}
    assert body["error"]["message"]
    return resp.status_code, body["error"]["code"]


# -- sign-in and the cookie ----------------------------------------------------------------------


def test_sign_in_sets_an_httponly_samesite_strict_cookie(client, store):
    r = sign_in(client)
    assert r.status_code == 200
    first = ymd(YESTERDAY - timedelta(days=10))
    assert r.json() == {
        "appid": "wxA",
        "timezone": "Asia/Shanghai",
        "yesterday": YESTERDAY.isoformat(),
        "expires_at": r.json()["expires_at"],
        "data_days": {
            "first": f"{first[:4]}-{first[4:6]}-{first[6:]}",
            "last": YESTERDAY.isoformat(),
        },
        "min_users": 0,
        "imported": False,
    }
    cookie = r.headers["set-cookie"]
    parts = [p.strip() for p in cookie.split(";")]
    assert parts[0].startswith(f"{COOKIE_NAME}=")
    assert {"HttpOnly", "Path=/", "SameSite=strict", "Max-Age=43200"} <= set(parts)
    assert "Secure" not in parts  # plain http on loopback; see the https test
    assert SECRET_A not in cookie
    assert client.get("/api/v1/session").json()["appid"] == "wxA"


def test_the_cookie_is_secure_over_https(store):
    with TestClient(create_app(store), base_url="https://dash.example") as c:
        parts = [p.strip() for p in sign_in(c).headers["set-cookie"].split(";")]
    assert "Secure" in parts


def test_wrong_secret_and_unknown_appid_get_the_same_clear_message(client):
    for appid, secret in (("wxA", "wrong-secret"), ("wxNobody", SECRET_A), ("wxA", "x" * 500)):
        r = sign_in(client, appid, secret)
        assert r.status_code == 401
        assert r.json() == {
            "error": {"code": "invalid_credentials", "message": "AppID 或 AppSecret 不正确"}
        }
        assert "set-cookie" not in r.headers
    assert error_of(client.get("/api/v1/portrait")) == (401, "unauthenticated")


def test_malformed_sign_ins_are_400_in_our_shape(client):
    bad = [
        client.post("/api/v1/session", json={"appid": "wxA"}),
        client.post("/api/v1/session", json={"appid": 1, "secret": SECRET_A}),
        client.post("/api/v1/session", json=["wxA", SECRET_A]),
        client.post(
            "/api/v1/session", content=b"{not json", headers={"content-type": "application/json"}
        ),
        # a cross-site form cannot sign a victim into our app: only JSON is accepted
        client.post("/api/v1/session", data={"appid": "wxA", "secret": SECRET_A}),
        client.post(
            "/api/v1/session",
            content=json.dumps({"appid": "wxA", "secret": SECRET_A}),
            headers={"content-type": "text/plain"},
        ),
    ]
    for r in bad:
        assert error_of(r) == (400, "bad_request")
        assert "set-cookie" not in r.headers


def test_failed_sign_ins_are_throttled_even_with_the_right_secret(client):
    for _ in range(10):
        assert sign_in(client, "wxA", "wrong-secret").status_code == 401
    r = sign_in(client)
    assert error_of(r) == (429, "too_many_attempts")
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert "秒后再试" in r.json()["error"]["message"]
    assert "set-cookie" not in r.headers


def test_failure_throttle_window_and_no_forgetting_under_churn():
    now = [0.0]
    lim = FailureThrottle(limit=3, window_s=60, clock=lambda: now[0])
    for t in (0, 1, 2):
        now[0] = t
        assert lim.retry_after("ip1") == 0
        lim.failed("ip1")
    now[0] = 3
    assert 50 <= lim.retry_after("ip1") <= 60
    assert lim.retry_after("ip2") == 0  # per client
    # 200,000 other clients fail meanwhile: ip1 is still remembered (no eviction by count)
    for i in range(200_000):
        lim.failed(f"other{i}")
    assert lim.retry_after("ip1") > 0
    now[0] = 61
    assert lim.retry_after("ip1") == 0  # its failures left the window
    assert lim.keys() == 0  # and so did everybody's: the state expires by age
    assert lim._counts == {}


def test_sign_out_clears_the_cookie(client):
    sign_in(client)
    r = client.delete("/api/v1/session")
    assert r.status_code == 204
    parts = [p.strip() for p in r.headers["set-cookie"].split(";")]
    assert parts[0] in (f'{COOKIE_NAME}=""', f"{COOKIE_NAME}=") and "Max-Age=0" in parts
    assert {"HttpOnly", "Path=/", "SameSite=strict"} <= set(parts)
    assert error_of(client.get("/api/v1/session")) == (401, "unauthenticated")
    assert client.delete("/api/v1/session").status_code == 204  # idempotent


# -- what a cookie can read ----------------------------------------------------------------------


def test_no_data_without_a_valid_session(client):
    for path in ("/api/v1/session", "/api/v1/portrait", "/api/v1/portrait.csv"):
        assert error_of(client.get(path)) == (401, "unauthenticated")


def test_a_cookie_reads_only_its_own_app(client):
    sign_in(client, "wxB", SECRET_B)
    doc = client.get("/api/v1/portrait").json()
    assert doc["appid"] == "wxB" and doc["active"]["total"] == 1
    assert [p["name"] for p in doc["active"]["province"]] == ["北京市"]
    # there is no parameter that names another app: the session decides
    doc = client.get("/api/v1/portrait", params={"appid": "wxA"}).json()
    assert doc["appid"] == "wxB"


def _forge(payload: dict, key: bytes) -> str:
    p = base64.urlsafe_b64encode(orjson.dumps(payload)).rstrip(b"=").decode()
    sig = hmac.new(key, p.encode(), hashlib.sha256).digest()
    return f"{p}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"


def test_forged_tampered_and_expired_cookies_are_refused(client, store):
    key = load_key(store.dir)
    good = SessionSigner(key).issue("wxB", epoch=store.catalog.get("wxB").epoch)
    payload, sig = good.split(".")
    claims_a = base64.urlsafe_b64encode(b'{"a":"wxA","e":9999999999}').rstrip(b"=").decode()
    later = int(datetime.now().timestamp()) + 3600
    bad = [
        f"{claims_a}.{sig}",  # another app's name under B's signature
        f"{payload}.{sig[:-2]}AA",  # tampered signature
        _forge({"a": "wxA", "e": later}, b"k" * 32),  # signed with another key
        SessionSigner(os.urandom(32)).issue("wxA"),  # another server's cookie
        SessionSigner(key).issue("wxA", now=0),  # expired long ago
        _forge({"a": "wxGone", "e": later}, key),  # validly signed, app not registered
        _forge({"a": "wxA", "e": "never"}, key),
        _forge({"a": ["wxA"], "e": later}, key),
        "garbage",
        "a.b.c",
        "x" * 5000,
    ]
    for value in bad:
        client.cookies.set(COOKIE_NAME, value)
        assert error_of(client.get("/api/v1/portrait")) == (401, "unauthenticated"), value
    client.cookies.clear()
    raw = f"{COOKIE_NAME}=é.ü".encode()
    assert error_of(client.get("/api/v1/portrait", headers={"cookie": raw})) == (
        401,
        "unauthenticated",
    )
    assert SessionSigner(key).check("é.ü") is None
    client.cookies.set(COOKIE_NAME, good)
    assert client.get("/api/v1/portrait").json()["appid"] == "wxB"


def test_the_key_is_private_and_survives_a_restart(store, tmp_path):
    with TestClient(create_app(store)) as c:
        sign_in(c)
        cookie = c.cookies.get(COOKIE_NAME)
    path = store.dir / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(path.read_bytes()) == 32
    with TestClient(create_app(store)) as c:
        c.cookies.set(COOKIE_NAME, cookie)
        assert c.get("/api/v1/session").status_code == 200
    path.unlink()  # deleting the key signs everybody out
    with TestClient(create_app(store)) as c:
        c.cookies.set(COOKIE_NAME, cookie)
        assert c.get("/api/v1/session").status_code == 401


# -- the portrait ----------------------------------------------------------------------------------


def test_portrait_is_the_cores_answer_with_totals_and_shares(client, store):
    sign_in(client)
    y, w = YESTERDAY, YESTERDAY - timedelta(days=6)
    doc = client.get("/api/v1/portrait", params={"begin": ymd(w), "end": ymd(y)}).json()
    first = (y - timedelta(days=10)).isoformat()
    assert doc == {
        "appid": "wxA",
        "data_days": {"first": first, "last": y.isoformat()},
        "begin": w.isoformat(),
        "end": y.isoformat(),
        "days": 7,
        "ref_date": f"{ymd(w)}-{ymd(y)}",
        "where": [],
        "new": {
            "total": 2,
            "province": [
                {"id": 44, "name": "广东省", "value": 1, "share": 0.5, "map_name": "广东"},
                {"id": 99, "name": "海外", "value": 1, "share": 0.5, "map_name": None},
            ],
            "city": [
                {"id": 4401, "name": "广州", "value": 1, "share": 0.5},
                {"id": 9900, "name": "海外", "value": 1, "share": 0.5},
            ],
            "genders": [
                {"id": 1, "name": "男", "value": 1, "share": 0.5},
                {"id": 2, "name": "女", "value": 1, "share": 0.5},
            ],
            "ages": [
                {"id": 3, "name": "25-29岁", "value": 1, "share": 0.5},
                {"id": 5, "name": "40-49岁", "value": 1, "share": 0.5},
            ],
            "platforms": [
                {"id": 0, "name": "未知", "value": 1, "share": 0.5},
                {"id": 1, "name": "iPhone", "value": 1, "share": 0.5},
            ],
            "devices": [
                {"name": "未知", "value": 1, "share": 0.5},
                {"name": "苹果iPhone 13", "value": 1, "share": 0.5},
            ],
        },
        "active": {
            "total": 3,
            "province": [
                {"id": 44, "name": "广东省", "value": 1, "share": 0.333333, "map_name": "广东"},
                {"id": 51, "name": "四川省", "value": 1, "share": 0.333333, "map_name": "四川"},
                {"id": 99, "name": "海外", "value": 1, "share": 0.333333, "map_name": None},
            ],
            "city": [
                {"id": 4401, "name": "广州", "value": 1, "share": 0.333333},
                {"id": 5101, "name": "成都", "value": 1, "share": 0.333333},
                {"id": 9900, "name": "海外", "value": 1, "share": 0.333333},
            ],
            "genders": [
                {"id": 0, "name": "未知", "value": 1, "share": 0.333333},
                {"id": 1, "name": "男", "value": 1, "share": 0.333333},
                {"id": 2, "name": "女", "value": 1, "share": 0.333333},
            ],
            "ages": [
                {"id": 0, "name": "未知", "value": 1, "share": 0.333333},
                {"id": 3, "name": "25-29岁", "value": 1, "share": 0.333333},
                {"id": 5, "name": "40-49岁", "value": 1, "share": 0.333333},
            ],
            "platforms": [
                {"id": 0, "name": "未知", "value": 1, "share": 0.333333},
                {"id": 1, "name": "iPhone", "value": 1, "share": 0.333333},
                {"id": 2, "name": "android", "value": 1, "share": 0.333333},
            ],
            "devices": [
                {"name": "未知", "value": 2, "share": 0.666667},
                {"name": "苹果iPhone 13", "value": 1, "share": 0.333333},
            ],
        },
    }


@pytest.mark.parametrize("days", [1, 7, 11, 30, 366])
def test_portrait_lists_equal_the_wechat_document(client, store, days):
    sign_in(client)
    begin = YESTERDAY - timedelta(days=days - 1)
    doc = client.get("/api/v1/portrait", params={"begin": ymd(begin), "end": ymd(YESTERDAY)}).json()
    result = compute(
        EmbeddedSource(store.snapshot("wxA")), PortraitQuery.of("wxA", begin, YESTERDAY)
    )
    wechat = portrait_document(result)
    assert doc["ref_date"] == wechat["ref_date"]
    for ours, theirs, us in (
        ("new", "visit_uv_new", result.new),
        ("active", "visit_uv", result.active),
    ):
        assert doc[ours]["total"] == us.total
        for name, items in wechat[theirs].items():
            stripped = [
                {k: v for k, v in it.items() if k not in ("share", "map_name")}
                for it in doc[ours][name]
            ]
            assert stripped == items
            for it in doc[ours][name]:
                assert it["share"] == round(it["value"] / us.total, 6)


def test_portrait_defaults_to_the_seven_days_ending_yesterday(client):
    sign_in(client)
    doc = client.get("/api/v1/portrait").json()
    assert (doc["begin"], doc["end"]) == (
        (YESTERDAY - timedelta(days=6)).isoformat(),
        YESTERDAY.isoformat(),
    )
    assert client.get("/api/v1/portrait", params={"end": YESTERDAY.isoformat()}).json() == doc


def test_bad_windows_are_400_with_a_reason(client):
    sign_in(client)
    today = YESTERDAY + timedelta(days=1)
    cases = {
        ("2024-13-01", None): "date_format",
        ("yesterday", None): "date_format",
        (None, "20240230"): "date_format",
        (ymd(YESTERDAY), ymd(YESTERDAY - timedelta(days=1))): "date_range",
        (ymd(YESTERDAY), ymd(today)): "date_range",
        (ymd(YESTERDAY - timedelta(days=366)), ymd(YESTERDAY)): "date_range",
    }
    for (begin, end), code in cases.items():
        params = {k: v for k, v in (("begin", begin), ("end", end)) if v is not None}
        assert error_of(client.get("/api/v1/portrait", params=params)) == (400, code), params
    r = client.get("/api/v1/portrait", params={"end": ymd(today)})
    assert r.json()["error"]["message"] == f"结束日期最晚为昨天（{YESTERDAY.isoformat()}）"


def test_an_app_without_data_says_so(client):
    sign_in(client, "wxEmpty", "secret-E-123")
    session = client.get("/api/v1/session").json()
    assert session["data_days"] == {"first": None, "last": None}
    doc = client.get("/api/v1/portrait").json()
    assert doc["data_days"] == {"first": None, "last": None}
    assert (
        doc["new"]
        == doc["active"]
        == {
            "total": 0,
            "province": [],
            "city": [],
            "genders": [],
            "ages": [],
            "platforms": [],
            "devices": [],
        }
    )


def test_new_records_show_up_in_the_next_answer(client, store, tmp_path):
    sign_in(client)
    before = client.get("/api/v1/portrait").json()["active"]["total"]
    ingest_rows(
        store, tmp_path / "late.jsonl", [{"appid": "wxA", "openid": "late", "time": at(YESTERDAY)}]
    )
    assert client.get("/api/v1/portrait").json()["active"]["total"] == before + 1


# -- CSV ---------------------------------------------------------------------------------------------


def test_csv_is_utf8_with_bom_and_holds_the_set_on_screen(client):
    sign_in(client)
    b = ymd(YESTERDAY - timedelta(days=6))
    r = client.get(
        "/api/v1/portrait.csv", params={"begin": b, "end": ymd(YESTERDAY), "users": "new"}
    )
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == (
        f'attachment; filename="weanalysis-wxA-{b}-{ymd(YESTERDAY)}-new.csv"'
    )
    assert r.content.startswith(b"\xef\xbb\xbf")
    period = f"{(YESTERDAY - timedelta(days=6)).isoformat()} 至 {YESTERDAY.isoformat()}"
    lines = r.content[3:].decode("utf-8").split("\r\n")
    assert lines[:5] == [
        "时间段,用户类型,维度,编号,名称,用户数,占比",
        f"{period},新用户,合计,,新用户,2,100.00%",
        f"{period},新用户,省份,44,广东省,1,50.00%",
        f"{period},新用户,省份,99,海外,1,50.00%",
        f"{period},新用户,城市,4401,广州,1,50.00%",
    ]
    # the lists follow the dimension table's order: devices, then ages last
    assert lines[-6:] == [
        f"{period},新用户,平台,1,iPhone,1,50.00%",
        f"{period},新用户,机型,,未知,1,50.00%",
        f"{period},新用户,机型,,苹果iPhone 13,1,50.00%",
        f"{period},新用户,年龄,3,25-29岁,1,50.00%",
        f"{period},新用户,年龄,5,40-49岁,1,50.00%",
        "",
    ]
    assert error_of(client.get("/api/v1/portrait.csv", params={"users": "all"})) == (
        400,
        "bad_request",
    )


def test_csv_cells_never_start_a_formula():
    doc = {
        "begin": "2024-01-01",
        "end": "2024-01-01",
        "days": 1,
        "new": {
            "total": 1,
            "province": [],
            "city": [],
            "genders": [],
            "ages": [],
            "platforms": [],
            "devices": [{"name": '=HYPERLINK("x")', "value": 1, "share": 1.0}],
        },
    }
    text = S.portrait_csv(doc, "new").decode("utf-8-sig")
    assert '2024-01-01,新用户,机型,,"\'=HYPERLINK(""x"")",1,100.00%' in text


# -- the page and the schema ---------------------------------------------------------------------


def test_the_page_and_its_assets_are_served_from_the_package(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp and r.headers["x-content-type-options"] == "nosniff"
    html = r.text
    assert "{{v}}" not in html and "https://" not in html and "http://" not in html
    for asset in ("/static/style.css", "/static/vendor/echarts.min.js", "/static/app.js"):
        assert f"{asset}?v=" in html
        got = client.get(asset)
        assert got.status_code == 200 and len(got.content) > 1000
    assert client.get("/static/vendor/china.json").json()["type"] == "FeatureCollection"
    assert client.get("/static/nope.js").status_code == 404


def test_other_methods_are_405_in_our_shape(client):
    sign_in(client)
    r = client.post("/api/v1/portrait")
    assert error_of(r) == (405, "method_not_allowed") and r.headers["allow"] == "GET"
    r = client.put("/api/v1/session", json={})
    assert error_of(r) == (405, "method_not_allowed")
    assert r.headers["allow"] == "DELETE, GET, POST"


def test_openapi_documents_our_routes_not_the_wechat_ones(client):
    doc = client.get("/openapi.json").json()
    paths = doc["paths"]
    assert {"get", "post", "delete"} <= set(paths["/api/v1/session"])
    assert set(paths["/api/v1/portrait"]) == {"get"} and "/api/v1/portrait.csv" in paths
    ok = paths["/api/v1/portrait"]["get"]["responses"]
    assert ok["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PortraitOut"
    }
    assert ok["401"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorOut"
    }
    assert doc["components"]["securitySchemes"]["APIKeyCookie"] == {
        "type": "apiKey",
        "in": "cookie",
        "name": COOKIE_NAME,
        "description": "Signed session",
    }
    assert not any(p.startswith(("/cgi-bin", "/datacube")) for p in paths)
