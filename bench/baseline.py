"""The naive DuckDB baseline of SPEC.md section 3: strings, ``arg_max`` and GROUPING SETS.

Preparation (one-off, not timed with the query) loads the store's raw segments into native
DuckDB tables with the attributes as *strings*, the way a team would model it in SQL:

* ``visits(uid, seq, time_ms, day, province, city, platform, device)``: names, NULL unknown;
* ``persons(uid, seq, t, day, gender, age)``: every visit and profile that knows gender or the
  age bucket (undated profiles have ``t`` = the smallest BIGINT, so they come first);
* ``users(uid, first_day)``: the first visit day of each user (weanalysis keeps the same
  array, ``first_day``, up to date at ingest).

The timed query is then one SQL statement per window; its rows become the same document as
weanalysis' (:func:`weanalysis.wechat.dialect.portrait_document`).

``python -m bench.baseline --store DIR --appid ID`` runs it alone against an existing store.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import duckdb
import pyarrow as pa

from weanalysis import dims
from weanalysis.dims import TOP_DEVICES, regions
from weanalysis.portrait.query import PortraitQuery
from weanalysis.store import AppSnapshot, Store

UNKNOWN = dims.UNKNOWN
MIN_BIGINT = -(2**63)

QUERY = """
WITH last AS (
    SELECT uid,
        arg_max({'p': province, 'c': city}, (time_ms, seq))
            FILTER (WHERE province IS NOT NULL) AS loc,
        arg_max(platform, (time_ms, seq)) FILTER (WHERE platform IS NOT NULL) AS platform,
        arg_max(device, (time_ms, seq)) FILTER (WHERE device IS NOT NULL) AS device
    FROM visits
    WHERE day BETWEEN $b AND $e
    GROUP BY uid
),
person AS (
    SELECT uid,
        arg_max(gender, (t, seq)) FILTER (WHERE gender IS NOT NULL) AS gender,
        arg_max(age, (t, seq)) FILTER (WHERE age IS NOT NULL) AS age
    FROM persons
    WHERE (day IS NULL OR day <= $e) AND uid IN (SELECT uid FROM last)
    GROUP BY uid
),
t AS (
    SELECT
        coalesce(l.loc.p, '未知') AS province,
        coalesce(l.loc.c, '未知') AS city,
        coalesce(p.gender, '未知') AS gender,
        coalesce(p.age, '未知') AS age,
        coalesce(l.platform, '未知') AS platform,
        coalesce(l.device, '未知') AS device,
        (u.first_day >= $b)::INTEGER AS is_new
    FROM last l
    JOIN users u USING (uid)
    LEFT JOIN person p USING (uid)
)
SELECT
    CASE
        WHEN grouping(province) = 0 THEN 'province'
        WHEN grouping(city) = 0 THEN 'city'
        WHEN grouping(gender) = 0 THEN 'genders'
        WHEN grouping(age) = 0 THEN 'ages'
        WHEN grouping(platform) = 0 THEN 'platforms'
        ELSE 'devices'
    END AS attr,
    coalesce(province, city, gender, age, platform, device) AS value,
    count(*) AS active,
    sum(is_new) AS new
