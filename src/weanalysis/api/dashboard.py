"""The web dashboard: sign-in with appid + secret, a session cookie, the page, its JSON API.

Handlers only parse, call the core and serialise: the portrait is the core's answer
(:func:`weanalysis.portrait.engine.compute` through a :class:`PortraitService`), rendered by
:mod:`weanalysis.api.dashboard_schema`. Errors are ``{"error": {"code", "message"}}`` with a 4xx
status; messages are Chinese, because the page shows them as they are.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import date, datetime, timedelta
from importlib import resources
from typing import Literal

import orjson
from fastapi import APIRouter, FastAPI, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import APIKeyCookie
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

from weanalysis import __version__
from weanalysis.api import dashboard_schema as S
from weanalysis.api.logsafe import safe
from weanalysis.api.request import ClientGone, RequestError, client_ip, is_https, json_body
from weanalysis.auth.guard import SecretGuard, Verdict
from weanalysis.auth.sessions import COOKIE_NAME, Session, SessionSigner, load_key
from weanalysis.errors import StoreError, WeanalysisError
from weanalysis.portrait.explore import (
    Explore,
    ExploreError,
    dimension,
    parse_crosstab,
    parse_where,
)
from weanalysis.portrait.imported import NotImported
from weanalysis.portrait.query import DateFormatError, parse_date
from weanalysis.portrait.service import PLAIN, PortraitService
from weanalysis.store import App, Store
from weanalysis.store.catalog import MAX_MIN_USERS
from weanalysis.store.days import day_date
from weanalysis.store.retention import WindowBeforeRetention

log = logging.getLogger("weanalysis.dashboard")

MAX_WINDOW_DAYS = 366
MAX_CACHED_ANSWERS = 1024  # a 30-day answer with every city is tens of KB
MAX_CREDENTIAL_CHARS = 128
JSON = "application/json"
PAGE_HEADERS = {
    "cache-control": "no-cache",
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
WHERE = Query(
    [],
    description="DIM=ID: keep only users whose DIM (province, city, gender(s), age(s), "
    "platform(s), device(s)) is ID (a device by its name). Repeat for several: the same DIM "
    "means any of them, different DIMs must all hold.",
    examples=[["province=44", "genders=2"]],
)
CROSSTAB = Query(
    None,
    description="Two lists, A,B: adds to each user set the distinct users per pair of values",
    examples=["genders,ages"],
)
COMPARE = Query(False, description="Add `previous`: the window of the same length before")
MIN_USERS = Query(
    0,
    ge=0,
    le=MAX_MIN_USERS,
    description="Withhold every value of fewer than K users (the app's own min_users applies "
    "when larger; the answer's `withheld` says what was left out)",
)
APP = Query(
    None,
    alias="app",
    description="Which signed-in app (one browser may sign in to several); default: the latest",
)
SESSION_SEP = "~"
MAX_APPS_PER_BROWSER = 20
ERRORS = {
    401: {"model": S.ErrorOut, "description": "No valid session"},
    400: {"model": S.ErrorOut, "description": "Bad request"},
}


def _cookie_flags(request: Request) -> dict:
    """The session cookie's attributes, the same when it is set and when it is cleared.

    Secure when the visitor came over TLS: directly, or through a ``--trusted-proxy`` that says
    so in X-Forwarded-Proto.
    """
    trusted = getattr(request.app.state, "trusted_proxies", ())
    return {
        "path": "/",
        "httponly": True,
        "samesite": "strict",
        "secure": is_https(request, trusted),
    }


class DashboardError(WeanalysisError):
    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_response(err: DashboardError) -> Response:
    body = orjson.dumps({"error": {"code": err.code, "message": err.message}})
    return Response(body, status_code=err.status, media_type=JSON, headers=err.headers)


class DashboardRoute(APIRoute):
    """One error handler for the family: our error shape, never FastAPI's ``detail`` or HTML."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except DashboardError as err:
                return error_response(err)
            except (RequestValidationError, RequestError, ClientGone):
                return error_response(DashboardError(400, "bad_request", "请求格式不正确"))
            except StoreError as err:
                log.error("cannot serve %s: %s", safe(request.url.path), err)
                return error_response(DashboardError(500, "internal", "服务器内部错误，请稍后再试"))
            except Exception:
                log.exception("unexpected error on %s", safe(request.url.path))
                return error_response(DashboardError(500, "internal", "服务器内部错误，请稍后再试"))

        return guarded


def _web_dir():
    return resources.files("weanalysis") / "web"


def _asset_version() -> str:
    """Changes whenever a served file changes, so browsers never mix old and new assets."""
    h = hashlib.sha256(__version__.encode())
    for name in ("app.js", "style.css", "vendor/manifest.json"):
        h.update((_web_dir() / name).read_bytes())
    return h.hexdigest()[:12]


