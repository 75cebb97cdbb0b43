import pytest
from django.conf import settings
from django.db import connection

from config.celery import app as celery_app
from tests.live import database_url, start_live_stack


@pytest.fixture(autouse=True, scope="session")
def _eager_celery_in_the_test_process():
    # Tasks a test triggers in-process run inline, on every stack; the end-to-end tests reach
    # the real worker through the broker explicitly (LiveStack.enqueue).
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True


@pytest.fixture(scope="session")
def live_stack(django_db_setup, django_db_blocker, tmp_path_factory):
    """uvicorn and a Celery worker on the test database, with the stack's Redis."""
    with django_db_blocker.unblock():
        db_url = database_url(connection.settings_dict)
    stack = start_live_stack(
        db_url=db_url,
        redis_url=settings.REDIS_URL,  # None on the default stack: an embedded Redis starts
        workdir=tmp_path_factory.mktemp("live"),
    )
    yield stack
    stack.stop()


@pytest.fixture
def worker_tasks(live_stack, settings):
    """Tasks queued by the test process go through the broker to the live worker.

    The test process also takes the live processes' relay settings, so that what it computes
    (deadlines, webhook URLs) matches what the worker does.
    """
    previous = celery_app.conf.task_always_eager, celery_app.conf.broker_url
    celery_app.conf.task_always_eager = False
    celery_app.conf.broker_url = live_stack.redis_url
    _forget_broker_connections()
    settings.EDGEGAP_API_URL = live_stack.env["EDGEGAP_API_URL"]
    settings.EDGEGAP_API_TOKEN = live_stack.env["EDGEGAP_API_TOKEN"]
    settings.EDGEGAP_TIMEOUT = float(live_stack.env["EDGEGAP_TIMEOUT"])
    settings.PUBLIC_URL = live_stack.env["PUBLIC_URL"]
    live_stack.emulator_reset()
    yield live_stack
    celery_app.conf.task_always_eager, celery_app.conf.broker_url = previous
    _forget_broker_connections()


def _forget_broker_connections():
    # Celery caches its connection and producer pools on first use, keyed to the broker URL of
    # that moment: drop them so the next send connects to the broker now configured.
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


def pytest_sessionfinish(session):
    # After every fixture's teardown, so after the test database is destroyed (tests/sqlite_files).
    test_db = settings.DATABASES["default"].get("TEST", {}).get("NAME")
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3") and test_db:
        from pathlib import Path

        from tests.sqlite_files import remove_leftovers

        remove_leftovers(Path(test_db))


@pytest.fixture(autouse=True, scope="session")
def _close_connection_pools_before_teardown(django_db_setup, django_db_blocker):
    """Threads of concurrency tests hand their PostgreSQL connections back to Django's pool,
    which keeps them open, and the live processes' server sessions may outlive them by a moment:
    close and end them so the test database can be dropped at the end."""
    yield
    from django.db import connections

    with django_db_blocker.unblock():
        for connection_ in connections.all(initialized_only=True):
            if connection_.vendor == "postgresql":
                with connection_.cursor() as cursor:
                    cursor.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
            if getattr(connection_, "pool", None) is not None:
                connection_.close_pool()
