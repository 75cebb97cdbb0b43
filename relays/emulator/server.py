"""Running the emulator: `Emulator` ties the REST API, the sessions and their UDP relays together
in one asyncio event loop; `EmulatorThread` runs one in the background, for tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import random
import socket
import threading
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import uvicorn

from relays.emulator.http import EmulatorApp
from relays.emulator.state import Knobs, Session, SessionStore
from relays.emulator.udp import SessionRelay

logger = logging.getLogger(__name__)

# The UDP relays listen on loopback only: the emulator is a development tool, not a relay.
RELAY_IP = "127.0.0.1"
RELAY_HOST = "localhost"
WEBHOOK_TIMEOUT = 2.0


class Emulator:
    """One emulated Edgegap account: its relay sessions, their UDP relays, and the knobs.

    Everything runs in the event loop of `serve()`. The HTTP app and the UDP relays call in from
    that loop only, so nothing here needs a lock; other threads go through `EmulatorThread`.
    """

    def __init__(
        self, token: str, *, knobs: Knobs | None = None, rng: random.Random | None = None
    ) -> None:
        if not token:
            raise ValueError("the emulator needs the API token it should accept")
        self.token = token
        self.knobs = knobs or Knobs()
        self.rng = rng or random.Random()
        self.store = SessionStore(self.rng)
        self._relays: dict[str, SessionRelay] = {}
        self._allocations: dict[str, asyncio.Task] = {}
        self._server: uvicorn.Server | None = None

    def configure(self, changes: Mapping[str, Any]) -> Knobs:
        """Change some knobs (ValueError when one is unknown or bad); returns all of them."""
        self.knobs = self.knobs.replace(changes)
        logger.info("knobs changed: %s", dict(changes))
        return self.knobs

    def create_session(self, ips: list[str], webhook_url: str | None = None) -> Session:
        """A new session, host first. It gets ready (or fails) later, as the knobs say."""
        session = self.store.create(ips, webhook_url)
        knobs = self.knobs  # the knobs of the moment of creation rule this session's fate
        never_ready = knobs.never_ready or (
            bool(knobs.never_ready_rate) and self.rng.random() < knobs.never_ready_rate
        )
        if not never_ready:
            self._allocations[session.session_id] = asyncio.create_task(
                self._allocate(session, knobs)
            )
        logger.info("session %s created for %d user(s)", session.session_id, len(ips))
        return session

    def delete_session(self, session_id: str) -> bool:
        """Delete a session and close its UDP ports; False when there is no such session."""
        if self.store.delete(session_id) is None:
            return False
        if task := self._allocations.pop(session_id, None):
            task.cancel()
        if relay := self._relays.pop(session_id, None):
            relay.close()
        logger.info("session %s deleted", session_id)
        return True

    def check_host_timeouts(self) -> None:
        """Mark the ready sessions whose host went silent as timed out (knob `host_timeout`)."""
        for relay in self._relays.values():
            relay.check_host_timeout()

    def reset(self) -> None:
        """Delete every session."""
        for session in self.store.all():
            self.delete_session(session.session_id)

    async def _allocate(self, session: Session, knobs: Knobs) -> None:
        await asyncio.sleep(knobs.ready_delay)
        if knobs.error_state:
            session.fail(knobs.error_state)
            logger.info("session %s failed: %s", session.session_id, knobs.error_state)
        else:
            # Registered before the ports are bound, so that a delete meanwhile closes them.
            relay = self._relays[session.session_id] = SessionRelay(session, lambda: self.knobs)
            server_port, client_port = await relay.open(RELAY_IP)
            session.link(RELAY_HOST, RELAY_IP, server_port, client_port)
            logger.info(
                "session %s ready: server port %d, client port %d",
                session.session_id,
                server_port,
                client_port,
            )
            if session.webhook_url:
                asyncio.get_running_loop().run_in_executor(
                    None, _post_webhook, session.webhook_url, session.as_json()
                )
        del self._allocations[session.session_id]

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        on_listening: Callable[[str], None] | None = None,
    ) -> None:
        """Serve the REST API on host:port (0: a free port) until `stop()`, then close every relay.

        `on_listening` is called with the base URL (e.g. `http://127.0.0.1:8001`) as soon as the
        port accepts connections.
        """
        # Binding the socket here rather than in uvicorn tells us the port before serving starts.
        sock = socket.create_server((host, port))
        config = uvicorn.Config(
            EmulatorApp(self),
            interface="asgi3",
            lifespan="off",
            log_level="warning",
            log_config=None,  # the process's own logging setup stays in charge
            access_log=False,  # the app logs each call itself
            timeout_graceful_shutdown=1,
        )
        self._server = _Server(config)
        try:
            if on_listening is not None:
                on_listening(f"http://{host}:{sock.getsockname()[1]}")
            await self._server.serve(sockets=[sock])
        finally:
            sock.close()
            self.reset()

    def stop(self) -> None:
        """Make `serve()` return. Call it from the emulator's event loop (a signal handler, say)."""
        if self._server is not None:
            self._server.should_exit = True