class Dashboard:
    def __init__(self, store: Store, signer: SessionSigner, guard: SecretGuard, body_limit: int):
        self.store = store
        self.catalog = store.catalog
        self.signer = signer
        self.guard = guard
        self.body_limit = body_limit
        self.portraits = PortraitService(
            store, S.portrait_body, max_cached=MAX_CACHED_ANSWERS, render_trend=S.trend_body
        )
        page = (_web_dir() / "index.html").read_text(encoding="utf-8")
        self.page = page.replace("{{v}}", _asset_version())

    # -- helpers -----------------------------------------------------------------------------

    def sessions_of(self, cookie: str | None) -> list[tuple[str, Session]]:
        """The cookie's valid sessions, most recent sign-in first (one browser, several apps:
        the cookie holds one signed value per app, joined by ``~``)."""
        out: list[tuple[str, Session]] = []
        seen: set[str] = set()
        for value in (cookie or "").split(SESSION_SEP)[:MAX_APPS_PER_BROWSER]:
            session = self.signer.check(value)
            if session is not None and session.appid not in seen:
                seen.add(session.appid)
                out.append((value, session))
        return out

    def session_of(self, cookie: str | None, appid: str | None = None) -> tuple[App, Session]:
        """The session of ``appid`` (default: the latest sign-in) and its app, or 401."""
        for _, session in self.sessions_of(cookie):
            if appid is None or session.appid == appid:
                app = self.catalog.get(session.appid)
                # removed, or its secret rotated since the sign-in: signed out
                if app is not None and session.epoch == app.epoch:
                    return app, session
        raise DashboardError(401, "unauthenticated", "请先登录")

    def app_of(self, cookie: str | None, appid: str | None = None) -> App:
        return self.session_of(cookie, appid)[0]

    def _data_days(self, appid: str) -> tuple[int | None, int | None]:
        days = self.portraits.days(appid)
        return (days[0], days[-1]) if days else (None, None)

    def session_doc(self, app: App, expires_at: int) -> dict:
        first, last = self._data_days(app.appid)
        return {
            "appid": app.appid,
            "timezone": app.timezone,
            "yesterday": _yesterday(app).isoformat(),
            "expires_at": expires_at,
            "data_days": {"first": S.iso_day(first), "last": S.iso_day(last)},
            "min_users": self.catalog.min_users(app.appid),
            # computed by a cluster: documents only, no segments, cross-tabs or trends
            "imported": self.portraits.imported(app.appid) is not None,
        }

    def window(self, app: App, begin: str | None, end: str | None) -> tuple[date, date]:
        yesterday = _yesterday(app)
        try:
            e = parse_date(end) if end else yesterday
            b = parse_date(begin) if begin else e - timedelta(days=6)
        except DateFormatError:
            raise DashboardError(
                400, "date_format", "日期格式应为 yyyymmdd 或 yyyy-mm-dd"
            ) from None
        if b > e:
            raise DashboardError(400, "date_range", "开始日期不能晚于结束日期")
        if e > yesterday:
            raise DashboardError(
                400, "date_range", f"结束日期最晚为昨天（{yesterday.isoformat()}）"
            )
        if (e - b).days + 1 > MAX_WINDOW_DAYS:
            raise DashboardError(400, "date_range", f"时间段最长 {MAX_WINDOW_DAYS} 天")
        return b, e

    def explore_of(
        self, app: App, where: list[str], crosstab: str | None, compare: bool, min_users: int
    ) -> Explore:
        """The explorer's options; the app's own min_users applies when it is larger."""
        try:
            seg = parse_where(where)
            pair = parse_crosstab(crosstab) if crosstab else None
        except ExploreError as err:
            raise DashboardError(400, "bad_filter", f"筛选条件不正确：{err}") from None
        return Explore(
            where=seg,
            crosstab=(pair[0].list_name, pair[1].list_name) if pair else None,
            compare=compare,
            min_users=max(min_users, self.catalog.min_users(app.appid)),
        )

    async def portrait(self, app: App, begin: date, end: date, ex: Explore = PLAIN) -> bytes:
        body = self.portraits.cached(app.appid, begin, end, ex)
        if body is None:
            try:
                body = await run_in_threadpool(self.portraits.document, app.appid, begin, end, ex)
            except NotImported:
                raise DashboardError(
                    404, "not_imported", "该时间段的画像未导入（本应用的画像由集群计算后导入）"
                ) from None
            except ExploreError as err:  # a device the app has never seen; an imported app
                raise DashboardError(400, "bad_filter", f"筛选条件不正确：{err}") from None
            except WindowBeforeRetention as err:
                raise before_retention(err) from None
        first, last = self._data_days(app.appid)
        return S.portrait_document(app.appid, body, first, last)

    async def trend(
        self, app: App, begin: date, end: date, dim: str, users: str, ex: Explore
    ) -> bytes:
        try:
            d = dimension(dim)
            body = await run_in_threadpool(
                self.portraits.trend, app.appid, begin, end, d, users, ex.where, ex.min_users
            )
        except ExploreError as err:
            raise DashboardError(400, "bad_filter", f"筛选条件不正确：{err}") from None
        except WindowBeforeRetention as err:
            raise before_retention(err) from None
        return S.with_appid(app.appid, body)

    async def authenticate(self, client: str, appid: str, secret: str) -> App:
        """The app whose secret this is; throttled (429) after repeated failures (SecretGuard).

        One message for an unknown appid and a wrong secret: no appid enumeration.
        """
        if len(secret) > MAX_CREDENTIAL_CHARS:
            secret = ""  # never matches, and costs the same as any other guess
        outcome = await self.guard.verify(client, appid, secret)
        if outcome.verdict is Verdict.THROTTLED:
            seconds = int(outcome.retry_after) + 1
            raise DashboardError(
                429,
                "too_many_attempts",
                f"登录失败次数过多，请 {seconds} 秒后再试",
                {"retry-after": str(seconds)},
            )
        app = self.catalog.get(appid) if outcome.verdict is Verdict.OK else None
        if app is None:
            raise DashboardError(401, "invalid_credentials", "AppID 或 AppSecret 不正确")
        return app

    # -- routes ------------------------------------------------------------------------------

    def router(self) -> APIRouter:
        r = APIRouter(prefix="/api/v1", route_class=DashboardRoute, tags=["dashboard"])
        cookie = APIKeyCookie(name=COOKIE_NAME, auto_error=False, description="Signed session")

        @r.post(
            "/session",
            response_model=S.SessionOut,
            summary="Sign in with appid and secret; sets the session cookie",
            responses={
                401: {"model": S.ErrorOut, "description": "Wrong appid or secret"},
                429: {"model": S.ErrorOut, "description": "Too many failed sign-ins"},
                400: ERRORS[400],
            },
            # the body is parsed by the shared parser (capped, strict UTF-8, no lone surrogates)
            openapi_extra={
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": S.SignIn.model_json_schema()}},
                }
            },
        )
        async def sign_in(request: Request) -> Response:
            if request.headers.get("content-type", "").split(";")[0].strip() != JSON:
                # JSON only: a cross-site form cannot post it without a CORS preflight
                raise DashboardError(400, "bad_request", "请求格式不正确")
            try:
                creds = S.SignIn.model_validate(await json_body(request, self.body_limit))
            except ValidationError:
                raise DashboardError(400, "bad_request", "请求格式不正确") from None
            # behind a trusted proxy, the visitor's address (as for /collect)
            client = client_ip(request, getattr(request.app.state, "trusted_proxies", ())) or "-"
            app = await self.authenticate(client, creds.appid.strip(), creds.secret)
            value = self.signer.issue(app.appid, epoch=app.epoch)
            session = self.signer.check(value)
            # the other apps this browser is signed in to stay signed in
            others = [
                v
                for v, s in self.sessions_of(request.cookies.get(COOKIE_NAME))
                if s.appid != app.appid
            ]
            value = SESSION_SEP.join([value, *others][:MAX_APPS_PER_BROWSER])
            doc = await run_in_threadpool(self.session_doc, app, session.expires_at)
            resp = Response(orjson.dumps(doc), media_type=JSON)
            resp.set_cookie(COOKIE_NAME, value, max_age=self.signer.ttl_s, **_cookie_flags(request))
            return resp

        @r.get(
            "/session",
            response_model=S.SessionOut,
            summary="The signed-in app, its time zone and the days that have data",
            responses={401: ERRORS[401]},
        )
        async def session(
            app: str | None = APP, session: str | None = Security(cookie)
        ) -> Response:
            found, s = self.session_of(session, app)
            doc = await run_in_threadpool(self.session_doc, found, s.expires_at)
            return Response(orjson.dumps(doc), media_type=JSON)

        @r.get(
            "/sessions",
            response_model=S.SessionsOut,
            summary="Every app this browser is signed in to, latest sign-in first",
        )
        async def sessions(session: str | None = Security(cookie)) -> Response:
            apps = [
                {"appid": s.appid, "expires_at": s.expires_at}
                for _, s in self.sessions_of(session)
                if self.catalog.get(s.appid) is not None
            ]
            return Response(orjson.dumps({"apps": apps}), media_type=JSON)

        @r.delete(
            "/session",
            status_code=204,
            summary="Sign out of one app (`app`), or of every app (clears the session cookie)",
        )
        async def sign_out(request: Request, app: str | None = APP) -> Response:
            resp = Response(status_code=204)
            keep = [
                v
                for v, s in self.sessions_of(request.cookies.get(COOKIE_NAME))
                if app is not None and s.appid != app
            ]
            if keep:  # signing out of one app keeps the others
                resp.set_cookie(
                    COOKIE_NAME,
                    SESSION_SEP.join(keep),
                    max_age=self.signer.ttl_s,
                    **_cookie_flags(request),
                )
            else:
                resp.delete_cookie(COOKIE_NAME, **_cookie_flags(request))
            return resp

        @r.get(
            "/portrait",
            response_model=S.PortraitOut,
            summary="The portrait of the signed-in app's new and active users over [begin, end]",
            description="Dates are yyyymmdd or yyyy-mm-dd in the app's time zone. `end` "
            "defaults to yesterday (the latest allowed), `begin` to 6 days before `end`. Any "
            f"window of 1-{MAX_WINDOW_DAYS} days.",
            responses=ERRORS,
        )
        async def portrait(
            begin: str | None = Query(None, examples=["20240524"]),
            end: str | None = Query(None, examples=["20240530"]),
            where: list[str] = WHERE,
            crosstab: str | None = CROSSTAB,
            compare: bool = COMPARE,
            min_users: int = MIN_USERS,
            app_id: str | None = APP,
            session: str | None = Security(cookie),
        ) -> Response:
            app = self.app_of(session, app_id)
            b, e = self.window(app, begin, end)
            ex = self.explore_of(app, where, crosstab, compare, min_users)
            return Response(await self.portrait(app, b, e, ex), media_type=JSON)

        @r.get(
            "/trend",
            response_model=S.TrendOut,
            summary="For each day of [begin, end], that day's list of one dimension",
            description="Each day's 1-day portrait list of `dim` (devices: top 20) for the new "
            "or active users of that day, restricted to the segment; days without data have "
            "total 0 and no items. Dates as for /portrait.",
            responses=ERRORS,
        )
        async def trend(
            dim: str = Query(..., examples=["platforms"], description="A list, any spelling"),
            users: Literal["new", "active"] = Query("active"),
            begin: str | None = Query(None, examples=["20240524"]),
            end: str | None = Query(None, examples=["20240530"]),
            where: list[str] = WHERE,
            min_users: int = MIN_USERS,
            app_id: str | None = APP,
            session: str | None = Security(cookie),
        ) -> Response:
            app = self.app_of(session, app_id)
            b, e = self.window(app, begin, end)
            ex = self.explore_of(app, where, None, False, min_users)
            return Response(await self.trend(app, b, e, dim, users, ex), media_type=JSON)

        @r.get(
            "/portrait.csv",
            summary="One user set of the portrait as CSV (UTF-8 with BOM, for Excel)",
            response_class=Response,
            responses={200: {"content": {"text/csv": {}}}, **ERRORS},
        )
        async def portrait_csv(
            begin: str | None = Query(None, examples=["20240524"]),
            end: str | None = Query(None, examples=["20240530"]),
            users: Literal["new", "active"] = Query("active"),
            where: list[str] = WHERE,
            min_users: int = MIN_USERS,
            app_id: str | None = APP,
            session: str | None = Security(cookie),
        ) -> Response:
            app = self.app_of(session, app_id)
            b, e = self.window(app, begin, end)
            ex = self.explore_of(app, where, None, False, min_users)
            doc = orjson.loads(await self.portrait(app, b, e, ex))
            name = f"weanalysis-{app.appid}-{doc['ref_date']}-{users}.csv"
            return Response(
                S.portrait_csv(doc, users),
                media_type="text/csv; charset=utf-8",
                headers={"content-disposition": f'attachment; filename="{name}"'},
            )

        return r


def before_retention(err: WindowBeforeRetention) -> DashboardError:
    """A window (or a comparison's previous window) reaching before the retained range."""
    start = day_date(err.from_day).isoformat()
    return DashboardError(
        400,
        "before_retention",
        f"该时间段早于数据保留范围：本应用按保留策略只保留 {start} 起的数据，请选择更晚的时间段",
    )


def _yesterday(app: App) -> date:
    return datetime.now(app.tz).date() - timedelta(days=1)


def install_dashboard(
    app: FastAPI, store: Store, guard: SecretGuard, body_limit: int, session_ttl: int
) -> None:
    """Adds the page at ``/``, its assets at ``/static`` and its API at ``/api/v1``.

    Every response other than the WeChat routes' carries :data:`PAGE_HEADERS`' security headers
    (see :class:`weanalysis.api.app.SecurityHeaders`), ``/static`` included.
    """
    dash = Dashboard(store, SessionSigner(load_key(store.dir), session_ttl), guard, body_limit)
    app.state.dashboard = dash
    app.include_router(dash.router())

    @app.get("/", include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(dash.page, headers=PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=str(_web_dir())), name="static")
