"""Erasure and a change of time zone: new states of an app's records.

Raw segments are the source of truth; both rewrite them and then re-derive everything a
portrait reads through :meth:`weanalysis.store.writer.Writer.rebuild`, under the write lock, in
one published manifest (the commit point, as for ingest): a crash or ``kill -9`` at any point
leaves the previous state or the new one.

- **Erasure** (``forget``): the users' rows leave the raw segments, their openids leave the user
  segments (replaced by a tombstone, so dense ids stay stable and are never reused), the keys of
  their event ids leave the key segments (re-sent records are stored again as new); keys of
  their records without an event id mix the dead user id with the content, so no future record
  can match them; what retention kept of them (first visit day, gender and age before the
  retained range, :mod:`weanalysis.store.retention`) leaves the retained state. The files that
  held their data become garbage of the new version: deleted as soon as no reader holds a lease
  on an older one (:mod:`weanalysis.store.leases`).
- **Time zone** (``app set --timezone``): every raw segment is written again with its days in
  the new zone; the manifest records the zone (new commits use it), then the catalog follows.
  Refused once retention deleted records: their days cannot be computed again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from weanalysis.store import dedup, files, retention
from weanalysis.store.catalog import App, Catalog, CatalogError, check_timezone
from weanalysis.store.days import day_date, local_days
from weanalysis.store.integrity import verified
from weanalysis.store.rows import UNDATED_DAY
from weanalysis.store.snapshot import AppSnapshot, read_manifest
from weanalysis.store.writer import Writer

TOMBSTONE = "\x00erased:"  # openids never hold control characters: no real one looks like this


@dataclass
class Erased:
    users: int = 0
    visits: int = 0
    profiles: int = 0

    def as_dict(self) -> dict:
        return {"users": self.users, "visits": self.visits, "profiles": self.profiles}


def _is_visits(rel: str) -> bool:
    return Path(rel).name.startswith("visits-")


def _new_raw_name(rel: str, tag: str, i: int) -> str:
    stem = Path(rel).name.split("-")[0]
    return f"raw/{stem}-{tag}-r{i}.parquet"


# -- erasure -------------------------------------------------------------------------------------


def forget(data_dir: Path, app: App, openids: Iterable[str]) -> Erased:
    """Erase these users of ``app`` from everything the data folder holds, in one commit.

    Unknown openids erase nothing. Afterwards every portrait equals the one computed as if
    their records had never been ingested.
    """
    targets = {o for o in openids if o and not o.startswith(TOMBSTONE)}
    out = Erased()
    d = data_dir / "apps" / app.appid
    if not targets or not (d / "manifest.json").exists():
        return out
    wanted = pa.array(sorted(targets), pa.string())

    def hits(col: pa.ChunkedArray) -> list[int]:
        """Positions of the wanted openids in a user segment's column (vectorised: a segment
        holds up to a chunk's new users, an app millions)."""
        found = pc.is_in(col, value_set=wanted).fill_null(False)
        return np.flatnonzero(found.to_numpy(zero_copy_only=False)).tolist()

    # a first look without the lock (a snapshot's lease keeps its files): nothing to do for
    # openids the app never saw
    snap = AppSnapshot(d)
    try:
        segs = snap.manifest["user_segments"]
        if not any(hits(files.read_arrow(snap.path(rel)).column("openid")) for rel in segs):
            return out
    finally:
        snap.close()
    dead_ids: list[int] = []

    def rewrite_users(app_dir: Path, manifest: dict, tag: str) -> dict:
        # 1. openids -> tombstones (dense ids stay where they are)
        segments = []
        base = 0
        for i, rel in enumerate(manifest["user_segments"]):
            col = files.read_arrow(verified(app_dir, manifest, rel)).column("openid")
            found = hits(col)
            if found:
                values = col.to_pylist()
                for j in found:
                    dead_ids.append(base + j)
                    values[j] = f"{TOMBSTONE}{base + j}"
                new_rel = f"users/openids-{tag}-e{i}.arrow"
                table = pa.table({"openid": pa.array(values, pa.string())})
                files.write_arrow(app_dir / new_rel, table)
                segments.append(new_rel)
            else:
                segments.append(rel)
            base += len(col)
        if not dead_ids:
            return {}
        dead = np.array(sorted(dead_ids), dtype=np.int64)
        # 2. the keys of their event ids (records without one: keyed with the dead user id)
        events = []
        for rel in manifest["raw"]:
            t = pq.read_table(verified(app_dir, manifest, rel), columns=["uid", "event_id"])
            mask = np.isin(t.column("uid").to_numpy(), dead)
            if mask.any():
                events.extend(t.column("event_id").filter(pa.array(mask)).chunks)
        out_keys = {}
        ev = pa.chunked_array(events, pa.string()).combine_chunks().drop_null()
        if len(ev) and manifest["keys"]:
            gone = dedup.KeySet.of(dedup.event_keys(ev))
            allk = dedup.KeySet.union(
                dedup.KeySet.load(verified(app_dir, manifest, k)) for k in manifest["keys"]
            )
            rel = f"keys/keys-{tag}-e.parquet"
            allk.without(gone).save(app_dir / rel)
            out_keys["keys"] = [rel]
        return {"user_segments": segments, **out_keys}

    def rewrite_raw(app_dir: Path, manifest: dict, tag: str) -> list[str]:
        # 3. their rows leave the raw segments
        if not dead_ids:
            return list(manifest["raw"])
        dead = np.array(sorted(dead_ids), dtype=np.int64)
        raw = []
        for i, rel in enumerate(manifest["raw"]):
            path = verified(app_dir, manifest, rel)
            uid = pq.read_table(path, columns=["uid"]).column("uid").to_numpy()
            mask = np.isin(uid, dead)
            if not mask.any():
                raw.append(rel)
                continue
            if _is_visits(rel):
                out.visits += int(mask.sum())
            else:
                out.profiles += int(mask.sum())
            keep = pq.read_table(path).filter(pa.array(~mask))
            if len(keep):
                new_rel = _new_raw_name(rel, tag, i)
                files.write_parquet(app_dir / new_rel, keep)
                raw.append(new_rel)
        return raw

    def rewrite_retained(app_dir: Path, manifest: dict, tag: str) -> dict | None:
        # 4. what retention kept of them
        entry = manifest.get("retained")
        if not entry or not dead_ids:
            return entry
        kept = retention.load(app_dir, manifest)
        dead = np.array(sorted(dead_ids), dtype=np.int64)
        return retention.write(app_dir, tag, retention.without_users(kept, dead), entry["from_day"])

    _rebuild(
        data_dir,
        app,
        rewrite_raw=rewrite_raw,
        rewrite_users=rewrite_users,
        rewrite_retained=rewrite_retained,
    )
    out.users = len(dead_ids)
    return out


