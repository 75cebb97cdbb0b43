"""The Celery application: configured from Django settings (the CELERY_ names)."""

import os

from celery import Celery, signals

from config import kombu_fixes

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Before any broker connection exists: see config/kombu_fixes.py (a Redis outage ended workers).
kombu_fixes.apply()

app = Celery("relaylobby")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def fit_database_pool(databases: dict, *, pool_cls, concurrency) -> None:
    """Give a threads worker a pooled database connection per thread, plus two spare.

    A relay task keeps its thread's connection from its first query until the task ends (Celery's
    Django fixup closes it then), including while it waits for Edgegap; with fewer pooled
    connections than threads, the extra threads time out waiting for one and their tasks fail
    (bench/RESULTS.md, "Worker pool (issue 9)"). Other pools and SQLite are left alone.
    """
    name = pool_cls if isinstance(pool_cls, str) else getattr(pool_cls, "__module__", "")
    if "thread" not in name or not isinstance(concurrency, int):
        return
    pool = databases["default"].get("OPTIONS", {}).get("pool")
    if isinstance(pool, dict):
        pool["max_size"] = max(pool.get("max_size", 0), concurrency + 2)


@signals.worker_init.connect
def _database_pool_fits_the_threads(sender, **kwargs):
    # Runs before any connection is opened, so the pool is created at the right size.
    from django.conf import settings

    fit_database_pool(settings.DATABASES, pool_cls=sender.pool_cls, concurrency=sender.concurrency)


# Inside a worker, a task that publishes (a retry, the next poll) while Redis is down waits for it
# to come back instead of failing at once (Celery's default gives up after ~0.6 s), so a relay
# allocation in flight carries on across an outage of up to about a minute. Web processes keep
# the short default: a request must not hang on a dead broker.
WORKER_PUBLISH_RETRY_POLICY = {
    "max_retries": 15,
    "interval_start": 0.5,
    "interval_step": 0.5,
    "interval_max": 5.0,
}  # waits 0.5, 1, 1.5, ... then 5 s at a time: about 52 s in all


@signals.worker_init.connect
def _publish_waits_out_a_broker_outage(sender, **kwargs):
    # worker_init runs before the pool forks, so prefork children inherit the policy; the task
    # sender reads it once, when first built, so drop one built before (none is, normally).
    sender.app.conf.task_publish_retry_policy = WORKER_PUBLISH_RETRY_POLICY
    sender.app.amqp.__dict__.pop("send_task_message", None)
