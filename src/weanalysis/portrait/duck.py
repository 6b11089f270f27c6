"""DuckDB over the stored raw records, as a :class:`~weanalysis.portrait.source.PortraitSource`.

A second, independent way to the same per-user values: it reads only the raw Parquet segments
(every accepted record with its storage order ``seq`` and local ``day``) and, once retention
deleted old records, the retained state's first days and person entries (older than every raw
record; see :mod:`weanalysis.store.retention`), and computes SPEC.md section 3 in SQL with
``arg_max`` over ``(time, seq)`` — none of the store's day summaries, person logs or first-day
array. The tests check that the engine gives equal documents over this
source and over the embedded store, so a bug in the store's derived structures cannot hide.

Needs the ``duckdb`` package (a development dependency).
"""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from weanalysis.dims import COLUMN, MAX_AGE, MIN_AGE, age_bucket, regions
from weanalysis.portrait.source import Window, WindowCounts
from weanalysis.store.retention import PROPS, WindowBeforeRetention

MIN_BIGINT = -(2**63)

_WINDOW = """
WITH w AS (
    SELECT v.uid, v.time_ms, v.seq, l.code AS loc, v.platform AS plat, d.code AS dev
    FROM visits v
    LEFT JOIN locations l ON l.p = v.province_id AND l.c = v.city_id
    LEFT JOIN devices d ON d.name = v.device
    WHERE v.day BETWEEN $b AND $e
)
SELECT uid,
    coalesce(arg_max(loc, (time_ms, seq)) FILTER (WHERE loc > 0), 0) AS loc,
    coalesce(arg_max(plat, (time_ms, seq)) FILTER (WHERE plat > 0), 0) AS plat,
    coalesce(arg_max(dev, (time_ms, seq)) FILTER (WHERE dev > 0), 0) AS dev,
    any_value(f.first_day) AS first_day
FROM w JOIN first_days f USING (uid)
GROUP BY uid
ORDER BY uid
"""

_PERSON = """
SELECT u.uid, coalesce(arg_max(p.value, (p.t, p.seq)), 0) AS value
FROM users u
LEFT JOIN persons p ON p.uid = u.uid AND p.name = $name AND (p.day IS NULL OR p.day <= $e)
GROUP BY u.uid
ORDER BY u.uid
"""


