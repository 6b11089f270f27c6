"""A brute-force oracle of SPEC.md section 3, written as plainly as possible.

It takes the *accepted* records (canonical values, in storage order) and answers a window with
loops and dictionaries, sharing nothing with the engine but the name tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from weanalysis import dims


@dataclass
class Rec:
    kind: str  # "visit" | "profile"
    openid: str
    time_ms: int | None  # None: an undated profile
    province: int = 0  # ids; 0 unknown
    city: int = 0
    platform: int = 0
    device: str | None = None
    gender: int = 0
    age: int | None = None


def local_day(time_ms: int, tz: ZoneInfo) -> date:
    return datetime.fromtimestamp(time_ms / 1000, UTC).astimezone(tz).date()


def _latest(cands: list[tuple[tuple, object]]) -> object:
    """The value of the candidate with the greatest (time, storage position)."""
    return max(cands, key=lambda c: c[0])[1] if cands else None


def _ranked(counter: dict[int, int], name_of) -> list[dict]:
    items = [{"id": k, "name": name_of(k), "value": v} for k, v in counter.items() if v > 0]
    return sorted(items, key=lambda it: (-it["value"], it["id"]))


def _window(records: list[Rec], tz: ZoneInfo, begin: date, end: date):
    """The window's active and new users, and each active user's values (by list name)."""
    visits = [(i, r) for i, r in enumerate(records) if r.kind == "visit"]
    first: dict[str, date] = {}
    for _, r in visits:
        d = local_day(r.time_ms, tz)
        if r.openid not in first or d < first[r.openid]:
            first[r.openid] = d
    active = {r.openid for _, r in visits if begin <= local_day(r.time_ms, tz) <= end}
    new = {u for u in active if begin <= first[u] <= end}

    def user_values(u: str) -> dict:
        mine = [
            (i, r) for i, r in visits if r.openid == u and begin <= local_day(r.time_ms, tz) <= end
        ]
        loc = _latest([((r.time_ms, i), (r.province, r.city)) for i, r in mine if r.province]) or (
            0,
            0,
        )
        plat = _latest([((r.time_ms, i), r.platform) for i, r in mine if r.platform]) or 0
        dev = _latest([((r.time_ms, i), r.device) for i, r in mine if r.device])
        persons = [
            (i, r)
            for i, r in enumerate(records)
            if r.openid == u and (r.time_ms is None or local_day(r.time_ms, tz) <= end)
        ]

        def order(i: int, r: Rec) -> tuple:
            return (float("-inf") if r.time_ms is None else r.time_ms, i)

        gender = _latest([(order(i, r), r.gender) for i, r in persons if r.gender]) or 0
        age = _latest([(order(i, r), r.age) for i, r in persons if r.age is not None])
        return {
            "province": loc[0],
            "city": loc[1],
            "platforms": plat,
            "devices": dev or dims.UNKNOWN,
            "genders": gender,
            "ages": 0 if age is None else dims.age_bucket(age),
        }

    return active, new, {u: user_values(u) for u in active}


def _list(name: str, users, values: dict) -> list[dict]:
    """One list of the document; its names, order and length come from the dimension table."""
    dim = dims.BY_LIST[name]
    counter: dict = {}
    for u in users:
        v = values[u][name]
        counter[v] = counter.get(v, 0) + 1
    if not dim.has_ids:  # devices: named by the data, ranked by name on ties
        items = sorted(
            ({"name": k, "value": n} for k, n in counter.items()),
            key=lambda it: (-it["value"], it["name"]),
        )
    else:
        items = _ranked(counter, dim.name_of)
    return items[: dim.top] if dim.top else items


def _lists(users, values: dict) -> dict:
    return {name: _list(name, users, values) for name in dims.LISTS}


def _ref_date(begin: date, end: date) -> str:
    b, e = begin.strftime("%Y%m%d"), end.strftime("%Y%m%d")
    return b if begin == end else f"{b}-{e}"


def portrait(records: list[Rec], tz: ZoneInfo, begin: date, end: date) -> dict:
    active, new, values = _window(records, tz, begin, end)
    return {
        "ref_date": _ref_date(begin, end),
        "visit_uv_new": _lists(new, values),
        "visit_uv": _lists(active, values),
    }


# -- the explorer (issue 10): segments, cross-tabs, comparison, trends, small groups withheld ---

SPELLING = {
    "province": "province",
    "city": "city",
    "gender": "genders",
    "genders": "genders",
    "age": "ages",
    "ages": "ages",
    "platform": "platforms",
    "platforms": "platforms",
    "device": "devices",
    "devices": "devices",
}


def _parse_where(where: list[str]) -> dict[str, set]:
    """``["gender=2", "province=44"]`` -> list name -> accepted values (ids, device names)."""
    conds: dict[str, set] = {}
    for spec in where:
        dim, value = spec.split("=", 1)
        name = SPELLING[dim]
        conds.setdefault(name, set()).add(value if name == "devices" else int(value))
    return conds


def _in_segment(values: dict, conds: dict[str, set]) -> bool:
    return all(values[name] in accepted for name, accepted in conds.items())


def _crosstab(users, values: dict, rows: str, cols: str) -> dict:
    cells: dict = {}
    for u in users:
        key = (values[u][rows], values[u][cols])
        cells[key] = cells.get(key, 0) + 1
    return {
        "rows": rows,
        "cols": cols,
        "cells": [{"row": r, "col": c, "value": v} for (r, c), v in sorted(cells.items())],
    }


def _withhold(user_set: dict, k: int, segment: bool) -> dict:
    """Leaves out what has fewer than ``k`` users; returns what was left out."""
    out = {}
    for name in ("province", "city", "genders", "platforms", "devices", "ages"):
        before = len(user_set[name])
        user_set[name] = [it for it in user_set[name] if it["value"] >= k]
        out[name] = before - len(user_set[name])
    if "crosstab" in user_set:
        cells = user_set["crosstab"]["cells"]
        user_set["crosstab"]["cells"] = [c for c in cells if c["value"] >= k]
        out["crosstab"] = len(cells) - len(user_set["crosstab"]["cells"])
    if segment:
        small = 0 < user_set["total"] < k
        out["total"] = 1 if small else 0
        if small:
            user_set["total"] = None
    return out


def explore(
    records: list[Rec],
    tz: ZoneInfo,
    begin: date,
    end: date,
    where: list[str] = (),
    crosstab: tuple[str, str] | None = None,
    compare: bool = False,
    min_users: int = 0,
) -> dict:
    """The document of ``weanalysis portrait`` with ``--where/--crosstab/--compare/--min-users``."""
    conds = _parse_where(list(where))
    active, new, values = _window(records, tz, begin, end)
    seg_active = {u for u in active if _in_segment(values[u], conds)}
    seg_new = new & seg_active
    doc: dict = {"ref_date": _ref_date(begin, end)}
    for key, users in (("visit_uv_new", seg_new), ("visit_uv", seg_active)):
        us: dict = {"total": len(users)} if conds else {}
        us.update(_lists(users, values))
        if crosstab:
            us["crosstab"] = _crosstab(
                users, values, SPELLING.get(crosstab[0]), SPELLING.get(crosstab[1])
            )
        doc[key] = us
    if compare:
        length = end - begin
        pend = begin - timedelta(days=1)
        doc["previous"] = explore(records, tz, pend - length, pend, where, crosstab, False, 0)
    if min_users:
        withheld = {}
        for key in ("visit_uv_new", "visit_uv"):
            withheld[key] = _withhold(doc[key], min_users, bool(conds))
        if compare:
            prev = doc["previous"]
            prev["withheld"] = _withheld_doc(
                min_users, {key: _withhold(prev[key], min_users, bool(conds)) for key in withheld}
            )
        doc["withheld"] = _withheld_doc(min_users, withheld)
    return doc


def _withheld_doc(k: int, parts: dict) -> dict:
    return {
        "min_users": k,
        "reason": f"values of fewer than {k} users are withheld (min_users = {k})",
        **parts,
    }


def trend(
    records: list[Rec],
    tz: ZoneInfo,
    begin: date,
    end: date,
    dim: str,
    users: str = "active",
    where: list[str] = (),
    min_users: int = 0,
) -> dict:
    """The document of ``weanalysis trend``: one 1-day list per day, in date order."""
    conds = _parse_where(list(where))
    name = SPELLING[dim]
    days = []
    withheld_items = withheld_totals = 0
    day = begin
    while day <= end:
        active, new, values = _window(records, tz, day, day)
        chosen = {u for u in (new if users == "new" else active) if _in_segment(values[u], conds)}
        items = _list(name, chosen, values)
        total: int | None = len(chosen)
        if min_users:
            kept = [it for it in items if it["value"] >= min_users]
            withheld_items += len(items) - len(kept)
            items = kept
            if conds and 0 < total < min_users:
                total = None
                withheld_totals += 1
        days.append({"date": day.strftime("%Y%m%d"), "total": total, "items": items})
        day += timedelta(days=1)
    doc = {"dim": name, "users": users, "days": days}
    if min_users:
        doc["withheld"] = _withheld_doc(
            min_users, {"items": withheld_items, "totals": withheld_totals}
        )
    return doc


# -- retention (issue 11) -------------------------------------------------------------------------


class BeforeRetention(Exception):
    """The window begins before the retained range: refused, never a smaller answer."""


def retained_portrait(
    records: list[Rec], tz: ZoneInfo, begin: date, end: date, first_kept: date
) -> dict:
    """What a portrait must be once the records of days before ``first_kept`` were deleted by
    retention: inside the retained range, exactly the answer over the *full* history (records
    deleted included); a window that begins before it is refused."""
    if begin < first_kept:
        raise BeforeRetention(begin)
    return portrait(records, tz, begin, end)
