"""The exact portrait of SPEC.md section 3, computed from a store snapshot.

Active users of ``[b, e]`` are the union of the day summaries; each visit attribute is the value
of the latest day in the window where it is known — a scatter over dense uids in day order, so
later days overwrite earlier ones. New users are the active users whose first visit day is
``>= b``. Gender and age come from the person logs as of the end of ``e``. Then one
``bincount`` per attribute.
"""

from __future__ import annotations

import numpy as np

from weanalysis import dims
from weanalysis.enrich import regions
from weanalysis.portrait.query import Item, PortraitQuery, PortraitResult, UserSet
from weanalysis.store.snapshot import AppSnapshot
from weanalysis.store.summaries import ATTR_DTYPES, VISIT_ATTRS, person_values

TOP_DEVICES = 20


def _window_attrs(snap: AppSnapshot, q: PortraitQuery) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(active uids sorted, {attr: value per active uid}) for the visit attributes."""
    days = [d for d in snap.day_numbers() if q.begin <= d <= q.end]
    if not days:
        return np.zeros(0, dtype=np.uint32), {a: np.zeros(0, ATTR_DTYPES[a]) for a in VISIT_ATTRS}
    if len(days) == 1:
        s = snap.day(days[0])
        return np.asarray(s["uid"]), {a: np.asarray(s[a]) for a in VISIT_ATTRS}
    n = snap.num_users
    active = np.zeros(n, dtype=bool)
    slots = {a: np.zeros(n, dtype=ATTR_DTYPES[a]) for a in VISIT_ATTRS}
    for d in days:  # ascending: a later day overwrites an earlier one
        s = snap.day(d)
        uid = np.asarray(s["uid"])
        active[uid] = True
        for a in VISIT_ATTRS:
            v = np.asarray(s[a])
            known = v != 0
            if known.all():
                slots[a][uid] = v
            else:
                slots[a][uid[known]] = v[known]
    users = np.flatnonzero(active).astype(np.uint32)
    return users, {a: slots[a][users] for a in VISIT_ATTRS}


def _ranked(counts: dict[int, int], name_of) -> list[Item]:
    items = [Item(i, name_of(i), int(c)) for i, c in counts.items() if c > 0]
    items.sort(key=lambda it: (-it.value, it.id))
    return items


def _bincount_dict(values: np.ndarray, size: int) -> dict[int, int]:
    counts = np.bincount(values.astype(np.int64), minlength=size)
    return {int(i): int(c) for i, c in enumerate(counts) if c}


def _user_set(
    mask: np.ndarray,
    loc: np.ndarray,
    plat: np.ndarray,
    dev: np.ndarray,
    gender: np.ndarray,
    age: np.ndarray,
    device_names: list[str | None],
) -> UserSet:
    us = UserSet(total=int(mask.sum()))
    loc_counts = np.bincount(loc[mask].astype(np.int64), minlength=len(regions.LOCATIONS))
    prov: dict[int, int] = {}
    city: dict[int, int] = {}
    for code in np.flatnonzero(loc_counts):
        c = int(loc_counts[code])
        p_id, c_id = int(regions.LOC_PROVINCE[code]), int(regions.LOC_CITY[code])
        prov[p_id] = prov.get(p_id, 0) + c
        city[c_id] = city.get(c_id, 0) + c
    us.province = _ranked(prov, regions.province_name)
    us.city = _ranked(city, regions.city_name)
    us.genders = _ranked(_bincount_dict(gender[mask], 3), dims.GENDER_NAMES.__getitem__)
    us.ages = _ranked(_bincount_dict(age[mask], 7), dims.AGE_NAMES.__getitem__)
    us.platforms = _ranked(_bincount_dict(plat[mask], 4), dims.PLATFORM_NAMES.__getitem__)
    dev_counts = _bincount_dict(dev[mask], len(device_names))
    devices = [
        Item(None, device_names[i] or dims.UNKNOWN, c) for i, c in dev_counts.items() if c > 0
    ]
    devices.sort(key=lambda it: (-it.value, it.name))
    us.devices = devices[:TOP_DEVICES]
    return us


def compute(snap: AppSnapshot, q: PortraitQuery) -> PortraitResult:
    """The portrait of ``q`` over ``snap`` (exact distinct-user counts)."""
    users, attrs = _window_attrs(snap, q)
    first = np.asarray(snap.first_day)[users] if len(users) else np.zeros(0, np.int32)
    is_new = first >= q.begin
    gender = person_values(snap.person_log("gender", full=False), users, q.end)
    age = person_values(snap.person_log("age", full=False), users, q.end)
    args = (attrs["loc"], attrs["plat"], attrs["dev"], gender, age, snap.device_names)
    return PortraitResult(
        query=q,
        new=_user_set(is_new, *args),
        active=_user_set(np.ones(len(users), dtype=bool), *args),
    )
