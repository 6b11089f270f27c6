"""The one place the Spark job touches the dimension catalogue (regions, names, age buckets).

Locations travel through the job packed as ``province_id * 10**6 + city_id`` (county-level city
ids have six digits), so the job needs no dense location table; the driver unpacks the counts.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from weanalysis import dims
from weanalysis.enrich import regions
from weanalysis.portrait.query import Item, UserSet

LOC_PACK = 1_000_000
TOP_DEVICES = 20
UNKNOWN = dims.UNKNOWN
# age -> age bucket id, indexed by age in years (0..150)
AGE_BUCKETS = [dims.age_bucket(a) for a in range(dims.MIN_AGE, dims.MAX_AGE + 1)]


def packed_locations(loc_codes: np.ndarray) -> np.ndarray:
    """Dense location codes (as the enrichment gives them) -> packed province/city ids."""
    loc = loc_codes.astype(np.int64)
    return (regions.LOC_PROVINCE[loc].astype(np.int64) * LOC_PACK + regions.LOC_CITY[loc]).astype(
        np.int32
    )


def _ranked(counts: dict[int, int], name_of: Callable[[int], str]) -> list[Item]:
    items = [Item(i, name_of(i), int(c)) for i, c in counts.items() if c > 0]
    items.sort(key=lambda it: (-it.value, it.id))
    return items


def user_set(
    total: int,
    loc: dict[int, int],
    plat: dict[int, int],
    dev: dict[str | None, int],
    gender: dict[int, int],
    age: dict[int, int],
) -> UserSet:
    """Counts per value (0 / None: unknown) -> the six ranked lists of SPEC.md section 3."""
    prov: dict[int, int] = {}
    city: dict[int, int] = {}
    for packed, n in loc.items():
        p, c = divmod(int(packed), LOC_PACK)
        prov[p] = prov.get(p, 0) + n
        city[c] = city.get(c, 0) + n
    us = UserSet(total=total)
    us.province = _ranked(prov, regions.province_name)
    us.city = _ranked(city, regions.city_name)
    us.genders = _ranked(gender, dims.GENDER_NAMES.__getitem__)
    us.ages = _ranked(age, dims.AGE_NAMES.__getitem__)
    us.platforms = _ranked(plat, dims.PLATFORM_NAMES.__getitem__)
    devices = [Item(None, name or UNKNOWN, int(n)) for name, n in dev.items() if n > 0]
    devices.sort(key=lambda it: (-it.value, it.name))
    us.devices = devices[:TOP_DEVICES]
    return us
