"""Portrait answers for servers: current snapshots and a cache of finished documents.

An answer for a window ending on day ``e`` depends only on records of days ``<= e`` (SPEC.md
section 3). The manifest logs the earliest day each commit touched, so a cached document stays
in use until a commit touches a day inside or before its window — however many other commits
land meanwhile (new days, other windows). A comparison's previous window and a trend's days all
end by ``e`` too, so the same rule keeps them.

Kept answers are keyed by everything that shapes them: the window, the explorer's options
(segment, cross-tab, comparison) and the withholding threshold — so changing an app's
``min_users`` never serves an answer made under the old one.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from datetime import date

from weanalysis.dims import Dimension
from weanalysis.portrait.embedded import EmbeddedSource
from weanalysis.portrait.explore import Explore, ExploreError, Segment, Trend, explore, trend
from weanalysis.portrait.imported import (
    ImportedPortraits,
    NotImported,
    explore_imported,
    is_imported,
)
from weanalysis.portrait.query import PortraitQuery, PortraitResult
from weanalysis.store import Store

MAX_CACHED = 4096
PLAIN = Explore()


class PortraitService:
    def __init__(
        self,
        store: Store,
        render: Callable[[PortraitResult], bytes],
        max_cached: int = MAX_CACHED,
        render_trend: Callable[[Trend], bytes] | None = None,
    ):
        self.store = store
        self.render = render
        self.render_trend = render_trend
        self.max_cached = max_cached
        self._sources: dict[str, EmbeddedSource] = {}
        self._imported: dict[str, ImportedPortraits] = {}
        self._cache: OrderedDict[Hashable, tuple[Hashable, bytes]] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[Hashable, threading.Lock] = {}
        self.hits = 0
        self.misses = 0

    def source(self, appid: str) -> EmbeddedSource:
        """The app's current data (a new snapshot once a commit has landed)."""
        src = self._sources.get(appid)
        if src is None or not src.is_current():
            src = self._sources[appid] = EmbeddedSource.of(self.store, appid)
        return src

    def imported(self, appid: str) -> ImportedPortraits | None:
        """The app's imported windows, when it is an imported app (see portrait.imported)."""
        imp = self._imported.get(appid)
        if imp is None and is_imported(self.store.app_dir(appid)):
            imp = self._imported[appid] = ImportedPortraits(self.store.app_dir(appid), appid)
        return imp

    def days(self, appid: str) -> list[int]:
        """The days with data: visits (embedded) or imported windows, ascending."""
        imp = self.imported(appid)
        return imp.days() if imp is not None else self.source(appid).days()

    def cached(self, appid: str, begin: date, end: date, ex: Explore = PLAIN) -> bytes | None:
        """The kept answer if it is still exact, else None (cheap: no computation)."""
        q = PortraitQuery.of(appid, begin, end)
        imp = self.imported(appid)
        if imp is not None:
            try:
                return self.render(explore_imported(imp, q, ex))
            except (NotImported, ExploreError):
                return None  # document() says why
        return self._cached((appid, q.begin, q.end, ex), appid, q.end)

    def document(self, appid: str, begin: date, end: date, ex: Explore = PLAIN) -> bytes:
        """The rendered answer for the window, from the cache when it is still exact.

        Raises :class:`~weanalysis.portrait.explore.ExploreError` for a segment naming a device
        the app has never seen (or any segment of an imported app), :class:`NotImported` for a
        window an imported app does not have.
        """
        q = PortraitQuery.of(appid, begin, end)
        imp = self.imported(appid)
        if imp is not None:
            return self.render(explore_imported(imp, q, ex))
        return self._answer(
            (appid, q.begin, q.end, ex), appid, q.end, lambda src: self.render(explore(src, q, ex))
        )

    def trend(
        self,
        appid: str,
        begin: date,
        end: date,
        dim: Dimension,
        users: str,
        where: Segment,
        min_users: int,
    ) -> bytes:
        """The rendered trend of ``dim`` over the window (kept like a portrait)."""
        render = self.render_trend
        assert render is not None
        if self.imported(appid) is not None:
            raise ExploreError(f"app {appid} holds imported portraits, not records: no trend")
        q = PortraitQuery.of(appid, begin, end)
        key = ("trend", appid, q.begin, q.end, dim.list_name, users, where, min_users)

        def make(src: EmbeddedSource) -> bytes:
            return render(trend(src, q, dim, users, where, min_users))

        return self._cached(key, appid, q.end) or self._answer(key, appid, q.end, make)

    def _cached(self, key: Hashable, appid: str, end_day: int) -> bytes | None:
        hit = self._cache.get(key)
        if hit is None:
            return None
        src = self.source(appid)
        if not src.unchanged_since(hit[0], end_day):
            return None
        with self._lock:
            self._cache[key] = (src.token(), hit[1])
            self.hits += 1
        return hit[1]

    def _answer(
        self, key: Hashable, appid: str, end_day: int, make: Callable[[EmbeddedSource], bytes]
    ) -> bytes:
        src = self.source(appid)
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # one computation per key at a time; the others wait and reuse it
            with self._lock:
                hit = self._cache.get(key)
            if hit is not None and src.unchanged_since(hit[0], end_day):
                with self._lock:
                    self._cache[key] = (src.token(), hit[1])
                    self._cache.move_to_end(key)
                    self.hits += 1
                return hit[1]
            body = make(src)
            with self._lock:
                self.misses += 1
                self._cache[key] = (src.token(), body)
                self._cache.move_to_end(key)
                while len(self._cache) > self.max_cached:
                    old, _ = self._cache.popitem(last=False)
                    self._key_locks.pop(old, None)
            return body
