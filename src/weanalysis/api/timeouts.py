"""Read timeouts for slow clients: uvicorn's HTTP protocol with a header and a body deadline.

uvicorn closes idle keep-alive connections, but a client that sends its headers (or its body) a
byte at a time keeps a connection, and a handler, forever. Here a request must bring its whole
header block within ``header_timeout`` seconds of the connection (or of the previous response),
and its whole body within ``body_timeout`` seconds of its headers; otherwise the connection is
closed: with a 408 answer when no handler has started yet, silently when one has (it then sees
the client as gone, which is logged as one INFO line).
"""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("weanalysis.api")

REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    b"connection: close\r\ncontent-length: 65\r\n\r\n"
    b'{"error":{"code":"request_timeout","message":"request too slow"}}'
)
assert len(REQUEST_TIMEOUT.split(b"\r\n\r\n", 1)[1]) == 65


def protocol_class(header_timeout: float, body_timeout: float) -> type[asyncio.Protocol]:
    """An HttpToolsProtocol with the two deadlines (uvicorn's ``http=`` argument)."""

    class TimedHttpToolsProtocol(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None

        def _arm(self, seconds: float, what: str) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(seconds, self._expire, what)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self, what: str) -> None:
            self._deadline = None
            if self.transport.is_closing():
                return
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "-"
            log.info("closing a connection from %s: %s", client, what)
            if self.cycle is None or self.cycle.response_complete:
                self.transport.write(REQUEST_TIMEOUT)
            self.transport.close()

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm(header_timeout, f"no complete request headers within {header_timeout:g}s")

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_headers_complete(self) -> None:
            super().on_headers_complete()
            self._arm(body_timeout, f"no complete request body within {body_timeout:g}s")

        def on_message_complete(self) -> None:
            self._disarm()
            super().on_message_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.cycle.response_complete:
                # the next request on this connection has the same time for its headers
                self._arm(header_timeout, f"no complete request headers within {header_timeout:g}s")

    return TimedHttpToolsProtocol
