"""The Celery configuration that is not Celery's own defaults."""

from celery.concurrency.prefork import TaskPool as PreforkPool
from celery.concurrency.thread import TaskPool as ThreadPool

from config.celery import app, fit_database_pool


def _databases(max_size):
    return {"default": {"ENGINE": "django.db.backends.postgresql",
                        "OPTIONS": {"pool": {"min_size": 1, "max_size": max_size}}}}  # fmt: skip


def test_a_threads_worker_gets_a_pooled_connection_per_thread_and_two_spare():
    databases = _databases(10)
    fit_database_pool(databases, pool_cls=ThreadPool, concurrency=16)
    assert databases["default"]["OPTIONS"]["pool"]["max_size"] == 18
    databases = _databases(10)
    fit_database_pool(databases, pool_cls="threads", concurrency=16)  # as named in settings
    assert databases["default"]["OPTIONS"]["pool"]["max_size"] == 18


def test_the_pool_is_never_shrunk_nor_touched_for_prefork_or_sqlite():
    databases = _databases(40)
    fit_database_pool(databases, pool_cls=ThreadPool, concurrency=16)
    assert databases["default"]["OPTIONS"]["pool"]["max_size"] == 40
    databases = _databases(10)
    fit_database_pool(databases, pool_cls=PreforkPool, concurrency=16)
    assert databases["default"]["OPTIONS"]["pool"]["max_size"] == 10
    sqlite = {"default": {"ENGINE": "django.db.backends.sqlite3", "OPTIONS": {}}}
    fit_database_pool(sqlite, pool_cls=ThreadPool, concurrency=16)
    assert sqlite["default"]["OPTIONS"] == {}


def test_relay_tasks_go_to_their_own_queue_and_the_rest_to_the_default_one():
    router = app.amqp.router
    for name in ("relays.session_create", "relays.session_poll", "relays.reconcile"):
        assert router.route({}, name)["queue"].name == "relays"
    for name in ("matchmaking.run", "lobby.close_abandoned", "lobby.push_to_player"):
        assert router.route({}, name)["queue"].name == "celery"