FROM t
GROUP BY GROUPING SETS ((province), (city), (gender), (age), (platform), (device))
"""


def _dictionaries() -> dict[str, pa.Table]:
    """id -> name tables (unknown ids are left out, so they join to NULL)."""
    provinces = {p: regions.province_name(p) for p in regions.PROVINCES}
    provinces[regions.OVERSEAS_PROVINCE] = regions.OVERSEAS_NAME
    cities = {c: regions.city_name(c) for c in regions.CITIES}
    cities[regions.OVERSEAS_CITY] = regions.OVERSEAS_NAME
    platforms = {k: v for k, v in dims.PLATFORM_NAMES.items() if k}
    genders = {k: v for k, v in dims.GENDER_NAMES.items() if k}
    ages = {a: dims.AGE_NAMES[dims.age_bucket(a)] for a in range(dims.MIN_AGE, dims.MAX_AGE + 1)}

    def table(d: dict[int, str]) -> pa.Table:
        return pa.table({"id": list(d), "name": list(d.values())})

    return {
        "d_province": table(provinces),
        "d_city": table(cities),
        "d_platform": table(platforms),
        "d_gender": table(genders),
        "d_age": table(ages),
    }


def _ids() -> dict[str, dict[str, int]]:
    """name -> id, per list, to turn the query's names back into the document's ids."""
    prov = {regions.province_name(p): p for p in regions.PROVINCES}
    city = {regions.city_name(c): c for c in regions.CITIES}
    if len(city) != len(regions.CITIES):
        raise AssertionError("city names are not unique: the baseline must group by (p, c)")
    for d, unknown, overseas in ((prov, 0, 99), (city, 0, 9900)):
        d[UNKNOWN] = unknown
        d[regions.OVERSEAS_NAME] = overseas
    flip = {v: k for k, v in dims.GENDER_NAMES.items()}
    return {
        "province": prov,
        "city": city,
        "genders": flip,
        "ages": {v: k for k, v in dims.AGE_NAMES.items()},
        "platforms": {v: k for k, v in dims.PLATFORM_NAMES.items()},
    }


def _sql_list(paths: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


class DuckBaseline:
    def __init__(self, db_path: Path, threads: int | None = None):
        self.db_path = db_path
        self.con = duckdb.connect(str(db_path))
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        self.ids = _ids()

    def close(self) -> None:
        self.con.close()

    def prepare(self, snap: AppSnapshot) -> dict[str, int]:
        """Loads the snapshot's raw segments into native tables; returns row counts."""
        con = self.con
        for name, table in _dictionaries().items():
            con.register(name, table)
        raw = snap.raw_files()
        visits = [p for p in raw if p.name.startswith("visits-")]
        profiles = [p for p in raw if p.name.startswith("profiles-")]
        con.execute("DROP TABLE IF EXISTS visits; DROP TABLE IF EXISTS persons;")
        con.execute("DROP TABLE IF EXISTS users")
        con.execute(
            f"""
            CREATE TABLE visits AS
            SELECT v.uid::UINTEGER AS uid, v.seq, v.time_ms, v.day,
                   p.name AS province, c.name AS city, pl.name AS platform,
                   v.device::VARCHAR AS device
            FROM read_parquet({_sql_list(visits)}) v
            LEFT JOIN d_province p ON p.id = v.province_id
            LEFT JOIN d_city c ON c.id = v.city_id
            LEFT JOIN d_platform pl ON pl.id = v.platform
            ORDER BY v.seq
            """
        )
        person_src = [
            f"SELECT uid, seq, time_ms, day, gender, age FROM read_parquet({_sql_list(files)})"
            for files in (visits, profiles)
            if files
        ]
        con.execute(
            f"""
            CREATE TABLE persons AS
            SELECT r.uid::UINTEGER AS uid, r.seq, coalesce(r.time_ms, {MIN_BIGINT}) AS t,
                   r.day, g.name AS gender, a.name AS age
            FROM ({" UNION ALL ".join(person_src)}) r
            LEFT JOIN d_gender g ON g.id = r.gender
            LEFT JOIN d_age a ON a.id = r.age
            WHERE r.gender > 0 OR r.age IS NOT NULL
            ORDER BY r.seq
            """
        )
        con.execute(
            "CREATE TABLE users AS SELECT uid, min(day) AS first_day FROM visits GROUP BY uid"
        )
        con.execute("CHECKPOINT")
        counts = {}
        for t in ("visits", "persons", "users"):
            counts[t] = con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        return counts

    def rows(self, q: PortraitQuery) -> list[tuple[str, str, int, int]]:
        return self.con.execute(QUERY, {"b": q.begin, "e": q.end}).fetchall()

    def document(self, q: PortraitQuery) -> dict:
        """The portrait document of ``q``, built from the query's rows."""
        return to_document(q, self.rows(q), self.ids)


