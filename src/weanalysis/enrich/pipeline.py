"""Enrichment: a named list of small steps from validated visits to portrait attributes.

Each step reads and writes columns of an :class:`Enriched` batch; a step may *filter* rows with a
named reason (devtools visits, bots): filtered rows are stored nowhere and counted per reason.
Explicit fields always win over what is derived from ``ip`` or ``user_agent`` (SPEC.md 2.1).
Every step works once per distinct value (user agents, brand/model pairs, location pairs), so
a bulk ingest of millions of rows pays the device database only for new models.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from weanalysis.dims import regions
from weanalysis.enrich import devices, ipgeo
from weanalysis.records.columns import Coded
from weanalysis.records.validate import PLATFORM_DEVTOOLS, ValidChunk

FILTER_DEVTOOLS = "devtools"
FILTER_BOT = "bot"
# Tokens that differ per user or per session in WeChat user agents (MMWEBID is per user):
# dropped before the user-agent cache, or it would hardly ever hit.
UA_VOLATILE = re.compile(r"\s(?:MMWEBID|MMWEBSDK|NetType|Language|Process|ABI)/\S*")
# (brand, model) -> device name, shared by the process and saved in the data folder between
# runs: device_detector costs ~20 ms per model, and an app has hundreds of models.
_DEVICE_NAMES: dict[tuple[str | None, str | None], str | None] = {}
_DEVICE_NAMES_SAVED = 0


def _cache_version() -> str:
    from importlib.metadata import version

    return f"device_detector {version('device_detector')}; weanalysis {version('weanalysis')}"


def load_device_names(path: Path) -> None:
    """Warm the device-name cache from a file written by :func:`save_device_names`."""
    global _DEVICE_NAMES_SAVED
    try:
        data = orjson.loads(path.read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return
    if data.get("version") != _cache_version():
        return  # another database or naming code: names may differ, start afresh
    for brand, model, name in data.get("names", []):
        _DEVICE_NAMES.setdefault((brand, model), name)
    _DEVICE_NAMES_SAVED = len(_DEVICE_NAMES)


def save_device_names(path: Path) -> None:
    global _DEVICE_NAMES_SAVED
    if len(_DEVICE_NAMES) == _DEVICE_NAMES_SAVED:
        return
    names = [[b, m, n] for (b, m), n in _DEVICE_NAMES.items()]
    from weanalysis.store.files import atomic_write_bytes

    atomic_write_bytes(path, orjson.dumps({"version": _cache_version(), "names": names}))
    _DEVICE_NAMES_SAVED = len(_DEVICE_NAMES)


def device_name(brand: str | None, model: str | None) -> str | None:
    key = (brand, model)
    name = _DEVICE_NAMES.get(key, _DEVICE_NAMES)
    if name is _DEVICE_NAMES:
        name = _DEVICE_NAMES[key] = devices.device_name(brand, model)
    return name


@dataclass
class Enriched:
    """Validated visits plus their portrait attributes."""

    visits: ValidChunk
    location: np.ndarray  # int16 dense location code (regions.LOCATIONS), 0 unknown
    platform: np.ndarray  # int8 platform id, 0 unknown
    device: Coded  # WeChat-style device names (None unknown)
    filtered: np.ndarray  # object: None or the filter reason
    ua_platform: np.ndarray | None = None  # set by step_user_agent
    ua_device: Coded | None = None  # set by step_user_agent

    def filter(self, mask: np.ndarray, reason: str) -> None:
        self.filtered[mask & (self.filtered == None)] = reason  # noqa: E711


def step_devtools(e: Enriched) -> None:
    e.filter(e.visits.platform == PLATFORM_DEVTOOLS, FILTER_DEVTOOLS)


def step_user_agent(e: Enriched) -> None:
    ua = e.visits.user_agent
    infos = [None if v is None else devices.ua_info(UA_VOLATILE.sub("", v)) for v in ua.values]
    bot = np.array([bool(i and i.is_bot) for i in infos] + [False], dtype=bool)
    plat = np.array([(i.platform or 0) if i else 0 for i in infos] + [0], dtype=np.int8)
    names = np.array([i.device if i else None for i in infos] + [None], dtype=object)[:-1]
    e.ua_platform = plat[ua.idx] if len(infos) else np.zeros(len(ua), np.int8)
    e.ua_device = Coded(names, ua.idx)
    e.filter(bot[ua.idx] if len(infos) else np.zeros(len(ua), bool), FILTER_BOT)


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
    """brand + model when either is given, else what the user agent said."""
    v = e.visits
    nm = max(len(v.model.values), 1)
    pair = v.brand.idx * nm + v.model.idx
    # the user agent's device joins the key so one dictionary serves both sources
    key = pair * (len(e.ua_device.values) + 1) + e.ua_device.idx
    uniq, inverse = np.unique(key, return_inverse=True)
    names = []
    for k in uniq.tolist():
        p, u = divmod(k, len(e.ua_device.values) + 1)
        b, m = divmod(p, nm)
        brand = v.brand.values[b] if len(v.brand.values) else None
        model = v.model.values[m] if len(v.model.values) else None
        name = device_name(brand, model) if (brand or model) else None
        if name is None and len(e.ua_device.values):
            name = e.ua_device.values[u]
        names.append(name)
    e.device = Coded(np.array(names + [None], dtype=object)[:-1], inverse.reshape(-1))


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
        device=Coded(np.zeros(0, dtype=object), np.zeros(n, dtype=np.int64)),
        filtered=np.full(n, None, dtype=object),
    )
    for _name, step in STEPS:
        step(e)
    return e
