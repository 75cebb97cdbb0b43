"""The Celery application: configured from Django settings (the CELERY_ names)."""

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("relaylobby")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_init.connect
def _database_pool_fits_the_threads(sender, **kwargs):
    """A threads worker needs a pooled database connection per thread, plus a spare.

    A relay task keeps its thread's connection from its first query until the task ends (Celery's
    Django fixup closes it then), including while it waits for Edgegap; with fewer pooled
    connections than threads, the extra threads would time out waiting for one and fail the task.
    Runs before any connection is opened, so the pool is created at the right size.
    """
    from django.conf import settings

    pool_cls = sender.pool_cls
    name = pool_cls if isinstance(pool_cls, str) else getattr(pool_cls, "__module__", "")
    if "thread" not in name or not isinstance(sender.concurrency, int):
        return
    pool = settings.DATABASES["default"].get("OPTIONS", {}).get("pool")
    if isinstance(pool, dict):
        pool["max_size"] = max(pool.get("max_size", 0), sender.concurrency + 2)
