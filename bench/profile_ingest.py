"""cProfile of the Parquet visit ingest (the CLI's path), with a summary of weanalysis' hotspots.

    python -m bench.profile_ingest --dau 200000 --workdir bench/.data-profile

Generates the input (or reuses it with ``--keep``), ingests the visit files into a fresh store
under cProfile, writes ``ingest.prof`` (open it with ``python -m pstats`` or snakeviz) and
prints the functions of ``src/weanalysis`` by own time and by cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import time
from pathlib import Path

from bench import generate as gen
from bench.__main__ import SECRET, ensure_input, prepare_workdir
from bench.measure import ingest_files
from weanalysis.records.validate import VISIT
from weanalysis.store import Store


def _report(stats: pstats.Stats, key: str, limit: int, only_src: bool) -> str:
    buf = io.StringIO()
    stats.stream = buf  # type: ignore[attr-defined]
    stats.sort_stats(key)
    if only_src:
        stats.print_stats("weanalysis", limit)
    else:
        stats.print_stats(limit)
    lines = buf.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return "\n".join(lines[start:])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m bench.profile_ingest",
        description="Profile the Parquet visit ingest with cProfile; print src/ hotspots.",
    )
    gen.add_params_args(p)
    p.set_defaults(dau=200_000, jsonl_rows=0)
    p.add_argument("--workdir", type=Path, default=Path("bench/.data-profile"), help="work folder")
    p.add_argument("--keep", action="store_true", help="reuse the generated input if it matches")
    p.add_argument("--limit", type=int, default=30, help="rows per listing (%(default)s)")
    a = p.parse_args(argv)
    prm = gen.params_from_args(a)
    prepare_workdir(a.workdir, a.keep)
    meta = ensure_input(prm, a.workdir / "input", a.keep, progress=True)
    store_dir = a.workdir / "store"
    if store_dir.exists():
        shutil.rmtree(store_dir)
    store = Store(store_dir)
    store.catalog.add_app(prm.appid, SECRET)
    files = [(a.workdir / "input" / f, "parquet") for f in meta["visit_files"]]
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    r = ingest_files(store, VISIT, files, "ingest (profiled)", progress=False)
    prof.disable()
    wall = time.perf_counter() - t0
    out = a.workdir / "ingest.prof"
    prof.dump_stats(out)
    stats = pstats.Stats(prof)
    print(
        f"{r.records:,} records in {wall:.1f} s under cProfile "
        f"({r.records / wall:,.0f}/s; profiling adds overhead); stats in {out}\n"
    )
    print("== weanalysis functions by own time (tottime) ==")
    print(_report(stats, "tottime", a.limit, only_src=True))
    print("\n== weanalysis functions by cumulative time ==")
    print(_report(stats, "cumulative", a.limit, only_src=True))
    print("\n== everything by own time ==")
    print(_report(stats, "tottime", a.limit, only_src=False))


if __name__ == "__main__":
    main()
