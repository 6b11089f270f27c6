"""`weanalysis demo` for scripts (--no-serve) and its refusal of a busy port.

Serving is covered end to end by tests/test_dashboard_browser.py, which runs the real command.
"""

from __future__ import annotations

import json
import socket

import pytest
from click.testing import CliRunner

from weanalysis.cli.main import cli


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setenv("WEANALYSIS_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)

    def invoke(*args):
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)

    return invoke


def test_help_tells_how_to_serve_or_not(run):
    out = run("demo", "--help").output
    for option in ("--serve / --no-serve", "--host", "--port", "--users", "--days"):
        assert option in out


def test_no_serve_ingests_and_prints_the_wechat_document(run, tmp_path):
    r = run("demo", "--no-serve", "--users", "300", "--days", "30")
    assert r.exit_code == 0
    assert "demo app: wxdemo0000000000  secret: demo-secret-0000" in r.stderr
    doc = json.loads(r.stdout)
    assert set(doc) == {"ref_date", "visit_uv_new", "visit_uv"}
    active = sum(it["value"] for it in doc["visit_uv"]["genders"])
    assert active > 50 and len(doc["visit_uv"]["province"]) > 10
    assert (tmp_path / "data" / "apps" / "wxdemo0000000000" / "manifest.json").exists()


def test_a_busy_port_is_refused_before_any_work(run, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run("demo", "--host", "127.0.0.1", "--port", str(port))
    assert r.exit_code == 2
    assert (
        r.stderr
        == f"error: port {port} on 127.0.0.1 is in use: stop what runs there or pass --port\n"
    )
    assert not (tmp_path / "data").exists()
