"""``GET /metrics`` in the Prometheus text format (prometheus-client).

What a team running weanalysis watches: requests by route and errcode with latency histograms,
records accepted / duplicate / filtered / rejected by source and reason, commit latency and size,
kept-answer hits, stored records and bytes per app. Labels are route templates, errcodes,
reason kinds and appids: never a secret, a token or an openid (bounded sets, nothing a client
chooses freely).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.process_collector import ProcessCollector

from weanalysis.store import Store
from weanalysis.store.integrity import named_files
from weanalysis.store.snapshot import read_manifest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
COMMIT_SIZE_BUCKETS = (1, 10, 100, 1_000, 10_000, 100_000, 1_000_000)
STORE_SCAN_S = 15.0  # store sizes are re-read at most this often (a stat per stored file)
CONTENT_TYPE = CONTENT_TYPE_LATEST
# paths whose first segment names a family: labelled by the family, never by the rest
FAMILIES = ("/static/", "/cgi-bin/", "/datacube/", "/api/")


class Metrics:
    """The server's metrics, in a registry of its own (several apps can live in one process)."""

    def __init__(self) -> None:
        self.routes: frozenset[str] = frozenset()  # the app's fixed paths (set by create_app)
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "weanalysis_http_requests",
            "HTTP requests by route template, method, status and errcode (- when none).",
            ["route", "method", "status", "errcode"],
            registry=r,
        )
        self.latency = Histogram(
            "weanalysis_http_request_duration_seconds",
            "Time to answer a request, by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.records = Counter(
            "weanalysis_records",
            "Records received live, by source (collect, records_api), outcome (accepted, "
            "duplicate, filtered, rejected) and reason (filter reason or field at fault).",
            ["source", "outcome", "reason"],
            registry=r,
        )
        self.commit_latency = Histogram(
            "weanalysis_commit_duration_seconds",
            "Time of one group commit (validate, enrich, store durably).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.commit_size = Histogram(
            "weanalysis_commit_records",
            "Records in one group commit.",
            buckets=COMMIT_SIZE_BUCKETS,
            registry=r,
        )
        ProcessCollector(registry=r)

    def route_label(self, path: str) -> str:
        """The route a path belongs to: a fixed path of the app, else its family, else other
        (so that no client-chosen text becomes a label)."""
        if path in self.routes:
            return path
        for family in FAMILIES:
            if path.startswith(family):
                return family + "*"
        return "other"

    def observe_request(
        self, path: str, method: str, status: int, errcode: int | None, seconds: float
    ) -> None:
        route = self.route_label(path)
        if method not in ("GET", "POST", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"):
            method = "other"
        self.requests.labels(
            route, method, str(status), "-" if errcode is None else str(errcode)
        ).inc()
        self.latency.labels(route).observe(seconds)

    def observe_records(self, source: str, outcome: str, reason: str, n: int = 1) -> None:
        if n:
            self.records.labels(source, outcome, reason).inc(n)

    def observe_commit(self, seconds: float, records: int) -> None:
        self.commit_latency.observe(seconds)
        self.commit_size.observe(records)

    def add_state(
        self, store: Store, portraits: Callable[[], Iterable[tuple[str, object]]]
    ) -> None:
        """Gauges read at scrape time: stored records and bytes per app, kept-answer hits."""
        self.registry.register(_StateCollector(store, portraits))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector:
    def __init__(self, store: Store, portraits) -> None:
        self.store = store
        self.portraits = portraits
        self._lock = threading.Lock()
        self._sizes: tuple[float, dict[str, tuple[int, dict]]] = (0.0, {})

    def _scan(self) -> dict[str, tuple[int, dict]]:
        with self._lock:
            at, sizes = self._sizes
            if time.monotonic() - at < STORE_SCAN_S:
                return sizes
            sizes = {}
            for app in self.store.catalog.list():
                d = self.store.app_dir(app.appid)
                try:
                    m = read_manifest(d)
                    total = 0
                    for rel in named_files(d, m):
                        try:
                            total += (d / rel).stat().st_size
                        except FileNotFoundError:
                            pass
                except Exception:  # a damaged manifest: check says which; keep scraping
                    continue
                sizes[app.appid] = (total, m)
            self._sizes = (time.monotonic(), sizes)
            return sizes

    def describe(self):
        return []

    def collect(self):
        size = GaugeMetricFamily(
            "weanalysis_store_bytes",
            "Bytes of the files an app's current state names.",
            labels=["appid"],
        )
        recs = GaugeMetricFamily(
            "weanalysis_stored_records",
            "Records stored per app and kind.",
            labels=["appid", "kind"],
        )
        users = GaugeMetricFamily(
            "weanalysis_stored_users", "Users known per app.", labels=["appid"]
        )
        for appid, (total, m) in sorted(self._scan().items()):
            size.add_metric([appid], total)
            for kind, n in sorted(m["counts"].items()):
                recs.add_metric([appid, kind.rstrip("s")], n)
            users.add_metric([appid], m["users"])
        kept = CounterMetricFamily(
            "weanalysis_kept_answers",
            "Portrait requests answered from a kept answer (hit) or computed (miss), by API.",
            labels=["api", "result"],
        )
        for api, service in self.portraits():
            kept.add_metric([api, "hit"], service.hits)
            kept.add_metric([api, "miss"], service.misses)
        yield from (size, recs, users, kept)
