"""Live collection routes: the public beacon ``/collect`` and the server-to-server records API.

Both answer only once the records are durable (group commit), with the fate of each record:
``{"errcode": 0, "accepted", "duplicates", "filtered", "rejected": [{"index", "reason"}]}``.
A request refused as a whole gets ``{"errcode", "errmsg"}``: 40013/41002 (app), 44002 (empty),
47001 (not JSON, too large, too many records); 45011 with HTTP 429 when rate limited, and HTTP
503 when the records could not be stored (send again: nothing of it was acknowledged).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from dataclasses import dataclass
from pathlib import Path

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from weanalysis.api.body import BodyTooLarge, read_capped
from weanalysis.auth.tokens import TokenService, TokenState
from weanalysis.collect.committer import Closed, GroupCommitter, Submission
from weanalysis.collect.ratelimit import RateLimiter
from weanalysis.records import fields
from weanalysis.store import Catalog
from weanalysis.store.maintenance import forget
from weanalysis.wechat import errors as E

JSON = "application/json; charset=utf-8"
CORS = {
    "access-control-allow-origin": "*",
    "access-control-allow-methods": "POST, OPTIONS",
    "access-control-allow-headers": "content-type",
    "access-control-max-age": "86400",
}
RATE_LIMITED = 45011
RATE_LIMITED_MSG = "api minute-quota reach limit must slower retry next minute"
log = logging.getLogger("weanalysis.collect")


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


class Refused(Exception):
    def __init__(self, errcode: int, detail: str = "", status: int = 200):
        super().__init__(detail)
        self.errcode = errcode
        self.detail = detail
        self.status = status


def _answer(
    request: Request, body: dict, status: int = 200, errcode: int = 0, cors=False
) -> Response:
    request.state.errcode = errcode
    headers = {"content-type": JSON, **(CORS if cors else {})}
    if status == 429:
        headers["retry-after"] = "1"
    return Response(orjson.dumps(body), status_code=status, headers=headers)


def _refusal(request: Request, r: Refused, cors: bool) -> Response:
    text = RATE_LIMITED_MSG if r.errcode == RATE_LIMITED else E.MESSAGES[r.errcode]
    msg = f"{text}: {r.detail}" if r.detail else text
    body = {"errcode": r.errcode, "errmsg": f"{msg} rid: {E.rid()}"}
    return _answer(request, body, r.status, r.errcode, cors)


def client_ip(request: Request, trusted: tuple[str, ...]) -> str | None:
    """The peer address, or, behind a trusted proxy, the last untrusted X-Forwarded-For entry."""
    peer = request.client.host if request.client else None
    try:
        peer = str(ipaddress.ip_address(peer)) if peer else None
    except ValueError:  # a unix socket or a test client: no address to locate
        peer = None
    if peer is None or peer not in trusted:
        return peer
    hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if hop not in trusted:
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer
    return peer


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
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
        return [
            Route("/collect", self.collect, methods=methods),
            Route("/api/v1/records", self.records, methods=methods),
            Route("/api/v1/forget", self.forget, methods=methods),
        ]

    def _backend_app(self, request: Request) -> str:
        """A backend's POST: the app of its access token, within the app's request rate."""
        if request.method != "POST":
            raise Refused(E.REQUIRE_POST)
        appid = self._token_app(request)
        if not self.api_by_app.allow(appid):
            raise Refused(RATE_LIMITED, f"more than {self.limits.api_app_rate:g} requests/s", 429)
        return appid

    def _token_app(self, request: Request) -> str:
        """The app of the request's access token (WeChat's token errors otherwise)."""
        token = request.query_params.get("access_token")
        if not token:
            raise Refused(E.ACCESS_TOKEN_MISSING)
        check = self.tokens.check(token)
        if check.state is TokenState.EXPIRED:
            raise Refused(E.ACCESS_TOKEN_EXPIRED)
        if check.state is not TokenState.VALID or self.catalog.get(check.appid) is None:
            raise Refused(E.INVALID_CREDENTIAL)
        return check.appid

    async def _rows(self, request: Request, max_bytes: int, max_records: int) -> list:
        try:
            raw = await read_capped(request, max_bytes)
        except BodyTooLarge:
            raise Refused(E.DATA_FORMAT_ERROR, f"body larger than {max_bytes} bytes") from None
        if not raw.strip():
            raise Refused(E.EMPTY_POST_DATA)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise Refused(E.DATA_FORMAT_ERROR, f"not JSON ({e})") from None
        rows = body if isinstance(body, list) else [body] if isinstance(body, dict) else None
        if rows is None:
            raise Refused(E.DATA_FORMAT_ERROR, "expected a JSON array of records or one record")
        if len(rows) > max_records:
            raise Refused(E.DATA_FORMAT_ERROR, f"{len(rows)} records; at most {max_records}")
        return rows

    async def _store(self, request: Request, sub: Submission, cors: bool) -> Response:
        try:
            outcome = await asyncio.wrap_future(self.committer.submit(sub))
        except Closed:
            raise Refused(E.SYSTEM_ERROR, "shutting down, send again", 503) from None
        except Exception:
            raise Refused(E.SYSTEM_ERROR, "records not stored, send again", 503) from None
        return _answer(request, outcome.as_dict(), cors=cors)

    async def collect(self, request: Request) -> Response:
        """The beacon: visits of one app from devices and H5 pages. Public (CORS)."""
        if request.method == "OPTIONS":
            request.state.errcode = 0
            return Response(status_code=204, headers=CORS)
        try:
            if request.method != "POST":
                raise Refused(E.REQUIRE_POST)
            ip = client_ip(request, self.limits.trusted_proxies)
            if not self.by_ip.allow(ip or "-"):
                raise Refused(
                    RATE_LIMITED, f"more than {self.limits.ip_rate:g} requests/s from {ip}", 429
                )
            rows = await self._rows(
                request, self.limits.beacon_body_bytes, self.limits.beacon_records
            )
            appid = request.query_params.get("appid") or next(
                (
                    r.get("appid")
                    for r in rows
                    if isinstance(r, dict) and isinstance(r.get("appid"), str)
                ),
                None,
            )
            if not appid:
                raise Refused(E.APPID_MISSING, "give ?appid= or an appid in the records")
            if self.catalog.get(appid) is None:
                raise Refused(E.INVALID_APPID, appid[:64])
            if not self.by_app.allow(appid):
                raise Refused(
                    RATE_LIMITED, f"more than {self.limits.app_rate:g} requests/s for {appid}", 429
                )
            return await self._store(request, Submission(rows, appid=appid, ip=ip), cors=True)
        except Refused as r:
            return _refusal(request, r, cors=True)

    async def records(self, request: Request) -> Response:
        """Server to server: visits and profiles of the token's app."""
        try:
            appid = self._backend_app(request)
            rows = await self._rows(request, self.limits.api_body_bytes, self.limits.api_records)
            # the records API is called by the app's own backend: record IPs are the visitors'
            sub = Submission(rows, appid=appid, ip=None, profiles=True, source="records_api")
            return await self._store(request, sub, cors=False)
        except Refused as r:
            return _refusal(request, r, cors=False)

    async def forget(self, request: Request) -> Response:
        """Erase users of the token's app: ``{"openids": [...]}`` -> ``{"errcode": 0, "erased":
        {"users", "visits", "profiles"}}``, answered once the erasure is durable."""
        try:
            appid = self._backend_app(request)
            openids = await self._openids(request)
            app = self.catalog.get(appid)
            try:
                erased = await run_in_threadpool(forget, self.data_dir, app, openids)
            except Exception:
                log.exception("forget for %s failed", appid)
                raise Refused(E.SYSTEM_ERROR, "nothing was erased, send again", 503) from None
            return _answer(request, {"errcode": 0, "erased": erased.as_dict()})
        except Refused as r:
            return _refusal(request, r, cors=False)

    async def _openids(self, request: Request) -> list[str]:
        try:
            raw = await read_capped(request, self.limits.api_body_bytes)
        except BodyTooLarge:
            raise Refused(E.DATA_FORMAT_ERROR, "body too large") from None
        if not raw.strip():
            raise Refused(E.EMPTY_POST_DATA)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise Refused(E.DATA_FORMAT_ERROR, f"not JSON ({e})") from None
        ids = body.get("openids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not ids:
            raise Refused(E.DATA_FORMAT_ERROR, 'expected {"openids": ["...", ...]}')
        if len(ids) > self.limits.api_records:
            raise Refused(
                E.DATA_FORMAT_ERROR, f"{len(ids)} openids; at most {self.limits.api_records}"
            )
        for i, o in enumerate(ids):
            try:
                ok = fields.parse_openid(o)
            except fields.FieldError as e:
                raise Refused(E.DATA_FORMAT_ERROR, f"openids[{i}]: {e}") from None
            if ok is None:
                raise Refused(E.DATA_FORMAT_ERROR, f"openids[{i}]: empty")
        return ids
