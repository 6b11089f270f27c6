"""Small groups withheld: every list item, cross-tab cell and segment total under ``min_users``.

An app shares its dashboard without exposing individuals by setting ``min_users`` (``weanalysis
app set APPID --min-users K``); a query may ask for a larger K, never a smaller one. Withholding
happens after the exact counts are made, on the result, so every output (WeChat API, own API,
CSV, CLI) leaves out the same values, and each answer says what it left out: ``withheld`` counts,
per user set, the items of each list, the cross-tab cells and the total that were left out.

Only a *segment's* total is withheld, and only when it is not 0 (an empty segment exposes
nobody): the size of the whole app's new or active users in a window is not about a small group.
Values that could be derived from what is shown (a list's only withheld item is the set's total
minus the items shown) are not hidden further: the rule is the one the issue states, applied
exactly; see the README.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from weanalysis.dims import LISTS
from weanalysis.portrait.query import PortraitResult, UserSet

if TYPE_CHECKING:
    from weanalysis.portrait.explore import Trend


def reason(k: int) -> str:
    return f"values of fewer than {k} users are withheld (min_users = {k})"


def withhold_set(us: UserSet, k: int, segment: bool) -> None:
    withheld: dict[str, int] = {}
    for name in LISTS:
        items = us.lists.get(name, [])
        kept = [it for it in items if it.value >= k]
        withheld[name] = len(items) - len(kept)
        us.lists[name] = kept
    if us.crosstab is not None:
        cells = us.crosstab.cells
        us.crosstab.cells = [c for c in cells if c[2] >= k]
        withheld["crosstab"] = len(cells) - len(us.crosstab.cells)
    if segment:
        hide = us.total is not None and 0 < us.total < k
        withheld["total"] = int(hide)
        if hide:
            us.total = None
    us.withheld = withheld


def withhold_result(result: PortraitResult, k: int) -> None:
    """Leaves out of ``result`` (and its previous window) everything under ``k`` users."""
    result.min_users = k
    for us in (result.new, result.active):
        withhold_set(us, k, bool(result.where))
    if result.previous is not None:
        withhold_result(result.previous, k)


def withhold_trend(t: Trend, k: int) -> None:
    items = totals = 0
    for d in t.days:
        kept = [it for it in d.items if it.value >= k]
        items += len(d.items) - len(kept)
        d.items = kept
        if t.where and d.total is not None and 0 < d.total < k:
            d.total = None
            totals += 1
    t.min_users = k
    t.withheld = {"items": items, "totals": totals}
