"""Real IPv4 addresses of a given location, drawn from ip2region's address runs.

weanalysis' :class:`~weanalysis.enrich.ipgeo.IpLocator` holds the xdb segments merged into runs
``[starts[i], starts[i + 1])`` that share one location code. An address for location ``L`` is a
uniform address of a run of ``L`` picked with probability proportional to its size; a city
that ip2region does not know falls back to the runs of its province.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from weanalysis.dims import regions
from weanalysis.enrich import ipgeo


class IpSampler:
    def __init__(self) -> None:
        loc = ipgeo.get_locator()
        starts = loc._starts.astype(np.int64)
        ends = np.append(starts[1:], 1 << 32)
        self._starts = starts
        self._lens = ends - starts
        self._codes = loc._codes.astype(np.int64)
        order = np.argsort(self._codes, kind="stable")
        codes_sorted = self._codes[order]
        bounds = np.searchsorted(codes_sorted, np.arange(len(regions.LOCATIONS) + 1))
        self._runs_of = [order[bounds[c] : bounds[c + 1]] for c in range(len(regions.LOCATIONS))]
        prov_of_run = regions.LOC_PROVINCE[self._codes]
        self._runs_of_province: dict[int, np.ndarray] = {
            p: np.flatnonzero(prov_of_run == p) for p in set(regions.LOC_PROVINCE.tolist()) if p
        }

    def runs(self, code: int) -> np.ndarray:
        runs = self._runs_of[code]
        if len(runs) == 0:
            runs = self._runs_of_province.get(int(regions.LOC_PROVINCE[code]), runs)
        return runs

    def sample(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One IPv4 address (uint32) per location code in ``codes``."""
        out = np.zeros(len(codes), dtype=np.uint32)
        order = np.argsort(codes, kind="stable")
        uniq, first = np.unique(codes[order], return_index=True)
        bounds = np.append(first, len(codes))
        for k, code in enumerate(uniq.tolist()):
            rows = order[bounds[k] : bounds[k + 1]]
            runs = self.runs(code)
            if len(runs) == 0:
                out[rows] = rng.integers(1 << 24, 1 << 31, len(rows))
                continue
            cum = np.cumsum(self._lens[runs])
            pick = np.searchsorted(cum, rng.random(len(rows)) * cum[-1], side="right")
            run = runs[np.minimum(pick, len(runs) - 1)]
            offset = (rng.random(len(rows)) * self._lens[run]).astype(np.int64)
            out[rows] = (self._starts[run] + offset).astype(np.uint32)
        return out


def ipv4_text(ips: np.ndarray) -> pa.Array:
    """Dotted-quad strings of uint32 addresses."""
    parts = [pa.array((ips >> s) & 255, pa.uint32()).cast(pa.string()) for s in (24, 16, 8, 0)]
    return pc.binary_join_element_wise(*parts, ".")


def ipv6_text(n: int, rng: np.random.Generator) -> pa.Array:
    """Random China Telecom style IPv6 addresses (240e::/20): ip2region maps them to 未知."""
    groups = rng.integers(0, 1 << 16, size=(n, 7))
    cols = [pa.array(np.full(n, "240e"), pa.string())] + [
        pa.array([f"{v:x}" for v in groups[:, i].tolist()], pa.string()) for i in range(7)
    ]
    return pc.binary_join_element_wise(*cols, ":")
