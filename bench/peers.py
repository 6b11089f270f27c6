"""The two tuned peers of the portrait query: Polars and DuckDB over packed per-(user, day) rows.

What a skilled team would build on the same stored records (preparation untimed):

* one row per (user, day) active that day; each visit attribute is the day's latest known value
  (latest by time, ties by storage order), packed as ``day * 2^32 + code`` (NULL when unknown
  that day), so "the latest known value in the window" is a plain ``max()`` per user; the
  location code is ``province * 10^6 + city``; devices are numbered;
* the first visit day of each user, for "new";
* gender and age as change points per user: one row per (user, slot) whose latest known value
  differs from the user's previous one, packed ``slot * 16 + value`` (undated profiles on slot 1,
  day d on slot d + 2), so the value as of day e is the ``max()`` over ``slot <= e + 2``.

The query filters the window, groups by user with ``max()``, joins first days and person values,
then counts each list (Polars: one ``group_by().len()`` per list; DuckDB: GROUPING SETS). Each
answer becomes the same document as weanalysis' (via :func:`bench.baseline.to_document`).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from bench.baseline import _ids, to_document
from weanalysis import dims
from weanalysis.dims import regions
from weanalysis.portrait.query import PortraitQuery
from weanalysis.store import AppSnapshot

UNKNOWN = dims.UNKNOWN
DAY_SHIFT = 1 << 32
LOC_MUL = 1_000_000
MS_PER_DAY = 86_400_000
SEQ_BITS = 27
ATTR_CODE = {"gender": 1, "age": 2}
AGE_BUCKETS = np.array(
    [dims.age_bucket(a) for a in range(dims.MIN_AGE, dims.MAX_AGE + 1)], dtype=np.int8
)
LISTS = ("province", "city", "genders", "ages", "platforms", "devices")


def _order_key(time_ms: pl.Expr, day: pl.Expr) -> pl.Expr:
    """One int64 ordering rows of the same (user, day) by (time, seq): the time within the day
    (< 2^28 ms with any UTC offset) above the storage sequence (< 2^27 at bench sizes)."""
    t_off = (time_ms - day.cast(pl.Int64) * MS_PER_DAY + (1 << 27)).fill_null(0)
    return t_off * (1 << SEQ_BITS) + pl.col("seq")


def _empty_days() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "uid": pl.UInt32,
            "day": pl.Int32,
            "loc": pl.Int64,
            "plat": pl.Int64,
            "dev": pl.Int64,
        }
    )


def _latest(df: pl.DataFrame, keys: list[str], col: str) -> pl.DataFrame:
    """Per ``keys``, the value of ``col`` of the latest row (by the order key) that knows it."""
    return (
        df.lazy()
        .filter(pl.col(col).is_not_null())
        .group_by(keys)
        .agg(pl.col(col).get(pl.col("k").arg_max()))
        .collect()
    )


class PackedRows:
    """The packed tables both peers query, built once from a snapshot's raw segments, one day
    at a time (so the preparation's memory stays near the size of its output)."""

    def __init__(self, snap: AppSnapshot):
        raw = snap.raw_files()
        visits = [str(p) for p in raw if p.name.startswith("visits-")]
        profiles = [str(p) for p in raw if p.name.startswith("profiles-")]
        self.device_names: list[str] = [UNKNOWN]
        dev_code: dict[str, int] = {}
        cols = ["uid", "seq", "time_ms", "day", "gender", "age"]
        visit_cols = [*cols, "province_id", "city_id", "platform", "device"]
        ds = pads.dataset(visits, format="parquet") if visits else None
        day_parts: list[pl.DataFrame] = []
        person_parts: list[pl.DataFrame] = []
        for d in snap.day_numbers() if ds is not None else []:
            t = ds.to_table(columns=visit_cols, filter=pc.field("day") == d)
            if t.num_rows >= 1 << SEQ_BITS:
                raise ValueError("too many visits in a day for the peers' order key")
            codes = self._device_codes(t.column("device"), dev_code)
            v = pl.from_arrow(t.drop_columns(["device"])).with_columns(
                pl.Series("dev", codes).replace(0, None)
            )
            day_parts.append(self._day_rows(v))
            person_parts.append(self._person_rows(v))
        self.days = pl.concat(day_parts, rechunk=False) if day_parts else _empty_days()
        del day_parts
        self.first = self.days.group_by("uid").agg(pl.col("day").min().alias("first_day"))
        if profiles:
            person_parts.append(self._person_rows(pl.read_parquet(profiles, columns=cols)))
        p = pl.concat(person_parts, how="vertical_relaxed", rechunk=False)
        del person_parts
        self.persons = {a: self._changes(p, a) for a in ("gender", "age")}

    def _device_codes(self, col: pa.ChunkedArray, dev_code: dict[str, int]) -> np.ndarray:
        """Device names -> codes 1.. numbered over the whole preparation (0: unknown)."""
        out = []
        for chunk in col.chunks:
            if not pa.types.is_dictionary(chunk.type):
                chunk = chunk.dictionary_encode()
            table = np.zeros(len(chunk.dictionary) + 1, dtype=np.int32)
            for i, name in enumerate(chunk.dictionary.to_pylist()):
                code = dev_code.get(name)
                if code is None:
                    self.device_names.append(name)
                    code = dev_code[name] = len(self.device_names) - 1
                table[i] = code
            idx = chunk.indices.fill_null(len(chunk.dictionary)).to_numpy(zero_copy_only=False)
            out.append(table[idx])
        return np.concatenate(out) if out else np.zeros(0, np.int32)

    @staticmethod
    def _day_rows(v: pl.DataFrame) -> pl.DataFrame:
        """One day's visits -> one row per user with each column's latest known value."""
        known_loc = (pl.col("province_id") > 0) | (pl.col("city_id") > 0)
        v = v.select(
            pl.col("uid").cast(pl.UInt32),
            pl.col("day").cast(pl.Int32),
            _order_key(pl.col("time_ms"), pl.col("day")).alias("k"),
            pl.when(known_loc)
            .then(pl.col("province_id").cast(pl.Int32) * LOC_MUL + pl.col("city_id"))
            .alias("loc"),
            pl.when(pl.col("platform") > 0).then(pl.col("platform").cast(pl.Int32)).alias("plat"),
            "dev",
        )
        one = v.select("uid", "day").unique()
        for col in ("loc", "plat", "dev"):
            last = _latest(v, ["uid", "day"], col).with_columns(
                (pl.col("day").cast(pl.Int64) * DAY_SHIFT + pl.col(col)).alias(col)
            )
            one = one.join(last, on=["uid", "day"], how="left")
        return one

    @staticmethod
    def _person_rows(r: pl.DataFrame) -> pl.DataFrame:
        """Records -> per (user, slot) the latest known gender and age (with their order)."""
        r = r.filter((pl.col("gender") > 0) | pl.col("age").is_not_null()).select(
            pl.col("uid").cast(pl.UInt32),
            pl.when(pl.col("day").is_null())
            .then(1)
            .otherwise(pl.col("day").cast(pl.Int64) + 2)
            .alias("slot"),
            _order_key(pl.col("time_ms"), pl.col("day")).alias("k"),
            pl.when(pl.col("gender") > 0).then(pl.col("gender").cast(pl.Int64)).alias("gender"),
            pl.col("age")
            .replace_strict(
                list(range(len(AGE_BUCKETS))), AGE_BUCKETS.tolist(), return_dtype=pl.Int64
            )
            .alias("age"),
        )
        out = []
        for a in ("gender", "age"):
            kept = (
                r.lazy()
                .filter(pl.col(a).is_not_null())
                .group_by("uid", "slot")
                .agg(pl.col(a).get(pl.col("k").arg_max()), pl.col("k").max())
                .collect()
            )
            out.append(kept.with_columns(pl.lit(ATTR_CODE[a], dtype=pl.Int8).alias("attr")))
        return pl.concat(
            [o.rename({a: "value"}) for o, a in zip(out, ("gender", "age"), strict=True)],
            how="vertical_relaxed",
        )

    @staticmethod
    def _changes(p: pl.DataFrame, a: str) -> pl.DataFrame:
        """Change points of a person attribute, packed ``slot * 16 + value``."""
        last = (
            p.lazy()
            .filter(pl.col("attr") == ATTR_CODE[a])
            .group_by("uid", "slot")
            .agg(pl.col("value").get(pl.col("k").arg_max()).alias(a))
            .sort("uid", "slot")
            .collect()
        )
        changed = (pl.col(a) != pl.col(a).shift(1).over("uid")).fill_null(True)
        return last.filter(changed).select(
            "uid", (pl.col("slot") * 16 + pl.col(a)).alias("p"), pl.col("slot")
        )

    def rows_of_counts(self, counts: dict[str, dict[int, tuple[int, int]]]) -> list[tuple]:
        """``{list: {code: (active, new)}}`` -> the (list, name, active, new) rows of the
        baseline, so one function turns every engine's counts into a document."""
        name_of = {
            "province": regions.province_name,
            "city": regions.city_name,
            "genders": dims.GENDER_NAMES.__getitem__,
            "ages": dims.AGE_NAMES.__getitem__,
            "platforms": dims.PLATFORM_NAMES.__getitem__,
            "devices": self.device_names.__getitem__,
        }
        return [
            (attr, name_of[attr](code), act, new)
            for attr, per in counts.items()
            for code, (act, new) in per.items()
        ]


def _codes_expr() -> list[pl.Expr]:
    loc = (pl.col("loc") % DAY_SHIFT).fill_null(0)
    return [
        (loc // LOC_MUL).alias("province"),
        (loc % LOC_MUL).alias("city"),
        (pl.col("gp") % 16).fill_null(0).alias("genders"),
        (pl.col("ap") % 16).fill_null(0).alias("ages"),
        (pl.col("plat") % DAY_SHIFT).fill_null(0).alias("platforms"),
        (pl.col("dev") % DAY_SHIFT).fill_null(0).alias("devices"),
    ]


class PolarsPeer:
    def __init__(self, packed: PackedRows):
        self.p = packed
        self.ids = _ids()

    def document(self, q: PortraitQuery) -> dict:
        p = self.p
        w = (
            p.days.lazy()
            .filter(pl.col("day").is_between(q.begin, q.end))
            .group_by("uid")
            .agg(pl.col("loc").max(), pl.col("plat").max(), pl.col("dev").max())
        )
        limit = (q.end + 3) * 16
        for a, alias in (("gender", "gp"), ("age", "ap")):
            person = (
                p.persons[a]
                .lazy()
                .filter(pl.col("p") < limit)
                .group_by("uid")
                .agg(pl.col("p").max().alias(alias))
            )
            w = w.join(person, on="uid", how="left")
        w = w.join(p.first.lazy(), on="uid", how="left")
        t = w.select(*_codes_expr(), (pl.col("first_day") >= q.begin).alias("is_new"))
        frames = [
            t.group_by(attr).agg(pl.len().alias("active"), pl.col("is_new").sum().alias("new"))
            for attr in LISTS
        ]
        results = pl.collect_all(frames)
        counts = {
            attr: {
                int(c): (int(a), int(n))
                for c, a, n in zip(df[attr], df["active"], df["new"], strict=True)
            }
            for attr, df in zip(LISTS, results, strict=True)
        }
        return to_document(q, p.rows_of_counts(counts), self.ids)


DUCK_QUERY = """
WITH w AS (
    SELECT uid, max(loc) AS loc, max(plat) AS plat, max(dev) AS dev
    FROM days WHERE day BETWEEN $b AND $e GROUP BY uid
),
g AS (SELECT uid, max(p) AS gp FROM gender WHERE p < $limit GROUP BY uid),
a AS (SELECT uid, max(p) AS ap FROM age WHERE p < $limit GROUP BY uid),
t AS (
    SELECT
        coalesce(w.loc % 4294967296, 0) // 1000000 AS province,
        coalesce(w.loc % 4294967296, 0) % 1000000 AS city,
        coalesce(g.gp % 16, 0) AS genders,
        coalesce(a.ap % 16, 0) AS ages,
        coalesce(w.plat % 4294967296, 0) AS platforms,
        coalesce(w.dev % 4294967296, 0) AS devices,
        (f.first_day >= $b)::INTEGER AS is_new
    FROM w JOIN first f USING (uid)
    LEFT JOIN g USING (uid)
    LEFT JOIN a USING (uid)
)
SELECT
    CASE
        WHEN grouping(province) = 0 THEN 'province'
        WHEN grouping(city) = 0 THEN 'city'
        WHEN grouping(genders) = 0 THEN 'genders'
        WHEN grouping(ages) = 0 THEN 'ages'
        WHEN grouping(platforms) = 0 THEN 'platforms'
        ELSE 'devices'
    END AS attr,
    coalesce(province, city, genders, ages, platforms, devices) AS code,
    count(*) AS active,
    sum(is_new) AS new
FROM t
GROUP BY GROUPING SETS ((province), (city), (genders), (ages), (platforms), (devices))
"""


class DuckPeer:
    def __init__(self, packed: PackedRows, db_path: Path):
        self.p = packed
        self.ids = _ids()
        self.con = duckdb.connect(str(db_path))
        tables = {
            "days": packed.days.to_arrow(),
            "first": packed.first.to_arrow(),
            "gender": packed.persons["gender"].to_arrow(),
            "age": packed.persons["age"].to_arrow(),
        }
        for name, table in tables.items():
            self.con.register("src", table)
            self.con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM src")
            self.con.unregister("src")
        self.con.execute("CHECKPOINT")

    def close(self) -> None:
        self.con.close()

    def document(self, q: PortraitQuery) -> dict:
        params = {"b": q.begin, "e": q.end, "limit": (q.end + 3) * 16}
        counts: dict[str, dict[int, tuple[int, int]]] = {a: {} for a in LISTS}
        for attr, code, act, new in self.con.execute(DUCK_QUERY, params).fetchall():
            counts[attr][int(code)] = (int(act), int(new))
        return to_document(q, self.p.rows_of_counts(counts), self.ids)
