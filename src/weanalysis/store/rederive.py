"""Re-derive an app's derived structures from its raw segments: the one function that erasure,
retention and a change of time zone go through.

The raw segments (``raw/*.parquet``) hold every stored record with its storage position
(``seq``), dense user id, time and canonical values. Everything a portrait reads — day
summaries, first visit days, person logs — is a function of them, plus what retention kept of
deleted records (``manifest["retained"]``: each user's first visit day and latest gender and
age as of the retained range's first day, see :mod:`weanalysis.store.maintenance`).

Users (``user_segments``) and idempotency keys are not touched here: they are not derived from
the raw rows alone (keys of records without an event id hash the record as it was sent).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from weanalysis import dims
from weanalysis.dims import regions
from weanalysis.store import files
from weanalysis.store.days import local_days
from weanalysis.store.snapshot import NO_FIRST_DAY, AppSnapshot
from weanalysis.store.summaries import SLOT_BITS, UNDATED_SLOT, day_slot, merge_day, merge_person

TIME_ABSENT = np.iinfo(np.int64).min
AGE_BUCKETS = np.array([dims.age_bucket(a) for a in range(dims.MAX_AGE + 1)], dtype=np.int8)
PERSON_COLS = ("seq", "uid", "time_ms", "gender", "age")
VISIT_COLS = (*PERSON_COLS, "province_id", "city_id", "platform", "device")
RETAINED_PROPS = ("gender", "age")


def is_visit_segment(path: Path) -> bool:
    return "platform" in pq.read_schema(path).names


def read_rows(snap: AppSnapshot, rel: str) -> pa.Table:
    """One raw segment (verified against its checksum)."""
    return pq.read_table(snap.path(rel))


def _rows(snap: AppSnapshot, visits: bool) -> pa.Table | None:
    cols = VISIT_COLS if visits else PERSON_COLS
    parts = []
    for rel in snap.manifest["raw"]:
        path = snap.path(rel)
        if is_visit_segment(path) == visits:
            # device names dictionary-encoded: a few thousand names, not one string a row
            parts.append(pq.read_table(path, columns=list(cols), read_dictionary=["device"]))
    if not parts:
        return None
    t = pa.concat_tables(parts, promote_options="permissive")
    return t.take(pc.sort_indices(t, [("seq", "ascending")]))


def _np(col: pa.ChunkedArray, fill, dtype) -> np.ndarray:
    return col.fill_null(fill).to_numpy().astype(dtype, copy=False)


def _locations(province: np.ndarray, city: np.ndarray) -> np.ndarray:
    pair = province.astype(np.int64) * 1_000_000 + city.astype(np.int64)
    uniq, inv = np.unique(pair, return_inverse=True)
    codes = np.array(
        [regions._LOC_INDEX[(int(p) // 1_000_000, int(p) % 1_000_000)] for p in uniq],
        dtype=np.int16,
    )
    return codes[inv]


def _device_codes(names: pa.ChunkedArray, known: list[str | None]) -> tuple[np.ndarray, list]:
    """Codes into the app's device list (kept as it is, so codes stay stable); ``names`` is
    read dictionary-encoded (few distinct names), so each name is looked up once a chunk."""
    code = {n: i for i, n in enumerate(known) if n is not None}
    out_names = list(known)
    parts = []
    for chunk in names.chunks:
        enc = chunk if pa.types.is_dictionary(chunk.type) else chunk.dictionary_encode()
        table = np.zeros(len(enc.dictionary) + 1, dtype=np.int32)
        for i, n in enumerate(enc.dictionary.to_pylist()):
            if n is None:
                continue
            c = code.get(n)
            if c is None:
                out_names.append(n)
                c = code[n] = len(out_names) - 1
            table[i] = c
        idx = enc.indices.fill_null(len(enc.dictionary)).to_numpy(zero_copy_only=False)
        parts.append(table[idx])
    return (np.concatenate(parts) if parts else np.zeros(0, np.int32)), out_names


def retained_arrays(snap: AppSnapshot) -> dict[str, np.ndarray] | None:
    """What retention kept of deleted records (see :mod:`weanalysis.store.maintenance`)."""
    kept = snap.manifest.get("retained")
    if not kept or not kept.get("dir"):
        return None
    d = kept["dir"]
    names = ["first_day"] + [f"{p}_{c}" for p in RETAINED_PROPS for c in ("key", "t", "val")]
    return {n: np.asarray(files.load_npy(snap.path(f"{d}/{n}.npy"), mmap=False)) for n in names}


def rederive(
    app_dir: Path,
    manifest: dict,
    tz: ZoneInfo,
    tag: str,
    erased: np.ndarray | None = None,
    before: int | None = None,
) -> tuple[dict, list[str]]:
    """Day summaries, first visit days, person logs and device names of ``manifest``'s raw
    segments (and retained values), written as new files tagged ``tag``.

    ``erased`` (sorted user ids) says that the raw segments changed only by losing every row of
    those users: then their entries are dropped from the derived structures, which gives the
    same result without reading the raw segments (each user's entries depend on that user's
    records alone). ``before`` (a day) says that they changed only by losing every dated row of
    the days before it, whose person values ``manifest["retained"]`` now keeps: then those days
    go, and each user's person-log entries before it collapse into the last one (the retained
    value). Returns the new manifest (not yet published) and the files it no longer names.
    """
    if erased is not None:
        return _without_users(app_dir, manifest, erased, tag)
    if before is not None:
        return _without_days_before(app_dir, manifest, before, tag)
    snap = AppSnapshot(app_dir, manifest)
    new = dict(manifest)
    garbage: list[str] = []
    n = manifest["users"]
    kept = retained_arrays(snap)
    known_devices = snap.device_names

    # visits: days, first days, day summaries
    v = _rows(snap, visits=True)
    first = np.full(n, NO_FIRST_DAY, dtype=np.int32)
    if kept is not None:
        floor = kept["first_day"]
        first[: len(floor)] = floor[:n]
    new_days: dict[str, str] = {}
    device_names = known_devices
    if v is not None and len(v):
        uid = _np(v["uid"], 0, np.int64)
        t = _np(v["time_ms"], 0, np.int64)
        day = local_days(t, tz)
        np.minimum.at(first, uid, day)
        loc = _locations(_np(v["province_id"], 0, np.int32), _np(v["city_id"], 0, np.int32))
        plat = _np(v["platform"], 0, np.int8)
        dev, device_names = _device_codes(v["device"], known_devices)
        order = np.argsort(day, kind="stable")
        bounds = np.flatnonzero(np.diff(day[order])) + 1

        def one(rows: np.ndarray) -> tuple[str, str]:
            dn = int(day[rows[0]])
            values = {"loc": loc[rows], "plat": plat[rows], "dev": dev[rows]}
            sub = f"days/{dn}-{tag}"
            _write_dir(app_dir / sub, merge_day(None, uid[rows], t[rows], values))
            return str(dn), sub

        with ThreadPoolExecutor(max_workers=2) as pool:  # numpy sorts release the GIL
            new_days.update(pool.map(one, np.split(order, bounds)))
    garbage.extend(manifest["days"].values())
    new["days"] = new_days
    if manifest["first_day"]:
        garbage.append(manifest["first_day"])
    new["first_day"] = None
    if n:
        new["first_day"] = f"meta/first_day-{tag}.npy"
        (app_dir / "meta").mkdir(exist_ok=True)
        files.write_npy(app_dir / new["first_day"], first)
    if device_names != known_devices:
        import orjson

        if manifest["devices"]:
            garbage.append(manifest["devices"])
        new["devices"] = f"meta/devices-{tag}.json"
        files.atomic_write_bytes(app_dir / new["devices"], orjson.dumps(device_names[1:]))

    # person logs: retained values first (stored before everything kept), then every record
    p = _rows(snap, visits=False)
    parts = [x.select(list(PERSON_COLS)) for x in (v, p) if x is not None and len(x)]
    rows = pa.concat_tables(parts) if parts else None
    if rows is not None:
        rows = rows.take(pc.sort_indices(rows, [("seq", "ascending")]))
    new["persons"] = dict(manifest["persons"])
    for name in RETAINED_PROPS:
        us, slots, ts, vals = [], [], [], []
        if kept is not None and len(kept[f"{name}_key"]):
            k = kept[f"{name}_key"]
            us.append(k >> SLOT_BITS)
            slots.append(k & ((1 << SLOT_BITS) - 1))
            ts.append(kept[f"{name}_t"])
            vals.append(kept[f"{name}_val"].astype(np.int8))
        if rows is not None and len(rows):
            r_uid = _np(rows["uid"], 0, np.int64)
            r_t = rows["time_ms"]
            dated = r_t.is_valid().to_numpy(zero_copy_only=False)
            r_t = _np(r_t, TIME_ABSENT, np.int64)
            slot = np.full(len(r_uid), UNDATED_SLOT, dtype=np.int64)
            slot[dated] = day_slot(local_days(r_t[dated], tz).astype(np.int64))
            if name == "gender":
                val = _np(rows["gender"], 0, np.int8)
            else:
                age = _np(rows["age"], -1, np.int64)
                val = np.zeros(len(age), dtype=np.int8)
                val[age >= 0] = AGE_BUCKETS[age[age >= 0]]
            known = val > 0
            us.append(r_uid[known])
            slots.append(slot[known])
            ts.append(r_t[known])
            vals.append(val[known])
        old = manifest["persons"].get(name)
        if old:
            garbage.append(old)
        total = sum(len(x) for x in us)
        if total == 0:
            new["persons"][name] = None
            continue
        log = merge_person(
            None,
            np.concatenate(us),
            np.concatenate(slots),
            np.concatenate(ts),
            np.concatenate(vals),
            n,
        )
        sub = f"persons/{name}-{tag}"
        _write_dir(app_dir / sub, log)
        new["persons"][name] = sub
    return new, garbage


def _without_users(
    app_dir: Path, manifest: dict, erased: np.ndarray, tag: str
) -> tuple[dict, list[str]]:
    snap = AppSnapshot(app_dir, manifest)
    new = dict(manifest)
    garbage: list[str] = []

    def gone(uids: np.ndarray) -> np.ndarray:
        return np.isin(uids, erased)

    days = dict(manifest["days"])
    for dn, sub in manifest["days"].items():
        s = {k: np.asarray(v) for k, v in snap.day(int(dn), with_times=True).items()}
        hit = gone(s["uid"])
        if not hit.any():
            continue
        garbage.append(sub)
        if hit.all():
            del days[dn]
            continue
        days[dn] = f"days/{dn}-{tag}"
        _write_dir(app_dir / days[dn], {k: v[~hit] for k, v in s.items()})
    new["days"] = days
    if manifest["first_day"]:
        first = np.array(snap.first_day, dtype=np.int32)
        first[erased[erased < len(first)]] = NO_FIRST_DAY
        garbage.append(manifest["first_day"])
        new["first_day"] = f"meta/first_day-{tag}.npy"
        files.write_npy(app_dir / new["first_day"], first)
    new["persons"] = dict(manifest["persons"])
    for name, sub in manifest["persons"].items():
        log = snap.person_log(name)
        if log is None:
            continue
        log = {k: np.asarray(v) for k, v in log.items()}
        hit = gone(log["key"] >> SLOT_BITS)
        if not hit.any():
            continue
        garbage.append(sub)
        if hit.all():
            new["persons"][name] = None
            continue
        out = {k: log[k][~hit] for k in ("key", "t", "val")}
        for k in ("cur", "prev"):
            out[k] = np.array(log[k])
            out[k][erased[erased < len(out[k])]] = 0
        new["persons"][name] = f"persons/{name}-{tag}"
        _write_dir(app_dir / new["persons"][name], out)
    return new, garbage


def _without_days_before(
    app_dir: Path, manifest: dict, before: int, tag: str
) -> tuple[dict, list[str]]:
    snap = AppSnapshot(app_dir, manifest)
    new = dict(manifest)
    garbage = [sub for d, sub in manifest["days"].items() if int(d) < before]
    new["days"] = {d: sub for d, sub in manifest["days"].items() if int(d) >= before}
    new["persons"] = dict(manifest["persons"])
    edge = day_slot(before)
    for name, sub in manifest["persons"].items():
        log = snap.person_log(name)
        if log is None:
            continue
        key, t, val = (np.asarray(log[k]) for k in ("key", "t", "val"))
        uid, slot = key >> SLOT_BITS, key & ((1 << SLOT_BITS) - 1)
        old = np.flatnonzero((slot > UNDATED_SLOT) & (slot < edge))
        if len(old) == 0:
            continue
        keep = np.ones(len(key), dtype=bool)
        keep[old] = False
        u = uid[old]
        last = np.ones(len(old), dtype=bool)
        last[:-1] = u[1:] != u[:-1]  # sorted by key: a user's last entry before the edge
        keep[old[last]] = True
        merged = merge_person(None, uid[keep], slot[keep], t[keep], val[keep], manifest["users"])
        garbage.append(sub)
        new["persons"][name] = f"persons/{name}-{tag}"
        _write_dir(app_dir / new["persons"][name], merged)
    return new, garbage


def _write_dir(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    for k, a in arrays.items():
        files.write_npy(path / f"{k}.npy", a)
    files.fsync_dir(path)
