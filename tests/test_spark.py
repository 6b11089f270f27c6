"""The Spark job (local[2]) equals the embedded engine and the oracle, document for document.

One SparkSession for the whole module, with ``spark.driver.maxResultSize`` at its 1 MB minimum:
every job below runs under it, and one test shows that collecting per-user rows would fail.
"""

from __future__ import annotations

import json
import random
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def _needs_java() -> None:
    """Without Java the Spark tests skip locally, and fail under CI=true (see .ci/run)."""
    import os
    import shutil

    if shutil.which("java") or os.environ.get("JAVA_HOME"):
        return
    if os.environ.get("CI") == "true":
        pytest.fail("no Java (17+) for PySpark; CI=true, so the Spark tests must run")
    pytest.skip("no Java (17+) for PySpark", allow_module_level=True)


_needs_java()
pytest.importorskip("pyspark")

from py4j.protocol import Py4JJavaError  # noqa: E402

from tests import oracle  # noqa: E402
from tests.test_portrait_oracle import DAYS, START, ZONES, a_record, content_key  # noqa: E402
from weanalysis import demo  # noqa: E402
from weanalysis.enrich import devices  # noqa: E402
from weanalysis.ingest import Ingestor  # noqa: E402
from weanalysis.portrait.embedded import EmbeddedSource  # noqa: E402
from weanalysis.portrait.engine import compute  # noqa: E402
from weanalysis.portrait.query import PortraitQuery  # noqa: E402
from weanalysis.spark import job, plan  # noqa: E402
from weanalysis.store import Store  # noqa: E402
from weanalysis.store.days import day_number  # noqa: E402
from weanalysis.wechat.dialect import portrait_document  # noqa: E402

pytestmark = pytest.mark.slow
APPID = "wxapp"


@pytest.fixture(scope="module")
def spark():
    s = plan.session(
        "local[2]",
        {
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.driver.maxResultSize": "1m",
            "spark.sql.adaptive.enabled": "true",
        },
        app_name="weanalysis tests",
    )
    yield s
    s.stop()


def ingest(store: Store, kind: str, paths: list[Path], chunk_rows: int = 1000):
    ing = Ingestor(store, kind)
    total, _ = ing.ingest_sources([(str(p), p.suffix.lstrip(".")) for p in paths], chunk_rows)
    ing.close()
    return total


def embedded_documents(store: Store, ends: list[int], lengths: list[int]) -> list[dict]:
    src = EmbeddedSource.of(store, APPID)
    return [
        portrait_document(compute(src, PortraitQuery(APPID, e - L + 1, e)))
        for e in ends
        for L in lengths
    ]


def spark_job(spark, tz: str, ends, lengths, visits=(), profiles=(), **kw) -> job.JobResult:
    spec = job.JobSpec(APPID, tz, list(ends), list(lengths), list(visits), list(profiles), **kw)
    return job.run(spark, spec)


