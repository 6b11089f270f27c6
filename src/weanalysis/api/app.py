"""The ASGI application: WeChat-compatible routes, our own routes, logging, and the last guard."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import orjson
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from weanalysis import __version__
from weanalysis.api.collect_routes import CollectLimits, CollectRoutes
from weanalysis.api.collect_schema import install_openapi
from weanalysis.api.dashboard import install_dashboard
from weanalysis.api.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from weanalysis.api.metrics import Metrics
from weanalysis.api.wechat_routes import CONTENT_TYPE, WeChatRoutes
from weanalysis.auth.tokens import DEFAULT_TTL_S, TokenService
from weanalysis.collect.committer import GroupCommitter
from weanalysis.portrait.service import PortraitService
from weanalysis.store import Store
from weanalysis.store.maintenance import apply_retention
from weanalysis.wechat import errors as E
from weanalysis.wechat.dialect import dumps, portrait_document

access_log = logging.getLogger("weanalysis.access")
log = logging.getLogger("weanalysis.api")
WECHAT_PREFIXES = ("/cgi-bin/", "/datacube/")


class RequestLog:
    """One line per request: method, path (never the query: it holds tokens), errcode, time.

    Also the last guard: an exception that escapes everything becomes a JSON error, never a
    traceback or an HTML page.
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
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
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
                scope["method"],
                scope["path"],
                status["code"],
                "-" if errcode is None else errcode,
                ms,
                f" ({hint})" if hint else "",
            )


RETENTION_CHECK_S = 3600.0


async def _apply_retention_every(store: Store, seconds: float) -> None:
    """Each app's retention, applied when due (a cheap check otherwise), every ``seconds``."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(seconds)
        try:
            await loop.run_in_executor(None, _retention_pass, store)
        except Exception:  # logged; the next pass tries again
            log.exception("retention pass failed")


def _retention_pass(store: Store) -> None:
    for app in store.catalog.list():
        if app.retention_days is not None:
            t = apply_retention(store.dir, app)
            if t is not None:
                log.info(
                    "retention of %s: deleted %d visits and %d profiles before day %d",
                    app.appid,
                    t.visits,
                    t.profiles,
                    t.from_day,
                )


def create_app(
    store: Store,
    token_ttl: int = DEFAULT_TTL_S,
    limits: CollectLimits | None = None,
    retention_check_s: float = RETENTION_CHECK_S,
) -> FastAPI:
    """The whole HTTP API over one data folder."""
    tokens = TokenService(store.catalog, token_ttl)
    portraits = PortraitService(store, lambda result: dumps(portrait_document(result)))
    metrics = Metrics()
    committer = GroupCommitter(store, observer=metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        # retention also for apps that receive nothing (a commit applies it too)
        retention = asyncio.create_task(_apply_retention_every(store, retention_check_s))
        yield
        retention.cancel()
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
    app.state.trusted_proxies = (limits or CollectLimits()).trusted_proxies
    wechat = WeChatRoutes(store.catalog, tokens, portraits).routes()
    collect = CollectRoutes(store.catalog, tokens, committer, limits or CollectLimits()).routes()
    for route in [*wechat, *collect]:
        route.include_in_schema = False
        app.router.routes.append(route)
    install_dashboard(app, store)
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

    @app.exception_handler(404)
    async def not_found(request, exc):
        message = f"no route {request.url.path}"
        return JSONResponse({"error": {"code": "not_found", "message": message}}, status_code=404)

    install_openapi(app)
    metrics.routes = frozenset(
        r.path for r in app.router.routes if "{" not in getattr(r, "path", "{")
    )
    app.add_middleware(RequestLog, metrics=metrics)
    return app
