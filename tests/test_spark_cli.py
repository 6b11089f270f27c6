"""Usage errors of `weanalysis spark portraits` are one line and exit 2, before Spark starts."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from weanalysis.cli.main import cli

BASE = ["spark", "portraits", "--appid", "wxapp", "--out", "o.jsonl"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--visits", "v.jsonl"], "give --end, or both --end-from and --end-to"),
        (["--visits", "v.jsonl", "--end", "2026-13-01"], "--end: '2026-13-01' is not a real date"),
        (["--visits", "v.jsonl", "--end-from", "20261102", "--end-to", "20261101"], "is after"),
        (["--visits", "v.jsonl", "--end", "20261101", "--end-from", "20261101"], "not both"),
        (["--end", "20261101"], "nothing to read"),
        (["--store", "d", "--visits", "v.jsonl", "--end", "20261101"], "not both"),
        (["--visits", "v.jsonl", "--end", "20261101", "--days", "1,x"], "--days"),
        (["--visits", "v.jsonl", "--end", "20261101", "--days", "0"], "--days"),
        (["--visits", "v.jsonl", "--end", "20261101", "--timezone", "Mars/Base"], "--timezone"),
        (["--visits", "v.jsonl", "--end", "20261101", "--conf", "nokey"], "KEY=VALUE"),
        (["--visits", "v", "--end", "20261101", "--out", "no/such/dir/o.jsonl"], "existing folder"),
    ],
)
def test_usage_errors(args, message, tmp_path):
    r = CliRunner().invoke(cli, [*BASE, *args])
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert r.output.count("\n") == 1


def test_bad_appid_and_missing_store(tmp_path):
    r = CliRunner().invoke(cli, ["spark", "portraits", "--appid", "bad app!", "--out", "o"])
    assert r.exit_code == 2 and "--appid" in r.output
    args = [*BASE, "--store", str(tmp_path / "none"), "--end", "20261101"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 2 and "no data folder" in r.output


def test_json_and_stdout_out_conflict():
    args = ["spark", "portraits", "--appid", "wxapp", "--out", "-", "--json"]
    r = CliRunner().invoke(cli, [*args, "--visits", "v", "--end", "20261101"])
    assert r.exit_code == 2 and "standard output" in r.output


def test_a_store_trimmed_by_retention_is_refused(tmp_path):
    """The job derives first visits and gender/age from raw records alone: once retention
    deleted some, it would answer differently from the store, so it does not start."""
    from datetime import date

    from tests.records import ingest_rows
    from weanalysis.store import Store, retention
    from weanalysis.store.days import day_number

    store = Store(tmp_path / "data")
    store.catalog.add_app("wxapp", "secret-123")
    rows = [
        {"appid": "wxapp", "openid": "u1", "time": f"2026-11-0{d}T10:00:00+08:00"} for d in (1, 5)
    ]
    ingest_rows(store, tmp_path / "v.jsonl", rows)
    retention.retain(store.dir, store.catalog.get("wxapp"), day_number(date(2026, 11, 3)))
    store.close()
    args = [*BASE, "--store", str(tmp_path / "data"), "--end", "20261105"]
    r = CliRunner().invoke(cli, args)
    assert (
        r.exit_code == 2 and "retention deleted its records of days before 2026-11-03" in r.output
    )
    assert r.output.count("\n") == 1
