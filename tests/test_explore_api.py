# ruff: noqa: F811  (the fixtures client and store come from test_dashboard)
"""The explorer in our own JSON API and the WeChat API: segments, cross-tabs, comparison, trends,
small groups withheld everywhere, kept answers keyed by all of it."""

from __future__ import annotations

from datetime import timedelta

import orjson

from tests.records import ingest_rows
from tests.test_dashboard import (  # noqa: F401 (fixtures)
    SECRET_A,
    YESTERDAY,
    at,
    client,
    error_of,
    sign_in,
    store,
    ymd,
)
from weanalysis.api import dashboard_schema as S
from weanalysis.dims import BY_LIST
from weanalysis.portrait.embedded import EmbeddedSource
from weanalysis.portrait.explore import Explore, explore, parse_where, trend
from weanalysis.portrait.query import PortraitQuery

WEEK = {"begin": ymd(YESTERDAY - timedelta(days=6)), "end": ymd(YESTERDAY)}


def core_body(store, ex: Explore, begin=YESTERDAY - timedelta(days=6), end=YESTERDAY) -> dict:
    result = explore(EmbeddedSource.of(store, "wxA"), PortraitQuery.of("wxA", begin, end), ex)
    return orjson.loads(S.portrait_body(result))


def test_segment_crosstab_and_comparison(client, store):
    sign_in(client)
    params = {**WEEK, "where": ["province=44", "province=51"], "crosstab": "genders,age"}
    doc = client.get("/api/v1/portrait", params={**params, "compare": "true"}).json()
    # a0 in 广东 (a woman of 25), a1 in 四川 (nothing known about the person)
    assert doc["where"] == ["province=44", "province=51"]
    assert doc["active"]["total"] == 2 and doc["new"]["total"] == 1
    assert doc["active"]["crosstab"] == {
        "rows": "genders",
        "cols": "ages",
        "cells": [
            {"row": 0, "col": 0, "value": 1, "share": 0.5},
            {"row": 2, "col": 3, "value": 1, "share": 0.5},
        ],
    }
    # the previous week: a1 was in 北京 ten days ago, outside the segment
    prev = doc["previous"]
    assert (prev["begin"], prev["end"], prev["days"]) == (
        (YESTERDAY - timedelta(days=13)).isoformat(),
        (YESTERDAY - timedelta(days=7)).isoformat(),
        7,
    )
    assert prev["active"]["total"] == 0 and prev["active"]["province"] == []
    # exactly the core's answer
    ex = Explore(
        where=parse_where(["province=44", "province=51"]),
        crosstab=("genders", "ages"),
        compare=True,
    )
    want = core_body(store, ex)
    assert {k: v for k, v in doc.items() if k not in ("appid", "data_days")} == want
    # a device by its name
    doc = client.get("/api/v1/portrait", params={**WEEK, "where": "device=苹果iPhone 13"}).json()
    assert doc["active"]["total"] == 1 and doc["active"]["province"][0]["id"] == 44


def test_bad_filters_are_400_naming_the_dimension_or_value(client):
    sign_in(client)
    for params, says in (
        ({"where": "colour=1"}, "colour"),
        ({"where": "province=4401"}, "4401"),
        ({"where": "devices=诺基亚 3310"}, "诺基亚 3310"),
        ({"crosstab": "genders"}, "genders"),
    ):
        r = client.get("/api/v1/portrait", params={**WEEK, **params})
        assert error_of(r) == (400, "bad_filter") and says in r.json()["error"]["message"]
    assert error_of(client.get("/api/v1/portrait", params={"min_users": -1})) == (
        400,
        "bad_request",
    )
    r = client.get("/api/v1/trend", params={**WEEK, "dim": "colour"})
    assert error_of(r) == (400, "bad_filter")
    assert error_of(client.get("/api/v1/trend", params=WEEK)) == (400, "bad_request")


