"""App lifecycle against a running server: rotate-secret and remove cut off old tokens and
sessions at once (the CLI uses its own catalog connection, as another process would); erasure
through ``POST /api/v1/forget``; a new time zone from the CLI."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from weanalysis.api.app import create_app
from weanalysis.auth.sessions import COOKIE_NAME
from weanalysis.cli.main import cli
from weanalysis.store import Store

PORTRAIT = "/datacube/getweanalysisappiduserportrait"
TZ = ZoneInfo("Asia/Shanghai")
YESTERDAY = datetime.now(TZ).date() - timedelta(days=1)


def run(data, *args, input=None):
    return CliRunner().invoke(cli, ["--data", str(data), *args], input=input)


def visits(day, users, province="广东"):
    return [
        {
            "openid": u,
            "time": f"{day.isoformat()}T12:00:00+08:00",
            "province": province,
            "event_id": f"{u}-{day}",
        }
        for u in users
    ]


@pytest.fixture
def server(tmp_path):
    data = tmp_path / "data"
    assert run(data, "app", "add", "wxA", "--secret", "secret-A-123").exit_code == 0
    assert run(data, "app", "add", "wxB", "--secret", "secret-B-123").exit_code == 0
    store = Store(data)
    with TestClient(create_app(store)) as c:
        yield data, c
    store.close()


def token(c, appid="wxA", secret="secret-A-123"):
    r = c.get(
        "/cgi-bin/token",
        params={"grant_type": "client_credential", "appid": appid, "secret": secret},
    ).json()
    return r.get("access_token"), r


def stable(c, appid="wxA", secret="secret-A-123"):
    body = {"grant_type": "client_credential", "appid": appid, "secret": secret}
    return c.post("/cgi-bin/stable_token", json=body).json()


def portrait(c, tok, day=YESTERDAY):
    d = day.strftime("%Y%m%d")
    return c.post(PORTRAIT, params={"access_token": tok}, json={"begin_date": d, "end_date": d})


def sign_in(c, appid="wxA", secret="secret-A-123"):
    return c.post("/api/v1/session", json={"appid": appid, "secret": secret})


def test_rotate_secret_cuts_off_tokens_and_sessions_at_once(server):
    data, c = server
    tok, _ = token(c)
    st = stable(c)["access_token"]
    assert sign_in(c).status_code == 200
    cookie = c.cookies.get(COOKIE_NAME)
    tok_b, _ = token(c, "wxB", "secret-B-123")
    for t in (tok, st):
        assert "errcode" not in portrait(c, t).json()
    assert c.get("/api/v1/portrait").status_code == 200
    r = run(data, "app", "rotate-secret", "wxA", "--secret", "new-secret-A")
    assert r.exit_code == 0, r.output
    # at once: no wait for any cache
    for t in (tok, st):
        assert portrait(c, t).json()["errcode"] == 40001
    c.cookies.set(COOKIE_NAME, cookie)
    assert c.get("/api/v1/portrait").status_code == 401
    assert token(c)[1]["errcode"] == 40125  # the old secret
    assert stable(c)["errcode"] == 40125
    assert sign_in(c).status_code == 401
    new_tok, _ = token(c, secret="new-secret-A")
    assert "errcode" not in portrait(c, new_tok).json()
    new_st = stable(c, secret="new-secret-A")["access_token"]
    assert new_st != st and "errcode" not in portrait(c, new_st).json()
    assert sign_in(c, secret="new-secret-A").status_code == 200
    assert c.get("/api/v1/portrait").status_code == 200
    # the other app is untouched
    assert "errcode" not in portrait(c, tok_b).json()
    # without --secret: a random one, printed once on standard output
    r = run(data, "app", "rotate-secret", "wxA")
    assert r.exit_code == 0
    printed = r.stdout.strip()
    assert len(printed) == 32 and token(c, secret=printed)[0]


def test_remove_deletes_data_tokens_and_sessions(server):
    data, c = server
    r = c.post("/collect?appid=wxA", json=visits(YESTERDAY, ["a1", "a2"]))
    assert r.json()["accepted"] == 2
    tok, _ = token(c)
    assert sign_in(c).status_code == 200
    assert run(data, "app", "remove", "wxA").exit_code == 2  # --yes is required
    r = run(data, "app", "remove", "wxA", "--yes")
    assert r.exit_code == 0, r.output
    assert not (data / "apps" / "wxA").exists()
    assert portrait(c, tok).json()["errcode"] == 40001
    assert token(c)[1]["errcode"] == 40013
    assert c.get("/api/v1/portrait").status_code == 401
    assert c.post("/collect?appid=wxA", json=visits(YESTERDAY, ["a3"])).json()["errcode"] == 40013
    # added again: empty, and the old session does not come back to life
    cookie = c.cookies.get(COOKIE_NAME)
    assert run(data, "app", "add", "wxA", "--secret", "secret-A-123").exit_code == 0
    c.cookies.set(COOKIE_NAME, cookie)
    assert c.get("/api/v1/portrait").status_code == 401
    tok, _ = token(c)
    assert portrait(c, tok).json()["visit_uv"]["province"] == []
    assert run(data, "app", "remove", "nope", "--yes").exit_code == 2


def test_forget_over_http_and_cli(server):
    data, c = server
    assert (
        c.post("/collect?appid=wxA", json=visits(YESTERDAY, ["a1", "a2", "a3"])).json()["accepted"]
        == 3
    )
    tok, _ = token(c)
    before = portrait(c, tok).json()
    assert before["visit_uv"]["province"][0]["value"] == 3
    url = "/api/v1/forget"
    r = c.post(url, params={"access_token": tok}, json={"openids": ["a1", "zz"]})
    assert r.json() == {"errcode": 0, "erased": {"users": 1, "visits": 1, "profiles": 0}}
    assert portrait(c, tok).json()["visit_uv"]["province"][0]["value"] == 2  # kept answer dropped
    assert c.post(url, json={"openids": ["a1"]}).json()["errcode"] == 41001
    assert (
        c.post(url, params={"access_token": "x"}, json={"openids": ["a"]}).json()["errcode"]
        == 40001
    )
    for bad in ({"openids": []}, {"openids": [1]}, {"x": 1}, [1]):
        assert c.post(url, params={"access_token": tok}, json=bad).json()["errcode"] == 47001
    assert c.get(url, params={"access_token": tok}).json()["errcode"] == 43002
    # the CLI: options and a file, counts printed
    r = run(data, "forget", "--appid", "wxA", "--openid", "a2", "--file", "-", input="a3\nnobody\n")
    assert r.exit_code == 0, r.output
    assert r.output.strip() == "erased 2 of 3 users: 2 visits, 0 profiles"
    assert portrait(c, tok).json()["visit_uv"]["province"] == []
    # sent again: stored as new
    assert c.post("/collect?appid=wxA", json=visits(YESTERDAY, ["a1"])).json()["accepted"] == 1
    assert run(data, "forget", "--appid", "wxA").exit_code == 2
    assert run(data, "forget", "--appid", "nope", "--openid", "x").exit_code == 2
    r = run(data, "forget", "--appid", "wxA", "--openid", "bad\x01id")
    assert r.exit_code == 2 and "not an openid" in r.output


def test_timezone_from_the_cli_while_the_server_runs(server):
    data, c = server
    # 03:00 in Shanghai is the day before in New York (15:00, UTC-4/-5); two days back, so that
    # both days are over in both zones (WeChat refuses a window that is not)
    day = YESTERDAY - timedelta(days=2)
    t = f"{day.isoformat()}T03:00:00+08:00"
    early = [{"openid": "a1", "time": t, "province": "广东"}]
    assert c.post("/collect?appid=wxA", json=early).json()["accepted"] == 1
    tok, _ = token(c)

    def provinces(day):
        return sum(p["value"] for p in portrait(c, tok, day).json()["visit_uv"]["province"])

    day_before = day - timedelta(days=1)
    assert (provinces(day), provinces(day_before)) == (1, 0)
    r = run(data, "app", "set", "wxA", "--timezone", "America/New_York")
    assert r.exit_code == 0, r.output
    assert "time zone America/New_York (1 stored visits re-dated)" in r.output
    # the stored visit now belongs to the day before; the server sees the new state at once
    assert (provinces(day), provinces(day_before)) == (0, 1)
    # a record the running server stores afterwards is dated in the new zone too
    again = [{"openid": "a2", "time": t, "province": "广东"}]
    assert c.post("/collect?appid=wxA", json=again).json()["accepted"] == 1
    assert (provinces(day), provinces(day_before)) == (0, 2)
    store = Store(data)
    assert store.snapshot("wxA").manifest["timezone"] == "America/New_York"
    assert store.catalog.get("wxA").timezone == "America/New_York"
    store.close()
    r = run(data, "app", "set", "wxB", "--timezone", "Mars/Olympus")
    assert r.exit_code == 2
    assert run(data, "app", "set", "wxA").exit_code == 2
    assert run(data, "app", "set", "nope", "--timezone", "UTC").exit_code == 2


def test_records_on_their_way_do_not_bring_a_removed_app_back(tmp_path):
    from weanalysis.ingest import Ingestor
    from weanalysis.records.readers import rows_to_chunk
    from weanalysis.store import housekeeping
    from weanalysis.store.writer import AppRemoved

    store = Store(tmp_path / "data")
    store.catalog.add_app("wxA", "secret-A-123")
    ing = Ingestor(store, "visit")
    rows = [{**r, "appid": "wxA"} for r in visits(YESTERDAY, ["a1"])]
    prepared = ing.prepare(rows_to_chunk("request", rows, [0], [""], []))
    app = store.catalog.get("wxA")
    other = Store(tmp_path / "data")  # the CLI, in another process
    housekeeping.remove_app(other.dir, other.catalog, "wxA")
    other.catalog.add_app("wxA", "secret-A-456")  # even added again meanwhile
    with pytest.raises(AppRemoved):
        ing.writer.commit(app, prepared.batches[0][2])
    assert not (tmp_path / "data" / "apps" / "wxA").exists()
    ing.close()
    other.close()
    store.close()


def test_openapi_describes_forget_and_every_reference_resolves(server):
    _, c = server
    doc = c.get("/openapi.json").json()
    post = doc["paths"]["/api/v1/forget"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ForgetRequest"
    }
    refs = set()

    def walk(x):
        if isinstance(x, dict):
            for k, v in x.items():
                if k == "$ref":
                    refs.add(v)
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(doc)
    assert "#/components/schemas/Erased" in refs
    for ref in refs:
        assert ref.removeprefix("#/components/schemas/") in doc["components"]["schemas"], ref


def test_retention_from_the_cli_at_a_collect_commit_and_over_every_api(server):
    """`app set --retention-days`: the next /collect commit deletes the old days; windows inside
    the retained range keep their answers, a window before it is refused by every API (WeChat
    61501, dashboard 400 before_retention, CLI exit 2); `gc` says what it did."""
    data, c = server
    old = YESTERDAY - timedelta(days=9)
    batch = visits(old, ["a1", "a2"]) + visits(YESTERDAY - timedelta(days=1), ["a1", "a3"])
    batch[0]["gender"] = "女"  # a1's gender is known only from a record that retention deletes
    assert c.post("/collect?appid=wxA", json=batch).json()["accepted"] == 4
    tok, _ = token(c)
    day = YESTERDAY - timedelta(days=1)
    before = portrait(c, tok, day).json()
    assert before["visit_uv_new"]["genders"] == [{"id": 0, "name": "未知", "value": 1}]
    assert before["visit_uv"]["genders"] == [
        {"id": 0, "name": "未知", "value": 1},
        {"id": 2, "name": "女", "value": 1},
    ]
    kept = portrait(c, tok, old).json()  # answered now, and kept by the server
    assert "errcode" not in kept and portrait(c, tok, old).json() == kept
    r = run(data, "app", "set", "wxA", "--retention-days", "5")
    assert r.exit_code == 0, r.output
    assert "retention 5 days" in r.output and "next commit" in r.output
    # the next commit (any record) applies it
    assert c.post("/collect?appid=wxA", json=visits(YESTERDAY, ["a4"])).json()["accepted"] == 1
    store = Store(data)
    m = store.snapshot("wxA").manifest
    assert (
        m["counts"]["visits"] == 3 and min(int(d) for d in m["days"]) >= m["retained"]["from_day"]
    )
    store.close()
    assert portrait(c, tok, day).json() == before  # a1 is still not new, and still 女
    refused = portrait(c, tok, old).json()  # not the kept answer: its records are gone
    assert refused["errcode"] == 61501 and refused["errmsg"].startswith("date range error")
    assert sign_in(c).status_code == 200
    d = old.strftime("%Y%m%d")
    r = c.get("/api/v1/portrait", params={"begin": d, "end": YESTERDAY.strftime("%Y%m%d")})
    assert r.status_code == 400 and r.json()["error"]["code"] == "before_retention"
    assert "保留" in r.json()["error"]["message"]
    r = c.get("/api/v1/trend", params={"begin": d, "end": d, "dim": "genders"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "before_retention"
    r = c.get("/api/v1/portrait", params={"begin": YESTERDAY.strftime("%Y%m%d"), "compare": "1"})
    assert r.status_code == 200  # the previous day is inside the range
    three = {"begin": (YESTERDAY - timedelta(days=2)).strftime("%Y%m%d"), "compare": "1"}
    r = c.get("/api/v1/portrait", params=three)  # its previous 3 days reach before the range
    assert r.status_code == 400 and r.json()["error"]["code"] == "before_retention"
    assert c.get("/api/v1/portrait", params={"begin": three["begin"]}).status_code == 200
    r = run(data, "portrait", "--appid", "wxA", "--begin", d, "--end", d)
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "retention" in r.output
    r = run(data, "gc")
    assert r.exit_code == 0, r.output
    assert "wxA: retention 5 days: nothing to erase, records kept from" in r.output
    assert "wxB: no retention (every record is kept)" in r.output
    r = run(data, "app", "set", "wxA", "--timezone", "UTC")
    assert r.exit_code == 2 and "retention deleted" in r.output
    r = run(data, "app", "set", "wxA", "--retention-days", "forever")
    assert r.exit_code == 2
    r = run(data, "app", "set", "wxA", "--retention-days", "none")
    assert r.exit_code == 0 and "retention off" in r.output
    assert portrait(c, tok, old).json()["errcode"] == 61501  # what was deleted stays deleted
    assert run(data, "check").exit_code == 0


def test_gc_erases_and_says_what(tmp_path):
    data = tmp_path / "data"
    assert run(data, "app", "add", "wxA", "--secret", "secret-A-123").exit_code == 0
    store = Store(data)
    with TestClient(create_app(store)) as c:
        rows = visits(YESTERDAY - timedelta(days=20), ["a1", "a2"]) + visits(YESTERDAY, ["a1"])
        assert c.post("/collect?appid=wxA", json=rows[:3]).json()["accepted"] == 3
    store.close()
    assert run(data, "app", "set", "wxA", "--retention-days", "10").exit_code == 0
    r = run(data, "gc", "--appid", "wxA", "--no-progress")
    assert r.exit_code == 0, r.output
    assert "wxA: retention 10 days: erased 2 visits and 0 profiles of days before" in r.output
    assert "(2 users' first visit days kept)" in r.output
    r = run(data, "gc", "--appid", "wxA", "--json", "--no-progress")
    assert r.exit_code == 0 and r.output.startswith('{"appid":"wxA","retention_days":10}')
    assert run(data, "gc", "--appid", "nope").exit_code == 2
    listed = run(data, "app", "list", "--json")
    assert '"retention_days":10' in listed.output and '"retained_from":"' in listed.output
