"""Slow clients: uvicorn's HTTP protocol with a deadline on reading each request.

uvicorn bounds the idle time between requests (`--timeout-keep-alive`) but not the reading of a
request: a client that sends half its headers, or announces `Content-Length: 1000` and sends one
byte, holds its connection (and, for a body, a running request) forever; a few thousand of them
exhaust the process (slowloris). This protocol gives each request `HTTP_HEADER_TIMEOUT` seconds
from its first byte (or from the connection) to finish its headers, then `HTTP_BODY_TIMEOUT`
seconds to finish its body; a request late on either is answered `408` (when nothing was
answered yet) and its connection closed. A request whose body is late never reaches a view: the
admission gate (config/admission.py) reads bodies before a request queues, and sees the
disconnect. The time a view takes to answer (a 30 s long-poll) is not bounded here; WebSockets
leave this protocol at the upgrade.

Serve with `uvicorn --http config.slowclients:GuardedHttpToolsProtocol` (the Procfile and
`runstack` do). A reverse proxy in front may bound reads too; this keeps a process safe without
one.
"""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

logger = logging.getLogger(__name__)

_TIMEOUT_BODY = (
    b'{"error": {"code": "request_timeout", "message": "The request was not sent in time."}}'
)
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY)
)

# How many requests ran out of time, by phase (read by tests and the log line).
timed_out = {"headers": 0, "body": 0}


def _timeouts() -> tuple[float, float]:
    from django.conf import settings

    return settings.HTTP_HEADER_TIMEOUT, settings.HTTP_BODY_TIMEOUT


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with per-request read deadlines (see the module)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._header_timeout, self._body_timeout = _timeouts()
        self._deadline: asyncio.TimerHandle | None = None

    def _arm(self, seconds: float, phase: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired, phase)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, phase: str) -> None:
        self._deadline = None
        if self.transport is None or self.transport.is_closing():
            return
        timed_out[phase] += 1
        logger.info("closed a connection whose request %s took too long", phase)
        # Headers late: `cycle` is still the previous request's (kept-alive), answered in full
        # unless pipelined. Body late: `cycle` is this request's, answered only if the view
        # has not started to.
        if self.cycle is None or (
            self.cycle.response_complete if phase == "headers" else not self.cycle.response_started
        ):
            # A view still reading the body sees a disconnect (uvicorn marks the cycle when the
            # connection is lost) and its answer, if any, goes nowhere.
            self.transport.write(_TIMEOUT_RESPONSE)
        self.transport.close()

    # uvicorn's callbacks -----------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm(self._header_timeout, "headers")

    def data_received(self, data: bytes) -> None:
        if self._deadline is None:  # the first bytes of the next request on a kept-alive socket
            self._arm(self._header_timeout, "headers")
        super().data_received(data)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._arm(self._body_timeout, "body")

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()  # the socket is the WebSocket protocol's from here on
        super().handle_websocket_upgrade()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)
