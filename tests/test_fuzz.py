"""Fuzzing the HTTP API from its own OpenAPI document (schemathesis), plus the WeChat routes'
malformed-request table. No answer may be a 5xx, and every answer has its documented shape."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from weanalysis.api.app import create_app
from weanalysis.ingest import Ingestor
from weanalysis.store import Store

APPID, SECRET = "wxfuzz0000000001", "fuzz-secret-0001"
TZ = ZoneInfo("Asia/Shanghai")
EXAMPLES = 40  # per operation and mode: about a minute for the whole document


def _app(tmp_dir):
    store = Store(tmp_dir / "data")
    store.catalog.add_app(APPID, SECRET)
    y = datetime.now(TZ).date() - timedelta(days=1)
    rows = [
        {
            "appid": APPID,
            "openid": f"u{i}",
            "time": f"{y - timedelta(days=i % 9)}T12:00:00+08:00",
            "province": "广东",
            "platform": "ios",
            "brand": "Apple",
            "model": "iPhone 13",
        }
        for i in range(40)
    ]
    path = tmp_dir / "visits.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in rows))
    ing = Ingestor(store, "visit")
    ing.ingest_sources([(str(path), "jsonl")])
    ing.close()
    # the fuzzer signs in with wrong secrets far more often than the throttle allows
    return create_app(store, secret_failures=1_000_000)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    return _app(tmp_path_factory.mktemp("fuzz"))


CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


@pytest.mark.slow
def test_no_5xx_and_documented_shapes(app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    ran = []
    calls = []
    for result in schema.get_all_operations():
        op = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=op.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
            def run(case):
                calls.append(case.call_and_validate(checks=CHECKS).status_code)

            try:
                run()
            except Unsatisfiable:  # nothing to make invalid (an operation without inputs)
                assert mode is GenerationMode.NEGATIVE
        ran.append(f"{op.method.upper()} {op.path}")
    assert len(ran) >= 7, ran
    print(len(calls), "calls", sorted(set(calls)))


@pytest.mark.slow
def test_stateful_workflow_follows_the_links(app):
    """Sign in, then follow the document's links to the session and the portrait."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    seen: list[tuple[str, int]] = []
    cookies: dict[str, str] = {}

    class Workflow(schema.as_state_machine()):
        def setup(self):
            cookies.clear()

        def before_call(self, case):
            if case.method == "POST" and case.path == "/api/v1/session":
                case.body = {"appid": APPID, "secret": SECRET}
                case.headers = {**(case.headers or {}), "content-type": "application/json"}
            elif cookies:
                case.cookies = {**(case.cookies or {}), **cookies}

        def after_call(self, response, case):
            seen.append((f"{case.method} {case.path}", response.status_code))
            if case.method == "POST" and case.path == "/api/v1/session":
                jar = response.headers.get("set-cookie", [""])
                value = jar[0] if isinstance(jar, list) else jar
                name, _, rest = value.partition("=")
                if rest:
                    cookies[name] = rest.split(";")[0]

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=CHECKS)

    Workflow.run(
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=4,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
    )
    assert ("GET /api/v1/portrait", 200) in seen, sorted(set(seen))