def to_document(q: PortraitQuery, rows: list[tuple], ids: dict[str, dict[str, int]]) -> dict:
    lists: dict[str, dict[str, list]] = {"active": {}, "new": {}}
    for which, col in (("active", 2), ("new", 3)):
        by_attr: dict[str, list] = {a: [] for a in ("province", "city", "genders", "platforms")}
        by_attr["devices"] = []
        by_attr["ages"] = []
        for r in rows:
            value = int(r[col])
            if value > 0:
                by_attr[r[0]].append((r[1], value))
        out: dict[str, list] = {}
        for attr, items in by_attr.items():
            if attr == "devices":
                items.sort(key=lambda it: (-it[1], it[0]))
                out[attr] = [{"name": n, "value": v} for n, v in items[:TOP_DEVICES]]
            else:
                named = [(ids[attr][n], n, v) for n, v in items]
                named.sort(key=lambda it: (-it[2], it[0]))
                out[attr] = [{"id": i, "name": n, "value": v} for i, n, v in named]
        lists[which] = out
    order = ("province", "city", "genders", "platforms", "devices", "ages")
    return {
        "ref_date": q.ref_date,
        "visit_uv_new": {k: lists["new"][k] for k in order},
        "visit_uv": {k: lists["active"][k] for k in order},
    }


def diff(a: dict, b: dict, limit: int = 5) -> list[str]:
    """Human-readable differences between two portrait documents (first ``limit`` per list)."""
    out: list[str] = []
    if a.get("ref_date") != b.get("ref_date"):
        out.append(f"ref_date: {a.get('ref_date')} != {b.get('ref_date')}")
    for uv in ("visit_uv_new", "visit_uv"):
        for name in sorted(set(a.get(uv, {})) | set(b.get(uv, {}))):
            la, lb = a.get(uv, {}).get(name), b.get(uv, {}).get(name)
            if la == lb:
                continue
            da = {(it.get("id"), it["name"]): it["value"] for it in la or []}
            db = {(it.get("id"), it["name"]): it["value"] for it in lb or []}
            bad = [
                f"{k}: {da.get(k)} vs {db.get(k)}" for k in sorted(set(da) | set(db), key=str)
                if da.get(k) != db.get(k)
            ]  # fmt: skip
            if not bad:
                bad = ["same items, different order"]
            out.append(
                f"{uv}.{name}: " + "; ".join(bad[:limit]) + (" ..." if len(bad) > limit else "")
            )
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m bench.baseline",
        description="Run the naive DuckDB baseline against an existing store and print documents.",
    )
    p.add_argument("--store", type=Path, required=True, help="the weanalysis data folder")
    p.add_argument("--appid", required=True, help="the app to query")
    p.add_argument("--db", type=Path, default=None, help="DuckDB file (default: STORE/../bl.db)")
    p.add_argument("--window", type=int, choices=(1, 7, 30), default=30, help="days (%(default)s)")
    a = p.parse_args(argv)
    store = Store(a.store)
    snap = store.snapshot(a.appid)
    db = a.db or a.store.parent / "baseline.duckdb"
    db.unlink(missing_ok=True)
    bl = DuckBaseline(db)
    t0 = time.perf_counter()
    counts = bl.prepare(snap)
    print(f"prepared in {time.perf_counter() - t0:.1f} s: {counts}")
    last = max(snap.day_numbers())
    q = PortraitQuery(a.appid, last - a.window + 1, last)
    t0 = time.perf_counter()
    doc = bl.document(q)
    print(f"query {time.perf_counter() - t0:.3f} s")
    print(json.dumps(doc, ensure_ascii=False)[:2000])


if __name__ == "__main__":
    main()
