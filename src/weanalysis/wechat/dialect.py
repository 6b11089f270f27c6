"""The WeChat datacube dialect: request dates in, the exact response document out.

This is the only module that knows WeChat's JSON shape (SPEC.md section 5); its output is pinned
by full-equality tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import orjson

from weanalysis.dims import BY_LIST, LISTS
from weanalysis.portrait.explore import Trend, yyyymmdd
from weanalysis.portrait.query import Crosstab, Item, PortraitQuery, PortraitResult, UserSet
from weanalysis.portrait.withhold import reason

ALLOWED_SPANS = (0, 6, 29)  # end - begin, in days: 1, 7 or 30 days


def _item(it: Item) -> dict:
    if it.id is None:
        return {"name": it.name, "value": it.value}
    return {"id": it.id, "name": it.name, "value": it.value}


def _user_set(us: UserSet, total: bool) -> dict:
    doc: dict = {"total": us.total} if total else {}
    doc.update({name: [_item(it) for it in us.lists.get(name, [])] for name in LISTS})
    if us.crosstab is not None:
        doc["crosstab"] = crosstab_doc(us.crosstab)
    return doc


def crosstab_doc(ct: Crosstab) -> dict:
    return {
        "rows": ct.rows,
        "cols": ct.cols,
        "cells": [{"row": r, "col": c, "value": v} for r, c, v in ct.cells],
    }


def withheld_doc(k: int, parts: Mapping[str, object]) -> dict:
    return {"min_users": k, "reason": reason(k), **parts}


def portrait_document(result: PortraitResult) -> dict:
    """The body of a successful ``getweanalysisappiduserportrait`` answer.

    The explorer's additions (issue 10) appear only when asked for: each user set's ``total``
    for a segment, its ``crosstab``, the ``previous`` window's document, and ``withheld`` when
    small groups are withheld. A plain query gives WeChat's document exactly.
    """
    segment = bool(result.where)
    doc = {
        "ref_date": result.query.ref_date,
        "visit_uv_new": _user_set(result.new, segment),
        "visit_uv": _user_set(result.active, segment),
    }
    if result.previous is not None:
        doc["previous"] = portrait_document(result.previous)
    if result.min_users:
        doc["withheld"] = withheld_doc(
            result.min_users,
            {"visit_uv_new": result.new.withheld, "visit_uv": result.active.withheld},
        )
    return doc


def trend_document(t: Trend) -> dict:
    """``weanalysis trend``'s answer: one day's list of the dimension per day of the window."""
    doc: dict = {
        "dim": t.dim,
        "users": t.users,
        "days": [
            {"date": yyyymmdd(d.day), "total": d.total, "items": [_item(it) for it in d.items]}
            for d in t.days
        ],
    }
    if t.min_users:
        doc["withheld"] = withheld_doc(t.min_users, dict(t.withheld or {}))
    return doc


def dumps(doc: dict) -> bytes:
    """UTF-8 JSON with non-ASCII text unescaped, as WeChat answers."""
    return orjson.dumps(doc)


def span_ok(begin: date, end: date) -> bool:
    return (end - begin).days in ALLOWED_SPANS


def portrait_result(query: PortraitQuery, doc: object) -> PortraitResult:
    """The inverse of :func:`portrait_document` for documents computed elsewhere (a Spark job):
    raises ValueError unless ``doc`` is exactly a document this dialect would write for ``query``.
    """
    if not isinstance(doc, dict) or set(doc) != {"ref_date", "visit_uv_new", "visit_uv"}:
        raise ValueError("not a portrait document (ref_date, visit_uv_new, visit_uv)")
    if doc["ref_date"] != query.ref_date:
        raise ValueError(f"ref_date {doc['ref_date']!r} is not {query.ref_date!r}")
    sets = []
    for key in ("visit_uv_new", "visit_uv"):
        lists = doc[key]
        if not isinstance(lists, dict) or set(lists) != set(LISTS):
            raise ValueError(f"{key} must hold exactly the lists {', '.join(LISTS)}")
        us = UserSet(lists={})
        for name in LISTS:
            items = lists[name]
            if not isinstance(items, list):
                raise ValueError(f"{key}.{name} is not a list")
            us.lists[name] = [
                _parse_item(BY_LIST[name].has_ids, it, f"{key}.{name}") for it in items
            ]
        # every list but devices adds up to the users of the set (SPEC.md section 3)
        us.total = sum(it.value for it in us.lists[LISTS[0]])
        sets.append(us)
    result = PortraitResult(query, sets[0], sets[1])
    if portrait_document(result) != doc:
        raise ValueError("the document does not read back to itself")
    return result


def _parse_item(has_id: bool, it: object, where: str) -> Item:
    keys = {"id", "name", "value"} if has_id else {"name", "value"}
    if not isinstance(it, dict) or set(it) != keys:
        raise ValueError(f"{where}: an item must have exactly {', '.join(sorted(keys))}")
    ok = isinstance(it["name"], str) and type(it["value"]) is int and it["value"] > 0
    if not ok or (has_id and type(it["id"]) is not int):
        raise ValueError(f"{where}: bad item {it!r}")
    return Item(it["id"] if has_id else None, it["name"], it["value"])
