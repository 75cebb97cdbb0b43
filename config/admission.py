"""Admission control and overload answers: a crowd gets 503 + Retry-After, never 500.

Under ASGI, Django runs every sync view in a thread of its own, so a hundred simultaneous
requests are a hundred threads competing for the few connections of one process's PostgreSQL
pool; before this gate, those that waited longer than the pool's timeout failed with
`PoolTimeout` (a 500 and a traceback each). The gate lets at most `ADMISSION_LIMIT` such requests
into Django at once per process, a little less than the pool holds; the others wait in the event
loop (an asyncio waiter each: no thread, no connection), first come first served, for at most
`REQUEST_QUEUE_TIMEOUT` seconds, and are then answered `503` with `Retry-After` before Django
ever sees them.

Not gated, because they hold no connection for long or must answer under load: the probes and
`/metrics`, static files, async views (the events long-poll gives its connection back while it
waits), and WebSockets (not HTTP). A request body is read before the request queues, so a slow
upload occupies a socket, not a slot.

When the pool still runs dry (sockets and long-polls share it, several processes share the
server's `max_connections`), `overloaded_response` turns the error into the same 503 (see
`config.errors.OverloadMiddleware` and the DRF exception handler). Every overload is logged as
one WARNING line at most every few seconds, with a count, never a traceback per request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sqlite3
import threading
import time
from functools import lru_cache

from asgiref.sync import iscoroutinefunction
from django.http import JsonResponse
from django.urls import Resolver404, resolve

from lobby.errors import error_body

logger = logging.getLogger(__name__)

# Seconds a refused client is told to wait: long enough for a burst to drain, short enough that
# a game client's retry lands in the same minute.
RETRY_AFTER = 2
# Bodies up to this size are read before the request queues; a larger one (which Django will
# refuse with 413 anyway) is handed over as it streams.
_BUFFER_LIMIT = 1024 * 1024
# Paths that answer under load and never queue behind a crowd.
_EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


# --- The one overload log line ---------------------------------------------------------------


class OverloadLog:
    """At most one WARNING line per `interval` seconds for each kind of overload, with a count.

    A crowd produces thousands of identical refusals per minute: one line that says how many
    keeps the log readable and cheap, and a traceback per request would only repeat itself.
    """

    def __init__(self, interval: float = 5.0):
        self.interval = interval
        self._lock = threading.Lock()  # called from the event loop and from request threads
        self._pending: dict[str, int] = {}
        self._last: dict[str, float] = {}
        self.totals: dict[str, int] = {}

    def note(self, kind: str, what: str) -> None:
        now = time.monotonic()
        with self._lock:
            self.totals[kind] = self.totals.get(kind, 0) + 1
            self._pending[kind] = self._pending.get(kind, 0) + 1
            if now - self._last.get(kind, -math.inf) < self.interval:
                return
            count, self._pending[kind], self._last[kind] = self._pending[kind], 0, now
        logger.warning("overloaded (%s): %d request(s) answered 503 since the last line; %s",
                       kind, count, what)  # fmt: skip


overload_log = OverloadLog()


# --- Answers ---------------------------------------------------------------------------------

_MESSAGE = "The service is busy right now; retry in a few seconds."


def overloaded_body() -> dict:
    return error_body("overloaded", _MESSAGE, retry_after=RETRY_AFTER)


def overloaded_response() -> JsonResponse:
    response = JsonResponse(
        overloaded_body(), status=503, headers={"Retry-After": str(RETRY_AFTER)}
    )
    # Django logs every 5xx answer at ERROR, one line per request; the overload log's summary
    # line replaces those (Django skips a response marked as logged already).
    response._has_been_logged = True
    return response


def is_pool_exhausted(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps) says the database has no connection or lock for us now.

    Django wraps the driver's errors (`django.db.OperationalError` from `psycopg_pool.PoolTimeout`),
    so the whole cause chain is looked at.
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if _is_exhaustion(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _is_exhaustion(exc: BaseException) -> bool:
    try:
        from psycopg_pool import PoolTimeout, TooManyRequests
    except ImportError:  # SQLite-only installs
        pass
    else:
        if isinstance(exc, PoolTimeout | TooManyRequests):
            return True
    if getattr(exc, "sqlstate", None) == "53300":  # PostgreSQL: too_many_connections
        return True
    # SQLite's busy timeout ran out while other writers held the lock: the same crowd, another
    # database.
    return isinstance(exc, sqlite3.OperationalError) and "database is locked" in str(exc)


# --- The gate --------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _is_async_view(path: str) -> bool:
    try:
        return iscoroutinefunction(resolve(path).func)
    except Resolver404:
        return False


class AdmissionGate:
    """ASGI middleware: at most `limit` gated HTTP requests inside `app` at once."""

    def __init__(self, app, *, limit: int, queue_timeout: float, exempt_prefixes=()):
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.app = app
        self.limit = limit
        self.queue_timeout = queue_timeout
        self.exempt_prefixes = tuple(exempt_prefixes)
        self.active = 0  # requests inside the app
        self.waiting = 0  # requests queued in the event loop
        self._semaphore: asyncio.Semaphore | None = None  # made on first use, in the server's loop

    def exempt(self, path: str) -> bool:
        return (
            path in _EXEMPT_PATHS or path.startswith(self.exempt_prefixes) or _is_async_view(path)
        )

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self.exempt(scope["path"]):
            return await self.app(scope, receive, send)
        body, complete = await _read_body(receive)
        if body is None:
            return  # the client left while sending its body: nobody to answer
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.limit)
        next_message = None
        if self._semaphore.locked():
            # Once the body is read, the only message left is the client's disconnect: listen
            # for it while queued (a client that gave up costs no slot), and hand it to Django
            # afterwards if it arrives later.
            next_message = asyncio.ensure_future(receive()) if complete else None
            admitted = await self._wait(next_message)
            if admitted is None:
                return  # the client left while queued
            if not admitted:
                if next_message is not None:
                    next_message.cancel()
                overload_log.note(
                    "queue",
                    f"no admission slot within {self.queue_timeout:g} s "
                    f"({self.limit} slots, {self.waiting} waiting)",
                )
                return await _send_overloaded(scope, send)
        else:
            await self._semaphore.acquire()  # free: returns at once
        self.active += 1
        try:
            await self.app(scope, _replay(body, next_message, receive), send)
        finally:
            self.active -= 1
            self._semaphore.release()

    async def _wait(self, next_message) -> bool | None:
        """Queue for a slot: True once admitted, False on timeout, None if the client left."""
        acquire = asyncio.ensure_future(self._semaphore.acquire())
        watched = {acquire} if next_message is None else {acquire, next_message}
        self.waiting += 1
        try:
            await asyncio.wait(watched, timeout=self.queue_timeout, return_when="FIRST_COMPLETED")
        finally:
            self.waiting -= 1
        if not acquire.done():
            acquire.cancel()  # the semaphore hands a slot granted meanwhile to the next waiter
            await asyncio.wait({acquire})
        granted = acquire.done() and not acquire.cancelled()
        if next_message is not None and next_message.done():
            if granted:
                self._semaphore.release()
            return None
        return granted


async def _read_body(receive):
    """The request's body messages (None if the client disconnected) and whether all arrived."""
    messages, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None, False
        messages.append(message)
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            return messages, True
        if size > _BUFFER_LIMIT:
            return messages, False


