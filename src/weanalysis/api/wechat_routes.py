"""The WeChat-compatible routes: /cgi-bin/token, /cgi-bin/stable_token, the portrait datacube.

Every answer is HTTP 200 with ``application/json; encoding=utf-8``; errors are WeChat's
``{"errcode", "errmsg"}`` (SPEC.md section 5), for every method and every path under
``/cgi-bin/`` and ``/datacube/``. Handlers only parse, call the core, serialise; request
parsing is :mod:`weanalysis.api.request`, the error guard :mod:`weanalysis.api.wechat_answer`.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from weanalysis.api.request import app_of_token, client_ip, json_body
from weanalysis.api.wechat_answer import CONTENT_TYPE, guarded, route, wechat_response
from weanalysis.auth.guard import SecretGuard, Verdict
from weanalysis.auth.tokens import TokenService
from weanalysis.portrait.explore import Explore
from weanalysis.portrait.imported import NotImported
from weanalysis.portrait.query import DateFormatError, parse_date
from weanalysis.portrait.service import PortraitService
from weanalysis.store import Catalog
from weanalysis.store.retention import WindowBeforeRetention
from weanalysis.wechat import errors as E
from weanalysis.wechat.dialect import span_ok

__all__ = ["CONTENT_TYPE", "WeChatRoutes"]


class WeChatRoutes:
    def __init__(
        self,
        catalog: Catalog,
        tokens: TokenService,
        portraits: PortraitService,
        guard: SecretGuard,
        body_limit: int,
        trusted_proxies: tuple[str, ...] = (),
    ):
        self.catalog = catalog
        self.tokens = tokens
        self.portraits = portraits
        self.guard = guard
        self.body_limit = body_limit
        self.trusted_proxies = trusted_proxies

    def routes(self) -> list[Route]:
        # every method (TRACE, PROPFIND, ...) reaches a handler, which answers in WeChat's
        # shape; a path no route matches is answered by the app's 404 handler, in it too
        return [
            route("/cgi-bin/token", guarded(self.token)),
            route("/cgi-bin/stable_token", guarded(self.stable_token)),
            route("/datacube/getweanalysisappiduserportrait", guarded(self.user_portrait)),
            route("/cgi-bin/{rest:path}", guarded(self.unknown)),
            route("/datacube/{rest:path}", guarded(self.unknown)),
        ]

    # -- helpers ---------------------------------------------------------------------------

    async def _credentials(
        self, request: Request, appid: object, secret: object, grant_type: object
    ) -> str:
        if grant_type != "client_credential":
            raise E.WeChatError(E.INVALID_GRANT_TYPE)
        if appid is None or appid == "":
            raise E.WeChatError(E.APPID_MISSING)
        if secret is None or secret == "":
            raise E.WeChatError(E.APPSECRET_MISSING)
        if not isinstance(appid, str) or not isinstance(secret, str):
            raise E.WeChatError(E.DATA_FORMAT_ERROR, "appid and secret must be strings")
        client = client_ip(request, self.trusted_proxies) or "-"
        outcome = await self.guard.verify(client, appid, secret)
        if outcome.verdict is Verdict.THROTTLED:
            raise E.WeChatError(
                E.RATE_LIMITED, f"too many failed secrets: retry in {outcome.retry_after:.0f}s"
            )
        if outcome.verdict is Verdict.UNKNOWN_APP:
            raise E.WeChatError(E.INVALID_APPID)
        if outcome.verdict is Verdict.WRONG_SECRET:
            raise E.WeChatError(E.INVALID_APPSECRET)
        return appid

    # -- endpoints -------------------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        if request.method not in ("GET", "POST"):
            raise E.WeChatError(E.REQUIRE_GET)
        q = request.query_params
        appid = await self._credentials(
            request, q.get("appid"), q.get("secret"), q.get("grant_type")
        )
        issued = await run_in_threadpool(self.tokens.issue, appid)
        return wechat_response(
            request, {"access_token": issued.token, "expires_in": issued.expires_in}
        )

    async def stable_token(self, request: Request) -> Response:
        if request.method != "POST":
            raise E.WeChatError(E.REQUIRE_POST)
        body = await json_body(request, self.body_limit)
        force = body.get("force_refresh", False)
        if force is None:
            force = False
        if not isinstance(force, bool):
            raise E.WeChatError(E.DATA_FORMAT_ERROR, "force_refresh must be a boolean")
        appid = await self._credentials(
            request, body.get("appid"), body.get("secret"), body.get("grant_type")
        )
        issued = await run_in_threadpool(self.tokens.stable, appid, force)
        return wechat_response(
            request, {"access_token": issued.token, "expires_in": issued.expires_in}
        )

    async def user_portrait(self, request: Request) -> Response:
        if request.method != "POST":
            raise E.WeChatError(E.REQUIRE_POST)
        # the common case (a kept answer) runs on the event loop: no thread hops
        appid = app_of_token(self.tokens, self.catalog, request.query_params.get("access_token"))
        body = await json_body(request, self.body_limit)
        begin, end = _dates(body)
        app = self.catalog.get(appid)
        yesterday = datetime.now(app.tz).date() - timedelta(days=1)
        if begin > end or not span_ok(begin, end) or end > yesterday:
            raise E.WeChatError(E.DATE_RANGE_ERROR)
        # small groups withheld by the app's setting (issue 10): part of the kept answer's key
        ex = Explore(min_users=self.catalog.min_users(appid))
        doc = self.portraits.cached(appid, begin, end, ex)
        if doc is None:
            try:
                doc = await run_in_threadpool(self.portraits.document, appid, begin, end, ex)
            except NotImported:  # an imported app without this window: no made-up zeros
                raise E.WeChatError(E.DATE_RANGE_ERROR, "window not imported") from None
            except WindowBeforeRetention as err:  # its records were deleted: no smaller answer
                raise E.WeChatError(E.DATE_RANGE_ERROR, str(err)) from None
        return wechat_response(request, doc)

    async def unknown(self, request: Request) -> Response:
        raise E.WeChatError(E.INVALID_URL)


def _dates(body: dict) -> tuple[date, date]:
    out = []
    for name in ("begin_date", "end_date"):
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise E.WeChatError(E.DATA_FORMAT_ERROR, f"{name} must be a string")
        if value is None:
            raise E.WeChatError(E.DATE_FORMAT_ERROR, f"{name} missing")
        try:
            out.append(parse_date(value))
        except DateFormatError as err:
            raise E.WeChatError(E.DATE_FORMAT_ERROR, str(err)) from None
    return out[0], out[1]