def _sql_list(paths: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


class DuckSource:
    """The records of one app's raw segments, loaded into an in-memory DuckDB."""

    def __init__(
        self,
        raw_files: list[Path],
        token: Hashable = 0,
        retained: dict[str, np.ndarray] | None = None,
        retained_from: int | None = None,
    ):
        self._token = token
        self._from = retained_from
        self.con = duckdb.connect(":memory:")
        con = self.con
        locs = regions.LOCATIONS
        con.register(
            "locations",
            pa.table(
                {
                    "code": pa.array(range(len(locs)), pa.int32()),
                    "p": [p for p, _ in locs],
                    "c": [c for _, c in locs],
                }
            ),
        )
        ages = list(range(MIN_AGE, MAX_AGE + 1))
        con.register("age_buckets", pa.table({"age": ages, "bucket": map(age_bucket, ages)}))
        visits = [p for p in raw_files if p.name.startswith("visits-")]
        profiles = [p for p in raw_files if p.name.startswith("profiles-")]
        cols = "uid, seq, time_ms, day, province_id, city_id, platform, device, gender, age"
        if visits:
            con.execute(
                f"CREATE TABLE visits AS SELECT {cols} FROM read_parquet({_sql_list(visits)})"
            )
        else:
            con.execute(
                "CREATE TABLE visits (uid UINTEGER, seq BIGINT, time_ms BIGINT, day INTEGER, "
                "province_id INTEGER, city_id INTEGER, platform TINYINT, device VARCHAR, "
                "gender TINYINT, age SMALLINT)"
            )
        kept = retained or {}
        con.register(
            "kept_first",
            pa.table(
                {
                    "uid": pa.array(kept.get("first_uid", []), pa.uint32()),
                    "day": pa.array(kept.get("first_day", []), pa.int32()),
                }
            ),
        )
        parts = []
        for p in PROPS:  # the retained entries, stored before every raw record (seq -1)
            parts.append(
                pa.table(
                    {
                        "uid": pa.array(kept.get(f"{p}_uid", []), pa.uint32()),
                        "seq": pa.array([-1] * len(kept.get(f"{p}_uid", [])), pa.int64()),
                        "t": pa.array(kept.get(f"{p}_t", []), pa.int64()),
                        "day": pa.array(kept.get(f"{p}_day", []), pa.int32()),
                        "name": pa.array([p] * len(kept.get(f"{p}_uid", [])), pa.string()),
                        "value": pa.array(kept.get(f"{p}_val", []), pa.int32()),
                    }
                )
            )
        con.register("kept_persons", pa.concat_tables(parts))
        con.execute(
            "CREATE TABLE first_days AS SELECT uid, min(day) AS first_day FROM "
            "(SELECT uid, day FROM visits UNION ALL SELECT uid, day FROM kept_first) GROUP BY uid"
        )
        con.execute(
            "CREATE TABLE devices AS SELECT row_number() OVER (ORDER BY name)::INTEGER AS code, "
            "name FROM (SELECT DISTINCT device AS name FROM visits WHERE device IS NOT NULL)"
        )
        records = ["SELECT uid, seq, time_ms, day, gender, age FROM visits"]
        if profiles:
            records.append(
                "SELECT uid, seq, time_ms, day, gender, age "
                f"FROM read_parquet({_sql_list(profiles)})"
            )
        con.execute(
            f"""
            CREATE TABLE persons AS
            WITH r AS ({" UNION ALL ".join(records)})
            SELECT uid, seq, coalesce(time_ms, {MIN_BIGINT}) AS t, day, 'gender' AS name,
                   gender::INTEGER AS value
            FROM r WHERE gender > 0
            UNION ALL
            SELECT uid, seq, coalesce(time_ms, {MIN_BIGINT}) AS t, day, 'age' AS name,
                   a.bucket::INTEGER AS value
            FROM r JOIN age_buckets a ON a.age = r.age
            UNION ALL
            SELECT uid, seq, t, day, name, value FROM kept_persons
            """
        )
        self._names = [
            None,
            *(n for (n,) in con.execute("SELECT name FROM devices ORDER BY code").fetchall()),
        ]

    @classmethod
    def of_snapshot(cls, snap) -> DuckSource:  # an AppSnapshot of the embedded store
        from weanalysis.store import retention

        m = snap.manifest
        kept = retention.load(snap.dir, m)
        return cls(snap.raw_files(), snap.version, kept, retention.retained_from(m))

    def close(self) -> None:
        self.con.close()

    def days(self) -> list[int]:
        rows = self.con.execute("SELECT DISTINCT day FROM visits ORDER BY day").fetchall()
        return [int(d) for (d,) in rows]

    def token(self) -> Hashable:
        return self._token

    def unchanged_since(self, token: Hashable, end_day: int) -> bool:
        return token == self._token

    def counts(self, begin: int, end: int) -> WindowCounts | None:
        return None  # computes every window from the records

    def retained_from(self) -> int | None:
        return self._from

    def window(self, begin: int, end: int) -> Window:
        if self._from is not None and begin < self._from:
            raise WindowBeforeRetention(begin, self._from)
        t = self.con.execute(_WINDOW, {"b": begin, "e": end}).fetchnumpy()
        users = np.asarray(t["uid"], dtype=np.uint32)
        values = {
            name: np.asarray(t[name], dtype=COLUMN[name].dtype) for name in ("loc", "plat", "dev")
        }
        return Window(users, np.asarray(t["first_day"], dtype=np.int32), values)

    def person_values(self, column: str, users: np.ndarray, end_day: int) -> np.ndarray:
        self.con.register("users", pa.table({"uid": pa.array(users, pa.uint32())}))
        t = self.con.execute(_PERSON, {"name": column, "e": end_day}).fetchnumpy()
        self.con.unregister("users")
        got = dict(zip(t["uid"].tolist(), t["value"].tolist(), strict=True))
        return np.array([got[int(u)] for u in users], dtype=COLUMN[column].dtype)

    def value_names(self, column: str) -> list[str | None]:
        if COLUMN[column].size is not None:
            raise KeyError(f"column {column} has fixed names")
        return self._names
