"""Realistic synthetic data for the demo: an app's visits and profiles, written as files.

Users arrive every day (so there are new users on every day), come back with a per-user
probability drawn from Beta(0.3, 1.5) (most users rarely, a few daily), visit from provinces
weighted like China's internet population, on a mix of real Chinese phones (the model strings
``wx.getSystemInfo()`` reports), sometimes only with an IP address (as a beacon would), and
sometimes travel or switch phones. About 60 % of users have a profile with gender and age.
A few devtools visits, bot user agents and broken lines show the filters and rejects at work.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from weanalysis.dims import regions

# Share of China's internet users by province (CNNIC-like weights; %).
PROVINCE_WEIGHTS = {
    44: 10.4,
    37: 6.9,
    41: 6.6,
    32: 6.4,
    51: 5.6,
    33: 5.2,
    13: 5.0,
    43: 4.3,
    42: 4.1,
    34: 3.9,
    35: 3.3,
    45: 3.2,
    53: 3.0,
    21: 2.9,
    36: 2.8,
    61: 2.7,
    14: 2.5,
    52: 2.5,
    31: 2.3,
    11: 2.2,
    50: 2.2,
    23: 2.2,
    22: 1.6,
    15: 1.6,
    65: 1.6,
    62: 1.6,
    12: 1.2,
    46: 0.7,
    64: 0.5,
    63: 0.4,
    54: 0.2,
    81: 0.2,
    82: 0.05,
    71: 0.05,
}
# (brand, model as wx.getSystemInfo() reports it, platform, weight)
PHONES = [
    ("iPhone", "iPhone 13<iPhone14,5>", "ios", 9.0),
    ("iPhone", "iPhone 14 Pro<iPhone15,2>", "ios", 7.0),
    ("iPhone", "iPhone 15 Pro Max<iPhone16,2>", "ios", 6.0),
    ("iPhone", "iPhone 12<iPhone13,2>", "ios", 5.0),
    ("iPhone", "iPhone 11<iPhone12,1>", "ios", 5.0),
    ("iPhone", "iPhone 16 Pro<iPhone17,1>", "ios", 4.0),
    ("iPhone", "iPhone X<iPhone10,3>", "ios", 2.0),
    ("HUAWEI", "NOH-AN00", "android", 5.0),
    ("HUAWEI", "ALN-AL00", "android", 4.0),
    ("HUAWEI", "PLR-AL00", "ohos", 2.5),
    ("HUAWEI", "HBN-AL00", "android", 2.0),
    ("HONOR", "PCT-AL10", "android", 2.0),
    ("HONOR", "LGE-AN00", "android", 1.5),
    ("HONOR", "FNE-AN00", "android", 1.5),
    ("Xiaomi", "M2012K11AC", "android", 3.0),
    ("Xiaomi", "24129PN74C", "android", 2.5),
    ("Xiaomi", "2410DPN6CC", "android", 1.5),
    ("Redmi", "Redmi K30", "android", 1.5),
    ("OPPO", "PGEM10", "android", 3.0),
    ("OPPO", "PKB110", "android", 2.0),
    ("OPPO", "OPPO R9m", "android", 1.0),
    ("vivo", "V2049A", "android", 2.5),
    ("vivo", "V2405A", "android", 2.5),
    ("OnePlus", "PJZ110", "android", 1.0),
    ("realme", "RMX3706", "android", 1.0),
    ("samsung", "SM-S9280", "android", 1.0),
    ("samsung", "SM-G9910", "android", 0.8),
    ("microsoft", "Windows PC", "windows", 1.0),
    ("apple", "MacBookPro18,3", "mac", 0.5),
]
BOT_UA = "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)"


@dataclass
class DemoFiles:
    visits: Path
    profiles: Path
    profile_rows: int


def _weights(values: list[float]) -> np.ndarray:
    w = np.asarray(values, dtype=float)
    return w / w.sum()


def _city_table() -> tuple[list[int], dict[int, tuple[np.ndarray, np.ndarray]]]:
    provinces = list(PROVINCE_WEIGHTS)
    cities: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for pid in provinces:
        ids = np.array(sorted(c.id for c in regions.CITIES.values() if c.province == pid))
        zipf = 1.0 / np.arange(1, len(ids) + 1) ** 1.1  # the capital-ish first codes weigh most
        cities[pid] = (ids, zipf / zipf.sum())
    return provinces, cities


def generate(
    out_dir: Path,
    appid: str,
    users: int = 30_000,
    days: int = 60,
    end: date | None = None,
    tz: str = "Asia/Shanghai",
    seed: int = 7,
    progress: Callable[[int], None] | None = None,
) -> DemoFiles:
    """Write ``visits.jsonl`` and ``profiles.jsonl`` for ``users`` users over ``days`` days."""
    rng = np.random.default_rng(seed)
    zone = ZoneInfo(tz)
    end = end or (datetime.now(zone).date() - timedelta(days=1))
    start = end - timedelta(days=days - 1)
    out_dir.mkdir(parents=True, exist_ok=True)
    provinces, cities = _city_table()
    prov_p = _weights([PROVINCE_WEIGHTS[p] for p in provinces])
    phone_p = _weights([w for *_, w in PHONES])
    starts, ends, codes = _ip_runs()

    # each user: a first day (growing app: more arrivals later), a return rate, a home
    first_day = np.sort(rng.choice(days, size=users, p=_weights(np.linspace(1.0, 2.0, days))))
    rate = rng.beta(0.3, 1.5, size=users)
    home_prov = rng.choice(len(provinces), size=users, p=prov_p)
    phone = rng.choice(len(PHONES), size=users, p=phone_p)
    run_of_code = _runs_by_code(codes)
    vpath = out_dir / "visits.jsonl"
    with open(vpath, "w", encoding="utf-8") as f:
        for d in range(days):
            day = start + timedelta(days=d)
            midnight = datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
            today = np.flatnonzero(
                (first_day == d) | ((first_day < d) & (rng.random(users) < rate))
            )
            switch = today[rng.random(len(today)) < 0.002]  # some change phones for good
            phone[switch] = rng.choice(len(PHONES), size=len(switch), p=phone_p)
            u = np.repeat(
                today, 1 + (rng.random(len(today)) < 0.3) + (rng.random(len(today)) < 0.1)
            )
            n = len(u)
            when = midnight.timestamp() + rng.integers(0, 86_400, n)
            prov = np.where(
                rng.random(n) < 0.03, rng.choice(len(provinces), n, p=prov_p), home_prov[u]
            )
            city = np.zeros(n, dtype=np.int64)
            for i in np.unique(prov):
                rows = np.flatnonzero(prov == i)
                ids, p = cities[provinces[i]]
                if len(ids):
                    city[rows] = rng.choice(ids, size=len(rows), p=p)
            beacon = rng.random(n) < 0.2
            extra = rng.random(n)
            for k in range(n):
                pid, cid = provinces[prov[k]], int(city[k])
                t = datetime.fromtimestamp(int(when[k]), UTC).isoformat().replace("+00:00", "Z")
                row: dict = {"appid": appid, "openid": _openid(int(u[k])), "time": t}
                runs = run_of_code.get(regions.location_code(pid, cid)) if beacon[k] else None
                if runs is not None:  # a beacon: only the IP address, located by ip2region
                    r = int(runs[rng.integers(len(runs))])
                    row["ip"] = _ip(int(rng.integers(int(starts[r]), int(ends[r]) + 1)))
                else:
                    row["province"] = regions.PROVINCES[pid].name if extra[k] < 0.5 else pid
                    if cid:
                        row["city"] = regions.city_name(cid)
                brand, model, platform, _ = PHONES[phone[u[k]]]
                row.update(brand=brand, model=model, platform=platform)
                if extra[k] < 0.002:
                    row["platform"] = "devtools"
                elif extra[k] > 0.999:
                    row["user_agent"] = BOT_UA
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
            if progress:
                progress(1)
        f.write('{"appid": "' + appid + '", "openid": "broken", "time": \n')  # rejected: bad JSON
    ppath = out_dir / "profiles.jsonl"
    n_profiles = 0
    with open(ppath, "w", encoding="utf-8") as f:
        for u in np.flatnonzero(rng.random(users) < 0.6).tolist():
            age = int(np.clip(rng.normal(31, 11), 8, 80))
            row = {
                "appid": appid,
                "openid": _openid(u),
                "gender": ["男", "女"][int(rng.random() < 0.48)],
                "age": age,
            }
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n_profiles += 1
    return DemoFiles(vpath, ppath, n_profiles)


def _openid(u: int) -> str:
    # 28 characters like a real openid, stable per user
    return f"oDemo{u:08d}" + f"{(u * 2654435761) % 2**32:08x}" + "wXyZaBc"


def _ip_runs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from weanalysis.enrich import ipgeo

    return ipgeo.get_locator().runs()


def _runs_by_code(codes: np.ndarray) -> dict[int, np.ndarray]:
    order = np.argsort(codes, kind="stable")
    uniq, first = np.unique(codes[order], return_index=True)
    return {int(c): g for c, g in zip(uniq.tolist(), np.split(order, first[1:]), strict=True)}


def _ip(n: int) -> str:
    return ".".join(str((n >> s) & 255) for s in (24, 16, 8, 0))