def _rebuild(data_dir: Path, app: App, **rewrite) -> None:
    """One :meth:`Writer.rebuild` of ``app`` (under the write lock) with the given rewrites."""
    writer = Writer(data_dir)
    try:
        writer.rebuild(app, **rewrite)
    finally:
        writer.close()


def _refuse_if_retained(appid: str, manifest: dict) -> None:
    start = retention.retained_from(manifest)
    if start is not None:
        raise CatalogError(
            f"cannot change the time zone of {appid}: its retention deleted the records of days "
            f"before {day_date(start).isoformat()}, whose days (first visits, gender "
            "and age) cannot be re-derived in another zone"
        )


# -- time zone ----------------------------------------------------------------------------------


def set_timezone(data_dir: Path, catalog: Catalog, appid: str, timezone: str) -> int:
    """Re-derive the app's days in ``timezone`` from its stored records, then record the zone.

    Returns the number of stored visits whose days were re-derived.
    """
    check_timezone(timezone)
    app = catalog.get(appid)
    if app is None:
        raise CatalogError(f"app {appid!r} is not registered")
    d = data_dir / "apps" / appid
    manifest = read_manifest(d) if (d / "manifest.json").exists() else None
    current = (manifest or {}).get("timezone") or app.timezone
    if manifest is not None and manifest["version"] > 0 and current != timezone:
        zone = ZoneInfo(timezone)
        _refuse_if_retained(appid, manifest)

        def rewrite_raw(app_dir: Path, manifest: dict, tag: str) -> list[str]:
            _refuse_if_retained(appid, manifest)  # again under the lock: gc may have run
            raw = []
            for i, rel in enumerate(manifest["raw"]):
                table = pq.read_table(verified(app_dir, manifest, rel))
                tcol = table.column("time_ms")
                dated = tcol.is_valid().to_numpy(zero_copy_only=False)
                t = tcol.fill_null(0).to_numpy()
                day = np.full(len(t), UNDATED_DAY, dtype=np.int32)
                day[dated] = local_days(t[dated], zone)
                at = table.schema.get_field_index("day")
                # undated rows keep a null day, as the writer stores them
                arr = pa.array(day, pa.int32(), mask=~dated)
                table = table.set_column(at, table.schema.field(at), arr)
                new_rel = _new_raw_name(rel, tag, i)
                files.write_parquet(app_dir / new_rel, table)
                raw.append(new_rel)
            return raw

        _rebuild(data_dir, app, rewrite_raw=rewrite_raw, timezone=timezone)
    # the manifest is the commit point; the catalog follows (the writer already uses the
    # manifest's zone, so a crash in between leaves stored days and new days in one zone)
    catalog.set_timezone(appid, timezone)
    return (manifest or {"counts": {"visits": 0}})["counts"]["visits"]
