"""How fast can game clients poll? The hot HTTP paths under each way of serving them.

Game clients that do not hold a socket poll `GET /api/v1/players/me/assignment` and
`GET /api/v1/players/me/events?after=N`. This serves the same project several ways and loads
each path with wrk from another process:

- uvicorn (ASGI, what `runstack` and the Procfile run for HTTP and WebSockets), with one worker
  and with two (one per core);
- gunicorn, one sync WSGI worker;
- gunicorn, one gthread WSGI worker with 8 threads.

Usage (needs Debian's wrk: `apt-get install wrk`):

    .venv/bin/python bench/polling.py [--duration 8] [--connections 16]

It prints a Markdown table; bench/RESULTS.md records a run and the decision drawn from it.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _prepare(database_url: str) -> tuple[str, int]:
    """A migrated database with a started, ready lobby; returns a player's token and last seq."""
    os.environ["DATABASE_URL"] = database_url
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import transaction
    from django.utils import timezone

    call_command("migrate", verbosity=0)
    from lobby import services
    from lobby.models import Player
    from relays import signals
    from relays.models import RelaySession, Seat

    host, key = services.player_create_guest(display_name="host")
    guest, _ = services.player_create_guest(display_name="guest")
    lobby = services.lobby_create(player=host, ip="203.0.113.1", name="bench", max_players=4)
    services.lobby_join(lobby_id=lobby.pk, player=guest, ip="198.51.100.2")
    for player in (host, guest):
        services.lobby_set_ready(lobby_id=lobby.pk, player=player, ready=True, ip="203.0.113.1")
    import relays.services as relay_services

    relay_services._after_commit = lambda *args, **kwargs: None  # no worker in this bench
    lobby = services.lobby_start(lobby_id=lobby.pk, player=host)
    with transaction.atomic():
        RelaySession.objects.filter(pk=lobby.relay_session_id).update(
            status=RelaySession.Status.READY, session_id="bench-S", session_token=3500589645,
            relay_host="relay.local", relay_ip="127.0.0.1", server_port=31000, client_port=31001,
            ready_at=timezone.now(),
        )  # fmt: skip
        for n, seat in enumerate(Seat.objects.filter(session_id=lobby.relay_session_id)):
            Seat.objects.filter(pk=seat.pk).update(user_token=21986334 + n)
        session = RelaySession.objects.get(pk=lobby.relay_session_id)
        signals.session_ready.send(sender=RelaySession, session=session)
    seq = Player.objects.get(pk=host.pk).event_seq
    return key, seq


def _fresh_postgres(server_url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(f"{server_url}/postgres", autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {name}")
    return f"{server_url}/{name}"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


SERVERS = {
    "uvicorn (ASGI)": lambda port: [
        sys.executable, "-m", "uvicorn", "config.asgi:application", "--port", str(port),
        "--lifespan", "off", "--no-access-log", "--log-level", "warning",
    ],
    "uvicorn (ASGI) x2 workers": lambda port: [
        sys.executable, "-m", "uvicorn", "config.asgi:application", "--port", str(port),
        "--lifespan", "off", "--no-access-log", "--log-level", "warning", "--workers", "2",
    ],
    "gunicorn sync": lambda port: [
        sys.executable, "-m", "gunicorn", "config.wsgi:application", "-b", f"127.0.0.1:{port}",
        "--workers", "1", "--log-level", "warning",
    ],
    "gunicorn gthread x8": lambda port: [
        sys.executable, "-m", "gunicorn", "config.wsgi:application", "-b", f"127.0.0.1:{port}",
        "--workers", "1", "--threads", "8", "--log-level", "warning",
    ],
}  # fmt: skip


def _wrk(url: str, token: str, duration: int, connections: int) -> tuple[float, str]:
    result = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
         "-H", f"Authorization: Token {token}", url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", result.stdout).group(1))
    p99 = re.search(r"99%\s+(\S+)", result.stdout).group(1)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", result.stdout)
    if errors:
        raise SystemExit(f"{url}: {errors.group(1)} error responses\n{result.stdout}")
    return rate, p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="serve from this PostgreSQL server (e.g. postgres://postgres@127.0.0.1:5432); "
        "a database bench_polling is made afresh there. Default: a temporary SQLite file",
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    workdir = Path(tempfile.mkdtemp(prefix="bench-polling-"))
    if args.postgres:
        database_url = _fresh_postgres(args.postgres.rstrip("/"), "bench_polling")
    else:
        database_url = f"sqlite:///{workdir / 'bench.sqlite3'}"
    token, seq = _prepare(database_url)
    # Throttles stay on (their cost is part of the path), with rates the load never reaches.
    env = dict(os.environ, DEBUG="false", SECRET_KEY="bench", ALLOWED_HOSTS="127.0.0.1",
               DATABASE_URL=database_url,
               THROTTLE_PLAYER="100000000/min", THROTTLE_IP="100000000/min")  # fmt: skip
    paths = {
        "healthz (plain view, baseline)": "/healthz",
        "assignment": "/api/v1/players/me/assignment",
        "events (none new)": f"/api/v1/players/me/events?after={seq}",
        "events (replay)": "/api/v1/players/me/events?after=0",
    }
    print(f"| server | {' | '.join(paths)} |")
    print(f"|---|{'---|' * len(paths)}")
    for name, argv in SERVERS.items():
        port = _free_port()
        server = subprocess.Popen(argv(port), cwd=ROOT, env=env)
        try:
            time.sleep(2.5)
            cells = []
            for path in paths.values():
                rate, p99 = _wrk(f"http://127.0.0.1:{port}{path}", token, args.duration,
                                 args.connections)  # fmt: skip
                cells.append(f"{rate:,.0f} req/s (p99 {p99})")
            print(f"| {name} | {' | '.join(cells)} |", flush=True)
        finally:
            server.terminate()
            server.wait(10)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
