"""Live collection routes: the public beacon ``/collect`` and the server-to-server records API.

Both answer only once the records are durable (group commit), with the fate of each record:
``{"errcode": 0, "accepted", "duplicates", "filtered", "rejected": [{"index", "reason"}]}``.
A request refused as a whole gets ``{"errcode", "errmsg"}``: 40013/41002 (app), 44002 (empty),
47001 (not JSON, too large, too many records); 45011 with HTTP 429 when rate limited, and HTTP
503 when the records could not be stored (send again: nothing of it was acknowledged).
Request parsing is :mod:`weanalysis.api.request`, the error guard
:mod:`weanalysis.api.wechat_answer`, shared with the WeChat routes.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from weanalysis import settings
from weanalysis.api.request import app_of_token, client_ip, json_body
from weanalysis.api.wechat_answer import guarded, route, wechat_response
from weanalysis.auth.tokens import TokenService
from weanalysis.collect.committer import Closed, GroupCommitter, Submission
from weanalysis.collect.ratelimit import RateLimiter
from weanalysis.records import fields
from weanalysis.store import Catalog
from weanalysis.store.maintenance import forget
from weanalysis.wechat import errors as E

JSON = "application/json; charset=utf-8"
log = logging.getLogger("weanalysis.collect")
CORS = {
    "access-control-allow-origin": "*",
    "access-control-allow-methods": "POST, OPTIONS",
    "access-control-allow-headers": "content-type",
    "access-control-max-age": "86400",
}


@dataclass(frozen=True)
class CollectLimits:
    """Named limits of the two endpoints (a device is untrusted; a backend less so)."""

    beacon_body_bytes: int = 256 * 1024
    beacon_records: int = 500
    api_body_bytes: int = 8 * 1024 * 1024
    api_records: int = 10_000
    ip_rate: float = 20.0  # beacon requests per second per client IP (0: no limit)
    app_rate: float = 1000.0  # beacon requests per second per app
    api_app_rate: float = 100.0  # records-API requests per second per app
    trusted_proxies: tuple[str, ...] = ()  # peers whose X-Forwarded-For is believed

    @classmethod
    def from_settings(cls, **cli_values) -> CollectLimits:
        """The limits from the settings table; ``cli_values``: the options given."""
        v = settings.value
        return cls(
            beacon_body_bytes=v("beacon_body_bytes"),
            beacon_records=v("beacon_records"),
            api_body_bytes=v("records_body_bytes"),
            api_records=v("records_records"),
            ip_rate=v("collect_ip_rate", cli_values.get("collect_ip_rate")),
            app_rate=v("collect_app_rate", cli_values.get("collect_app_rate")),
            api_app_rate=v("records_app_rate"),
            trusted_proxies=v("trusted_proxies", cli_values.get("trusted_proxies")),
        )


def _rate_limited(detail: str) -> E.WeChatError:
    return E.WeChatError(E.RATE_LIMITED, status=429, detail=detail)


class CollectRoutes:
    def __init__(
        self,
        catalog: Catalog,
        tokens: TokenService,
        committer: GroupCommitter,
        limits: CollectLimits,
        data_dir: Path | None = None,
    ):
        self.catalog = catalog
        self.data_dir = data_dir if data_dir is not None else committer.store.dir
        self.tokens = tokens
        self.committer = committer
        self.limits = limits
        self.by_ip = RateLimiter(limits.ip_rate)
        self.by_app = RateLimiter(limits.app_rate)
        self.api_by_app = RateLimiter(limits.api_app_rate)

    def routes(self) -> list[Route]:
        beacon = guarded(self.collect, show_detail=True, content_type=JSON, headers=CORS)
        records = guarded(self.records, show_detail=True, content_type=JSON)
        erase = guarded(self.forget, show_detail=True, content_type=JSON)
        return [
            route("/collect", beacon),
            route("/api/v1/records", records),
            route("/api/v1/forget", erase),
        ]

    def _backend_app(self, request: Request) -> str:
        """A backend's POST: the app of its access token, within the app's request rate."""
        if request.method != "POST":
            raise E.WeChatError(E.REQUIRE_POST)
        appid = app_of_token(self.tokens, self.catalog, request.query_params.get("access_token"))
        if not self.api_by_app.allow(appid):
            raise _rate_limited(f"more than {self.limits.api_app_rate:g} requests/s")
        return appid

    async def _rows(self, request: Request, max_bytes: int, max_records: int) -> list:
        body = await json_body(request, max_bytes, arrays=True)
        rows = body if isinstance(body, list) else [body]
        if len(rows) > max_records:
            raise E.WeChatError(
                E.DATA_FORMAT_ERROR, detail=f"{len(rows)} records; at most {max_records}"
            )
        return rows

    async def _store(self, request: Request, sub: Submission, cors: bool) -> Response:
        try:
            outcome = await asyncio.wrap_future(self.committer.submit(sub))
        except Closed:
            raise E.WeChatError(
                E.SYSTEM_ERROR, status=503, detail="shutting down, send again"
            ) from None
        except Exception as e:
            raise E.WeChatError(
                E.SYSTEM_ERROR, hint=str(e), status=503, detail="records not stored, send again"
            ) from None
        return wechat_response(
            request, outcome.as_dict(), content_type=JSON, headers=CORS if cors else None
        )

    async def collect(self, request: Request) -> Response:
        """The beacon: visits of one app from devices and H5 pages. Public (CORS)."""
        if request.method == "OPTIONS":
            request.state.errcode = 0
            return Response(status_code=204, headers=CORS)
        if request.method != "POST":
            raise E.WeChatError(E.REQUIRE_POST)
        ip = client_ip(request, self.limits.trusted_proxies)
        if not self.by_ip.allow(ip or "-"):
            raise _rate_limited(f"more than {self.limits.ip_rate:g} requests/s from {ip}")
        rows = await self._rows(request, self.limits.beacon_body_bytes, self.limits.beacon_records)
        appid = request.query_params.get("appid") or next(
            (
                r.get("appid")
                for r in rows
                if isinstance(r, dict) and isinstance(r.get("appid"), str)
            ),
            None,
        )
        if not appid:
            raise E.WeChatError(E.APPID_MISSING, detail="give ?appid= or an appid in the records")
        if self.catalog.get(appid) is None:
            raise E.WeChatError(E.INVALID_APPID, detail=appid[:64])
        if not self.by_app.allow(appid):
            raise _rate_limited(f"more than {self.limits.app_rate:g} requests/s for {appid}")
        return await self._store(request, Submission(rows, appid=appid, ip=ip), cors=True)

    async def records(self, request: Request) -> Response:
        """Server to server: visits and profiles of the token's app."""
        appid = self._backend_app(request)
        rows = await self._rows(request, self.limits.api_body_bytes, self.limits.api_records)
        # the records API is called by the app's own backend: record IPs are the visitors'
        sub = Submission(rows, appid=appid, ip=None, profiles=True, source="records_api")
        return await self._store(request, sub, cors=False)

    async def forget(self, request: Request) -> Response:
        """Erase users of the token's app: ``{"openids": [...]}`` -> ``{"errcode": 0, "erased":
        {"users", "visits", "profiles"}}``, answered once the erasure is durable."""
        appid = self._backend_app(request)
        body = await json_body(request, self.limits.api_body_bytes)
        ids = body.get("openids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not ids:
            raise E.WeChatError(E.DATA_FORMAT_ERROR, detail='expected {"openids": ["...", ...]}')
        if len(ids) > self.limits.api_records:
            raise E.WeChatError(
                E.DATA_FORMAT_ERROR, detail=f"{len(ids)} openids; at most {self.limits.api_records}"
            )
        for i, o in enumerate(ids):
            try:
                ok = fields.parse_openid(o)
            except fields.FieldError as e:
                raise E.WeChatError(E.DATA_FORMAT_ERROR, detail=f"openids[{i}]: {e}") from None
            if ok is None:
                raise E.WeChatError(E.DATA_FORMAT_ERROR, detail=f"openids[{i}]: empty")
        try:
            erased = await run_in_threadpool(forget, self.data_dir, self.catalog.get(appid), ids)
        except Exception as e:
            log.exception("forget for %s failed", appid)
            raise E.WeChatError(
                E.SYSTEM_ERROR, hint=str(e), status=503, detail="nothing was erased, send again"
            ) from None
        return wechat_response(
            request, {"errcode": 0, "erased": erased.as_dict()}, content_type=JSON
        )