class _Server(uvicorn.Server):
    # uvicorn would take SIGINT/SIGTERM over and raise them again once stopped. Whoever runs the
    # emulator decides what a signal means: the management command calls `Emulator.stop()`.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _post_webhook(url: str, session: dict[str, Any]) -> None:
    request = urllib.request.Request(  # noqa: S310 - http(s) only, checked at creation
        url,
        data=json.dumps(session).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT):  # noqa: S310
            pass
    except Exception as exc:  # best effort, as the webhook is only a hint (edgegap-relay.md §1)
        logger.warning("webhook of session %s failed: %s", session["session_id"], exc)


class EmulatorThread:
    """An emulator serving from a background thread with its own event loop: for tests.

        emulator = EmulatorThread(token="test-token", ready_delay=0.05, validation_delay=0.05)
        base_url = emulator.start()  # http://127.0.0.1:<free port>
        emulator.config(rate_429=1.0)  # same knobs as POST /_emulator/config
        emulator.reset()  # no sessions, and the knobs given above again
        emulator.stop()

    It is also a context manager: `with EmulatorThread(token=...) as emulator: ...`. `seed` makes
    session ids, tokens and fault draws repeatable.
    """

    def __init__(
        self,
        *,
        token: str,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int | None = None,
        **knobs: Any,
    ) -> None:
        self.token = token
        self.host, self.port = host, port
        self.base_url: str | None = None
        self._knobs = Knobs().replace(knobs)
        self.emulator = Emulator(token, knobs=self._knobs, rng=random.Random(seed))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        """Start serving and return the base URL once the API accepts connections."""
        outcome: queue.SimpleQueue[str | Exception] = queue.SimpleQueue()

        def listening(base_url: str) -> None:
            self._loop = asyncio.get_running_loop()
            outcome.put(base_url)

        def run() -> None:
            try:
                asyncio.run(self.emulator.serve(self.host, self.port, listening))
            except Exception as exc:  # e.g. the port is taken: start() raises it
                outcome.put(exc)
                raise

        self._thread = threading.Thread(target=run, name="relay-emulator", daemon=True)
        self._thread.start()
        result = outcome.get(timeout=10)
        if isinstance(result, Exception):
            self._thread.join()
            self._thread = None
            raise result
        self.base_url = result
        return result

    def stop(self) -> None:
        """Stop serving, close every UDP port, and wait for the thread to end."""
        if self._thread is None:
            return
        self._loop.call_soon_threadsafe(self.emulator.stop)
        self._thread.join(timeout=10)
        self._thread = None

    def config(self, **knobs: Any) -> Knobs:
        """Change knobs at runtime (ValueError when one is unknown or bad); returns all of them."""
        return self._call(self.emulator.configure, knobs)

    def reset(self) -> None:
        """A clean slate between tests: delete every session, restore the initial knobs."""

        def clean_slate() -> None:
            self.emulator.reset()
            self.emulator.knobs = self._knobs

        self._call(clean_slate)

    def _call(self, function: Callable[..., Any], *args: Any) -> Any:
        # The emulator's state belongs to its event loop: run the call there and wait for it.
        async def call() -> Any:
            return function(*args)

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout=10)

    def __enter__(self) -> EmulatorThread:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
