"""The Spark row of ``make bench``: the Spark job on ``local[2]`` beside the embedded engine.

On its own (smaller) data set, generated like the main one: the embedded engine ingests the
Parquet files and answers the 1/7/30-day windows; the Spark job reads the same files (validation
and enrichment included) and must give equal documents. Also measures what ``docs/scale.md``
sizes from: input rows, (user, day) rows and their cached bytes, seconds per phase.

    python -m bench.spark --dau 50000      # this row alone
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from bench import generate as gen
from bench.measure import ingest_files, weanalysis_document
from bench.phases import log
from weanalysis.portrait.query import PortraitQuery
from weanalysis.records.validate import PROFILE, VISIT
from weanalysis.store import Store
from weanalysis.store.days import day_number
from weanalysis.wechat.dialect import portrait_document

WINDOWS = (1, 7, 30)
SECRET = "bench-secret-0001"
DEFAULT_DAU = 50_000


def run(prm: gen.GenParams, workdir: Path, progress: bool = True, driver_memory="6g") -> dict:
    """Generate (or reuse) the data, run both paths, compare; returns the measurements."""
    from weanalysis.spark import job, plan

    prm = dataclasses.replace(prm, jsonl_rows=0)
    input_dir, store_dir = workdir / "input", workdir / "store"
    meta_path = input_dir / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else None
    if meta is None or meta.get("params") != json.loads(json.dumps(prm.__dict__)):
        meta = gen.generate(prm, input_dir, progress=progress)
    visit_files = [input_dir / f for f in meta["visit_files"]]
    profile_file = input_dir / "profiles.parquet"

    import shutil

    if store_dir.exists():
        shutil.rmtree(store_dir)
    store = Store(store_dir)
    store.catalog.add_app(prm.appid, SECRET)
    t0 = time.perf_counter()
    iv = ingest_files(store, VISIT, [(p, "parquet") for p in visit_files], "ingest", progress)
    ip = ingest_files(store, PROFILE, [(profile_file, "parquet")], "ingest profiles", progress)
    t_ingest = time.perf_counter() - t0
    last = day_number(prm.end_date)
    t0 = time.perf_counter()
    embedded = [
        weanalysis_document(store, PortraitQuery(prm.appid, last - w + 1, last)) for w in WINDOWS
    ]
    t_query = time.perf_counter() - t0
    store.close()

    log(f"spark: starting local[2] (driver memory {driver_memory})")
    t0 = time.perf_counter()
    spark = plan.session(
        "local[2]",
        {"spark.driver.memory": driver_memory, "spark.sql.shuffle.partitions": "4"},
        app_name="weanalysis bench",
    )
    t_start = time.perf_counter() - t0
    spec = job.JobSpec(
        prm.appid,
        "Asia/Shanghai",
        [last],
        list(WINDOWS),
        [str(p) for p in visit_files],
        [str(profile_file)],
        measure=True,
    )
    t0 = time.perf_counter()
    result = job.run(spark, spec, lambda m: log(f"spark: {m}"))
    t_job = time.perf_counter() - t0
    # again in the same session: Python workers warm (imports, device-name cache), which is
    # what a long job's tasks see; the documents must be the same again
    t0 = time.perf_counter()
    warm = job.run(spark, spec, lambda m: log(f"spark (warm): {m}"))
    t_warm = time.perf_counter() - t0
    spark.stop()
    docs = [portrait_document(r) for r in result.windows]
    equal = docs == embedded and [portrait_document(r) for r in warm.windows] == embedded
    summary_equal = result.summary.accepted == iv.summary.accepted + ip.summary.accepted
    return {
        "dau": prm.dau,
        "input_rows": iv.records + ip.records,
        "embedded_ingest_s": t_ingest,
        "embedded_portraits_s": t_query,
        "spark_start_s": t_start,
        "spark_job_s": t_job,
        "spark_phases_s": result.seconds,
        "spark_warm_s": t_warm,
        "spark_warm_phases_s": warm.seconds,
        "measures": warm.measures,
        "documents_equal": equal,
        "accepted_equal": summary_equal,
        "active_30d": result.windows[-1].active.total,
    }


def rows(r: dict):
    """Rows for the bench table (bench.report.Row)."""
    from bench.report import DASH, Row

    emb = r["embedded_ingest_s"] + r["embedded_portraits_s"]
    phases = ", ".join(f"{k} {v:.1f} s" for k, v in r["spark_warm_phases_s"].items())
    return [
        Row(
            f"Spark job local[2] at {r['dau']:,} DAU: files → 1/7/30 d documents",
            f"{r['spark_job_s']:.1f} s cold + {r['spark_start_s']:.1f} s start; warm "
            f"{r['spark_warm_s']:.1f} s ({phases})",
            DASH,
            f"embedded on the same files: {emb:.1f} s (ingest {r['embedded_ingest_s']:.1f} s "
            f"+ portraits {r['embedded_portraits_s']:.2f} s)",
        ),
        Row(
            "Spark documents equal (1/7/30 d)",
            "yes" if r["documents_equal"] and r["accepted_equal"] else "NO",
        ),
    ]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.spark", description=__doc__.split("\n")[0])
    gen.add_params_args(p)
    p.set_defaults(dau=DEFAULT_DAU)
    p.add_argument("--workdir", type=Path, default=Path("bench/.data/spark"))
    p.add_argument("--driver-memory", default="6g")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    a = p.parse_args(argv)
    r = run(gen.params_from_args(a), a.workdir, not a.no_progress, a.driver_memory)
    print(json.dumps(r, indent=2))
    sys.exit(0 if r["documents_equal"] and r["accepted_equal"] else 1)


if __name__ == "__main__":
    main()
