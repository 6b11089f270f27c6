"""The one place the Spark job touches the dimension catalogue (regions, names, age buckets).

Locations travel through the job packed as ``province_id * 10**6 + city_id`` (county-level city
ids have six digits), so the executors and the ``--store`` reader need no dense location table;
the driver turns the collected counts back into the columns' codes, and the lists are made by the
engine's own code from :data:`weanalysis.dims.DIMENSIONS` (one owner of the document's format).
"""

from __future__ import annotations

import numpy as np

from weanalysis import dims
from weanalysis.dims import regions
from weanalysis.portrait.engine import ranked_items
from weanalysis.portrait.query import UserSet

LOC_PACK = 1_000_000
# age -> age bucket id, indexed by age in years (0..150)
AGE_BUCKETS = [dims.age_bucket(a) for a in range(dims.MIN_AGE, dims.MAX_AGE + 1)]
_LOC_CODE = {p * LOC_PACK + c: i for i, (p, c) in enumerate(regions.LOCATIONS)}


def packed_locations(loc_codes: np.ndarray) -> np.ndarray:
    """Dense location codes (as the enrichment gives them) -> packed province/city ids."""
    loc = loc_codes.astype(np.int64)
    return (regions.LOC_PROVINCE[loc].astype(np.int64) * LOC_PACK + regions.LOC_CITY[loc]).astype(
        np.int32
    )


def user_set(total: int, counts: dict[str, dict]) -> UserSet:
    """Users per value of each column -> the ranked lists of SPEC.md section 3.

    ``counts`` maps a column name (``loc``, ``plat``, ``dev``, ``gender``, ``age``) to
    ``{value: users}``: packed locations, ids, or device names (None: unknown).
    """
    arrays: dict[str, np.ndarray] = {}
    names: dict[str, list[str | None]] = {}
    for col in dims.COLUMNS:
        got = counts.get(col.name, {})
        if col.size is None:  # numbered by the data: code 0 is unknown, then the names
            names[col.name] = [None, *sorted(n for n in got if n is not None)]
            code = {n: i for i, n in enumerate(names[col.name])}
            arr = np.zeros(len(names[col.name]), dtype=np.int64)
            for n, v in got.items():
                arr[code[n]] += v
        else:
            arr = np.zeros(col.size, dtype=np.int64)
            for value, v in got.items():
                arr[_LOC_CODE[value] if col.name == "loc" else value] += v
        arrays[col.name] = arr
    lists = {
        d.list_name: ranked_items(d, arrays[d.column.name], names.get(d.column.name))
        for d in dims.DIMENSIONS
    }
    return UserSet(total=total, lists=lists)