@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_spark_equals_engine_and_oracle(spark, tmp_path_factory, data):
    """Many oracle histories (users and event ids kept apart) in one app and one time zone,
    spread over several files whose order matters, with a few bad lines."""
    tz_name = data.draw(st.sampled_from(ZONES))
    recs = []
    for h in range(data.draw(st.integers(8, 16))):
        users, days = data.draw(st.integers(1, 6)), data.draw(st.integers(1, DAYS))
        hist = data.draw(st.lists(a_record(tz_name, users, days), min_size=1, max_size=30))
        for _ in range(data.draw(st.integers(0, 4))):
            hist.append(data.draw(st.sampled_from(hist)))
        for rec, canon in hist:
            rec = dict(rec, openid=f"h{h}-{rec['openid']}")
            if "event_id" in rec:
                rec["event_id"] = f"h{h}-{rec['event_id']}"
            canon = oracle.Rec(**{**canon.__dict__, "openid": rec["openid"]})
            recs.append((rec, canon))
    for _, canon in recs:
        if isinstance(canon.device, tuple):
            canon.device = devices.device_name(*canon.device)
    tmp = tmp_path_factory.mktemp("spark")
    # visits over three files (b sorts before c; a.jsonl is given first); profiles over two
    names = {"visit": ["a.jsonl", "in/b.jsonl", "in/c.jsonl"], "profile": ["p1.jsonl", "p2.jsonl"]}
    (tmp / "in").mkdir()
    files: dict[str, list[Path]] = {}
    accepted: dict[str, list[oracle.Rec]] = {"visit": [], "profile": []}
    seen: set = set()
    for kind, kind_names in names.items():
        mine = [(r, c) for r, c in recs if c.kind == kind]
        parts = [mine[i :: len(kind_names)] for i in range(len(kind_names))]
        files[kind] = []
        for name, part in zip(kind_names, parts, strict=True):
            lines = [json.dumps(r, ensure_ascii=False) for r, _ in part]
            lines.insert(len(lines) // 2, '{"appid": "wxapp", "openid": "x", "time": "soon"}')
            lines.append("not json")
            (tmp / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
            files[kind].append(tmp / name)
            for rec, canon in part:
                key = content_key(rec, canon)
                if key not in seen:
                    seen.add(key)
                    accepted[kind].append(canon)
    store = Store(tmp / "data")
    store.catalog.add_app(APPID, "secret-123", tz_name)
    want_summary = {k: ingest(store, k, files[k]).as_dict() for k in ("visit", "profile")}
    lengths = [1, 2, 7]
    ends = [day_number(START + timedelta(days=d)) for d in range(DAYS + 1)]
    got = spark_job(
        spark,
        tz_name,
        ends,
        lengths,
        visits=[str(tmp / "a.jsonl"), str(tmp / "in" / "*.jsonl")],
        profiles=[str(tmp / "p*.jsonl")],
    )
    assert {k: s.as_dict() for k, s in got.by_kind.items()} == want_summary
    docs = [portrait_document(r) for r in got.windows]
    assert docs == embedded_documents(store, ends, lengths)
    stored = accepted["visit"] + accepted["profile"]
    tz = ZoneInfo(tz_name)
    for r, doc in zip(got.windows, docs, strict=True):
        b, e = (date(1970, 1, 1) + timedelta(days=d) for d in (r.query.begin, r.query.end))
        assert doc == oracle.portrait(stored, tz, b, e), (b, e)
    store.close()


def test_demo_app_equal_from_files_and_from_the_store(spark, tmp_path):
    """The demo's files through Spark, and the demo's data folder through Spark (--store), give
    the embedded engine's documents, and the same summary as ingest."""
    end = date(2026, 11, 29)
    files = demo.generate(tmp_path / "demo", APPID, users=3000, days=35, end=end)
    visits, profiles = Path(files.visits), Path(files.profiles)
    store = Store(tmp_path / "data")
    store.catalog.add_app(APPID, "secret-123", "Asia/Shanghai")
    want = {
        k: ingest(store, k, [p], 100_000).as_dict()
        for k, p in (("visit", visits), ("profile", profiles))
    }
    ends = [day_number(end) - 1, day_number(end)]
    lengths = [1, 7, 30]
    expected = embedded_documents(store, ends, lengths)
    got = spark_job(spark, "Asia/Shanghai", ends, lengths, [str(visits)], [str(profiles)])
    assert {k: s.as_dict() for k, s in got.by_kind.items()} == want
    assert got.summary.rejected == 1  # the demo's deliberate reject
    assert [portrait_document(r) for r in got.windows] == expected
    app_dir = store.app_dir(APPID)
    from_store = spark_job(
        spark,
        "Asia/Shanghai",
        ends,
        lengths,
        store_app_dir=app_dir,
        store_manifest=json.loads((app_dir / "manifest.json").read_text()),
    )
    assert [portrait_document(r) for r in from_store.windows] == expected
    assert from_store.summary.accepted == want["visit"]["accepted"] + want["profile"]["accepted"]
    assert expected[-1]["visit_uv"]["province"]  # not a vacuous comparison
    store.close()


def test_rejects_and_summary_equal_ingest(spark, tmp_path):
    """Every kind of bad record, in JSON Lines, CSV and Parquet: same counts and reasons as
    ``weanalysis ingest``; --rejects keeps them in input order."""
    good = {"appid": APPID, "openid": "u1", "time": "2026-11-28T10:00:00+08:00"}
    rows = [
        good,
        {**good, "time": "yesterday"},
        {**good, "appid": "wxother"},
        {**good, "openid": ""},
        {**good, "gender": "robot"},
        {**good, "age": 999},
        {**good, "province": "火星"},
        {**good, "platform": "devtools"},
        {**good, "user_agent": "Googlebot/2.1 (+http://www.google.com/bot.html)"},
        {**good, "ip": "999.1.1.1"},
        {**good, "event_id": "e" * 200},
        {**good, "time": "2099-01-01T00:00:00+08:00"},
        good,  # a duplicate by content
        {**good, "event_id": "ev"},
        {**good, "event_id": "ev", "openid": "u2"},  # a duplicate by event id
    ]
    j = tmp_path / "v.jsonl"
    j.write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n[1]\n{bad\n",
        encoding="utf-8",
    )
    c = tmp_path / "v.csv"
    c.write_text(
        "appid,openid,time,gender\n"
        f"{APPID},u3,2026-11-28T10:00:00+08:00,女\n"
        f"{APPID},u3,2026-11-28T10:00:00+08:00,女\n"
        f"{APPID},u4,notatime,男\n"
        f"{APPID},u5,2026-11-28T10:00:00+08:00,1,extra\n",
        encoding="utf-8",
    )
    p = tmp_path / "v.parquet"
    pq.write_table(
        pa.table(
            {
                "appid": [APPID, APPID, None],
                "openid": ["u6", "u7", "u8"],
                "time": [1796000000000, -5, 1796000000000],
            }
        ),
        p,
    )
    prof = tmp_path / "p.csv"
    prof.write_text(
        f"appid,openid,gender,age\n{APPID},u1,男,30\n{APPID},u9,x,31\n", encoding="utf-8"
    )
    store = Store(tmp_path / "data")
    store.catalog.add_app(APPID, "secret-123", "Asia/Shanghai")
    rejected = []
    ing = Ingestor(store, "visit", on_reject=rejected.append)
    want_v, _ = ing.ingest_sources([(str(j), "jsonl"), (str(c), "csv"), (str(p), "parquet")])
    ing.close()
    want_p = ingest(store, "profile", [prof])
    out = tmp_path / "rejects"
    got = spark_job(
        spark,
        "Asia/Shanghai",
        [day_number(date(2026, 11, 28))],
        [1],
        [str(j), str(c), str(p)],
        [str(prof)],
        rejects=str(out),
    )
    assert got.by_kind["visit"].as_dict() == want_v.as_dict()
    assert got.by_kind["profile"].as_dict() == want_p.as_dict()
    assert got.summary.rejected == len(rejected) + want_p.rejected > 10
    lines = [
        json.loads(x)
        for f in sorted(out.glob("part-*.json"))
        for x in f.read_text(encoding="utf-8").splitlines()
    ]
    visit_rejects = [r for r in lines if not r["file"].endswith("p.csv")]
    mine = [(r["file"], r["line"], r["text"]) for r in visit_rejects]
    theirs = [(r.source, r.line, r.text) for r in rejected]
    assert mine == theirs
    # the reasons are ingest's, but for the app: this job is for one app only
    for a, b in zip(visit_rejects, rejected, strict=True):
        assert a["reason"] == b.reason or a["reason"].startswith("appid: app 'wxother'")
    store.close()


def test_nothing_per_user_reaches_the_driver(spark, tmp_path):
    """100k users: the job runs under a 1 MB maxResultSize, collecting its users would not."""
    n = 100_000
    rng = random.Random(5)
    path = tmp_path / "many.parquet"
    t0 = 1_795_000_000_000
    pq.write_table(
        pa.table(
            {
                "appid": [APPID] * n,
                "openid": [f"{rng.getrandbits(128):032x}" for i in range(n)],
                "time": [t0 + rng.randrange(86_400_000 * 3) for _ in range(n)],
                "platform": [rng.choice(["ios", "android"]) for _ in range(n)],
            }
        ),
        path,
    )
    last = datetime.fromtimestamp((t0 + 86_400_000 * 3) / 1000, ZoneInfo("Asia/Shanghai"))
    got = spark_job(spark, "Asia/Shanghai", [day_number(last.date())], [30], [str(path)])
    assert got.summary.accepted == n
    assert got.windows[0].active.total == n
    with pytest.raises(Py4JJavaError, match="maxResultSize"):
        spark.read.parquet(str(path)).select("openid").collect()


def test_inputs_that_are_not_there(spark, tmp_path):
    with pytest.raises(plan.JobError, match="no file matches"):
        spark_job(spark, "UTC", [20000], [1], [str(tmp_path / "nothing-*.jsonl")])
    (tmp_path / "x.txt").write_text("hello\n")
    with pytest.raises(plan.JobError, match="cannot tell the format"):
        spark_job(spark, "UTC", [20000], [1], [str(tmp_path / "x.txt")])
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(plan.JobError, match="bad.parquet"):
        spark_job(spark, "UTC", [20000], [1], [str(tmp_path / "bad.parquet")])


def test_the_command_line_end_to_end(tmp_path):
    """`weanalysis spark portraits` as the README shows it, then `portraits import`: the WeChat
    API serves exactly the documents the embedded engine gives for the same records."""
    import os
    import subprocess
    import sys

    from starlette.testclient import TestClient

    from tests.servers import cli
    from weanalysis.api.app import create_app

    tz = ZoneInfo("Asia/Shanghai")
    yesterday = datetime.now(tz).date() - timedelta(days=1)
    rows = [
        {
            "appid": APPID,
            "openid": f"u{u}",
            "time": f"{(yesterday - timedelta(days=u % 10)).isoformat()}T0{u % 10}:30:00+08:00",
            "province": ["广东", "北京", "四川"][u % 3],
            "platform": ["ios", "android", "devtools"][u % 3],
            "brand": "HUAWEI",
            "model": "NOH-AN00",
            "gender": ["男", "女"][u % 2],
            "age": 20 + u,
        }
        for u in range(60)
    ]
    (tmp_path / "lake").mkdir()
    for i in range(3):
        part = rows[i::3] + ["oops"]
        (tmp_path / "lake" / f"part-{i}.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in part), "utf-8"
        )
    env = {**os.environ, "WEANALYSIS_DATA": str(tmp_path / "data")}
    assert cli(env, "app", "add", APPID, "--secret", "secret-123").returncode == 0
    assert cli(env, "app", "add", "wxcluster", "--secret", "secret-123").returncode == 0
    files = sorted(str(p) for p in (tmp_path / "lake").glob("*.jsonl"))
    ingest = cli(env, "ingest", "--json", *files)
    out = tmp_path / "portraits.jsonl"
    end = yesterday.strftime("%Y%m%d")
    args = ["--appid", APPID, "--timezone", "Asia/Shanghai", "--visits"]
    args += [str(tmp_path / "lake" / "*.jsonl"), "--end", end, "--days", "1,7,30"]
    args += ["--out", str(out), "--json", "--rejects", str(tmp_path / "rejects")]
    r = cli(env, "spark", "portraits", "--master", "local[2]", *args)
    assert r.returncode == 1, r.stderr.decode()[-3000:]  # 1: some records were rejected
    summary = json.loads(r.stdout)
    want = json.loads(ingest.stdout)
    for k in ("accepted", "duplicates", "filtered", "rejected"):
        assert summary[k] == want[k], k
    assert summary["rejected_reasons"] == want["rejected_reasons"] == {"json": 3}
    lines = [json.loads(x) for x in out.read_text("utf-8").splitlines()]
    assert [(x["begin"], x["end"]) for x in lines] == [
        ((yesterday - timedelta(days=n - 1)).strftime("%Y%m%d"), end) for n in (1, 7, 30)
    ]
    for x in lines:
        embedded = cli(env, "portrait", "--appid", APPID, "--begin", x["begin"], "--end", x["end"])
        assert x["document"] == json.loads(embedded.stdout)
    assert lines[-1]["document"]["visit_uv"]["devices"] == [
        {"name": "华为Mate 40 Pro", "value": 40}
    ]
    # the documents, imported for another app, are what its WeChat API answers
    cluster = [dict(x, appid="wxcluster") for x in lines]
    (tmp_path / "cluster.jsonl").write_text("".join(json.dumps(x) + "\n" for x in cluster))
    imp = cli(env, "portraits", "import", "--appid", "wxcluster", str(tmp_path / "cluster.jsonl"))
    assert imp.returncode == 0, imp.stderr
    from weanalysis.store import Store

    store = Store(tmp_path / "data")
    with TestClient(create_app(store, token_ttl=7200)) as c:
        tok = c.get(
            "/cgi-bin/token",
            params={
                "grant_type": "client_credential",
                "appid": "wxcluster",
                "secret": "secret-123",
            },
        ).json()["access_token"]
        for x in lines:
            r = c.post(
                f"/datacube/getweanalysisappiduserportrait?access_token={tok}",
                json={"begin_date": x["begin"], "end_date": x["end"]},
            )
            assert r.json() == x["document"]
    store.close()
    path = subprocess.run(
        [sys.executable, "-m", "weanalysis", "spark", "job-path"], capture_output=True, check=True
    )
    assert Path(path.stdout.decode().strip()).is_file()
