"""The explorer in the CLI: --where, --crosstab, --compare, --min-users, trend, app set (whole
documents, exit codes)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from weanalysis.cli.main import cli
from weanalysis.portrait import explore as explore_module

T = "2017-06-{:02d}T{}+08:00"
EMPTY = {"province": [], "city": [], "genders": [], "platforms": [], "devices": [], "ages": []}


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setenv("WEANALYSIS_DATA", str(tmp_path / "data"))
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(cli, list(args), catch_exceptions=False)

    return invoke


@pytest.fixture
def app(run, tmp_path):
    """Three users on June 10-12 2017: a woman in 广州 on iPhone, a man in 北京 on android whose
    province changes, an unknown user in 广州."""
    run("app", "add", "wx1", "--secret", "12345678")
    rows = [
        ("a", 10, "广东", "广州", "ios", "iPhone", "iPhone 12 Pro<iPhone13,3>", "女", 20),
        ("a", 11, "广东", "广州", "ios", "iPhone", "iPhone 12 Pro<iPhone13,3>", None, None),
        ("b", 11, "广东", "深圳", "android", "HUAWEI", "NOH-AN00", "男", 33),
        ("b", 12, "北京", None, "android", None, None, None, None),
        ("c", 12, "广东", "广州", None, None, None, None, None),
    ]
    lines = []
    for openid, day, prov, city, plat, brand, model, gender, age in rows:
        rec = {"appid": "wx1", "openid": openid, "time": T.format(day, "10:00:00")}
        for k, v in (
            ("province", prov),
            ("city", city),
            ("platform", plat),
            ("brand", brand),
            ("model", model),
            ("gender", gender),
            ("age", age),
        ):
            if v is not None:
                rec[k] = v
        lines.append(json.dumps(rec, ensure_ascii=False))
    path = tmp_path / "v.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert run("ingest", str(path)).exit_code == 0
    return "wx1"


def portrait(run, *args):
    r = run("portrait", "--appid", "wx1", *args)
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def test_where_restricts_both_sets_and_adds_totals(run, app):
    doc = portrait(run, "--begin", "20170611", "--end", "20170612", "--where", "province=44")
    # b's latest visit in the window is in 北京: b is not in the segment
    assert doc == {
        "ref_date": "20170611-20170612",
        "visit_uv_new": {
            "total": 1,
            **EMPTY,
            "province": [{"id": 44, "name": "广东省", "value": 1}],
            "city": [{"id": 4401, "name": "广州", "value": 1}],
            "genders": [{"id": 0, "name": "未知", "value": 1}],
            "platforms": [{"id": 0, "name": "未知", "value": 1}],
            "devices": [{"name": "未知", "value": 1}],
            "ages": [{"id": 0, "name": "未知", "value": 1}],
        },
        "visit_uv": {
            "total": 2,
            "province": [{"id": 44, "name": "广东省", "value": 2}],
            "city": [{"id": 4401, "name": "广州", "value": 2}],
            "genders": [{"id": 0, "name": "未知", "value": 1}, {"id": 2, "name": "女", "value": 1}],
            "platforms": [
                {"id": 0, "name": "未知", "value": 1},
                {"id": 1, "name": "iPhone", "value": 1},
            ],
            "devices": [{"name": "未知", "value": 1}, {"name": "苹果iPhone 12 Pro", "value": 1}],
            "ages": [
                {"id": 0, "name": "未知", "value": 1},
                {"id": 2, "name": "18-24岁", "value": 1},
            ],
        },
    }
    # the same DIM twice means any; singular and plural spellings; different DIMs all hold
    doc = portrait(
        run,
        *("--begin", "20170611", "--end", "20170612"),
        *("--where", "gender=1", "--where", "genders=2", "--where", "platform=2"),
    )
    assert doc["visit_uv"]["total"] == 1 and doc["visit_uv"]["genders"] == [
        {"id": 1, "name": "男", "value": 1}
    ]
    doc = portrait(
        run, "--begin", "20170611", "--end", "20170612", "--where", "devices=苹果iPhone 12 Pro"
    )
    assert doc["visit_uv"]["total"] == 1 and doc["visit_uv_new"]["total"] == 0


def test_crosstab_compare_and_min_users(run, app):
    doc = portrait(
        run,
        *("--begin", "20170612", "--end", "20170612", "--crosstab", "gender,city", "--compare"),
    )
    assert doc["visit_uv"]["crosstab"] == {
        "rows": "genders",
        "cols": "city",
        "cells": [
            {"row": 0, "col": 4401, "value": 1},
            {"row": 1, "col": 1100, "value": 1},
        ],
    }
    assert doc["visit_uv_new"]["crosstab"] == {
        "rows": "genders",
        "cols": "city",
        "cells": [{"row": 0, "col": 4401, "value": 1}],
    }
    prev = doc["previous"]
    assert prev["ref_date"] == "20170611"
    assert prev["visit_uv"]["city"] == [
        {"id": 4401, "name": "广州", "value": 1},
        {"id": 4403, "name": "深圳", "value": 1},
    ]
    assert prev["visit_uv"]["crosstab"]["cells"] == [
        {"row": 1, "col": 4403, "value": 1},
        {"row": 2, "col": 4401, "value": 1},
    ]
    # K = 2: every item of one user is withheld, and the answer says so
    doc = portrait(run, "--begin", "20170611", "--end", "20170612", "--min-users", "2")
    assert doc == {
        "ref_date": "20170611-20170612",
        "visit_uv_new": EMPTY,
        "visit_uv": {
            **EMPTY,
            "province": [{"id": 44, "name": "广东省", "value": 2}],
            "city": [{"id": 4401, "name": "广州", "value": 2}],
        },
        "withheld": {
            "min_users": 2,
            "reason": "values of fewer than 2 users are withheld (min_users = 2)",
            # new: b (北京, android, 华为, 男 33) and c (广州, nothing else known)
            "visit_uv_new": {
                "province": 2,
                "city": 2,
                "genders": 2,
                "platforms": 2,
                "devices": 2,
                "ages": 2,
            },
            "visit_uv": {
                "province": 1,
                "city": 1,
                "genders": 3,
                "platforms": 3,
                "devices": 3,
                "ages": 3,
            },
        },
    }


def test_app_min_users_applies_to_every_query_and_a_query_may_only_raise_it(run, app):
    r = run("app", "set", "wx1", "--min-users", "3")
    assert r.exit_code == 0 and "min users 3" in r.output
    doc = portrait(run, "--begin", "20170611", "--end", "20170612", "--where", "province=44")
    assert doc["visit_uv"]["total"] is None and doc["visit_uv"]["province"] == []
    assert doc["withheld"]["min_users"] == 3 and doc["withheld"]["visit_uv"]["total"] == 1
    assert doc["visit_uv_new"]["total"] is None  # c alone
    # an empty segment's 0 exposes nobody: it stays
    doc = portrait(run, "--begin", "20170610", "--end", "20170610", "--where", "province=11")
    assert doc["visit_uv"]["total"] == 0 and doc["withheld"]["visit_uv"]["total"] == 0
    doc = portrait(run, "--begin", "20170611", "--end", "20170612", "--min-users", "1")
    assert doc["withheld"]["min_users"] == 3
    assert run("app", "set", "wx1", "--min-users", "0").exit_code == 0
    assert "withheld" not in portrait(run, "--begin", "20170611", "--end", "20170612")
    r = run("app", "set", "nope", "--min-users", "3")
    assert r.exit_code == 2 and "not registered" in r.output
    assert run("app", "set", "wx1", "--min-users", "-1").exit_code == 2


def test_trend_lists_every_day_in_order(run, app):
    r = run(
        "trend",
        *("--appid", "wx1", "--begin", "20170609", "--end", "20170612", "--dim", "platform"),
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == {
        "dim": "platforms",
        "users": "active",
        "days": [
            {"date": "20170609", "total": 0, "items": []},
            {"date": "20170610", "total": 1, "items": [{"id": 1, "name": "iPhone", "value": 1}]},
            {
                "date": "20170611",
                "total": 2,
                "items": [
                    {"id": 1, "name": "iPhone", "value": 1},
                    {"id": 2, "name": "android", "value": 1},
                ],
            },
            {
                "date": "20170612",
                "total": 2,
                "items": [
                    {"id": 0, "name": "未知", "value": 1},
                    {"id": 2, "name": "android", "value": 1},
                ],
            },
        ],
    }
    r = run(
        "trend",
        *("--appid", "wx1", "--begin", "20170610", "--end", "20170612", "--dim", "devices"),
        *("--users", "new", "--where", "province=44", "--min-users", "2"),
    )
    assert json.loads(r.output) == {
        "dim": "devices",
        "users": "new",
        "days": [
            {"date": "20170610", "total": None, "items": []},
            {"date": "20170611", "total": None, "items": []},
            {"date": "20170612", "total": None, "items": []},
        ],
        "withheld": {
            "min_users": 2,
            "reason": "values of fewer than 2 users are withheld (min_users = 2)",
            "items": 3,
            "totals": 3,
        },
    }


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--where", "provnce=44"], "unknown dimension 'provnce'"),
        (["--where", "province=45x"], "'45x' is not a province id"),
        (["--where", "province=4401"], "'4401' is not a province id"),
        (["--where", "city=9999"], "'9999' is not a city id"),
        (["--where", "genders=3"], "'3' is not a genders id"),
        (["--where", "province"], "expected DIM=ID"),
        (["--where", "devices=小米Phone X"], "no such devices"),
        (["--crosstab", "genders"], "expected two dimensions"),
        (["--crosstab", "genders,colour"], "unknown dimension 'colour'"),
        (["--min-users", "-2"], "-2"),
    ],
)
def test_usage_errors_name_the_bad_dim_or_id(run, app, args, says):
    r = run("portrait", "--appid", "wx1", "--begin", "20170611", "--end", "20170612", *args)
    assert r.exit_code == 2 and says in r.output, r.output
    assert "Traceback" not in r.output


def test_trend_usage_errors(run, app):
    base = ("trend", "--appid", "wx1", "--begin", "20170611", "--end", "20170612")
    r = run(*base, "--dim", "colour")
    assert r.exit_code == 2 and "unknown dimension 'colour'" in r.output
    r = run(*base, "--dim", "ages", "--users", "old")
    assert r.exit_code == 2
    r = run(*base, "--dim", "ages", "--where", "age=9")
    assert r.exit_code == 2 and "'9' is not a ages id" in r.output
    for cmd in (["trend"], ["app", "set"]):
        assert run(*cmd, "--help").exit_code == 0


def test_crosstab_by_list_ids_when_codes_are_too_many(run, app, monkeypatch):
    """Many codes (devices x devices at scale) fall back to dense list indices: same cells."""
    args = ("--begin", "20170610", "--end", "20170612", "--where", "province=44")
    pairs = ("province,city", "devices,ages", "devices,devices", "city,genders")
    want = [portrait(run, *args, "--crosstab", p) for p in pairs]
    monkeypatch.setattr(explore_module, "MAX_CODE_PAIRS", 0)
    assert [portrait(run, *args, "--crosstab", p) for p in pairs] == want
    assert want[0]["visit_uv"]["crosstab"]["cells"] == [
        {"row": 44, "col": 4401, "value": 2},
    ]
