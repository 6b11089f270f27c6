"""A brute-force oracle of SPEC.md section 3, written as plainly as possible.

It takes the *accepted* records (canonical values, in storage order) and answers a window with
loops and dictionaries, sharing nothing with the engine but the name tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from weanalysis import dims
from weanalysis.dims import regions


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


def portrait(records: list[Rec], tz: ZoneInfo, begin: date, end: date) -> dict:
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
            "loc": loc,
            "plat": plat,
            "dev": dev,
            "gender": gender,
            "age": 0 if age is None else dims.age_bucket(age),
        }

    values = {u: user_values(u) for u in active}

    def lists(users: set[str]) -> dict:
        prov: dict[int, int] = {}
        city: dict[int, int] = {}
        gen: dict[int, int] = {}
        ages: dict[int, int] = {}
        plats: dict[int, int] = {}
        devs: dict[str, int] = {}
        for u in users:
            v = values[u]
            p, c = v["loc"]
            prov[p] = prov.get(p, 0) + 1
            city[c] = city.get(c, 0) + 1
            gen[v["gender"]] = gen.get(v["gender"], 0) + 1
            ages[v["age"]] = ages.get(v["age"], 0) + 1
            plats[v["plat"]] = plats.get(v["plat"], 0) + 1
            name = v["dev"] or dims.UNKNOWN
            devs[name] = devs.get(name, 0) + 1
        devices = sorted(
            ({"name": k, "value": n} for k, n in devs.items()),
            key=lambda it: (-it["value"], it["name"]),
        )
        return {
            "province": _ranked(prov, regions.province_name),
            "city": _ranked(city, regions.city_name),
            "genders": _ranked(gen, dims.GENDER_NAMES.__getitem__),
            "platforms": _ranked(plats, dims.PLATFORM_NAMES.__getitem__),
            "devices": devices[:20],
            "ages": _ranked(ages, dims.AGE_NAMES.__getitem__),
        }

    b, e = begin.strftime("%Y%m%d"), end.strftime("%Y%m%d")
    return {
        "ref_date": b if begin == end else f"{b}-{e}",
        "visit_uv_new": lists(new),
        "visit_uv": lists(active),
    }
