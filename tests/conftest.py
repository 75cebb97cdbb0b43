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
