"""The explorer's rows of ``python -m bench``: a segment, a cross-tab and a trend against the
unfiltered 30-day portrait, timed the same way in the same run (issue 10's ratios).

Each call takes a fresh snapshot, as the portrait rows do, so nothing is cached across calls.
"""

from __future__ import annotations

from collections.abc import Callable

from bench.phases import timed_runs
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


def explorer_rows(store: Store, q: PortraitQuery, repeat: int) -> list[Row]:
    """Times the unfiltered portrait of ``q`` and the explorer's answers over the same window."""

    def doc(ex: Explore) -> Callable[[], dict]:
        return lambda: portrait_document(explore(EmbeddedSource.of(store, q.appid), q, ex))

    plain, _, base = timed_runs(doc(Explore()), repeat, f"plain {q.days} d")
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
    rows = [Row(f"unfiltered portrait {q.days} d (explorer baseline)", ms(plain))]
    for label, fn, target in cases:
        t, _, _ = timed_runs(fn, repeat, label)
        ratio = t / plain
        rows.append(
            Row(
                label,
                ms(t),
                ratio=f"{ratio:.2f}× unfiltered",
                target=f"≤ {target:.1f}× {tick(ratio <= target)}",
            )
        )
    return rows