def test_trend_is_the_cores_list_per_day(client, store):
    sign_in(client)
    params = {**WEEK, "dim": "province", "users": "active"}
    doc = client.get("/api/v1/trend", params=params).json()
    assert [d["date"] for d in doc["days"]] == [
        (YESTERDAY - timedelta(days=6 - i)).isoformat() for i in range(7)
    ]
    by_date = {d["date"]: d for d in doc["days"]}
    assert by_date[YESTERDAY.isoformat()] == {
        "date": YESTERDAY.isoformat(),
        "total": 2,
        "items": [
            {"id": 44, "name": "广东省", "value": 1, "share": 0.5},
            {"id": 51, "name": "四川省", "value": 1, "share": 0.5},
        ],
    }
    assert by_date[(YESTERDAY - timedelta(days=1)).isoformat()] == {
        "date": (YESTERDAY - timedelta(days=1)).isoformat(),
        "total": 0,
        "items": [],
    }
    t = trend(
        EmbeddedSource.of(store, "wxA"),
        PortraitQuery.of("wxA", YESTERDAY - timedelta(days=6), YESTERDAY),
        BY_LIST["province"],
    )
    assert doc == {"appid": "wxA", **orjson.loads(S.trend_body(t))}
    new = client.get("/api/v1/trend", params={**params, "users": "new", "dim": "gender"}).json()
    assert [d["total"] for d in new["days"]] == [0, 0, 0, 1, 0, 0, 1]


def test_min_users_is_applied_to_every_output_and_stated(client, store):
    store.catalog.set_min_users("wxA", 2)
    # the WeChat API
    creds = {"grant_type": "client_credential", "appid": "wxA", "secret": SECRET_A}
    r = client.get("/cgi-bin/token", params=creds)
    tok = r.json()["access_token"]
    body = {"begin_date": WEEK["begin"], "end_date": WEEK["end"]}
    doc = client.post(
        "/datacube/getweanalysisappiduserportrait", params={"access_token": tok}, json=body
    ).json()
    # the week's three active users differ in everything but their unknown device
    assert doc["visit_uv"]["province"] == [] and doc["visit_uv"]["devices"] == [
        {"name": "未知", "value": 2}
    ]
    assert doc["withheld"]["min_users"] == 2 and doc["withheld"]["visit_uv"]["province"] == 3
    # our own API: a smaller K in the query does not lower the app's
    sign_in(client)
    assert client.get("/api/v1/session").json()["min_users"] == 2
    mine = client.get("/api/v1/portrait", params={**WEEK, "min_users": 1}).json()
    assert mine["withheld"]["min_users"] == 2
    assert mine["active"]["devices"] == [{"name": "未知", "value": 2, "share": 0.666667}]
    assert mine["active"]["province"] == [] and mine["withheld"]["active"]["province"] == 3
    # a segment of one: its total is withheld too
    seg = client.get("/api/v1/portrait", params={**WEEK, "where": "province=44"}).json()
    assert seg["active"]["total"] is None and seg["withheld"]["active"]["total"] == 1
    # the CSV says what is missing and why
    csv = client.get("/api/v1/portrait.csv", params={**WEEK, "where": "province=44"})
    text = csv.content[3:].decode("utf-8")
    assert ",活跃用户,合计,,活跃用户,," in text
    assert "筛选条件,,province=44" in text and "合计少于 2 人，不显示" in text
    # the trend
    t = client.get("/api/v1/trend", params={**WEEK, "dim": "platforms"}).json()
    assert t["withheld"] == {
        "min_users": 2,
        "reason": "values of fewer than 2 users are withheld (min_users = 2)",
        "items": 3,
        "totals": 0,
    }


