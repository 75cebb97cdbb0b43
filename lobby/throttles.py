"""Rate limits, shared across processes through Redis, at no network round trip per request.

Each limit is a sliding window, estimated from two fixed windows (the current one and the one
before, weighted by how much of it still overlaps): accurate to a few percent, and counted as one
integer per window instead of a list of timestamps.

Where the counts live: every web process keeps them in memory and decides at once; a background
thread sends what it counted to Redis every `SYNC_INTERVAL` seconds in one pipelined round trip
(`INCRBY` per window) and takes back the totals of all processes. So a request never waits for
Redis, and several processes together overshoot a limit by at most what they admit in one sync
interval. Before this, each request made four Redis round trips through Django's cache, which
under ASGI builds a new connection pool per request.

When Redis is unreachable the limits keep holding, counted by each process alone (N processes
admit up to N times the limit) until Redis answers again; no request fails because of it, and one
WARNING line says so (docs/api.md "Throttles"). Without `REDIS_URL` (unit tests, one process)
the counts are only local.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time

from django.conf import settings
from rest_framework.exceptions import Throttled
from rest_framework.throttling import SimpleRateThrottle

from lobby.ip import client_ip

logger = logging.getLogger(__name__)

# Seconds between two syncs with Redis: the lag after which one process sees another's counts.
SYNC_INTERVAL = 0.1
# How long the sync thread leaves an unreachable Redis alone before trying again.
RETRY_INTERVAL = 1.0
_PREFIX = "relaylobby:throttle:"
_clock = time.time  # the wall clock: windows line up across processes (tests may fix it)
# Windows are forgotten locally once they cannot weigh any more; pruned every this many hits.
_PRUNE_EVERY = 10_000


class _Window:
    __slots__ = ("current", "duration", "index", "previous")

    def __init__(self, duration: int, index: int):
        self.duration = duration
        self.index = index
        self.current = 0  # this window's count: all processes' as of the last sync, plus ours since
        self.previous = 0

    def roll(self, index: int) -> None:
        if index != self.index:
            self.previous = self.current if index == self.index + 1 else 0
            self.current = 0
            self.index = index


class Counters:
    """The process's throttle counts (thread-safe: the event loop and request threads share it)."""

    def __init__(self, redis_url: str | None):
        self.redis_url = redis_url
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}
        self._outbox: dict[tuple[str, int, int], int] = {}  # (key, duration, index) -> unsent
        self._hits = 0
        self._pid = os.getpid()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._sync_lock = threading.Lock()  # one sync at a time; reset() waits for it
        self._client = None
        self.redis_ok = True

    def hit(self, key: str, limit: int, duration: int, now: float | None = None) -> float | None:
        """Count one request against `key` if it is under `limit` per `duration` seconds.

        Returns None when admitted (and counted), else the seconds until it would be.
        """
        now = _clock() if now is None else now
        index = int(now // duration)
        with self._lock:
            window = self._windows.get(key)
            if window is None or window.duration != duration:
                window = self._windows[key] = _Window(duration, index)
            window.roll(index)
            elapsed = now - index * duration
            weight = 1 - elapsed / duration
            if window.previous * weight + window.current >= limit:
                return _wait(window, limit, elapsed)
            window.current += 1
            if self.redis_url:
                slot = (key, duration, index)
                self._outbox[slot] = self._outbox.get(slot, 0) + 1
            self._hits += 1
            if self._hits % _PRUNE_EVERY == 0:
                self._prune(now)
        if self.redis_url:
            self._ensure_thread()
            self._wake.set()
        return None

    def reset(self) -> None:
        """Forget every count, here and in Redis (tests: each starts with fresh limits)."""
        with self._sync_lock, self._lock:
            self._windows.clear()
            self._outbox.clear()
            if self.redis_url and self.redis_ok:
                try:
                    client = self._redis()
                    keys = list(client.scan_iter(match=_PREFIX + "*", count=1000))
                    if keys:
                        client.delete(*keys)
                except Exception:  # Redis down: nothing there to forget
                    self._client = None

    def _prune(self, now: float) -> None:
        stale = [
            key
            for key, window in self._windows.items()
            if window.index < int(now // window.duration) - 1
        ]
        for key in stale:
            del self._windows[key]

    # --- The sync with Redis -----------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._pid == os.getpid():
            return
        with self._lock:
            if self._thread is not None and self._pid == os.getpid():
                return
            # A forked child inherits no thread: start its own, with its own connection.
            self._pid, self._client = os.getpid(), None
            self._thread = threading.Thread(target=self._run, name="throttle-sync", daemon=True)
            self._thread.start()

    def _redis(self):
        if self._client is None:
            import redis

            # Short timeouts: a Redis that hangs must not stall the sync for long (requests do
            # not wait for it either way). Explicit, because redis-py's defaults change between
            # major versions.
            self._client = redis.Redis.from_url(
                self.redis_url, socket_timeout=1.0, socket_connect_timeout=0.5
            )
        return self._client

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if not self.sync():
                time.sleep(RETRY_INTERVAL)
            time.sleep(SYNC_INTERVAL)

    def sync(self) -> bool:
        """Send the counts made since the last sync; take back every process's totals."""
        with self._sync_lock:
            with self._lock:
                outbox, self._outbox = self._outbox, {}
            if not outbox:
                return True
            try:
                pipe = self._redis().pipeline(transaction=False)
                for (key, duration, index), count in outbox.items():
                    name = f"{_PREFIX}{key}:{duration}:{index}"
                    pipe.incrby(name, count)
                    pipe.expire(name, 2 * duration + 10)
                totals = pipe.execute()[::2]
            except Exception as exc:  # any Redis failure degrades the same way
                self._client = None
                if self.redis_ok:
                    self.redis_ok = False
                    logger.warning(
                        "throttles: Redis unreachable (%s); each process now counts alone",
                        type(exc).__name__,
                    )
                return False
            if not self.redis_ok:
                self.redis_ok = True
                logger.warning("throttles: Redis reachable again; counts shared again")
            with self._lock:
                for (key, duration, index), total in zip(outbox, totals, strict=True):
                    window = self._windows.get(key)
                    if window is None or window.duration != duration:
                        continue
                    # What this process counted since the batch left is not in Redis's total yet.
                    unsent = self._outbox.get((key, duration, index), 0)
                    if window.index == index:
                        window.current = max(window.current, total + unsent)
                    elif window.index == index + 1:
                        window.previous = max(window.previous, total)
            return True


def _wait(window: _Window, limit: int, elapsed: float) -> float:
    """Seconds until the estimate of `window` drops below `limit`."""
    duration = window.duration
    if window.current < limit:
        # The previous window's share fades out within this one.
        needed = duration * (1 - (limit - window.current) / window.previous)
        return max(needed - elapsed, 0.001)
    # Only the next window's fading share of this one can let a request in.
    return (duration - elapsed) + duration * (1 - limit / window.current) + 0.001


_counters: Counters | None = None


def counters() -> Counters:
    global _counters
    if _counters is None or _counters.redis_url != settings.REDIS_URL:
        _counters = Counters(settings.REDIS_URL)
    return _counters


def reset() -> None:
    counters().reset()


_rates: dict[str, tuple[int | None, int | None]] = {}


def rate_for(scope: str) -> tuple[int | None, int | None]:
    """(requests, seconds) for a scope, as DRF's throttle classes read it."""
    rate = SimpleRateThrottle.THROTTLE_RATES.get(scope)
    parsed = _rates.get(rate)
    if parsed is None:
        parsed = _rates[rate] = SimpleRateThrottle.parse_rate(None, rate)
    return parsed


def check(scoped_idents) -> float | None:
    """Count a request against each (scope, ident); like DRF, every limit is consulted and the
    longest wait wins. None when admitted, else the wait in seconds."""
    waits = []
    store = counters()
    for scope, ident in scoped_idents:
        limit, duration = rate_for(scope)
        if limit is None:
            continue
        wait = store.hit(f"{scope}:{ident}", limit, duration)
        if wait is not None:
            waits.append(wait)
    return max(waits) if waits else None


def throttled_detail(wait: float) -> tuple[int, str]:
    """The whole seconds and message of DRF's 429 for this wait."""
    exc = Throttled(wait)
    return exc.wait, str(exc.detail)


class _CountedThrottle(SimpleRateThrottle):
    """DRF's interface over `Counters` instead of a timestamp list in Django's cache."""

    def ident_for(self, request):  # pragma: no cover - overridden
        raise NotImplementedError

    def get_cache_key(self, request, view):
        ident = self.ident_for(request)
        return None if ident is None else f"{self.scope}:{ident}"

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        self._wait = counters().hit(key, self.num_requests, self.duration)
        return self._wait is None

    def wait(self):
        return self._wait


class PlayerThrottle(_CountedThrottle):
    scope = "player"

    def ident_for(self, request):
        if not (request.user and request.user.is_authenticated):
            return None
        return request.user.pk


class IpThrottle(_CountedThrottle):
    """Per client address (through trusted proxies only), whoever is signed in."""

    scope = "ip"

    def ident_for(self, request):
        return client_ip(request)


class GuestCreationThrottle(IpThrottle):
    scope = "guest"


class JoinCodeThrottle(PlayerThrottle):
    """Tight, so that guessing join codes is hopeless (see lobby.models.JOIN_CODE_ALPHABET)."""

    scope = "join_code"


def seconds(wait: float) -> int:
    return max(1, math.ceil(wait))
