"""A small patch to kombu's Redis transport: a Redis outage must not end the Celery worker.

The bug (seen with kombu 5.7.0, the version celery 5.7.0 installs): when the worker's broker
connection breaks while the consumer waits in BRPOP, Celery collects the connection, which drops
the transport's `client` (the kombu Connection) but may leave the default channel open, because
closing it raised the same connection error first. Celery then closes the connection again;
closing that channel now restores its unacknowledged messages, which needs a Redis client, whose
parameters are read from `self.connection.client.hostname`, and `client` is None:

    Unrecoverable error: AttributeError("'NoneType' object has no attribute 'hostname'")

An AttributeError is not a connection error, so nothing on the way catches it and the worker
exits (tests/test_worker_resilience.py reproduces it at nearly every outage with a task running).

The fix says what really happened: the connection is gone. Raised as Redis's ConnectionError,
it is one of the transport's connection errors, which Celery's close path ignores; the consumer
then reconnects as usual. The messages that could not be restored are still in Redis's unacked
set (when Redis kept its data), from where kombu restores them after the visibility timeout.
"""

import redis
from kombu.transport import redis as kombu_redis

_connparams = kombu_redis.Channel._connparams


def _connparams_of_a_live_connection(self, *args, **kwargs):
    transport = self.connection
    if transport is None or transport.client is None:
        raise redis.exceptions.ConnectionError(
            "the broker connection was closed (kombu_fixes: no client to reconnect with)"
        )
    return _connparams(self, *args, **kwargs)


def apply() -> None:
    """Install the patch (idempotent). Harmless where kombu has no such bug: it only turns a
    dereference of None into the connection error it stands for."""
    if kombu_redis.Channel._connparams is not _connparams_of_a_live_connection:
        kombu_redis.Channel._connparams = _connparams_of_a_live_connection
