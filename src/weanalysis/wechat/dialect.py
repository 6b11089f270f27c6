"""The WeChat datacube dialect: request dates in, the exact response document out.

This is the only module that knows WeChat's JSON shape (SPEC.md section 5); its output is pinned
by full-equality tests.
"""

from __future__ import annotations

from datetime import date

import orjson

from weanalysis.dims import LISTS
from weanalysis.portrait.query import Item, PortraitResult, UserSet

ALLOWED_SPANS = (0, 6, 29)  # end - begin, in days: 1, 7 or 30 days


def _item(it: Item) -> dict:
    if it.id is None:
        return {"name": it.name, "value": it.value}
    return {"id": it.id, "name": it.name, "value": it.value}


def _user_set(us: UserSet) -> dict:
    return {name: [_item(it) for it in us.lists.get(name, [])] for name in LISTS}


def portrait_document(result: PortraitResult) -> dict:
    """The body of a successful ``getweanalysisappiduserportrait`` answer."""
    return {
        "ref_date": result.query.ref_date,
        "visit_uv_new": _user_set(result.new),
        "visit_uv": _user_set(result.active),
    }


def dumps(doc: dict) -> bytes:
    """UTF-8 JSON with non-ASCII text unescaped, as WeChat answers."""
    return orjson.dumps(doc)


def span_ok(begin: date, end: date) -> bool:
    return (end - begin).days in ALLOWED_SPANS
