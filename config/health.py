"""Liveness and readiness probes, for load balancers and orchestrators.

`/healthz` answers as long as the process serves requests. `/readyz` also checks what a request
needs: the database, and Redis when one is configured (it carries the broker, the channel layer and
the cache). Both are plain Django views with no authentication and no session, so probes are cheap.
"""

import logging

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)


@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


def _check_database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_redis():
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


@require_GET
def readyz(request):
    checks = {"database": _check_database}
    if settings.REDIS_URL:
        checks["redis"] = _check_redis
    results, failures = {}, []
    for name, check in checks.items():
        try:
            check()
        except Exception as exc:
            # The reason names the failing dependency and the error's kind, not its text: a
            # driver's message can carry a DSN, and this endpoint is unauthenticated.
            logger.warning("readiness check %s failed: %s", name, type(exc).__name__)
            results[name] = "unavailable"
            failures.append(f"{name} unavailable ({type(exc).__name__})")
        else:
            results[name] = "ok"
    if failures:
        return JsonResponse(
            {"status": "unavailable", "reason": "; ".join(failures), "checks": results}, status=503
        )
    return JsonResponse({"status": "ok", "checks": results})
