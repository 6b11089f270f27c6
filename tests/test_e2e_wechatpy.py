"""End to end: the real server process, driven by the real wechatpy SDK from PyPI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.servers import cli, free_port, wait_healthy

wechatpy = pytest.importorskip("wechatpy")
from wechatpy import WeChatClient  # noqa: E402

pytestmark = pytest.mark.slow

YESTERDAY = datetime.now(ZoneInfo("Asia/Shanghai")).date() - timedelta(days=1)


@pytest.fixture
def server(tmp_path):
    env = {**os.environ, "WEANALYSIS_DATA": str(tmp_path / "data")}
    assert cli(env, "app", "add", "wxe2e", "--secret", "e2e-secret-1").returncode == 0
    rows = [
        {
            "appid": "wxe2e",
            "openid": f"u{i}",
            "time": f"{(YESTERDAY - timedelta(days=i % 9)).isoformat()}T10:00:00+08:00",
            "province": ["广东", "四川", "北京"][i % 3],
            "platform": ["ios", "android"][i % 2],
            "brand": "HUAWEI",
            "model": "NOH-AN00",
            "gender": i % 3,
            "age": 15 + i,
        }
        for i in range(40)
    ]
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    assert cli(env, "ingest", "-", input=data).returncode == 0
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "weanalysis", "serve", "--port", str(port), "--token-ttl", "3"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    wait_healthy(port, proc)
    yield base, env
    proc.terminate()
    _, err = proc.communicate(timeout=10)
    log = err.decode()
    assert "e2e-secret-1" not in log  # the secret never reaches the log


def make_client(base: str):
    class LocalClient(WeChatClient):
        API_BASE_URL = base + "/cgi-bin/"

        def fetch_access_token(self):
            return self._fetch_access_token(
                url=base + "/cgi-bin/token",
                params={
                    "grant_type": "client_credential",
                    "appid": self.appid,
                    "secret": self.secret,
                },
            )

    return LocalClient("wxe2e", "e2e-secret-1")


def test_wechatpy_round_trip_equals_cli_and_recovers_from_expiry(server):
    base, env = server
    client = make_client(base)
    week = {
        "begin_date": (YESTERDAY - timedelta(days=6)).strftime("%Y%m%d"),
        "end_date": YESTERDAY.strftime("%Y%m%d"),
    }
    got = client.post(base + "/datacube/getweanalysisappiduserportrait", data=week)
    want = json.loads(
        cli(
            env,
            "portrait",
            "--appid",
            "wxe2e",
            "--begin",
            week["begin_date"],
            "--end",
            week["end_date"],
        ).stdout
    )
    assert got == want
    assert sum(it["value"] for it in got["visit_uv"]["genders"]) == sum(
        1 for i in range(40) if i % 9 <= 6
    )
    # the server's token expires (TTL 3 s) while the client still believes in it:
    # wechatpy gets 42001, fetches a new token and retries by itself
    first = client.access_token
    client.session.set(f"{client.appid}_expires_at", int(time.time()) + 3600)
    time.sleep(3.5)
    again = client.post(base + "/datacube/getweanalysisappiduserportrait", data=week)
    assert again == want
    assert client.access_token != first


def test_wechatpy_sees_wechat_errors(server):
    base, _ = server
    client = make_client(base)
    from wechatpy.exceptions import WeChatClientException

    with pytest.raises(WeChatClientException) as e:
        client.post(
            base + "/datacube/getweanalysisappiduserportrait",
            data={"begin_date": "20170611", "end_date": "20170613"},
        )
    assert e.value.errcode == 61501
    bad = make_client(base)
    bad.secret = "wrong-secret"
    with pytest.raises(WeChatClientException) as e:
        bad.fetch_access_token()
    assert e.value.errcode == 40125


def test_rotating_the_secret_while_wechatpy_holds_a_token(server):
    """The CLI (another process) rotates the secret: the SDK's token stops at once, its retry
    with the old secret is refused, a client with the new secret works; forget over HTTP."""
    from wechatpy.exceptions import WeChatClientException

    base, env = server
    client = make_client(base)
    day = {"begin_date": YESTERDAY.strftime("%Y%m%d"), "end_date": YESTERDAY.strftime("%Y%m%d")}
    url = base + "/datacube/getweanalysisappiduserportrait"
    before = client.post(url, data=day)
    held = client.access_token
    r = cli(env, "app", "rotate-secret", "wxe2e", "--secret", "e2e-secret-2")
    assert r.returncode == 0, r.stderr
    with pytest.raises(WeChatClientException) as e:
        client.post(url, data=day)  # 40001, then its own refresh with the old secret: 40125
    assert e.value.errcode in (40001, 40125)
    old = make_client(base)
    old.session.set(f"{old.appid}_access_token", held)
    old.session.set(f"{old.appid}_expires_at", int(time.time()) + 3600)
    with pytest.raises(WeChatClientException) as e:
        old._request("post", url, params={"access_token": held}, data=day)
    assert e.value.errcode in (40001, 40125)
    fresh = make_client(base)
    fresh.secret = "e2e-secret-2"
    assert fresh.post(url, data=day) == before
    erased = fresh.post(base + "/api/v1/forget", data={"openids": ["u0", "u9", "nobody"]})
    assert erased == {"errcode": 0, "erased": {"users": 2, "visits": 2, "profiles": 0}}
    after = fresh.post(url, data=day)
    assert (
        sum(it["value"] for it in after["visit_uv"]["genders"])
        == sum(it["value"] for it in before["visit_uv"]["genders"]) - 2
    )
