"""Thin Celery tasks for the relay lifecycle: load by id, call a service, retry what is transient.

Every task is `acks_late` and every service it calls is safe to run twice. Nothing depends on
the broker giving a task back, though: a task held by a killed worker or lost with Redis leaves its
row's lease to run out, and `sweep` drives the step again from the database. Transient Edgegap
errors (connection, timeout, 429, 5xx) are retried with short, capped countdowns, honouring
Retry-After; permanent ones never are (the services record them).
"""

import logging

from celery import shared_task
from django.conf import settings

from config.locks import LockLost, exclusive
from relays import services
from relays.edgegap import TransientError, get_client

logger = logging.getLogger(__name__)

# Short countdowns: the player is waiting, and with a Redis broker a countdown longer than the
# visibility timeout would deliver the task twice. Every wait is bounded by the session's ready
# deadline anyway.
MAX_BACKOFF = 10.0
MAX_RETRY_AFTER = 60.0
RELAY_TASK = {"bind": True, "acks_late": True, "reject_on_worker_lost": True, "max_retries": 12}


def _countdown(task, exc: TransientError) -> float:
    backoff = min(0.5 * 2**task.request.retries, MAX_BACKOFF)
    # Retry-After is a floor, not the whole answer: "Retry-After: 0" must not become a hot loop.
    return min(max(backoff, exc.retry_after or 0), MAX_RETRY_AFTER)


def _run(task, service, **kwargs):
    with get_client() as client:
        try:
            return service(client=client, **kwargs)
        except TransientError as exc:
            logger.info("%s: %s; retrying", task.name, exc)
            raise task.retry(exc=exc, countdown=_countdown(task, exc)) from None
        except services.RetryLater as later:
            # Not a failure: does not count against max_retries.
            task.apply_async(
                args=task.request.args, countdown=min(later.countdown, MAX_RETRY_AFTER)
            )


@shared_task(name="relays.session_create", **RELAY_TASK)
def session_create(self, session_pk: str):
    try:
        _run(self, services.relay_session_create, session_pk=session_pk)
    except self.MaxRetriesExceededError:
        with get_client() as client:
            reason = "the relay provider could not be reached"
            services.relay_session_fail(session_pk=session_pk, client=client, reason=reason)


@shared_task(name="relays.session_poll", **RELAY_TASK)
def session_poll(self, session_pk: str, generation: int | None = None):
    # A transient error retries the poll; the session's deadline still bounds the whole wait.
    _run(self, services.relay_session_poll, session_pk=session_pk, generation=generation)


@shared_task(name="relays.session_delete", **RELAY_TASK)
def session_delete(self, session_pk: str):
    _run(self, services.relay_session_delete, session_pk=session_pk)


@shared_task(name="relays.seat_authorize", **RELAY_TASK)
def seat_authorize(self, seat_pk: int):
    _run(self, services.relay_seat_authorize, seat_pk=seat_pk)


@shared_task(name="relays.seat_revoke", **RELAY_TASK)
def seat_revoke(self, seat_pk: int):
    _run(self, services.relay_seat_revoke_remote, seat_pk=seat_pk)


@shared_task(name="relays.reconcile", bind=True, acks_late=True, ignore_result=True)
def reconcile(self):
    # One pass at a time across every host. The lock dies with its holder: a short TTL, renewed
    # before each Edgegap call (each bounded by the timeout), so a killed worker blocks the next
    # pass for one TTL at most.
    with exclusive("relays:reconcile", ttl=settings.EDGEGAP_TIMEOUT * 3) as lock:
        if lock is None:
            logger.info("reconcile: another pass is running")
            return
        try:
            with get_client() as client:
                report = services.relay_reconcile(client=client, renew=lock.renew)
            logger.info("reconcile: %s", report)
        except TransientError as exc:
            logger.warning("reconcile: Edgegap unavailable (%s); the next pass tries again", exc)
        except LockLost:
            logger.warning("reconcile: the pass outlived its lock; another host carries on")


@shared_task(name="relays.sweep", bind=True, ignore_result=True)
def sweep(self):
    # Cheap (indexed reads; Edgegap is called only to fail sessions past their deadline), and
    # safe to run on several hosts at once: every step it drives claims before acting.
    with get_client() as client:
        services.relay_sweep(client=client)
