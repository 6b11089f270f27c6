"""Where chunk edges fall never changes a record's fate or what is stored.

The same records ingested in chunks of 1, 2, 3, ... rows and in one chunk, from JSON Lines, CSV
and Parquet: every record gets the same verdict (accepted, duplicate, filtered, rejected with its
reason and line), and the store holds the same records.
"""

from __future__ import annotations

import csv

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.records import write_jsonl
from weanalysis.ingest import Ingestor
from weanalysis.store import AppSnapshot

APP = "wxbatches0001"
T0 = 1_750_000_000_000
UA_BOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def _rows() -> list[dict]:
    rows = []
    for i in range(12):
        rows.append({"appid": APP, "openid": f"o{i % 5}", "time": T0 + i * 1000, "gender": "1"})
    # a duplicate group whose members fall on both sides of most chunk edges
    same = {"appid": APP, "openid": "dup", "time": T0 + 5, "province": "广东", "age": 30}
    rows += [dict(same), dict(same), {**same, "age": 31}, dict(same)]
    # event ids: the id decides, whatever the content
    rows += [
        {"appid": APP, "openid": "e1", "time": T0 + 7, "event_id": "ev-1"},
        {"appid": APP, "openid": "e2", "time": T0 + 8, "event_id": "ev-1"},
    ]
    rows.append({"appid": APP, "openid": "dev", "time": T0, "platform": "devtools"})
    rows.append({"appid": APP, "openid": "bot", "time": T0, "user_agent": UA_BOT})
    rows.append({"appid": APP, "openid": "late", "time": T0 + 9, "age": 30})
    # the last records, so that they land in the last, partial chunk: rejected ones
    rows.append({"appid": APP, "openid": "bad-age", "time": T0, "age": 400})
    rows.append({"appid": APP, "openid": "no-time"})
    rows.append({"appid": APP, "openid": "dup", "time": T0 + 5, "province": "广东", "age": 30})
    return rows


def _write(tmp_path, fmt: str, rows: list[dict]):
    path = tmp_path / f"in.{fmt}"
    if fmt == "jsonl":
        write_jsonl(path, rows)
    elif fmt == "csv":
        names = sorted({k for r in rows for k in r})
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, names)
            w.writeheader()
            w.writerows(rows)
    else:
        names = sorted({k for r in rows for k in r})
        cols = {n: pa.array([None if r.get(n) is None else str(r[n]) for r in rows]) for n in names}
        cols["time"] = pa.array([r.get("time") for r in rows], pa.int64())
        pq.write_table(pa.table(cols), path)
    return path


def _ingest(make_store, tmp_path, name: str, path, fmt: str, chunk_rows: int):
    store = make_store({APP: "secret-batch-01"}, name=name)
    rejects = []
    ing = Ingestor(store, "visit", on_reject=rejects.append)
    try:
        total, _ = ing.ingest_sources([(str(path), fmt)], chunk_rows=chunk_rows)
    finally:
        ing.close()
    snap = AppSnapshot(store.app_dir(APP))
    try:
        stored = pa.concat_tables([pq.read_table(p) for p in snap.raw_files()])
        openids = snap.openids()
    finally:
        snap.close()
    records = sorted(
        zip(
            [openids[u] for u in stored.column("uid").to_pylist()],
            stored.column("time_ms").to_pylist(),
            stored.column("age").to_pylist(),
            stored.column("province_id").to_pylist(),
            stored.column("event_id").to_pylist(),
            strict=True,
        ),
        key=repr,
    )
    verdicts = [(r.line, r.kind, r.reason) for r in rejects]
    return total.as_dict(), verdicts, records


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_chunk_edges_change_no_verdict_and_no_stored_record(make_store, tmp_path, fmt):
    rows = _rows()
    path = _write(tmp_path, fmt, rows)
    whole = _ingest(make_store, tmp_path, "whole", path, fmt, 1000)
    summary, verdicts, records = whole
    assert summary["accepted"] == 12 + 2 + 1 + 1  # the group's two contents, one event id
    assert summary["duplicates"] == 2 + 1 + 1  # in the group, of the event id, the last row
    assert summary["filtered_reasons"] == {"bot": 1, "devtools": 1}
    assert summary["rejected_reasons"] == {"age": 1, "time": 1}
    first = 2 if fmt == "csv" else 1  # a CSV's first record is on line 2
    assert [v[:2] for v in verdicts] == [(first + 21, "age"), (first + 22, "time")]
    assert len(records) == summary["accepted"]
    for chunk_rows in (1, 3, 7):
        assert _ingest(make_store, tmp_path, f"c{chunk_rows}", path, fmt, chunk_rows) == whole


def test_formats_agree(make_store, tmp_path):
    rows = _rows()
    got = {
        fmt: _ingest(make_store, tmp_path, fmt, _write(tmp_path, fmt, rows), fmt, 4)
        for fmt in ("jsonl", "csv", "parquet")
    }
    # verdicts and stored records agree; only CSV's line numbers are one more (the header)
    assert got["jsonl"][0] == got["csv"][0] == got["parquet"][0]
    assert got["jsonl"][2] == got["csv"][2] == got["parquet"][2]
    assert [(line + 1, *v) for line, *v in got["jsonl"][1]] == [tuple(v) for v in got["csv"][1]]
