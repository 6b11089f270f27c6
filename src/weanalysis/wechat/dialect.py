"""The WeChat datacube dialect: request dates in, the exact response document out.

This is the only module that knows WeChat's JSON shape (SPEC.md section 5); its output is pinned
by full-equality tests.
"""

from __future__ import annotations

from datetime import date

import orjson

from weanalysis.dims import BY_LIST, LISTS
from weanalysis.portrait.query import Item, PortraitQuery, PortraitResult, UserSet

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