def _replay(messages, next_message, receive):
    pending = list(messages)

    async def replay():
        nonlocal next_message
        if pending:
            return pending.pop(0)
        if next_message is not None:
            task, next_message = next_message, None
            return await task
        return await receive()

    return replay


async def _send_overloaded(scope, send) -> None:
    body = json.dumps(overloaded_body()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(RETRY_AFTER).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# --- Metrics ---------------------------------------------------------------------------------

_gates: list[AdmissionGate] = []


def gated(app, **options) -> AdmissionGate:
    """The gate around `app`, remembered so that `/metrics` can report on it."""
    gate = AdmissionGate(app, **options)
    _gates.append(gate)
    return gate


def metrics_lines() -> list[str]:
    """Prometheus lines for this process (a `METRICS_COLLECTORS` entry)."""
    active = sum(gate.active for gate in _gates)
    waiting = sum(gate.waiting for gate in _gates)
    lines = [
        "# HELP relaylobby_requests_active Gated requests running in this web process.",
        "# TYPE relaylobby_requests_active gauge",
        f"relaylobby_requests_active {active}",
        "# HELP relaylobby_requests_queued Requests waiting for an admission slot in this process.",
        "# TYPE relaylobby_requests_queued gauge",
        f"relaylobby_requests_queued {waiting}",
        "# HELP relaylobby_overloaded_total Requests answered 503 overloaded by this process.",
        "# TYPE relaylobby_overloaded_total counter",
    ]
    for kind in ("queue", "database"):
        lines.append(f'relaylobby_overloaded_total{{reason="{kind}"}} '
                     f"{overload_log.totals.get(kind, 0)}")  # fmt: skip
    return lines
