"""``python -m bench``: generate, ingest, time the portraits against a naive DuckDB baseline.

Phases (each logged to standard error with its time and memory):

1. generate the data set into ``WORKDIR/input`` (:mod:`bench.generate`, in a process of its
   own);
2. register two apps in a fresh store ``WORKDIR/store`` and ingest, exactly as
   ``weanalysis ingest`` does: the visit Parquet files, then the profiles, then the JSON Lines
   sample into the second app;
3. the 1-, 7- and 30-day portraits ending on the last day: ``compute()`` on a fresh snapshot,
   1 warm-up + ``--repeat`` timed runs, median;
4. the DuckDB baseline (:mod:`bench.baseline`): untimed preparation, then the same windows,
   timed the same way; each window's document must equal weanalysis' (exit status 1 if not);
5. the two tuned peers (:mod:`bench.peers`: Polars and DuckDB over packed per-(user, day) rows),
   prepared untimed, timed and checked the same way;
6. the server phases, then the Spark job on ``local[2]`` (:mod:`bench.spark`) on its own smaller
   data set (``--spark-dau``), whose documents must equal the embedded engine's.

Beside the times it reports the store's live size, the peak disk use while ingesting (sampled),
bytes per stored visit, the peak RSS of each ingest (from its start: what ran before is
not counted, see :func:`bench.phases.restart_peak`) and of the whole process.

The table goes to standard output and to ``WORKDIR/results.md``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bench import generate as gen
from bench import server as bench_server
from bench.baseline import DuckBaseline, diff
from bench.explore import explorer_rows
from bench.measure import (
    DiskSampler,
    IngestResult,
    ingest_files,
    live_bytes,
    live_parts,
    weanalysis_document,
)
from bench.peers import DuckPeer, PackedRows, PolarsPeer
from bench.phases import PhaseLog, log, peak_allocated, peak_rss_mb, timed_runs
from bench.report import DASH, Row, du, machine_rows, mb, ms, rate, render, tick
from weanalysis.portrait.query import PortraitQuery
from weanalysis.records.validate import PROFILE, VISIT
from weanalysis.store import Store
from weanalysis.store.days import day_number

MARKER = ".bench-workdir"
WINDOWS = (1, 7, 30)
SECRET = "bench-secret-0001"
TARGET_INGEST = 250_000  # visits/s at 1M DAU
TARGET_INGEST_JSONL = 100_000  # records/s
TARGET_INGEST_RSS_MB = 4096  # peak RSS of the process during each ingest, at 1M DAU
TARGET_1D = 0.015
TARGET_7D = 0.100
TARGET_30D = 0.300
TARGET_30D_SPEEDUP = 4.0  # over the best tuned peer
TARGET_BYTES_PER_VISIT = 50
TARGET_PEAK_DISK = 1.5  # × the live size
PEERS = ("Polars packed", "DuckDB packed")
TARGET_KEPT_P99_MS = 5.0
TARGET_COLLECT = 20_000


@dataclass
class WindowResult:
    days: int
    ours: float
    ours_runs: list[float]
    baseline: float | None = None
    baseline_runs: list[float] = field(default_factory=list)
    active: int = 0
    new: int = 0
    match: bool | None = None
    peers: dict[str, float] = field(default_factory=dict)  # peer name -> median seconds
    peer_match: dict[str, bool] = field(default_factory=dict)
    memory: int = 0  # bytes allocated at the peak of one (untimed) run, tracemalloc
    day_before: float | None = None  # median seconds of the same window ending a day earlier


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description=(
            "Benchmark weanalysis: ingest rates and 1/7/30-day portrait latency on synthetic "
            "data, side by side with a naive DuckDB SQL baseline whose documents must match."
        ),
    )
    gen.add_params_args(p)
    p.add_argument("--repeat", type=int, default=3, help="timed runs per window (%(default)s)")
    p.add_argument(
        "--workdir",
        type=Path,
        default=Path("bench/.data"),
        help="work folder, wiped at start unless --keep (%(default)s)",
    )
    p.add_argument("--skip-baseline", action="store_true", help="no naive DuckDB baseline")
    p.add_argument("--skip-peers", action="store_true", help="no tuned Polars/DuckDB peers")
    p.add_argument(
        "--keep",
        action="store_true",
        help="do not wipe the work folder; reuse its generated input when the parameters match",
    )
    p.add_argument(
        "--reuse-store",
        action="store_true",
        help="(implies --keep) skip ingest when the store exists: for iterating on queries",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--spark-dau",
        type=int,
        default=50_000,
        help="daily active users of the Spark row's own data set (%(default)s; 0 skips it)",
    )
    p.add_argument(
        "--server-seconds",
        type=float,
        default=60,
        help="seconds of each server load: kept answers, /collect (%(default)s; 0 skips)",
    )
    return p.parse_args(argv)


def prepare_workdir(workdir: Path, keep: bool) -> None:
    if workdir.exists() and not keep:
        if any(workdir.iterdir()) and not (workdir / MARKER).exists():
            sys.exit(f"refusing to wipe {workdir}: it is not a bench work folder (no {MARKER})")
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / MARKER).touch()


def ensure_input(prm: gen.GenParams, folder: Path, keep: bool, progress: bool) -> dict:
    meta_path = folder / "meta.json"
    if keep and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("params") == json.loads(json.dumps(prm.__dict__)):
            log(f"reusing the generated input in {folder}")
            return meta
    if folder.exists():
        shutil.rmtree(folder)
    # in a process of its own: the generator's memory is not the ingest's (nor kept resident
    # in this process while it ingests)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(gen.generate, prm, folder, progress).result()


def check_counts(label: str, got: IngestResult, expected: dict | None) -> None:
    s = got.summary
    log(
        f"  {label}: {got.records:,} records in {got.seconds:.1f} s: {s.accepted:,} accepted, "
        f"{s.duplicates:,} duplicates, {s.filtered:,} filtered {dict(s.filtered_reasons)}, "
        f"{s.rejected:,} rejected {dict(s.rejected_reasons)}"
    )
    if expected:
        have = {k: getattr(s, k) for k in expected}
        if have != expected:
            log(f"  WARNING {label}: expected {expected}, got {have}")


def run(a: argparse.Namespace) -> int:
    keep = a.keep or a.reuse_store
    prm = gen.params_from_args(a)
    progress = not a.no_progress
    phases = PhaseLog()
    machine = machine_rows()  # the code measured is the code at the start
    workdir: Path = a.workdir
    prepare_workdir(workdir, keep)
    input_dir, store_dir, db_path = (
        workdir / "input",
        workdir / "store",
        workdir / "baseline.duckdb",
    )

    with phases.phase("generate") as ph:
        meta = ensure_input(prm, input_dir, keep, progress)
        ph.note = f"{meta['visits']['rows']:,} visit rows, {meta['profiles']:,} profiles"

    reuse = a.reuse_store and (store_dir / "apps" / prm.appid / "manifest.json").exists()
    if not reuse and store_dir.exists():
        shutil.rmtree(store_dir)
    store = Store(store_dir)
    ingests: dict[str, IngestResult] = {}
    disk = DiskSampler(store_dir)
    if reuse:
        log(f"reusing the store in {store_dir}: ingest not measured")
    else:
        store.catalog.add_app(prm.appid, SECRET)
        store.catalog.add_app(prm.jsonl_appid, SECRET)
        visit_files = [(input_dir / f, "parquet") for f in meta["visit_files"]]
        jobs = [
            ("visits", VISIT, visit_files, meta["expected"]),
            ("profiles", PROFILE, [(input_dir / "profiles.parquet", "parquet")], None),
            ("jsonl", VISIT, [(input_dir / "sample.jsonl", "jsonl")], None),
        ]
        for name, kind, files, expected in jobs:
            if name == "jsonl" and not meta["jsonl_rows"]:
                continue
            with phases.phase(f"ingest {name}") as ph, disk:
                r = ingest_files(store, kind, files, f"ingest {name}", progress)
                ph.note = rate(r.records, r.seconds)
            check_counts(name, r, expected)
            ingests[name] = r

    last = day_number(prm.end_date)
    queries = {w: PortraitQuery(prm.appid, last - w + 1, last) for w in WINDOWS}
    results: dict[int, WindowResult] = {}
    docs: dict[int, dict] = {}
    with phases.phase("portraits (weanalysis)"):
        for w, q in queries.items():
            med, runs, doc = timed_runs(
                lambda q=q: weanalysis_document(store, q), a.repeat, f"weanalysis {w} d"
            )
            docs[w] = doc
            uv, new = doc["visit_uv"]["genders"], doc["visit_uv_new"]["genders"]
            results[w] = WindowResult(
                w, med, runs, active=sum(i["value"] for i in uv), new=sum(i["value"] for i in new)
            )
            results[w].memory = peak_allocated(lambda q=q: weanalysis_document(store, q))
        # a window the recent-window view does not cover (ending the day before the last):
        # computed from the day summaries and person logs
        earlier = PortraitQuery(prm.appid, last - 30, last - 1)
        results[30].day_before = timed_runs(
            lambda: weanalysis_document(store, earlier), a.repeat, "weanalysis 30 d, day before"
        )[0]

    with phases.phase("explorer: segment, cross-tab, trend vs unfiltered"):
        explorer = explorer_rows(store, queries[30], a.repeat)

    baseline_prep = None
    if not a.skip_baseline:
        db_path.unlink(missing_ok=True)
        bl = DuckBaseline(db_path)
        with phases.phase("baseline prepare (untimed in the query)") as ph:
            counts = bl.prepare(store.snapshot(prm.appid))
            ph.note = ", ".join(f"{k} {v:,}" for k, v in counts.items())
        baseline_prep = phases.phases[-1].seconds
        with phases.phase("portraits (DuckDB baseline)"):
            for w, q in queries.items():
                med, runs, doc = timed_runs(lambda q=q: bl.document(q), a.repeat, f"DuckDB {w} d")
                r = results[w]
                r.baseline, r.baseline_runs = med, runs
                problems = diff(docs[w], doc)
                r.match = not problems
                if problems:
                    log(f"MISMATCH in the {w}-day window (weanalysis vs baseline):")
                    for line in problems:
                        log(f"    {line}")
        bl.close()

    if not a.skip_peers:
        with phases.phase("tuned peers prepare (untimed in the query)") as ph:
            packed = PackedRows(store.snapshot(prm.appid))
            peer_db = workdir / "peer.duckdb"
            peer_db.unlink(missing_ok=True)
            peers = {
                "Polars packed": PolarsPeer(packed),
                "DuckDB packed": DuckPeer(packed, peer_db),
            }
            ph.note = f"{packed.days.height:,} (user, day) rows"
        with phases.phase("portraits (tuned peers)"):
            for name, peer in peers.items():
                for w, q in queries.items():
                    med, _, doc = timed_runs(
                        lambda q=q, peer=peer: peer.document(q), a.repeat, f"{name} {w} d"
                    )
                    problems = diff(docs[w], doc)
                    results[w].peers[name] = med
                    results[w].peer_match[name] = not problems
                    if problems:
                        log(f"MISMATCH in the {w}-day window (weanalysis vs {name}):")
                        for line in problems:
                            log(f"    {line}")
        peers[PEERS[1]].close()
        del packed, peers

    server: dict[str, dict] = {}
    if a.server_seconds > 0:
        store.close()
        with phases.phase("server: kept answers at 1,000 requests/s") as ph:
            server["kept"] = bench_server.kept_answers(
                store_dir, prm.appid, SECRET, prm.end_date, a.server_seconds
            )
            ph.note = json.dumps(server["kept"])
        with phases.phase("server: /collect throughput") as ph:
            server["collect"] = bench_server.collect_throughput(
                workdir, a.server_seconds, users=max(a.dau, 10_000)
            )
            ph.note = json.dumps(server["collect"])
        with phases.phase("server: disk growth of 200 /collect requests of 10 visits") as ph:
            from bench import collect_disk

            server["collect_disk"] = collect_disk.run(
                workdir,
                base_visits=min(a.dau, 1_000_000),
                requests=200,
                batch=10,
                progress=progress,
            )
            ph.note = json.dumps(server["collect_disk"])

    spark_result = None
    if a.spark_dau > 0:
        import dataclasses

        from bench import spark as bench_spark

        with phases.phase(f"spark job local[2] at {a.spark_dau:,} DAU") as ph:
            spark_result = bench_spark.run(
                dataclasses.replace(prm, dau=a.spark_dau), workdir / "spark", progress
            )
            ph.note = json.dumps(spark_result)

    rows = table_rows(a, meta, ingests, results, baseline_prep, store_dir, input_dir, db_path)
    rows += explorer
    rows += disk_rows(store_dir / "apps" / prm.appid, store_dir, disk, reuse)
    rows += server_rows(server)
    if spark_result:
        rows += bench_spark.rows(spark_result)
    rows += machine
    text = render(rows)
    phase_lines = [
        f"- {p.name}: {p.seconds:.1f} s, peak RSS so far {p.peak_rss_mb:,.0f} MB"
        + (f" ({p.note})" if p.note else "")
        for p in phases.phases
    ]
    print(text)
    print()
    print("\n".join(phase_lines))
    md = ["# weanalysis benchmark", "", text, "", "## Phases", "", *phase_lines, ""]
    (workdir / "results.md").write_text("\n".join(md), encoding="utf-8")
    log(f"wrote {workdir / 'results.md'}")
    bad = [r for r in results.values() if r.match is False or not all(r.peer_match.values())]
    if bad:
        log("FAILED: another engine's documents differ from weanalysis' (see MISMATCH above)")
        return 1
    if spark_result and not (spark_result["documents_equal"] and spark_result["accepted_equal"]):
        log("FAILED: the Spark job's documents differ from the embedded engine's")
        return 1
    return 0


def table_rows(
    a: argparse.Namespace,
    meta: dict,
    ingests: dict[str, IngestResult],
    results: dict[int, WindowResult],
    baseline_prep: float | None,
    store_dir: Path,
    input_dir: Path,
    db_path: Path,
) -> list[Row]:
    rows: list[Row] = []
    v = ingests.get("visits")
    if v:
        ok = v.records / v.seconds >= TARGET_INGEST
        target = f"≥ {TARGET_INGEST:,}/s at 1M DAU"
        rows.append(
            Row(
                "ingest Parquet visits/s",
                f"{rate(v.records, v.seconds)} ({v.records:,} in {v.seconds:.1f} s)",
                target=f"{target} {tick(ok)}" if a.dau >= 1_000_000 else target,
            )
        )
    for name, label in (
        ("profiles", "ingest Parquet profiles/s"),
        ("jsonl", "ingest JSONL records/s"),
    ):
        r = ingests.get(name)
        if r:
            target = DASH
            if name == "jsonl":
                ok = r.records / r.seconds >= TARGET_INGEST_JSONL
                target = f"≥ {TARGET_INGEST_JSONL:,}/s {tick(ok)}"
            rows.append(
                Row(
                    label,
                    f"{rate(r.records, r.seconds)} ({r.records:,} in {r.seconds:.1f} s)",
                    target=target,
                )
            )
    if ingests:
        peak = max(r.peak_rss_mb for r in ingests.values())
        target = f"≤ {TARGET_INGEST_RSS_MB / 1024:.0f} GB at 1M DAU"
        if a.dau >= 1_000_000:
            target += f" {tick(peak <= TARGET_INGEST_RSS_MB)}"
        each = ", ".join(f"{name} {r.peak_rss_mb:,.0f}" for name, r in ingests.items())
        rows.append(Row("peak RSS while ingesting", f"{peak:,.0f} MB ({each})", target=target))
    skipped = "skipped" if a.skip_baseline else DASH
    for w, r in results.items():
        base = ms(r.baseline) if r.baseline is not None else skipped
        ratio = f"{r.baseline / r.ours:.1f}× faster" if r.baseline else DASH
        if r.match is False:
            ratio += " (DOCUMENTS DIFFER)"
        target = DASH
        if w == 1:
            target = f"≤ 15 ms {tick(r.ours <= TARGET_1D)}"
        elif w == 7:
            target = f"≤ 100 ms {tick(r.ours <= TARGET_7D)}"
        elif w == 30:
            best = min(r.peers.values(), default=None)
            ok = r.ours <= TARGET_30D and (best is None or best / r.ours >= TARGET_30D_SPEEDUP)
            target = f"≤ 300 ms and ≥ 4× the best tuned peer {tick(ok)}"
        rows.append(Row(f"portrait {w} d (median of {a.repeat})", ms(r.ours), base, ratio, target))
        for name, t in r.peers.items():
            note = f"{t / r.ours:.1f}× faster" + ("" if r.peer_match[name] else " (DIFFER)")
            rows.append(Row(f"  {name} peer {w} d", DASH, ms(t), note))
    if results[30].day_before is not None:
        rows.append(
            Row("  30 d ending the day before (no view: day summaries)", ms(results[30].day_before))
        )
    mem = [results[w].memory for w in WINDOWS]
    rows.append(
        Row(
            "portrait memory, peak allocated (1 / 7 / 30 d)",
            " / ".join(f"{m / 2**20:,.0f} MiB" for m in mem),
            target=f"≤ 1 GB {tick(max(mem) <= 2**30)}",
        )
    )
    same = [r.match for r in results.values() if r.match is not None]
    same += [m for r in results.values() for m in r.peer_match.values()]
    if same:
        rows.append(Row("documents equal (1/7/30 d)", "yes" if all(same) else "NO", "", "", ""))
    if baseline_prep is not None:
        rows.append(Row("baseline preparation (one-off)", DASH, f"{baseline_prep:.1f} s"))
    vis = meta["visits"]
    rows += [
        Row(
            "input rows",
            f"{vis['rows']:,} visits ({meta['params']['history_days']} + "
            f"{meta['params']['days']} days), {meta['profiles']:,} profiles, "
            f"{meta['jsonl_rows']:,} JSONL",
        ),
        Row(
            "distinct users 1 / 7 / 30 d",
            " / ".join(f"{results[w].active:,}" for w in WINDOWS),
        ),
        Row("new users 1 / 7 / 30 d", " / ".join(f"{results[w].new:,}" for w in WINDOWS)),
        Row(
            "size on disk",
            f"store {mb(live_bytes(store_dir / 'apps' / meta['params']['appid']))} live, "
            f"{mb(du(store_dir))} the whole data folder (input {mb(du(input_dir))})",
            mb(du(db_path)) if db_path.exists() else DASH,
        ),
    ]
    return rows


def disk_rows(app_dir: Path, store_dir: Path, disk: DiskSampler, reuse: bool) -> list[Row]:
    parts = live_parts(app_dir)
    live = sum(parts.values())
    visits = json.loads((app_dir / "manifest.json").read_text())["counts"]["visits"]
    per_visit = live / visits if visits else 0.0
    by_part = ", ".join(
        f"{name} {size / visits:.1f}" for name, size in sorted(parts.items(), key=lambda p: -p[1])
    )
    rows = [
        Row(
            "store bytes per stored visit (live, raw kept)",
            f"{per_visit:.1f} B ({visits:,} visits; {by_part})",
            target=f"≤ {TARGET_BYTES_PER_VISIT} B {tick(per_visit <= TARGET_BYTES_PER_VISIT)}",
        )
    ]
    if not reuse and disk.peak:
        ratio = disk.peak / max(live, 1)
        rows.append(
            Row(
                "peak disk while ingesting (sampled)",
                f"{mb(disk.peak)} = {ratio:.2f}× the live size ({mb(live)})",
                target=f"≤ {TARGET_PEAK_DISK}× live {tick(ratio <= TARGET_PEAK_DISK)}",
            )
        )
    rows.append(Row("peak RSS of the bench process", f"{peak_rss_mb():,.0f} MB"))
    return rows


def server_rows(server: dict[str, dict]) -> list[Row]:
    rows = []
    k = server.get("kept")
    if k:
        ok = k["p99_ms"] <= TARGET_KEPT_P99_MS and k["errors"] == 0
        rows.append(
            Row(
                "kept answer latency (HTTP, 1/7/30 d)",
                f"p50 {k['p50_ms']:.2f} ms, p99 {k['p99_ms']:.2f} ms at {k['rate']:,.0f}/s, "
                f"{k['errors']} errors",
                target=f"p99 ≤ 5 ms at 1,000/s {tick(ok)}",
            )
        )
    c = server.get("collect")
    if c:
        ok = c["records_per_s"] >= TARGET_COLLECT and c["errors"] == 0
        rows.append(
            Row(
                "/collect visits/s (batches of 50)",
                f"{c['records_per_s']:,.0f}/s for {c['seconds']:.0f} s, {c['errors']} errors, "
                f"{c['stored']:,} stored, request p99 {c['p99_ms']:.0f} ms",
                target=f"≥ 20,000/s for 60 s {tick(ok)}",
            )
        )
    g = server.get("collect_disk")
    if g:
        grown = g["largest_growth_bytes"] / 1e6
        rows.append(
            Row(
                "disk growth, 200 /collect requests of 10 visits",
                f"{grown:.2f} MB at most ({g['before_bytes'] / 1e6:,.1f} MB store with "
                f"{g['base_visits']:,} visits that day; {g['stored']:,} stored)",
                target=f"≤ 10 MB {tick(grown <= 10)}",
            )
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    sys.exit(run(parse_args(argv)))


if __name__ == "__main__":
    main()
