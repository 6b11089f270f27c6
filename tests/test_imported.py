"""Imported portraits: documents computed by a cluster are served unchanged by the WeChat API and
the dashboard; an app is embedded or imported, never a silent mix."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from weanalysis.api.app import create_app
from weanalysis.cli.main import cli
from weanalysis.ingest import Ingestor
from weanalysis.portrait.embedded import EmbeddedSource
from weanalysis.portrait.engine import compute
from weanalysis.portrait.query import PortraitQuery
from weanalysis.store import Store
from weanalysis.wechat.dialect import portrait_document

TZ = ZoneInfo("Asia/Shanghai")
YESTERDAY = datetime.now(TZ).date() - timedelta(days=1)
SECRET = "secret-123"


def ymd(d) -> str:
    return d.strftime("%Y%m%d")


@pytest.fixture
def setup(tmp_path):
    """wxE: an embedded app with records; its documents, as `weanalysis spark` would write them,
    go to portraits.jsonl for the imported app wxI."""
    store = Store(tmp_path / "data")
    store.catalog.add_app("wxE", SECRET)
    store.catalog.add_app("wxI", SECRET)
    rows = [
        {
            "appid": "wxE",
            "openid": f"u{u}",
            "time": f"{(YESTERDAY - timedelta(days=u % 9)).isoformat()}T12:00:00+08:00",
            "province": ["广东", "北京", "浙江"][u % 3],
            "platform": ["ios", "android"][u % 2],
            "gender": u % 3,
        }
        for u in range(40)
    ]
    v = tmp_path / "v.jsonl"
    v.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    ing = Ingestor(store, "visit")
    ing.ingest_sources([(str(v), "jsonl")])
    ing.close()
    src = EmbeddedSource.of(store, "wxE")
    lines, docs = [], {}
    for days in (1, 7, 30):
        b, e = YESTERDAY - timedelta(days=days - 1), YESTERDAY
        doc = portrait_document(compute(src, PortraitQuery.of("wxE", b, e)))
        docs[days] = doc
        lines.append({"appid": "wxI", "begin": ymd(b), "end": ymd(e), "document": doc})
    out = tmp_path / "portraits.jsonl"
    out.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    runner = CliRunner()

    def run(*args, input=None):
        return runner.invoke(cli, ["--data", str(tmp_path / "data"), *args], input=input)

    yield store, out, docs, run, tmp_path
    store.close()


def test_imported_windows_are_served_unchanged(setup):
    store, out, docs, run, _ = setup
    r = run("portraits", "import", "--appid", "wxI", str(out))
    assert r.exit_code == 0, r.output
    assert "imported 3 windows" in r.output
    assert docs[30]["visit_uv"]["province"]  # not a vacuous comparison
    with TestClient(create_app(store, token_ttl=7200)) as c:
        tok = c.get(
            "/cgi-bin/token",
            params={"grant_type": "client_credential", "appid": "wxI", "secret": SECRET},
        ).json()["access_token"]
        url = f"/datacube/getweanalysisappiduserportrait?access_token={tok}"
        for days, doc in docs.items():
            b = YESTERDAY - timedelta(days=days - 1)
            r = c.post(url, json={"begin_date": ymd(b), "end_date": ymd(YESTERDAY)})
            assert r.content == orjson.dumps(doc)
        # a window that was not imported: an error, not made-up zeros
        b = YESTERDAY - timedelta(days=7)
        r = c.post(url, json={"begin_date": ymd(b), "end_date": ymd(b)})
        assert r.json()["errcode"] == 61501
        # the dashboard reads the same documents, and says when a window is missing
        assert c.post("/api/v1/session", json={"appid": "wxI", "secret": SECRET}).status_code == 200
        b7 = YESTERDAY - timedelta(days=6)
        got = c.get("/api/v1/portrait", params={"begin": ymd(b7), "end": ymd(YESTERDAY)}).json()
        pairs = [(it["id"], it["value"]) for it in got["active"]["platforms"]]
        assert pairs == [(it["id"], it["value"]) for it in docs[7]["visit_uv"]["platforms"]]
        assert got["active"]["total"] == sum(it["value"] for it in docs[7]["visit_uv"]["genders"])
        miss = c.get("/api/v1/portrait", params={"begin": ymd(b), "end": ymd(b)})
        assert miss.status_code == 404
        assert miss.json()["error"]["code"] == "not_imported"
    # and `weanalysis portrait` prints them too
    r = run("portrait", "--appid", "wxI", "--begin", ymd(b7), "--end", ymd(YESTERDAY))
    assert r.exit_code == 0 and json.loads(r.output) == docs[7]
    r = run("portrait", "--appid", "wxI", "--begin", ymd(b), "--end", ymd(b))
    assert r.exit_code == 2 and "no portrait was imported" in r.output


def test_never_a_silent_mix(setup):
    store, out, _, run, tmp = setup
    # importing into an embedded app is refused
    r = run("portraits", "import", "--appid", "wxE", str(out))
    assert r.exit_code == 2
    assert "has stored records" in r.output
    # (the file names wxI: importing it as wxE would be refused for that too)
    assert run("portraits", "import", "--appid", "wxI", str(out)).exit_code == 0
    # records for an imported app are rejected, and nothing is stored
    v = tmp / "late.jsonl"
    v.write_text(
        json.dumps({"appid": "wxI", "openid": "x", "time": f"{YESTERDAY}T01:00:00+08:00"}) + "\n"
    )
    r = run("ingest", "--json", str(v))
    assert r.exit_code == 1
    summary = json.loads(r.output)
    assert summary["rejected_reasons"] == {"appid": 1}
    # and so are live records (/collect goes through the same ingest)
    visit = {"openid": "y", "time": f"{YESTERDAY}T02:00:00+08:00"}
    with TestClient(create_app(store, token_ttl=7200)) as c:
        got = c.post("/collect?appid=wxI", json=[visit]).json()
    assert got["accepted"] == 0
    assert got["rejected"][0]["reason"].startswith("appid: app 'wxI' holds portraits imported")
    assert store.snapshot("wxI").manifest["version"] == 0


def test_a_bad_line_imports_nothing(setup):
    store, out, docs, run, tmp = setup
    bad = tmp / "bad.jsonl"
    doc = json.loads(json.dumps(docs[1]))
    doc["visit_uv"]["genders"][0]["value"] = "many"
    lines = out.read_text().splitlines()
    lines.append(
        json.dumps(
            {"appid": "wxI", "begin": ymd(YESTERDAY), "end": ymd(YESTERDAY), "document": doc}
        )
    )
    bad.write_text("\n".join(lines) + "\n")
    r = run("portraits", "import", "--appid", "wxI", str(bad))
    assert r.exit_code == 2
    assert "bad.jsonl:4" in r.output
    assert not (store.app_dir("wxI") / "imported.jsonl").exists()
    r = run("portraits", "import", "--appid", "wxI", str(tmp / "missing.jsonl"))
    assert r.exit_code == 2
    r = run("portraits", "import", "--appid", "wxNope", str(out))
    assert r.exit_code == 2 and "not registered" in r.output


def test_a_window_imported_again_is_replaced(setup):
    store, out, docs, run, _ = setup
    assert run("portraits", "import", "--appid", "wxI", str(out)).exit_code == 0
    r = run("portraits", "import", "--appid", "wxI", "--json", str(out))
    assert json.loads(r.output) == {"appid": "wxI", "imported": 3, "replaced": 3}
    lines = (store.app_dir("wxI") / "imported.jsonl").read_text().splitlines()
    assert len(lines) == 3


def test_the_explorer_on_an_imported_app(setup):
    """Without records: small groups withheld and comparison (of imported windows) work;
    segments, cross-tabs and trends are refused with a reason, never answered with zeros."""
    store, out, docs, run, _ = setup
    assert run("portraits", "import", "--appid", "wxI", str(out)).exit_code == 0
    store.catalog.set_min_users("wxI", 10)
    b7 = YESTERDAY - timedelta(days=6)
    span = ("--appid", "wxI", "--begin", ymd(b7), "--end", ymd(YESTERDAY))
    doc = json.loads(run("portrait", *span, "--compare").output)
    assert "previous" not in doc  # the week before was not imported
    assert doc["withheld"]["min_users"] == 10
    for name, items in doc["visit_uv"].items():
        kept = [it for it in docs[7]["visit_uv"][name] if it["value"] >= 10]
        assert items == kept, name
        assert doc["withheld"]["visit_uv"][name] == len(docs[7]["visit_uv"][name]) - len(kept)
    for args in (("--where", "province=44"), ("--crosstab", "genders,ages")):
        r = run("portrait", *span, *args)
        assert r.exit_code == 2 and "imported portraits" in r.output
    r = run("trend", *span, "--dim", "platforms")
    assert r.exit_code == 2 and "imported portraits" in r.output
    with TestClient(create_app(store, token_ttl=7200)) as c:
        tok = c.get(
            "/cgi-bin/token",
            params={"grant_type": "client_credential", "appid": "wxI", "secret": SECRET},
        ).json()["access_token"]
        url = f"/datacube/getweanalysisappiduserportrait?access_token={tok}"
        r = c.post(url, json={"begin_date": ymd(b7), "end_date": ymd(YESTERDAY)}).json()
        assert r["visit_uv"] == doc["visit_uv"] and r["withheld"] == doc["withheld"]
        assert c.post("/api/v1/session", json={"appid": "wxI", "secret": SECRET}).json()["imported"]
        params = {"begin": ymd(b7), "end": ymd(YESTERDAY)}
        got = c.get("/api/v1/portrait", params={**params, "compare": "true"}).json()
        assert got["withheld"]["active"]["province"] == doc["withheld"]["visit_uv"]["province"]
        bad = c.get("/api/v1/portrait", params={**params, "where": "province=44"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_filter"
        trend = c.get("/api/v1/trend", params={**params, "dim": "platforms"})
        assert trend.status_code == 400 and trend.json()["error"]["code"] == "bad_filter"
    # the kept imported documents were not changed by withholding
    store.catalog.set_min_users("wxI", 0)
    r = run("portrait", *span)
    assert json.loads(r.output) == docs[7]
