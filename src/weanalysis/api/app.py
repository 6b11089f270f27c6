"""The ASGI application: WeChat-compatible routes, our own routes, logging, and the last guard."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import orjson
from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from weanalysis import __version__, settings
from weanalysis.api.collect_routes import CollectLimits, CollectRoutes
from weanalysis.api.collect_schema import install_openapi
from weanalysis.api.dashboard import PAGE_HEADERS, DashboardError, error_response, install_dashboard
from weanalysis.api.logsafe import safe
from weanalysis.api.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from weanalysis.api.metrics import Metrics
from weanalysis.api.wechat_answer import CONTENT_TYPE, wechat_response
from weanalysis.api.wechat_routes import WeChatRoutes
from weanalysis.auth.guard import SecretGuard
from weanalysis.auth.tokens import TokenService
from weanalysis.collect.committer import GroupCommitter
from weanalysis.portrait.service import PortraitService
from weanalysis.store import Store
from weanalysis.wechat import errors as E
from weanalysis.wechat.dialect import dumps, portrait_document

access_log = logging.getLogger("weanalysis.access")
log = logging.getLogger("weanalysis.api")
WECHAT_PREFIXES = ("/cgi-bin/", "/datacube/")


class RequestLog:
    """One line per request: method, path (never the query: it holds tokens), errcode, time.

    Every field a client controls is escaped (:func:`~weanalysis.api.logsafe.safe`): no forged
    lines, no terminal escapes. Also the last guard: an exception that escapes everything becomes
    a JSON error, never a traceback or an HTML page; a client that went away is one INFO line.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics | None = None):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        state = scope.setdefault("state", {})
        status = {"code": 0, "sent": False}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["sent"] = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except ClientDisconnect:
            state["hint"] = "the client went away"
        except Exception:
            log.exception("unhandled error on %s %s", safe(scope["method"]), safe(scope["path"]))
            if not status["sent"]:
                wechat = scope["path"].startswith(WECHAT_PREFIXES)
                body = orjson.dumps(
                    E.error_body(E.SYSTEM_ERROR)
                    if wechat
                    else {"error": {"code": "internal", "message": "internal error"}}
                )
                ctype = CONTENT_TYPE if wechat else "application/json"
                await send_wrapper(
                    {
                        "type": "http.response.start",
                        "status": 200 if wechat else 500,
                        "headers": [(b"content-type", ctype.encode())],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                state["errcode"] = E.SYSTEM_ERROR if wechat else None
        finally:
            seconds = time.perf_counter() - start
            ms = seconds * 1000
            errcode = state.get("errcode")
            hint = state.get("hint")
            if self.metrics is not None:
                self.metrics.observe_request(
                    scope["path"], scope["method"], status["code"], errcode, seconds
                )
            access_log.info(
                "%s %s %s errcode=%s %.1fms%s",
                safe(scope["method"], 32),
                safe(scope["path"]),
                status["code"],
                "-" if errcode is None else errcode,
                ms,
                f" ({safe(hint)})" if hint else "",
            )


class SecurityHeaders:
    """The page's security headers (CSP with frame-ancestors, nosniff, no referrer) on every
    response but the WeChat routes' (whose headers are WeChat's): ``/``, ``/static/...``, the
    JSON API alike. A response that sets one of them itself keeps its own."""

    HEADERS = [(k.encode(), v.encode()) for k, v in PAGE_HEADERS.items() if k != "cache-control"]

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(WECHAT_PREFIXES):
            await self.app(scope, receive, send)
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in self.HEADERS if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_wrapper)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route of this path takes (FastAPI makes one route per method)."""
    methods: set[str] = set()
    routes = list(request.app.router.routes)
    while routes:
        r = routes.pop()
        if hasattr(r, "original_router"):  # an included router: its own routes
            routes.extend(r.original_router.routes)
        elif getattr(r, "methods", None) and r.matches(request.scope)[0] is not Match.NONE:
            methods |= r.methods
    return sorted(methods - {"HEAD"})


def create_app(
    store: Store,
    token_ttl: int | None = None,
    limits: CollectLimits | None = None,
    secret_failures: int | None = None,
) -> FastAPI:
    """The whole HTTP API over one data folder; what is not given comes from the settings."""
    token_ttl = settings.value("token_ttl", token_ttl)
    limits = limits or CollectLimits.from_settings()
    body_limit = settings.value("wechat_body_bytes")
    tokens = TokenService(store.catalog, token_ttl)
    guard = SecretGuard(
        store.catalog,
        settings.value("secret_failures", secret_failures),
        settings.value("secret_window"),
    )
    portraits = PortraitService(store, lambda result: dumps(portrait_document(result)))
    metrics = Metrics()
    committer = GroupCommitter(store, observer=metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        # store what is queued before the process ends (SIGTERM, Ctrl-C)
        await asyncio.get_running_loop().run_in_executor(None, committer.close)

    app = FastAPI(
        lifespan=lifespan,
        title="weanalysis",
        version=__version__,
        description="Self-hosted user portrait (用户画像). The WeChat-compatible routes "
        "(/cgi-bin/token, /cgi-bin/stable_token, /datacube/getweanalysisappiduserportrait) "
        "follow WeChat's documentation and are not described here.",
        docs_url=None,  # the interactive docs load scripts from a CDN; this service is offline
        redoc_url=None,
    )
    app.state.store = store
    app.state.tokens = tokens
    app.state.portraits = portraits
    app.state.committer = committer
    app.state.trusted_proxies = limits.trusted_proxies
    app.state.guard = guard
    wechat = WeChatRoutes(
        store.catalog, tokens, portraits, guard, body_limit, limits.trusted_proxies
    ).routes()
    collect = CollectRoutes(store.catalog, tokens, committer, limits).routes()
    for route in [*wechat, *collect]:
        route.include_in_schema = False
        app.router.routes.append(route)
    install_dashboard(app, store, guard, body_limit, settings.value("session_ttl"))
    app.state.metrics = metrics
    metrics.add_state(
        store, lambda: [("wechat", portraits), ("dashboard", app.state.dashboard.portraits)]
    )

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        return Response(metrics.render(), media_type=METRICS_CONTENT_TYPE)

    @app.get("/healthz", summary="Liveness and readiness for load balancers")
    def healthz() -> dict:
        store.catalog.db.execute("SELECT 1").fetchone()
        return {"status": "ok", "version": __version__}

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        """The framework's own refusals (no route, method not allowed) in the family's shape."""
        if request.url.path.startswith(WECHAT_PREFIXES):
            if exc.status_code == 404:
                errcode = E.INVALID_URL
            elif exc.status_code == 405:
                errcode = (
                    E.REQUIRE_POST if "POST" in exc.headers.get("allow", "") else E.REQUIRE_GET
                )
            else:
                errcode = E.SYSTEM_ERROR
            return wechat_response(request, E.error_body(errcode), errcode)
        if exc.status_code == 404:
            err = DashboardError(404, "not_found", f"没有这个地址：{request.url.path[:200]}")
        elif exc.status_code == 405:
            allow = {"allow": ", ".join(_allowed_methods(request))}
            err = DashboardError(405, "method_not_allowed", "不支持的请求方法", allow)
        else:
            err = DashboardError(exc.status_code, "bad_request", "请求格式不正确", exc.headers)
        return error_response(err)

    install_openapi(app)
    metrics.routes = frozenset(
        r.path for r in app.router.routes if "{" not in getattr(r, "path", "{")
    )
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RequestLog, metrics=metrics)
    return app
