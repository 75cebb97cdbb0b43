"""Tasks for tests that run a real Celery worker without touching the database or Edgegap.

A worker loads them with `--include tests.worker_probe`; each leaves its mark in the broker's
Redis, so a test can see that the worker ran it.
"""

import time

import redis
from celery import shared_task
from django.conf import settings


def _redis():
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)


@shared_task(name="probe.mark", acks_late=True, ignore_result=True)
def mark(key: str) -> None:
    _redis().set(f"probe:{key}", "done", ex=600)


@shared_task(name="probe.chain", bind=True, acks_late=True, ignore_result=True)
def chain(self, hops: int, seconds: float, key: str) -> None:
    """Like a relay allocation's polls: work for a while, then send the next hop through the
    broker (on the same queue); the last hop leaves the mark."""
    time.sleep(seconds)
    if hops > 0:
        queue = self.request.delivery_info.get("routing_key")
        self.apply_async(args=(hops - 1, seconds, key), queue=queue)
    else:
        _redis().set(f"probe:{key}", "done", ex=600)
