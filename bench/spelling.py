"""How apps spell places: every accepted spelling of each province and city, as flat tables.

Each province has several spellings (广东省, 广东, 44, 440000), each city too (广州, 广州市,
4401, 440100; the short forms of autonomous prefectures: 延边). Every spelling is checked once
against weanalysis' own parser, so generated rows are valid by construction.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from weanalysis.dims import regions


class Spellings:
    """``values`` holds every spelling; spelling ``k`` of item ``i`` is
    ``values[offset[i] + k]`` for ``k < count[i]``."""

    def __init__(self, variants: list[list[str]]):
        self.values = pa.array([v for vs in variants for v in vs], pa.string())
        self.count = np.array([len(vs) for vs in variants], dtype=np.int64)
        self.offset = np.concatenate([[0], np.cumsum(self.count)[:-1]]).astype(np.int64)

    def pick(self, items: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A random spelling index (into ``values``) for each item."""
        k = (rng.random(len(items)) * self.count[items]).astype(np.int64)
        return self.offset[items] + k


def _province_variants(pid: int) -> list[str]:
    if pid == regions.OVERSEAS_PROVINCE:
        return ["海外", "国外", "境外", "99"]
    p = regions.PROVINCES[pid]
    out = [p.name, p.short_name, f"{pid}", f"{pid}0000"]
    if p.type == "自治区":
        out.append(p.short_name + "自治区")
    return out


def _city_variants(cid: int) -> list[str]:
    if cid == regions.OVERSEAS_CITY:
        return ["海外", "国外", "9900"]
    c = regions.CITIES[cid]
    codes = [str(cid)] if cid >= 10_000 else [str(cid), f"{cid}00"]
    return list(dict.fromkeys([c.name, c.full_name, *c.aliases, *codes]))


def _check(pid: int, cid: int, prov: list[str], city: list[str]) -> None:
    for v in prov:
        got = regions.parse_province(v)
        if got != pid:
            raise AssertionError(f"province spelling {v!r} parses as {got}, not {pid}")
    for v in city:
        got = regions.parse_city(v, pid)
        if got != (pid, cid):
            raise AssertionError(f"city spelling {v!r} in {pid} parses as {got}, not {cid}")


class PlaceSpellings:
    """Spellings of every location code that names a city (province rows are not drawn)."""

    def __init__(self) -> None:
        n = len(regions.LOCATIONS)
        prov: list[list[str]] = []
        city: list[list[str]] = []
        for code in range(n):
            pid, cid = regions.LOCATIONS[code]
            if cid == 0:
                prov.append(["?"])
                city.append(["?"])
                continue
            pv, cv = _province_variants(pid), _city_variants(cid)
            _check(pid, cid, pv, cv)
            prov.append(pv)
            city.append(cv)
        self.province = Spellings(prov)
        self.city = Spellings(city)
