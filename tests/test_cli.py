"""The CLI as a user runs it: whole outputs, exit codes, files on disk."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from weanalysis.cli.main import cli

DAY1 = "2017-06-11T{}+08:00"


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setenv("WEANALYSIS_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args, input=None):
        return runner.invoke(cli, list(args), input=input, catch_exceptions=False)

    return invoke


def write_jsonl(path, rows):
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    return str(path)


def test_every_command_has_help(run):
    import click

    from weanalysis.cli.main import cli

    def walk(group, prefix):
        yield prefix
        for name, cmd in group.commands.items():
            if isinstance(cmd, click.Group):
                yield from walk(cmd, [*prefix, name])
            else:
                yield [*prefix, name]

    seen = list(walk(cli, []))
    assert ["forget"] in seen and ["app", "rotate-secret"] in seen and ["backup"] in seen
    for args in seen:
        r = run(*args, "--help")
        assert r.exit_code == 0 and "Usage:" in r.output, args
        if args:
            cmd = cli
            for a in args:
                cmd = cmd.commands[a]
            assert cmd.help, args


def test_app_add_list_and_duplicate(run, tmp_path):
    assert run("app", "add", "wx1234567890", "--secret", "S3CR3T-123").exit_code == 0
    r = run("app", "add", "wx1234567890", "--secret", "S3CR3T-123")
    assert r.exit_code == 2 and "exists already" in r.output
    r = run("app", "add", "wx2", "--secret", "S3CR3T-123", "--timezone", "Mars/Base")
    assert r.exit_code == 2 and "unknown time zone" in r.output
    r = run("app", "add", "bad id!", "--secret", "S3CR3T-123")
    assert r.exit_code == 2
    run("app", "add", "wxny", "--secret", "another-secret", "--timezone", "America/New_York")
    r = run("app", "list", "--json")
    rows = json.loads(r.output)
    assert [(a["appid"], a["timezone"], a["users"], a["visits"]) for a in rows] == [
        ("wx1234567890", "Asia/Shanghai", 0, 0),
        ("wxny", "America/New_York", 0, 0),
    ]
    # the secret is stored only as a salted hash
    db = (tmp_path / "data" / "catalog.sqlite").read_bytes()
    assert b"S3CR3T-123" not in db


def test_data_option_wins_over_environment(run, tmp_path):
    other = tmp_path / "other"
    assert run("--data", str(other), "app", "add", "wxa", "--secret", "12345678").exit_code == 0
    assert (other / "catalog.sqlite").exists()
    assert json.loads(run("app", "list", "--json").output) == []


def test_ingest_summary_rejects_file_and_exit_codes(run, tmp_path):
    run("app", "add", "wx1", "--secret", "12345678")
    good = write_jsonl(
        tmp_path / "v.jsonl",
        [
            {"appid": "wx1", "openid": "a", "time": DAY1.format("08:00:00")},
            {"appid": "wx1", "openid": "a", "time": DAY1.format("08:00:00")},
            {
                "appid": "wx1",
                "openid": "b",
                "time": DAY1.format("09:00:00"),
                "platform": "devtools",
            },
            {
                "appid": "wx1",
                "openid": "c",
                "time": DAY1.format("09:00:00"),
                "user_agent": "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
            },
            {"appid": "wx1", "openid": "", "time": DAY1.format("09:00:00")},
        ],
    )
    r = run("ingest", "--json", "--rejects", "rej.jsonl", good)
    assert r.exit_code == 1
    summary = json.loads(r.output)
    assert summary == {
        "accepted": 1,
        "duplicates": 1,
        "filtered": 2,
        "rejected": 1,
        "filtered_reasons": {"bot": 1, "devtools": 1},
        "rejected_reasons": {"openid": 1},
        "files": [
            {
                "file": good,
                "accepted": 1,
                "duplicates": 1,
                "filtered": 2,
                "rejected": 1,
                "filtered_reasons": {"bot": 1, "devtools": 1},
                "rejected_reasons": {"openid": 1},
            }
        ],
    }
    rejects = [json.loads(line) for line in (tmp_path / "rej.jsonl").read_text().splitlines()]
    assert rejects == [
        {
            "file": good,
            "line": 5,
            "reason": "openid: missing",
            "text": json.dumps(
                {"appid": "wx1", "openid": "", "time": DAY1.format("09:00:00")}, ensure_ascii=False
            ),
        }
    ]
    # re-sending the same file is harmless: everything is a duplicate now, exit 0 without rejects
    clean = write_jsonl(
        tmp_path / "clean.jsonl", [{"appid": "wx1", "openid": "a", "time": DAY1.format("08:00:00")}]
    )
    r = run("ingest", "--json", clean)
    assert r.exit_code == 0 and json.loads(r.output)["duplicates"] == 1


def test_usage_errors_exit_2(run, tmp_path):
    assert run("ingest", "missing.jsonl").exit_code == 2
    assert run("ingest", "--bogus", "x").exit_code == 2
    (tmp_path / "x.txt").write_text("{}")
    r = run("ingest", "x.txt")
    assert r.exit_code == 2 and "--format" in r.output
    assert (
        run("portrait", "--appid", "nope", "--begin", "20170611", "--end", "20170611").exit_code
        == 2
    )
    run("app", "add", "wx1", "--secret", "12345678")
    r = run("portrait", "--appid", "wx1", "--begin", "20171311", "--end", "20170611")
    assert r.exit_code == 2 and "not a real date" in r.output


def test_mixed_formats_stdin_and_exact_portrait(run, tmp_path):
    run("app", "add", "wx1", "--secret", "12345678")
    jl = write_jsonl(
        tmp_path / "a.jsonl",
        [
            {
                "appid": "wx1",
                "openid": "u1",
                "time": DAY1.format("08:00:00"),
                "province": "广东",
                "city": "广州",
                "platform": "ios",
                "brand": "iPhone",
                "model": "iPhone 12 Pro<iPhone13,3>",
            },
            # later the same day from Beijing on android: the latest visit wins
            {
                "appid": "wx1",
                "openid": "u1",
                "time": DAY1.format("21:00:00"),
                "province": "北京市",
                "platform": "android",
                "brand": "HUAWEI",
                "model": "NOH-AN00",
            },
        ],
    )
    csv_path = tmp_path / "b.csv"
    csv_path.write_text(
        "appid,openid,time,ip,platform\n"
        "wx1,u2,2017-06-10T23:59:59+08:00,202.96.128.86,android\n"
        "wx1,u2,2017-06-11T00:00:00+08:00,,\n",
        encoding="utf-8",
    )
    pq_path = tmp_path / "c.parquet"
    pq.write_table(
        pa.table(
            {
                "appid": ["wx1"],
                "openid": ["u3"],
                "time": pa.array([1497139200000], pa.int64()),
                "ip": ["8.8.8.8"],
            }
        ),
        pq_path,
    )
    stdin = (
        json.dumps(
            {"appid": "wx1", "openid": "u4", "time": DAY1.format("12:00:00"), "platform": "windows"}
        )
        + "\n"
    )
    r = run("ingest", "--json", jl, str(csv_path), str(pq_path), "-", input=stdin)
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["accepted"] == 6
    profiles = write_jsonl(
        tmp_path / "p.jsonl",
        [
            {"appid": "wx1", "openid": "u1", "gender": "male", "age": 30},
            {
                "appid": "wx1",
                "openid": "u2",
                "time": DAY1.format("10:00:00"),
                "gender": 2,
                "age": "17",
            },
            {"appid": "wx1", "openid": "u3", "time": "2017-06-12T10:00:00+08:00", "gender": 1},
        ],
    )
    r = run("ingest", "--kind", "profile", "--json", profiles)
    assert r.exit_code == 0 and json.loads(r.output)["accepted"] == 3

    r = run("portrait", "--appid", "wx1", "--begin", "2017-06-11", "--end", "20170611")
    assert r.exit_code == 0
    assert json.loads(r.output) == {
        "ref_date": "20170611",
        "visit_uv_new": {
            "province": [
                {"id": 0, "name": "未知", "value": 1},
                {"id": 11, "name": "北京市", "value": 1},
                {"id": 99, "name": "海外", "value": 1},
            ],
            "city": [
                {"id": 0, "name": "未知", "value": 1},
                {"id": 1100, "name": "北京", "value": 1},
                {"id": 9900, "name": "海外", "value": 1},
            ],
            "genders": [{"id": 0, "name": "未知", "value": 2}, {"id": 1, "name": "男", "value": 1}],
            "platforms": [
                {"id": 0, "name": "未知", "value": 1},
                {"id": 2, "name": "android", "value": 1},
                {"id": 3, "name": "其他", "value": 1},
            ],
            "devices": [{"name": "未知", "value": 2}, {"name": "华为Mate 40 Pro", "value": 1}],
            "ages": [
                {"id": 0, "name": "未知", "value": 2},
                {"id": 4, "name": "30-39岁", "value": 1},
            ],
        },
        "visit_uv": {
            # u2 first visited on the 10th (in Guangzhou), so is active but not new on the 11th;
            # on the 11th u2 came back with no location, so its location there is 未知
            "province": [
                {"id": 0, "name": "未知", "value": 2},
                {"id": 11, "name": "北京市", "value": 1},
                {"id": 99, "name": "海外", "value": 1},
            ],
            "city": [
                {"id": 0, "name": "未知", "value": 2},
                {"id": 1100, "name": "北京", "value": 1},
                {"id": 9900, "name": "海外", "value": 1},
            ],
            "genders": [
                {"id": 0, "name": "未知", "value": 2},
                {"id": 1, "name": "男", "value": 1},
                {"id": 2, "name": "女", "value": 1},
            ],
            "platforms": [
                {"id": 0, "name": "未知", "value": 2},
                {"id": 2, "name": "android", "value": 1},
                {"id": 3, "name": "其他", "value": 1},
            ],
            "devices": [{"name": "未知", "value": 3}, {"name": "华为Mate 40 Pro", "value": 1}],
            "ages": [
                {"id": 0, "name": "未知", "value": 2},
                {"id": 1, "name": "17岁以下", "value": 1},
                {"id": 4, "name": "30-39岁", "value": 1},
            ],
        },
    }
    # the two-day window sees u2's Guangzhou visit as its latest located one
    r = run("portrait", "--appid", "wx1", "--begin", "20170610", "--end", "20170611")
    doc = json.loads(r.output)
    assert doc["ref_date"] == "20170610-20170611"
    assert doc["visit_uv"]["city"][0] == {"id": 0, "name": "未知", "value": 1}
    assert {"id": 4401, "name": "广州", "value": 1} in doc["visit_uv"]["city"]
    assert doc["visit_uv_new"]["platforms"] == [
        {"id": 2, "name": "android", "value": 2},
        {"id": 0, "name": "未知", "value": 1},
        {"id": 3, "name": "其他", "value": 1},
    ]


def test_empty_window_has_all_six_empty_lists(run):
    run("app", "add", "wx1", "--secret", "12345678")
    r = run("portrait", "--appid", "wx1", "--begin", "20170611", "--end", "20170617")
    empty = {k: [] for k in ("province", "city", "genders", "platforms", "devices", "ages")}
    assert json.loads(r.output) == {
        "ref_date": "20170611-20170617",
        "visit_uv_new": empty,
        "visit_uv": empty,
    }


def test_stdin_in_every_format(run, tmp_path):
    run("app", "add", "wx1", "--secret", "12345678")
    csv_text = "appid,openid,time\nwx1,c1,2017-06-11T08:00:00+08:00\n"
    r = run("ingest", "--json", "--format", "csv", "-", input=csv_text)
    assert r.exit_code == 0 and json.loads(r.output)["accepted"] == 1
    pq_path = tmp_path / "s.parquet"
    pq.write_table(pa.table({"appid": ["wx1"], "openid": ["p1"], "time": [1497139200000]}), pq_path)
    r = run("ingest", "--json", "--format", "parquet", "-", input=pq_path.read_bytes())
    assert r.exit_code == 0 and json.loads(r.output)["accepted"] == 1


def test_an_unreadable_file_is_refused_before_anything_is_stored(run, tmp_path):
    run("app", "add", "wx1", "--secret", "12345678")
    good = write_jsonl(
        tmp_path / "good.jsonl", [{"appid": "wx1", "openid": "a", "time": DAY1.format("08:00:00")}]
    )
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    r = run("ingest", "--json", good, "bad.parquet")
    assert r.exit_code == 2 and "bad.parquet" in r.output and "Parquet" in r.output
    assert json.loads(run("ingest", "--json", good).output)["accepted"] == 1  # nothing was stored
    r = run("ingest", str(tmp_path))
    assert r.exit_code == 2 and "is a directory" in r.output


def test_a_file_failing_midway_reports_what_was_stored(run, tmp_path):
    run("app", "add", "wx1", "--secret", "12345678")
    good = write_jsonl(
        tmp_path / "good.jsonl", [{"appid": "wx1", "openid": "a", "time": DAY1.format("08:00:00")}]
    )
    (tmp_path / "latin1.csv").write_bytes(
        "appid,openid,ti\xe9me\nwx1,caf,1497139200\n".encode("latin-1")
    )
    r = run("ingest", "--json", good, "latin1.csv")
    assert r.exit_code == 2 and "header is not UTF-8" in r.output
    out = json.loads(r.output.splitlines()[0])
    assert out["accepted"] == 1 and "latin1.csv" in out["error"]


def test_plain_summary_shows_the_first_rejects(run, tmp_path):
    run("app", "add", "wx1", "--secret", "12345678")
    bad = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            {"appid": "wx1", "openid": "a", "time": "yesterday"},
            {"appid": "wx1", "openid": "b", "time": DAY1.format("08:00:00"), "age": 200},
        ],
    )
    r = run("ingest", bad)
    assert r.exit_code == 1
    assert f"{bad}:1: time: cannot parse 'yesterday'" in r.output
    assert f"{bad}:2: age: 200 is outside 0-150" in r.output
    assert "add --rejects FILE" in r.output
    r = run("ingest", "--rejects", "-", bad)
    assert r.exit_code == 1


def test_read_only_commands_do_not_create_a_data_folder(run, tmp_path):
    r = run("--data", str(tmp_path / "nothing"), "app", "list")
    assert r.exit_code == 0 and "no apps" in r.output
    assert not (tmp_path / "nothing").exists()
    r = run(
        "--data",
        str(tmp_path / "nothing"),
        "portrait",
        "--appid",
        "wx1",
        "--begin",
        "20170611",
        "--end",
        "20170611",
    )
    assert r.exit_code == 2 and "no data folder" in r.output


def test_a_row_that_is_not_utf8_is_rejected_and_the_rest_stored(run, tmp_path):
    run("app", "add", "wx1", "--secret", "12345678")
    head = b"appid,openid,time,city\nwx1,a,1497139200,\n"
    gbk = "wx1,b,1497139200,广州\n".encode("gbk")
    (tmp_path / "gbk.csv").write_bytes(head + gbk + b"wx1,c,1497139200,\n")
    r = run("ingest", "--json", "--rejects", "rej.jsonl", "gbk.csv")
    assert r.exit_code == 1 and json.loads(r.output)["accepted"] == 2
    rej = json.loads((tmp_path / "rej.jsonl").read_text())
    assert rej["line"] == 3 and rej["reason"].startswith("not UTF-8 text")


def test_a_json_file_may_hold_one_array(run, tmp_path):
    run("app", "add", "wx1", "--secret", "12345678")
    rows = [{"appid": "wx1", "openid": "a", "time": 1497139200}, {"appid": "wx1", "openid": ""}, 5]
    (tmp_path / "arr.json").write_text(json.dumps(rows))
    r = run("ingest", "--json", "--rejects", "rej.jsonl", "arr.json")
    assert r.exit_code == 1 and json.loads(r.output)["accepted"] == 1
    rej = [json.loads(x) for x in (tmp_path / "rej.jsonl").read_text().splitlines()]
    assert [(x["line"], x["reason"]) for x in rej] == [
        (2, "openid: missing"),
        (3, "not a JSON object"),
    ]
