"""One lock helper for work that must run on one host at a time (reconciliation, matcher passes).

A lock dies with its holder: it has a short TTL, the holder renews it while it works, and only the
holder can renew or release it (compare-and-set on an owner token, in one Redis script). A worker
killed mid-pass therefore blocks the next pass for at most the TTL, never for minutes, and a slow
holder whose lock expired learns it at its next `renew()` (`LockLost`) instead of releasing a lock
that another host now holds.

With `REDIS_URL` set the lock lives in Redis, shared by every host; without it (unit tests, eager
Celery) everything runs in one process and a process-local table does the same job.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Iterator

from django.conf import settings

logger = logging.getLogger(__name__)

KEY_PREFIX = "relaylobby:lock:"

# KEYS[1] = lock, ARGV[1] = owner, ARGV[2] = ttl in ms. Renew and release only the owner's lock.
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"  # noqa: E501
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"  # noqa: E501


class LockLost(Exception):
    """The lock expired (or was taken) while its holder worked: stop, the work is another's."""


class Lock:
    def __init__(self, name: str, ttl: float, backend: _Backend) -> None:
        self.name = name
        self.ttl = ttl
        self.owner = uuid.uuid4().hex
        self._backend = backend

    def acquire(self) -> bool:
        return self._backend.acquire(self.name, self.owner, self.ttl)

    def renew(self) -> None:
        """Push the expiry a full TTL ahead; raises `LockLost` when the lock is no longer ours."""
        if not self._backend.renew(self.name, self.owner, self.ttl):
            raise LockLost(f"lock {self.name} expired while held")

    def release(self) -> None:
        self._backend.release(self.name, self.owner)


class _RedisBackend:
    def __init__(self, url: str) -> None:
        import redis

        # Short socket timeouts: a lock call must fail fast when Redis is away, not hang a worker.
        self._client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._renew = self._client.register_script(_RENEW)
        self._release = self._client.register_script(_RELEASE)

    def acquire(self, name: str, owner: str, ttl: float) -> bool:
        return bool(self._client.set(KEY_PREFIX + name, owner, nx=True, px=int(ttl * 1000)))

    def renew(self, name: str, owner: str, ttl: float) -> bool:
        return bool(self._renew(keys=[KEY_PREFIX + name], args=[owner, int(ttl * 1000)]))

    def release(self, name: str, owner: str) -> None:
        self._release(keys=[KEY_PREFIX + name], args=[owner])


class _LocalBackend:
    """The same semantics inside one process (no Redis: unit tests and eager Celery)."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[str, float]] = {}
        self._mutex = threading.Lock()

    def _holder(self, name: str) -> str | None:
        owner, expires = self._held.get(name, (None, 0.0))
        return owner if expires > time.monotonic() else None

    def acquire(self, name: str, owner: str, ttl: float) -> bool:
        with self._mutex:
            if self._holder(name) is not None:
                return False
            self._held[name] = (owner, time.monotonic() + ttl)
            return True

    def renew(self, name: str, owner: str, ttl: float) -> bool:
        with self._mutex:
            if self._holder(name) != owner:
                return False
            self._held[name] = (owner, time.monotonic() + ttl)
            return True

    def release(self, name: str, owner: str) -> None:
        with self._mutex:
            if self._holder(name) == owner:
                del self._held[name]


_backend: _RedisBackend | _LocalBackend | None = None
_backend_url: str | None = None
_Backend = _RedisBackend | _LocalBackend


def _get_backend() -> _Backend:
    # One client (and pool) per process, rebuilt if the settings change (tests override them).
    global _backend, _backend_url
    url = settings.REDIS_URL
    if _backend is None or url != _backend_url:
        _backend = _RedisBackend(url) if url else _LocalBackend()
        _backend_url = url
    return _backend


@contextlib.contextmanager
def exclusive(name: str, *, ttl: float) -> Iterator[Lock | None]:
    """Hold the lock `name` for the block, or yield None when another holder has it.

    The holder calls `lock.renew()` between steps that may take a while (each shorter than `ttl`).
    """
    lock = Lock(name, ttl, _get_backend())
    if not lock.acquire():
        yield None
        return
    try:
        yield lock
    finally:
        try:
            lock.release()
        except Exception as exc:  # Redis away: the TTL frees the lock soon anyway
            logger.warning("could not release lock %s (%s); it expires by itself", name, exc)
