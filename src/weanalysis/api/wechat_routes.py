"""The WeChat-compatible routes: /cgi-bin/token, /cgi-bin/stable_token, the portrait datacube.

Every answer is HTTP 200 with ``application/json; encoding=utf-8``; errors are WeChat's
``{"errcode", "errmsg"}`` (SPEC.md section 5). Handlers only parse, call the core, serialise.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from weanalysis.api.body import BodyTooLarge, read_capped
from weanalysis.auth.tokens import TokenService, TokenState
from weanalysis.portrait.explore import Explore
from weanalysis.portrait.imported import NotImported
from weanalysis.portrait.query import DateFormatError, parse_date
from weanalysis.portrait.service import PortraitService
from weanalysis.store import Catalog
from weanalysis.store.integrity import DamagedFileError
from weanalysis.store.snapshot import WindowBeforeRetention
from weanalysis.wechat import errors as E
from weanalysis.wechat.dialect import span_ok

CONTENT_TYPE = "application/json; encoding=utf-8"
RETENTION_DETAIL = "begin_date is before the records kept by the app's retention policy"
log = logging.getLogger("weanalysis.api")


def wechat_response(
    body: bytes | dict, errcode: int = 0, request: Request | None = None
) -> Response:
    if request is not None:
        request.state.errcode = errcode
    if isinstance(body, dict):
        body = orjson.dumps(body)
    return Response(body, status_code=200, headers={"content-type": CONTENT_TYPE})


def wechat_error(request: Request, err: E.WeChatError) -> Response:
    if err.hint:
        request.state.hint = err.hint
    return wechat_response(E.error_body(err.errcode, err.detail), err.errcode, request)


class WeChatRoutes:
    def __init__(self, catalog: Catalog, tokens: TokenService, portraits: PortraitService):
        self.catalog = catalog
        self.tokens = tokens
        self.portraits = portraits

    def routes(self) -> list[Route]:
        any_method = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
        return [
            Route("/cgi-bin/token", self._guard(self.token), methods=any_method),
            Route("/cgi-bin/stable_token", self._guard(self.stable_token), methods=any_method),
            Route(
                "/datacube/getweanalysisappiduserportrait",
                self._guard(self.user_portrait),
                methods=any_method,
            ),
            Route("/cgi-bin/{rest:path}", self._guard(self.unknown), methods=any_method),
            Route("/datacube/{rest:path}", self._guard(self.unknown), methods=any_method),
        ]

    def _guard(self, handler):
        """One error handler for the family: WeChat errors as bodies, anything else as -1."""

        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except E.WeChatError as err:
                return wechat_error(request, err)
            except DamagedFileError as err:  # never a wrong number: -1, and the file in the log
                log.error("%s %s: %s", request.method, request.url.path, err)
                return wechat_error(request, E.WeChatError(E.SYSTEM_ERROR, f"damaged {err.path}"))
            except Exception:  # never a traceback or an HTML page to a client
                log.exception("unexpected error on %s %s", request.method, request.url.path)
                return wechat_error(request, E.WeChatError(E.SYSTEM_ERROR))

        return endpoint

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    async def _json_object(request: Request) -> dict:
        try:
            raw = await read_capped(request)
        except BodyTooLarge:
            raise E.WeChatError(E.DATA_FORMAT_ERROR, "body too large") from None
        if not raw.strip():
            raise E.WeChatError(E.EMPTY_POST_DATA)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise E.WeChatError(E.DATA_FORMAT_ERROR, "not JSON") from None
        if not isinstance(body, dict):
            raise E.WeChatError(E.DATA_FORMAT_ERROR, "not a JSON object")
        return body

    def _credentials(self, appid: object, secret: object, grant_type: object) -> str:
        if grant_type != "client_credential":
            raise E.WeChatError(E.INVALID_GRANT_TYPE)
        if appid is None or appid == "":
            raise E.WeChatError(E.APPID_MISSING)
        if secret is None or secret == "":
            raise E.WeChatError(E.APPSECRET_MISSING)
        if not isinstance(appid, str) or not isinstance(secret, str):
            raise E.WeChatError(E.DATA_FORMAT_ERROR, "appid and secret must be strings")
        if self.catalog.get(appid) is None:
            raise E.WeChatError(E.INVALID_APPID)
        if not self.catalog.check_secret(appid, secret):
            raise E.WeChatError(E.INVALID_APPSECRET)
        return appid

    # -- endpoints -------------------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        if request.method not in ("GET", "POST"):
            raise E.WeChatError(E.REQUIRE_GET)
        q = request.query_params
        appid = await run_in_threadpool(
            self._credentials, q.get("appid"), q.get("secret"), q.get("grant_type")
        )
        issued = await run_in_threadpool(self.tokens.issue, appid)
        return wechat_response(
            {"access_token": issued.token, "expires_in": issued.expires_in}, 0, request
        )

    async def stable_token(self, request: Request) -> Response:
        if request.method != "POST":
            raise E.WeChatError(E.REQUIRE_POST)
        body = await self._json_object(request)
        force = body.get("force_refresh", False)
        if force is None:
            force = False
        if not isinstance(force, bool):
            raise E.WeChatError(E.DATA_FORMAT_ERROR, "force_refresh must be a boolean")
        appid = await run_in_threadpool(
            self._credentials, body.get("appid"), body.get("secret"), body.get("grant_type")
        )
        issued = await run_in_threadpool(self.tokens.stable, appid, force)
        return wechat_response(
            {"access_token": issued.token, "expires_in": issued.expires_in}, 0, request
        )

    def _app_of_token(self, token: str | None) -> str:
        if not token:
            raise E.WeChatError(E.ACCESS_TOKEN_MISSING)
        check = self.tokens.check(token)
        if check.state is TokenState.EXPIRED:
            raise E.WeChatError(E.ACCESS_TOKEN_EXPIRED)
        if check.state is not TokenState.VALID or self.catalog.get(check.appid) is None:
            raise E.WeChatError(E.INVALID_CREDENTIAL)
        return check.appid

    async def user_portrait(self, request: Request) -> Response:
        if request.method != "POST":
            raise E.WeChatError(E.REQUIRE_POST)
        # the common case (a kept answer) runs on the event loop: no thread hops
        appid = self._app_of_token(request.query_params.get("access_token"))
        body = await self._json_object(request)
        begin, end = _dates(body)
        app = self.catalog.get(appid)
        yesterday = datetime.now(app.tz).date() - timedelta(days=1)
        if begin > end or not span_ok(begin, end) or end > yesterday:
            raise E.WeChatError(E.DATE_RANGE_ERROR)
        # small groups withheld by the app's setting (issue 10): part of the kept answer's key
        ex = Explore(min_users=self.catalog.min_users(appid))
        try:
            doc = self.portraits.cached(appid, begin, end, ex)
            if doc is None:
                doc = await run_in_threadpool(self.portraits.document, appid, begin, end, ex)
        except NotImported:  # an imported app without this window: no made-up zeros
            raise E.WeChatError(E.DATE_RANGE_ERROR, "window not imported") from None
        except WindowBeforeRetention as err:
            raise E.WeChatError(E.DATE_RANGE_ERROR, str(err), RETENTION_DETAIL) from None
        return wechat_response(doc, 0, request)

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
