"""Answers in WeChat's shape, and the one error guard of every WeChat-shaped route.

The WeChat routes, ``/collect`` and the records API all answer ``{"errcode", "errmsg"}`` on
error; :func:`guarded` turns what a handler raises into that answer: a
:class:`~weanalysis.wechat.errors.WeChatError` as it is, a request that cannot be parsed as its
errcode, a store that cannot serve (damaged, read-only) as -1 with one log line, a client that
went away as one INFO line, and anything else as -1 with the traceback in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, request_response
from starlette.types import Receive, Scope, Send

from weanalysis.api.logsafe import safe
from weanalysis.api.request import ClientGone, RequestError
from weanalysis.errors import StoreError
from weanalysis.wechat import errors as E

CONTENT_TYPE = "application/json; encoding=utf-8"
log = logging.getLogger("weanalysis.api")

Handler = Callable[[Request], Awaitable[Response]]


def wechat_response(
    request: Request,
    body: bytes | dict,
    errcode: int = 0,
    status: int = 200,
    content_type: str = CONTENT_TYPE,
    headers: dict | None = None,
) -> Response:
    request.state.errcode = errcode
    if isinstance(body, dict):
        body = orjson.dumps(body)
    all_headers = {"content-type": content_type, **(headers or {})}
    if status == 429:
        all_headers["retry-after"] = "1"
    return Response(body, status_code=status, headers=all_headers)


def guarded(
    handler: Handler,
    show_detail: bool = False,
    content_type: str = CONTENT_TYPE,
    headers: dict | None = None,
) -> Handler:
    """The family's error handler around ``handler``.

    ``show_detail``: append a refusal's detail to WeChat's text (``/collect`` and the records
    API, whose callers are integrators); the WeChat routes keep WeChat's exact texts, and the
    detail goes to the log only.
    """

    def answer(request: Request, err: E.WeChatError) -> Response:
        if err.hint:
            request.state.hint = err.hint
        body = E.error_body(err.errcode, err.detail if show_detail else "")
        return wechat_response(request, body, err.errcode, err.status, content_type, headers)

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except E.WeChatError as err:
            return answer(request, err)
        except RequestError as err:
            return answer(request, E.WeChatError(err.errcode, detail=err.detail))
        except ClientGone as err:
            request.state.hint = str(err)
            return answer(request, E.WeChatError(E.DATA_FORMAT_ERROR, str(err)))
        except StoreError as err:
            log.error("cannot serve %s: %s", safe(request.url.path), err)
            return answer(request, E.WeChatError(E.SYSTEM_ERROR, str(err), status=200))
        except Exception:  # never a traceback or an HTML page to a client
            log.exception("unexpected error on %s", safe(request.url.path))
            return answer(request, E.WeChatError(E.SYSTEM_ERROR))

    return endpoint


class _AnyMethod:
    """An ASGI endpoint: Starlette routes every method to it (a function endpoint without a
    method list would get GET only, and the others a 405 in the framework's shape)."""

    def __init__(self, handler: Handler):
        self.app = request_response(handler)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def route(path: str, handler: Handler) -> Route:
    """A route that takes every HTTP method (TRACE, PROPFIND, ...): the handler answers each."""
    return Route(path, _AnyMethod(handler), include_in_schema=False)
