"""The explorer's rows of ``python -m bench``: a segment, a cross-tab and a trend against the
unfiltered 30-day portrait of the same window, in the same run (issue 10's ratios).

Each call takes a fresh snapshot, as the portrait rows do, so nothing is cached across calls.
On a shared machine one run's time swings by 2x, so each case is timed in pairs with the
unfiltered portrait (unfiltered, case, unfiltered, case, ...): the ratio is the median of the
pairs' ratios, and the times are the medians of each side.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from bench.phases import log
from bench.report import Row, ms, tick
from weanalysis.dims import BY_LIST
from weanalysis.portrait.embedded import EmbeddedSource
from weanalysis.portrait.explore import Explore, explore, parse_where, trend
from weanalysis.portrait.query import PortraitQuery
from weanalysis.store import Store
from weanalysis.wechat.dialect import portrait_document, trend_document

TARGET_SEGMENT = 1.2  # a segment's 30-day portrait, times the unfiltered one
TARGET_CROSSTAB = 1.1
TARGET_TREND = 2.0


def _seconds(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def paired(
    plain: Callable[[], object], case: Callable[[], object], repeat: int, label: str
) -> tuple[float, float, float]:
    """(median plain s, median case s, median of case/plain per pair), after one warm-up each."""
    plain(), case()
    pairs = [(_seconds(plain), _seconds(case)) for _ in range(max(repeat, 1))]
    p = statistics.median(a for a, _ in pairs)
    c = statistics.median(b for _, b in pairs)
    ratio = statistics.median(b / a for a, b in pairs)
    runs = ", ".join(f"{a * 1000:.0f}/{b * 1000:.0f}" for a, b in pairs)
    log(f"  {label}: unfiltered/case [{runs}] ms, median ratio {ratio:.2f}")
    return p, c, ratio


def explorer_rows(store: Store, q: PortraitQuery, repeat: int) -> list[Row]:
    """Times the explorer's answers over ``q`` against its unfiltered portrait."""

    def doc(ex: Explore) -> Callable[[], dict]:
        return lambda: portrait_document(explore(EmbeddedSource.of(store, q.appid), q, ex))

    plain = doc(Explore())
    base = plain()
    top = base["visit_uv"]["province"][0]["id"] if base["visit_uv"]["province"] else 0
    seg = parse_where([f"province={top}", "genders=2"])
    cases = [
        (
            f"segment {q.days} d (province={top}, genders=2)",
            doc(Explore(where=seg)),
            TARGET_SEGMENT,
        ),
        (
            f"cross-tab {q.days} d (genders × ages)",
            doc(Explore(crosstab=("genders", "ages"))),
            TARGET_CROSSTAB,
        ),
        (
            f"trend {q.days} d (platforms, active)",
            lambda: trend_document(
                trend(EmbeddedSource.of(store, q.appid), q, BY_LIST["platforms"])
            ),
            TARGET_TREND,
        ),
    ]
    rows = []
    for label, fn, target in cases:
        p, c, ratio = paired(plain, fn, repeat, label)
        rows.append(
            Row(
                label,
                f"{ms(c)} (unfiltered {ms(p)})",
                ratio=f"{ratio:.2f}× unfiltered",
                target=f"≤ {target:.1f}× {tick(ratio <= target)}",
            )
        )
    return rows
