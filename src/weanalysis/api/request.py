"""Request parsing shared by every route family: the body (capped, JSON), the client's address
and scheme behind trusted proxies, and the access-token ladder.

Parsing errors are :class:`RequestError` with the WeChat errcode they map to; the WeChat-shaped
families (WeChat routes, ``/collect``, records API) answer that errcode, the dashboard answers its
own ``bad_request``. A client that goes away mid-request is :class:`ClientGone`: nobody is left to
answer, and it is logged as one INFO line, never as an error.
"""

from __future__ import annotations

import ipaddress

import orjson
from starlette.requests import ClientDisconnect, Request

from weanalysis.auth.tokens import TokenService, TokenState
from weanalysis.errors import InputError
from weanalysis.store import Catalog
from weanalysis.wechat import errors as E


class RequestError(InputError):
    """A request that cannot be parsed; ``errcode`` is its WeChat errcode."""

    def __init__(self, errcode: int, detail: str):
        super().__init__(detail)
        self.errcode = errcode
        self.detail = detail


class ClientGone(InputError):
    """The client closed the connection (or was too slow and was closed) before its body came."""


async def read_capped(request: Request, limit: int) -> bytes:
    """The whole body, whatever its Content-Type; over ``limit`` bytes is a 47001."""
    too_large = RequestError(E.DATA_FORMAT_ERROR, f"body larger than {limit} bytes")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
    except ClientDisconnect:
        raise ClientGone("the client closed the connection before sending its body") from None
    return b"".join(chunks)


async def json_body(request: Request, limit: int, arrays: bool = False) -> object:
    """The body as JSON: an object, or with ``arrays`` also an array.

    Empty is 44002; too large, not UTF-8, not JSON (orjson refuses lone surrogates too) or of
    another type is 47001.
    """
    raw = await read_capped(request, limit)
    if not raw.strip():
        raise RequestError(E.EMPTY_POST_DATA, "empty body")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise RequestError(E.DATA_FORMAT_ERROR, f"not JSON ({e})") from None
    if isinstance(body, dict) or (arrays and isinstance(body, list)):
        return body
    expected = "a JSON array of records or one record" if arrays else "a JSON object"
    raise RequestError(E.DATA_FORMAT_ERROR, f"expected {expected}")


def _address(text: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address(text)) if text else None
    except ValueError:  # a unix socket or a test client: no address to locate
        return None


def _from_trusted(request: Request, trusted: tuple[str, ...]) -> bool:
    peer = _address(request.client.host if request.client else None)
    return peer is not None and peer in trusted


def client_ip(request: Request, trusted: tuple[str, ...]) -> str | None:
    """The peer address, or, behind a trusted proxy, the last untrusted X-Forwarded-For entry."""
    peer = _address(request.client.host if request.client else None)
    if peer is None or peer not in trusted:
        return peer
    hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if hop not in trusted:
            return _address(hop) or peer
    return peer


def is_https(request: Request, trusted: tuple[str, ...]) -> bool:
    """Whether the client reached us over TLS: directly, or through a trusted proxy that says so
    in X-Forwarded-Proto (the proxy's own entry is the last one). Anyone else's header is not
    believed."""
    if request.url.scheme == "https":
        return True
    if not _from_trusted(request, trusted):
        return False
    protos = [p.strip().lower() for p in request.headers.get("x-forwarded-proto", "").split(",")]
    return protos[-1] == "https"


def app_of_token(tokens: TokenService, catalog: Catalog, token: str | None) -> str:
    """The app an access token belongs to: 41001 missing, 42001 expired, 40001 anything else."""
    if not token:
        raise E.WeChatError(E.ACCESS_TOKEN_MISSING)
    check = tokens.check(token)
    if check.state is TokenState.EXPIRED:
        raise E.WeChatError(E.ACCESS_TOKEN_EXPIRED)
    appid = check.appid
    if check.state is not TokenState.VALID or appid is None or catalog.get(appid) is None:
        raise E.WeChatError(E.INVALID_CREDENTIAL)
    return appid
