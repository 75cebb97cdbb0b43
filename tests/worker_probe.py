"""Tasks for tests that run a real Celery worker without touching the database or Edgegap.

A worker loads them with `--include tests.worker_probe`; each leaves its mark in the broker's
Redis, so a test can see that the worker ran it.
"""

import contextlib
import time

import redis
from celery import shared_task
from django.conf import settings


def _redis():
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)


@shared_task(name="probe.mark", acks_late=True, ignore_result=True)
def mark(key: str) -> None:
    _redis().set(f"probe:{key}", "done", ex=600)


@shared_task(name="probe.sleep", acks_late=True, ignore_result=True)
def sleep(seconds: float, key: str) -> None:
    # Still running when the test stops Redis: the worker holds unacked deliveries then.
    time.sleep(seconds)
    with contextlib.suppress(redis.RedisError):  # Redis is down: the test looks at other marks
        _redis().set(f"probe:{key}", "done", ex=600)


@shared_task(name="probe.relay", bind=True, acks_late=True, ignore_result=True)
def relay(self, hops: int, key: str) -> None:
    # Like a relay poll: a short wait, then the next hop as a countdown task through the broker.
    time.sleep(0.3)
    if hops > 0:
        self.apply_async(args=(hops - 1, key), countdown=0.5)
    else:
        _redis().set(f"probe:{key}", "done", ex=600)
