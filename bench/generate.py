"""Synthetic visits and profiles of one WeChat mini program, vectorised with numpy and seeded.

The model follows ``shared/notes/engines-spike.md``:

* a population of ``5 × dau`` existing users plus ``5 % × dau`` new users a day; each user has a
  visit probability ``p ~ Beta(0.3, 1.5)`` per day (mean 1/6), so the daily active users run
  from ~0.9 × to ~1.1 × ``dau`` (mean ≈ ``dau``); a new user visits on their first day for sure;
* every existing user has one earlier visit in the ``--history-days`` days before the window,
  so that "new" means new (without it, every existing user would be "new" on first sight);
* 20 % of users are heavy (1 + Poisson(1.5) visits a day), the others visit once, 10 % twice;
  visit times follow a daily curve of Asia/Shanghai local hours;
* openids are 28 characters like WeChat's (``o`` + a fixed 5-character app part + 22 of
  base64url), one per user;
* home locations by provincial internet population and Zipf cities; 3 % of visits while
  travelling; 79 % of visits name province and city explicitly in mixed spellings (3 % of those
  the province only), 20 % only carry an IP address (a real address of that place from
  ip2region, 1 % IPv6), 1 % nothing;
* phones: real ``wx.getSystemInfo()`` brand/model pairs (see :mod:`bench.catalog`) by market share
  and Zipf within the brand, platform fixed by the model; 0.2 % of users a day switch phones for
  good, 1 % of visits come from another phone; 1 % of visits lack brand/model, 0.5 % the
  platform; 0.5 % of users open an H5 page (only a User-Agent);
* gender and age: 30 % of users' visits carry both, 5 % only gender; profiles (a separate file)
  for 60 % of users, 40 % of them undated, 10 % with a later change;
* noise: 0.2 % devtools visits and 0.05 % bot User-Agents (filtered), 0.01 % malformed rows
  (rejected), 0.1 % re-sent duplicates; 50 % of visits carry an ``event_id``.

The default end date is fixed (2026-06-30) so that a seed always gives the same files; pass
``--end yesterday`` for data ending yesterday (Asia/Shanghai).

Writes ``visits-history.parquet``, ``visits-N.parquet`` (the window days split into
``--files`` files, in time order), ``profiles.parquet``, ``sample.jsonl`` (``--jsonl-rows``
visits of the second app, times as ISO text or epoch ms) and ``meta.json`` (parameters and the
expected ingest counts).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from bench import catalog
from bench.ipsample import IpSampler, ipv4_text, ipv6_text
from bench.spelling import PlaceSpellings
from weanalysis.dims import regions
from weanalysis.store.days import day_date, day_number

TZ = ZoneInfo("Asia/Shanghai")
UTC_OFFSET_MS = 8 * 3_600_000  # Asia/Shanghai has had no DST since 1991
MS_PER_DAY = 86_400_000
DEFAULT_END = date(2026, 6, 30)
APPID = "wxbench00000visits"
JSONL_APPID = "wxbench00000jsonl"
B64 = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", np.uint8)
HEX = np.frombuffer(b"0123456789abcdef", np.uint8)
GENDER_SPELLINGS = pa.array(["1", "男", "male", "2", "女", "female"], pa.string())

# Shares (see the module docstring).
EXISTING_PER_DAU = 5.0
NEW_PER_DAU = 0.05
HEAVY_SHARE, HEAVY_EXTRA, LIGHT_SECOND = 0.20, 1.5, 0.10
TRAVEL, OTHER_PHONE, SWITCH_PER_DAY = 0.03, 0.01, 0.002
IP_ONLY, NO_PLACE, PROVINCE_ONLY, IPV6 = 0.20, 0.01, 0.03, 0.01
NO_DEVICE, NO_PLATFORM, H5_USERS = 0.01, 0.005, 0.005
PROPS_BOTH, PROPS_GENDER = 0.30, 0.05
PROFILE_USERS, PROFILE_UNDATED, PROFILE_CHANGE, PROFILE_AFTER_END = 0.60, 0.40, 0.10, 0.05
DEVTOOLS, BOTS, MALFORMED, DUPLICATES, EVENT_IDS = 0.002, 0.0005, 0.0001, 0.001, 0.5
MALFORMED_KINDS = ("age", "province", "time", "gender")


@dataclass(frozen=True)
class GenParams:
    dau: int = 1_000_000
    days: int = 31
    seed: int = 42
    end: str = DEFAULT_END.isoformat()
    history_days: int = 30
    files: int = 4
    jsonl_rows: int = 1_000_000
    time_format: str = "ms"  # "ms": int64 epoch milliseconds; "iso": ISO 8601 text, seconds
    appid: str = APPID
    jsonl_appid: str = JSONL_APPID

    @property
    def end_date(self) -> date:
        if self.end == "yesterday":
            return datetime.now(TZ).date() - timedelta(days=1)
        return date.fromisoformat(self.end)


def fixed_strings(buf: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """A string array from an (n, w) uint8 array of ASCII, nulls where ``mask``."""
    n, w = buf.shape
    offsets = np.arange(0, (n + 1) * w, w, dtype=np.int64)
    arr = pa.Array.from_buffers(
        pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(buf.tobytes())]
    ).cast(pa.string())
    if mask is not None:
        arr = pc.if_else(pa.array(mask), pa.scalar(None, pa.string()), arr)
    return arr


def coded(idx: np.ndarray, values: pa.Array, mask: np.ndarray | None = None) -> pa.Array:
    """``values[idx]`` as a plain string array, nulls where ``mask``."""
    indices = pa.array(idx.astype(np.int32), mask=mask)
    return pa.DictionaryArray.from_arrays(indices, values).dictionary_decode()


def zipf_weights(n: int, s: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** s
    return w / w.sum()


class World:
    """Fixed reference tables: where people live, which phones exist, how places are spelled."""

    def __init__(self) -> None:
        # Home locations: every city of the provinces weighted, plus overseas.
        prov_w = np.array(list(catalog.PROVINCE_WEIGHTS.values()), dtype=np.float64)
        prov_w = prov_w / prov_w.sum() * (1 - catalog.OVERSEAS_SHARE)
        codes: list[int] = []
        weights: list[float] = []
        for pid, pw in zip(catalog.PROVINCE_WEIGHTS, prov_w, strict=True):
            cities = sorted(c.id for c in regions.CITIES.values() if c.province == pid)
            cw = zipf_weights(len(cities), catalog.CITY_ZIPF)
            for cid, w in zip(cities, cw, strict=True):
                codes.append(regions.location_code(pid, cid))
                weights.append(pw * w)
        codes.append(regions.LOC_OVERSEAS)
        weights.append(catalog.OVERSEAS_SHARE)
        self.loc_codes = np.array(codes, dtype=np.int16)
        self.loc_p = np.array(weights) / np.sum(weights)
        # Devices.
        brands, models, platforms, dev_w = [], [], [], []
        for b in catalog.BRANDS:
            for m, w in zip(
                b.models, zipf_weights(len(b.models), catalog.DEVICE_ZIPF), strict=True
            ):
                brands.append(b.brand)
                models.append(m)
                platforms.append(b.platform)
                dev_w.append(b.share * w)
        self.dev_brand = pa.array(brands, pa.string())
        self.dev_model = pa.array(models, pa.string())
        self.dev_platform_names = sorted(set(platforms))
        self.dev_platform = np.array([self.dev_platform_names.index(p) for p in platforms])
        self.dev_p = np.array(dev_w) / np.sum(dev_w)
        self.platform_values = pa.array([*self.dev_platform_names, "devtools"], pa.string())
        self.places = PlaceSpellings()
        self.ips = IpSampler()
        self.h5_ua = [
            self._h5_template(b, m, p) for b, m, p in zip(brands, models, platforms, strict=True)
        ]

    @staticmethod
    def _h5_template(brand: str, model: str, platform: str) -> str:
        if platform == "ios":
            return catalog.UA_IOS
        if platform == "ohos":
            return catalog.UA_OHOS
        if platform == "windows":
            return catalog.UA_WINDOWS
        if platform == "mac":
            return catalog.UA_MAC
        return catalog.UA_ANDROID.replace("{model}", model)

    def draw_locs(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.loc_codes[rng.choice(len(self.loc_codes), n, p=self.loc_p)]

    def draw_devices(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.choice(len(self.dev_p), n, p=self.dev_p).astype(np.int16)


class Population:
    """Users in order of arrival: existing users (arrival = their history day) first."""

    def __init__(self, prm: GenParams, world: World, rng: np.random.Generator):
        self.history = prm.history_days
        n_old = round(EXISTING_PER_DAU * prm.dau)
        n_new_day = round(NEW_PER_DAU * prm.dau)
        old_arrival = (
            np.sort(rng.integers(0, prm.history_days, n_old))
            if prm.history_days
            else np.full(n_old, -1)
        )
        new_arrival = np.repeat(np.arange(prm.days) + prm.history_days, n_new_day)
        self.arrival = np.concatenate([old_arrival, new_arrival]).astype(np.int32)
        n = self.n = len(self.arrival)
        self.p = rng.beta(0.3, 1.5, n).astype(np.float32)
        self.heavy = rng.random(n) < HEAVY_SHARE
        self.home = world.draw_locs(n, rng)
        self.device = world.draw_devices(n, rng)
        self.h5 = rng.random(n) < H5_USERS
        self.webid = rng.integers(1000, 10000, n).astype(np.int16)
        self.gender = np.where(rng.random(n) < 0.52, 1, 2).astype(np.int8)
        bands = catalog.AGE_BANDS
        band = rng.choice(len(bands), n, p=[b[2] for b in bands])
        lo = np.array([b[0] for b in bands])[band]
        hi = np.array([b[1] for b in bands])[band]
        age_at_end = lo + (rng.random(n) * (hi - lo + 1)).astype(np.int64)
        end_dn = day_number(prm.end_date)
        self.birth_dn = (end_dn - age_at_end * 365.25 - rng.random(n) * 365).astype(np.int32)
        u = rng.random(n)
        self.props = np.where(u < PROPS_BOTH, 2, np.where(u < PROPS_BOTH + PROPS_GENDER, 1, 0))
        # openids: o + 5 fixed characters of the app + 22 random base64url characters
        app_part = B64[rng.integers(0, 64, 5)]
        body = B64[rng.integers(0, 64, (n, 22), dtype=np.uint8)]
        head = np.broadcast_to(np.concatenate([[ord("o")], app_part]).astype(np.uint8), (n, 6))
        self.openid = np.concatenate([head, body], axis=1)

    def age_on(self, users: np.ndarray, dn: np.ndarray | int) -> np.ndarray:
        return ((dn - self.birth_dn[users]).astype(np.int64) * 4 // 1461).astype(np.int16)


@dataclass
class Counts:
    rows: int = 0
    normal: int = 0
    duplicates: int = 0
    devtools: int = 0
    bots: int = 0
    malformed: int = 0

    def add(self, other: Counts) -> None:
        for k, v in asdict(other).items():
            setattr(self, k, getattr(self, k) + v)


class DayMaker:
    """The visits of one day, as an Arrow table in time order (re-sent copies at the end)."""

    def __init__(self, prm: GenParams, world: World, pop: Population):
        self.prm, self.w, self.pop = prm, world, pop
        self.first_dn = day_number(prm.end_date) - prm.days + 1 - prm.history_days
        self.hour_p = np.array(catalog.HOUR_WEIGHTS) / np.sum(catalog.HOUR_WEIGHTS)
        # a time 20 years after the last day: "more than a day in the future" for any real clock
        self.future_ms = (day_number(prm.end_date) + 7305) * MS_PER_DAY
        self.broken = 0  # malformed rows so far: their kinds take turns across days

    def visitors(self, g: int, rng: np.random.Generator) -> np.ndarray:
        pop = self.pop
        if g < pop.history:
            lo, hi = np.searchsorted(pop.arrival, [g, g + 1])
            return np.arange(lo, hi)
        arrived = int(np.searchsorted(pop.arrival, g, side="right"))
        # 0.2 % of users a day switch phones for good
        switch = np.flatnonzero(rng.random(arrived) < SWITCH_PER_DAY)
        pop.device[switch] = self.w.draw_devices(len(switch), rng)
        visit = rng.random(arrived) < pop.p[:arrived]
        visit |= pop.arrival[:arrived] == g
        return np.flatnonzero(visit)

    def make(self, g: int, rng: np.random.Generator) -> tuple[pa.Table, Counts]:
        pop = self.pop
        users = self.visitors(g, rng)
        extra = np.where(
            pop.heavy[users],
            rng.poisson(HEAVY_EXTRA, len(users)),
            (rng.random(len(users)) < LIGHT_SECOND).astype(np.int64),
        )
        uidx = np.repeat(users, 1 + extra)
        n = len(uidx)
        dn = self.first_dn + g
        hour = rng.choice(24, n, p=self.hour_p)
        t = dn * MS_PER_DAY - UTC_OFFSET_MS + hour * 3_600_000 + rng.integers(0, 3_600_000, n)
        order = np.argsort(t, kind="stable")
        uidx, t = uidx[order], t[order]

        kind = rng.random(n)
        bot = kind < BOTS
        devtools = (kind >= BOTS) & (kind < BOTS + DEVTOOLS)
        malformed = (kind >= BOTS + DEVTOOLS) & (kind < BOTS + DEVTOOLS + MALFORMED)
        normal = ~(bot | devtools | malformed)

        cols = {"appid": pa.array(np.full(n, self.prm.appid), pa.string())}
        cols["openid"] = fixed_strings(pop.openid[uidx])
        cols["time"] = pa.array(t, pa.int64())
        ev = rng.random(n) >= EVENT_IDS
        hexes = HEX[rng.integers(0, 16, (n, 32), dtype=np.uint8)]
        cols["event_id"] = fixed_strings(hexes, ev)
        cols.update(self._place(uidx, rng))
        cols.update(self._device(uidx, devtools, bot, rng))
        cols.update(self._person(uidx, dn, rng))
        table = pa.table(cols)

        if malformed.any():
            table = self._break(table, np.flatnonzero(malformed))
        dup = np.flatnonzero(normal & (rng.random(n) < DUPLICATES))
        table = pa.concat_tables([table, table.take(pa.array(dup))])
        c = Counts(
            rows=table.num_rows,
            normal=int(normal.sum()),
            duplicates=len(dup),
            devtools=int(devtools.sum()),
            bots=int(bot.sum()),
            malformed=int(malformed.sum()),
        )
        return table, c

    def _place(self, uidx: np.ndarray, rng: np.random.Generator) -> dict[str, pa.Array]:
        n = len(uidx)
        loc = self.pop.home[uidx].copy()
        travel = np.flatnonzero(rng.random(n) < TRAVEL)
        loc[travel] = self.w.draw_locs(len(travel), rng)
        u = rng.random(n)
        ip_only = u < IP_ONLY
        none = (u >= IP_ONLY) & (u < IP_ONLY + NO_PLACE)
        explicit = ~(ip_only | none)
        no_city = explicit & (rng.random(n) < PROVINCE_ONLY)
        sp = self.w.places
        province = coded(sp.province.pick(loc, rng), sp.province.values, ~explicit)
        city = coded(sp.city.pick(loc, rng), sp.city.values, ~explicit | no_city)
        rows = np.flatnonzero(ip_only)
        v6 = rng.random(len(rows)) < IPV6
        ip = np.full(n, None, dtype=object)
        v4rows = rows[~v6]
        ip[v4rows] = ipv4_text(self.w.ips.sample(loc[v4rows], rng)).to_numpy(zero_copy_only=False)
        ip[rows[v6]] = ipv6_text(int(v6.sum()), rng).to_numpy(zero_copy_only=False)
        return {"ip": pa.array(ip, pa.string()), "province": province, "city": city}

    def _device(
        self, uidx: np.ndarray, devtools: np.ndarray, bot: np.ndarray, rng: np.random.Generator
    ) -> dict[str, pa.Array]:
        w, pop = self.w, self.pop
        n = len(uidx)
        dev = pop.device[uidx].astype(np.int64)
        other = np.flatnonzero(rng.random(n) < OTHER_PHONE)
        dev[other] = w.draw_devices(len(other), rng)
        h5 = pop.h5[uidx] & ~devtools
        no_dev = h5 | bot | (rng.random(n) < NO_DEVICE)
        no_plat = h5 | bot | (rng.random(n) < NO_PLATFORM)
        plat = w.dev_platform[dev].copy()
        plat[devtools] = len(w.dev_platform_names)  # "devtools"
        no_plat &= ~devtools
        brand = coded(dev, w.dev_brand, no_dev & ~devtools)
        model = coded(dev, w.dev_model, no_dev & ~devtools)
        if devtools.any():
            k = np.flatnonzero(devtools)
            dt_models = np.array(catalog.DEVTOOLS_MODELS, dtype=object)
            b = brand.to_numpy(zero_copy_only=False)
            m = model.to_numpy(zero_copy_only=False)
            b[k] = "devtools"
            m[k] = dt_models[rng.integers(0, len(dt_models), len(k))]
            brand, model = pa.array(b, pa.string()), pa.array(m, pa.string())
        ua = np.full(n, None, dtype=object)
        for i in np.flatnonzero(h5 & ~bot).tolist():
            ua[i] = w.h5_ua[dev[i]].replace("{webid}", str(pop.webid[uidx[i]]))
        bots = np.array(catalog.BOT_USER_AGENTS, dtype=object)
        ua[bot] = bots[rng.integers(0, len(bots), int(bot.sum()))]
        return {
            "platform": coded(plat, w.platform_values, no_plat),
            "brand": brand,
            "model": model,
            "user_agent": pa.array(ua, pa.string()),
        }

    def _person(self, uidx: np.ndarray, dn: int, rng: np.random.Generator) -> dict[str, pa.Array]:
        pop = self.pop
        props = pop.props[uidx]
        spelling = (pop.gender[uidx].astype(np.int64) - 1) * 3 + rng.integers(0, 3, len(uidx))
        gender = coded(spelling, GENDER_SPELLINGS, props == 0)
        age = pa.array(pop.age_on(uidx, dn), pa.int16(), mask=props < 2)
        return {"gender": gender, "age": age}

    def _break(self, table: pa.Table, rows: np.ndarray) -> pa.Table:
        """Makes each of ``rows`` invalid in one field, in turn: age, province, time, gender."""
        cols = {name: table.column(name).to_numpy(zero_copy_only=False).copy() for name in (
            "age", "province", "time", "gender")}  # fmt: skip
        for r in rows.tolist():
            what = MALFORMED_KINDS[self.broken % len(MALFORMED_KINDS)]
            self.broken += 1
            if what == "age":
                cols["age"][r] = 200
            elif what == "province":
                cols["province"][r] = "火星"
            elif what == "time":
                cols["time"][r] = self.future_ms
            else:
                cols["gender"][r] = "x"
        age = cols["age"]
        age_arr = pa.array(
            np.nan_to_num(age.astype(np.float64), nan=0).astype(np.int16), mask=np.isnan(age)
        )
        out = table
        for name, arr in (
            ("age", age_arr),
            ("province", pa.array(cols["province"], pa.string())),
            ("time", pa.array(cols["time"], pa.int64())),
            ("gender", pa.array(cols["gender"], pa.string())),
        ):
            out = out.set_column(out.schema.get_field_index(name), name, arr)
        return out


def iso_seconds(time_ms: np.ndarray, millis: bool = False) -> pa.Array:
    """Asia/Shanghai ISO 8601 text with the offset: ``2026-06-30T08:00:00+08:00``, or with
    ``millis`` ``2026-06-30T08:00:00.123+08:00``."""
    local = np.asarray(time_ms, dtype=np.int64) + UTC_OFFSET_MS
    if millis:
        stamps = pa.array(local, pa.int64()).cast(pa.timestamp("ms"))
    else:
        stamps = pa.array(local // 1000, pa.int64()).cast(pa.timestamp("s"))
    text = pc.strftime(stamps, format="%Y-%m-%dT%H:%M:%S")
    return pc.binary_join_element_wise(text, "+08:00", "")


def make_profiles(prm: GenParams, pop: Population, rng: np.random.Generator) -> pa.Table:
    first_dn = day_number(prm.end_date) - prm.days + 1 - prm.history_days
    end_dn = day_number(prm.end_date)
    users = np.flatnonzero(rng.random(pop.n) < PROFILE_USERS)
    undated = rng.random(len(users)) < PROFILE_UNDATED
    arrive_dn = first_dn + np.maximum(pop.arrival[users], 0)
    span = end_dn - arrive_dn + 1
    after = rng.random(len(users)) < PROFILE_AFTER_END
    now_dn = day_number(datetime.now(TZ).date())
    after_room = max(0, min(30, now_dn - end_dn - 1))
    span = np.where(after & (after_room > 0), span + after_room, span)
    pdn = arrive_dn + (rng.random(len(users)) * span).astype(np.int64)
    pdn = np.where(undated, end_dn, pdn)
    t = pdn * MS_PER_DAY - UTC_OFFSET_MS + rng.integers(0, MS_PER_DAY, len(users))
    gender = pop.gender[users].astype(np.int64)
    age = pop.age_on(users, pdn)
    # A later change: a birthday (age + 1) or a corrected gender, dated after the first one.
    ch = np.flatnonzero(~undated & (rng.random(len(users)) < PROFILE_CHANGE))
    ch_t = t[ch] + rng.integers(1, 20, len(ch)) * MS_PER_DAY
    ch_t = np.maximum(np.minimum(ch_t, int(time.time() * 1000) - 60_000), t[ch])
    flip = rng.random(len(ch)) < 0.2
    ch_gender = np.where(flip, 3 - gender[ch], gender[ch])
    all_users = np.concatenate([users, users[ch]])
    all_t = np.concatenate([t, ch_t])
    all_undated = np.concatenate([undated, np.zeros(len(ch), bool)])
    all_gender = np.concatenate([gender, ch_gender])
    all_age = np.concatenate([age, age[ch] + 1]).astype(np.int16)
    spelling = (all_gender - 1) * 3 + rng.integers(0, 3, len(all_users))
    order = np.argsort(all_users, kind="stable")
    time_col = pa.array(all_t[order], pa.int64(), mask=all_undated[order])
    if prm.time_format == "iso":
        time_col = pc.if_else(
            pa.array(all_undated[order]), pa.scalar(None, pa.string()), iso_seconds(all_t[order])
        )
    return pa.table(
        {
            "appid": pa.array(np.full(len(all_users), prm.appid), pa.string()),
            "openid": fixed_strings(pop.openid[all_users[order]]),
            "time": time_col,
            "gender": coded(spelling[order], GENDER_SPELLINGS),
            "age": pa.array(all_age[order], pa.int16()),
        }
    )


def write_jsonl(
    path: Path, tables: list[pa.Table], prm: GenParams, rng: np.random.Generator
) -> int:
    """The sample as JSON Lines for the second app: half the times ISO text, half epoch ms."""
    t = pa.concat_tables(tables)
    if t.num_rows > prm.jsonl_rows:
        t = t.take(pa.array(np.sort(rng.choice(t.num_rows, prm.jsonl_rows, replace=False))))
    t = t.set_column(0, "appid", pa.array(np.full(t.num_rows, prm.jsonl_appid), pa.string()))
    ms = t.column("time").to_numpy()
    iso = iso_seconds(ms, millis=True).to_pylist()
    use_iso = rng.random(t.num_rows) < 0.5
    rows = t.to_pylist()
    with open(path, "wb") as f:
        for i, r in enumerate(rows):
            r = {k: v for k, v in r.items() if v is not None}
            if use_iso[i]:
                r["time"] = iso[i]
            f.write(orjson.dumps(r))
            f.write(b"\n")
    return len(rows)


def generate(prm: GenParams, out: Path, progress: bool = True) -> dict:
    """Writes the data set into ``out``; returns the metadata also written to meta.json."""
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(prm.seed)
    world = World()
    pop = Population(prm, world, rng)
    maker = DayMaker(prm, world, pop)
    total_days = prm.history_days + prm.days
    per_file = -(-prm.days // max(1, prm.files))
    files: list[str] = []
    writer: pq.ParquetWriter | None = None
    counts = Counts()
    sample: list[pa.Table] = []
    per_day_sample = -(-prm.jsonl_rows // max(1, prm.days))
    bar = tqdm(total=total_days, desc="generate", unit="day", file=sys.stderr, disable=not progress)
    for g in range(total_days):
        name = (
            "visits-history.parquet"
            if g < prm.history_days
            else f"visits-{(g - prm.history_days) // per_file + 1}.parquet"
        )
        if not files or files[-1] != name:
            if writer is not None:
                writer.close()
            writer = None
            files.append(name)
        table, c = maker.make(g, rng)
        counts.add(c)
        written = table
        if prm.time_format == "iso":
            written = table.set_column(2, "time", iso_seconds(table.column("time").to_numpy()))
        if writer is None:
            writer = pq.ParquetWriter(out / name, written.schema, compression="zstd")
        writer.write_table(written, row_group_size=1 << 20)
        if g >= prm.history_days and prm.jsonl_rows:
            k = min(per_day_sample, table.num_rows)
            sample.append(table.take(pa.array(rng.choice(table.num_rows, k, replace=False))))
        bar.update(1)
        bar.set_postfix(rows=f"{counts.rows:,}")
    bar.close()
    if writer is not None:
        writer.close()
    profiles = make_profiles(prm, pop, rng)
    pq.write_table(profiles, out / "profiles.parquet", compression="zstd")
    jsonl = write_jsonl(out / "sample.jsonl", sample, prm, rng) if prm.jsonl_rows else 0
    meta = {
        "params": asdict(prm),
        "first_day": day_date(maker.first_dn).isoformat(),
        "window_first_day": day_date(maker.first_dn + prm.history_days).isoformat(),
        "last_day": prm.end_date.isoformat(),
        "users": pop.n,
        "visit_files": files,
        "visits": asdict(counts),
        "expected": {
            "accepted": counts.normal,
            "duplicates": counts.duplicates,
            "filtered": counts.devtools + counts.bots,
            "rejected": counts.malformed,
        },
        "profiles": profiles.num_rows,
        "jsonl_rows": jsonl,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False))
    return meta


def add_params_args(p: argparse.ArgumentParser) -> None:
    d = GenParams()
    p.add_argument("--dau", type=int, default=d.dau, help="mean daily active users (%(default)s)")
    p.add_argument(
        "--days",
        type=int,
        default=d.days,
        help="days of visits ending on --end (%(default)s: the 30-day window and one more)",
    )
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (%(default)s)")
    p.add_argument(
        "--end",
        default=d.end,
        help="last day, YYYY-MM-DD or 'yesterday' (default %(default)s, fixed for reproducibility)",
    )
    p.add_argument(
        "--history-days",
        type=int,
        default=d.history_days,
        help="days before the window holding one visit of each existing user (%(default)s)",
    )
    p.add_argument("--files", type=int, default=d.files, help="visit files (%(default)s)")
    p.add_argument(
        "--jsonl-rows", type=int, default=d.jsonl_rows, help="JSON Lines sample rows (%(default)s)"
    )
    p.add_argument(
        "--time-format",
        choices=("ms", "iso"),
        default=d.time_format,
        help="Parquet time column: int64 epoch ms, or ISO 8601 text (%(default)s)",
    )


def params_from_args(a: argparse.Namespace) -> GenParams:
    return GenParams(
        dau=a.dau,
        days=a.days,
        seed=a.seed,
        end=a.end,
        history_days=a.history_days,
        files=a.files,
        jsonl_rows=a.jsonl_rows,
        time_format=a.time_format,
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m bench.generate",
        description="Write a synthetic data set (visits, profiles, a JSON Lines sample).",
    )
    p.add_argument("--out", type=Path, default=Path("bench/.data/input"), help="output folder")
    add_params_args(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    meta = generate(params_from_args(a), a.out, progress=not a.no_progress)
    print(json.dumps(meta, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
