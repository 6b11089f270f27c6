"""Enrichment: a named list of small steps from validated visits to portrait attributes.

Each step reads and writes columns of an :class:`Enriched` batch; a step may *filter* rows with a
named reason (devtools visits, bots): filtered rows are stored nowhere and counted per reason.
Explicit fields always win over what is derived from ``ip`` or ``user_agent`` (SPEC.md 2.1).
Every step works once per distinct value (user agents, brand/model pairs, location pairs), so
a bulk ingest of millions of rows pays the device database only for new models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from weanalysis.enrich import devices, ipgeo, regions
from weanalysis.records.validate import PLATFORM_DEVTOOLS, ValidChunk

FILTER_DEVTOOLS = "devtools"
FILTER_BOT = "bot"


@dataclass
class Enriched:
    """Validated visits plus their portrait attributes."""

    visits: ValidChunk
    location: np.ndarray  # int16 dense location code (regions.LOCATIONS), 0 unknown
    platform: np.ndarray  # int8 platform id, 0 unknown
    device: np.ndarray  # object: WeChat-style device name or None
    filtered: np.ndarray  # object: None or the filter reason
    ua_platform: np.ndarray = field(default=None)  # type: ignore[assignment]
    ua_device: np.ndarray = field(default=None)  # type: ignore[assignment]

    def filter(self, mask: np.ndarray, reason: str) -> None:
        self.filtered[mask & (self.filtered == None)] = reason  # noqa: E711


def _distinct_apply(values: np.ndarray, fn: Callable) -> np.ndarray:
    """fn over the distinct entries of an object array (None passed through as None)."""
    out = np.full(len(values), None, dtype=object)
    cache: dict = {}
    for i, v in enumerate(values):
        if v is None:
            continue
        r = cache.get(v, cache)
        if r is cache:
            r = cache[v] = fn(v)
        out[i] = r
    return out


def step_devtools(e: Enriched) -> None:
    e.filter(e.visits.platform == PLATFORM_DEVTOOLS, FILTER_DEVTOOLS)


def step_user_agent(e: Enriched) -> None:
    infos = _distinct_apply(e.visits.user_agent, devices.ua_info)
    n = len(infos)
    bot = np.zeros(n, dtype=bool)
    e.ua_platform = np.zeros(n, dtype=np.int8)
    e.ua_device = np.full(n, None, dtype=object)
    for i in np.flatnonzero(infos != None):  # noqa: E711
        info = infos[i]
        bot[i] = info.is_bot
        e.ua_platform[i] = info.platform or 0
        e.ua_device[i] = info.device
    e.filter(bot, FILTER_BOT)


def step_location(e: Enriched) -> None:
    v = e.visits
    pairs = v.province.astype(np.int64) * 1_000_000 + v.city
    keys, inverse = np.unique(pairs, return_inverse=True)
    codes = np.array(
        [regions.location_code(int(k // 1_000_000), int(k % 1_000_000)) if k else 0 for k in keys],
        dtype=np.int16,
    )
    explicit = codes[inverse] if len(keys) else np.zeros(len(v), dtype=np.int16)
    from_ip = np.zeros(len(v), dtype=np.int16)
    has_v4 = v.ipv4 != 0
    if has_v4.any():
        from_ip[has_v4] = ipgeo.get_locator().lookup_many(v.ipv4[has_v4])
    loc = np.where(v.province == 0, from_ip, explicit).astype(np.int16)
    # Province given, city not: the IP may name the city, but only inside that province.
    fill = (v.province != 0) & (v.city == 0) & (from_ip != 0)
    if fill.any():
        ip_prov = regions.LOC_PROVINCE[from_ip[fill]]
        same = ip_prov == v.province[fill]
        idx = np.flatnonzero(fill)[same]
        loc[idx] = from_ip[idx]
    e.location = loc


def step_platform(e: Enriched) -> None:
    p = e.visits.platform.astype(np.int8)
    p = np.where(p > 0, p, e.ua_platform)
    e.platform = p.astype(np.int8)


def step_device(e: Enriched) -> None:
    v = e.visits
    names = np.full(len(v), None, dtype=object)
    has = (v.brand != None) | (v.model != None)  # noqa: E711
    if has.any():
        cache: dict = {}
        for i in np.flatnonzero(has):
            key = (v.brand[i], v.model[i])
            name = cache.get(key, cache)
            if name is cache:
                name = cache[key] = devices.device_name(*key)
            names[i] = name
    e.device = np.where(names != None, names, e.ua_device)  # noqa: E711


STEPS: list[tuple[str, Callable[[Enriched], None]]] = [
    ("devtools", step_devtools),
    ("user_agent", step_user_agent),
    ("location", step_location),
    ("platform", step_platform),
    ("device", step_device),
]


def enrich(visits: ValidChunk) -> Enriched:
    n = len(visits)
    e = Enriched(
        visits=visits,
        location=np.zeros(n, dtype=np.int16),
        platform=np.zeros(n, dtype=np.int8),
        device=np.full(n, None, dtype=object),
        filtered=np.full(n, None, dtype=object),
    )
    for _name, step in STEPS:
        step(e)
    return e