def test_kept_answers_are_keyed_by_filters_and_min_users(client, store):
    sign_in(client)
    svc = client.app.state.dashboard.portraits
    a = client.get("/api/v1/portrait", params={**WEEK, "where": "gender=2"}).json()
    hits = svc.hits
    again = client.get("/api/v1/portrait", params={**WEEK, "where": "genders=2"}).json()
    assert again == a and svc.hits == hits + 1  # the same segment in another spelling
    other = client.get("/api/v1/portrait", params={**WEEK, "where": "gender=1"}).json()
    assert other["active"]["total"] == 1 and a["active"]["total"] == 1
    assert other["active"]["genders"] != a["active"]["genders"]
    # a new setting is never served from an answer kept under the old one
    store.catalog.set_min_users("wxA", 5)
    after = client.get("/api/v1/portrait", params={**WEEK, "where": "gender=2"}).json()
    assert after["active"]["total"] is None and after["withheld"]["min_users"] == 5
    assert svc.hits == hits + 1


def test_openapi_documents_the_explorer(client):
    doc = client.get("/openapi.json").json()
    params = {p["name"] for p in doc["paths"]["/api/v1/portrait"]["get"]["parameters"]}
    assert {"begin", "end", "where", "crosstab", "compare", "min_users"} <= params
    trend_params = {p["name"] for p in doc["paths"]["/api/v1/trend"]["get"]["parameters"]}
    assert {"dim", "users", "where", "min_users"} <= trend_params
    ok = doc["paths"]["/api/v1/trend"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/TrendOut"}
    schemas = doc["components"]["schemas"]
    assert {"CrosstabOut", "WithheldOut", "WindowOut", "TrendOut"} <= set(schemas)


def test_one_browser_signs_in_to_several_apps(client):
    sign_in(client)
    assert (
        client.post("/api/v1/session", json={"appid": "wxB", "secret": "secret-B-123"}).status_code
        == 200
    )
    apps = client.get("/api/v1/sessions").json()["apps"]
    assert [a["appid"] for a in apps] == ["wxB", "wxA"]  # latest sign-in first
    assert client.get("/api/v1/session").json()["appid"] == "wxB"
    assert client.get("/api/v1/session", params={"app": "wxA"}).json()["appid"] == "wxA"
    a = client.get("/api/v1/portrait", params={**WEEK, "app": "wxA"}).json()
    b = client.get("/api/v1/portrait", params={**WEEK, "app": "wxB"}).json()
    assert (a["appid"], a["active"]["total"], b["appid"], b["active"]["total"]) == (
        "wxA",
        3,
        "wxB",
        1,
    )
    # an app this browser is not signed in to is not readable
    r = client.get("/api/v1/portrait", params={**WEEK, "app": "wxEmpty"})
    assert error_of(r) == (401, "unauthenticated")
    # signing out of one app keeps the other
    assert client.delete("/api/v1/session", params={"app": "wxB"}).status_code == 204
    assert [a["appid"] for a in client.get("/api/v1/sessions").json()["apps"]] == ["wxA"]
    assert error_of(client.get("/api/v1/portrait", params={"app": "wxB"})) == (
        401,
        "unauthenticated",
    )
    assert client.delete("/api/v1/session").status_code == 204
    assert client.get("/api/v1/sessions").json() == {"apps": []}


def test_kept_trends_and_segments_follow_new_records(client, store, tmp_path):
    sign_in(client)
    params = {**WEEK, "dim": "province", "where": "gender=1"}
    before = client.get("/api/v1/trend", params=params).json()
    seg = client.get("/api/v1/portrait", params={**WEEK, "where": "gender=1"}).json()
    row = {"appid": "wxA", "openid": "late", "time": at(YESTERDAY), "gender": "男"}
    ingest_rows(store, tmp_path / "late.jsonl", [{**row, "province": "广东"}])
    after = client.get("/api/v1/trend", params=params).json()
    assert after["days"][-1]["total"] == before["days"][-1]["total"] + 1
    assert after["days"][:-1] == before["days"][:-1]
    seg2 = client.get("/api/v1/portrait", params={**WEEK, "where": "gender=1"}).json()
    assert seg2["active"]["total"] == seg["active"]["total"] + 1
