"""How fast can game clients poll? The hot HTTP paths against a raw ASGI hello-world.

Game clients poll `GET /api/v1/players/me/assignment` and `GET /api/v1/players/me/events?after=N`
(nothing new, `wait=0`), and browse `GET /api/v1/lobbies`; load balancers poll `/healthz`. Each is
loaded with wrk (one thread, 16 connections) pinned to one core, the server (one uvicorn process)
pinned to the other, and beside each path, in the same run, a 10-line raw ASGI hello-world on the
same uvicorn (bench/raw_asgi.py): the limit for any request here. A share of that throughput is
comparable across machines and across load from other work, which raw requests per second are
not. Every cell is repeated (`--repeat`, best and median kept); a wrk run that counted any answer
other than 2xx stops the benchmark. CPU per request is the server process's CPU time (user +
system, from /proc) divided by the requests wrk completed.

Servers: `lean` is the project as served (config.asgi: the lean path of lobby/fastpath.py in front
of the gate and Django), `full` the same project without the lean path (bench/full_asgi.py).

Usage (needs Debian's wrk and taskset: `apt-get install wrk util-linux`):

    .venv/bin/python bench/polling.py [--duration 5] [--repeat 3] [--redis redis://...] \
        [--postgres postgres://postgres@127.0.0.1:5432/bench_polling] [--full] [--workers2]

It prints Markdown tables; bench/RESULTS.md records a run.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _prepare(database_url: str, redis_url: str | None) -> dict:
    """A migrated database with a started, ready lobby and 30 open ones to browse; returns the
    host's token and last event seq, the started lobby's id and the host's tags of both."""
    os.environ["DATABASE_URL"] = database_url
    if redis_url:
        os.environ["REDIS_URL"] = redis_url
    else:
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
    for n in range(30):  # a browse page of 20, with a next page
        other, _ = services.player_create_guest(display_name=f"host {n}")
        services.lobby_create(
            player=other, ip="203.0.113.9", name=f"open {n}", max_players=8, mode="duel",
            region="eu", metadata={"map": "harbour", "ranked": n % 2 == 0},
        )  # fmt: skip
    from lobby.etags import assignment_etag, lobby_etag
    from lobby.models import Lobby

    seq = Player.objects.get(pk=host.pk).event_seq
    version = Lobby.objects.get(pk=lobby.pk).version
    return {
        "token": key,
        "seq": seq,
        "lobby": str(lobby.pk),
        "assignment_etag": assignment_etag(player_id=host.pk, event_seq=seq),
        "lobby_etag": lobby_etag(lobby_id=lobby.pk, version=version, player_id=host.pk),
    }


def _fresh_postgres(url: str) -> str:
    import psycopg

    server, _, name = url.rstrip("/").rpartition("/")
    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {name}")
    return url


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _uvicorn(app: str, port: int, workers: int = 1) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", app, "--port", str(port), "--lifespan", "off",
        "--no-access-log", "--log-level", "warning", "--workers", str(workers),
    ]  # fmt: skip


class Server:
    def __init__(self, name, argv, env, cpu: str | None):
        self.name = name
        self.port = _free_port()
        pin = ["taskset", "-c", cpu] if cpu is not None else []
        self.process = subprocess.Popen(
            [*pin, *argv(self.port)], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True
        )
        # uvicorn only logs warnings here: the pipe never fills.
        self.pids = [self.process.pid]

    def wait_ready(self, timeout: float = 60) -> None:
        import socket

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} did not start: {self.process.stderr.read()}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.2)
        raise SystemExit(f"{self.name} is not listening after {timeout} s")

    def cpu_seconds(self) -> float:
        total = 0
        for pid in _tree(self.process.pid):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / CLOCK_TICKS

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _tree(pid: int) -> list[int]:
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return pids
    for child in children:
        pids.extend(_tree(int(child)))
    return pids


def _wrk(url: str, token: str, duration: int, connections: int, cpu: str | None, headers=()):
    pin = ["taskset", "-c", cpu] if cpu is not None else []
    extra = [arg for header in headers for arg in ("-H", header)]
    result = subprocess.run(
        [*pin, "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
         "-H", f"Authorization: Token {token}", *extra, url],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"wrk failed on {url}: {result.stdout}{result.stderr}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", result.stdout)
    socket_errors = re.search(r"Socket errors: (.*)", result.stdout)
    if errors or socket_errors:
        raise SystemExit(f"{url}: error responses\n{result.stdout}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", result.stdout).group(1))
    requests = int(re.search(r"(\d+) requests in", result.stdout).group(1))
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", result.stdout, re.MULTILINE).group(1))
    return rate, requests, p99


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)([a-z]*)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "": 1.0}[unit]


def _check_ok(url: str, token: str, headers=(), expected: int = 200) -> None:
    """One request first: the path must give the expected answer itself (wrk counts any 3xx,
    such as a redirect, as a success)."""
    import urllib.error
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    fields = dict(header.split(": ", 1) for header in headers)
    request = urllib.request.Request(url, headers={"Authorization": f"Token {token}", **fields})
    try:
        status = opener.open(request, timeout=10).status
    except urllib.error.HTTPError as error:
        status = error.code
    if status != expected:
        raise SystemExit(f"{url} answered {status}, not {expected}")


def _measure(server: Server, url: str, token, args, cpu, headers=(), expected=200):
    _check_ok(url, token, headers, expected)
    before = server.cpu_seconds()
    rate, requests, p99 = _wrk(url, token, args.duration, args.connections, cpu, headers)
    cpu_ms = (server.cpu_seconds() - before) * 1000 / max(requests, 1)
    return rate, p99, cpu_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--redis", metavar="URL", help="REDIS_URL for the server (throttles)")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="serve from this PostgreSQL database, made afresh (e.g. "
        "postgres://postgres@127.0.0.1:5432/bench_polling). Default: a temporary SQLite file",
    )
    parser.add_argument("--full", action="store_true", help="also measure the full path")
    parser.add_argument(
        "--workers2", action="store_true", help="also the assignment with 2 web processes"
    )
    parser.add_argument("--only", default="", help="measure only paths whose label has this")
    args = parser.parse_args()
    if not shutil.which("wrk") or not shutil.which("taskset"):
        raise SystemExit("wrk and taskset are needed: apt-get install wrk util-linux")
    workdir = Path(tempfile.mkdtemp(prefix="bench-polling-"))
    if args.postgres:
        database_url = _fresh_postgres(args.postgres)
    else:
        database_url = f"sqlite:///{workdir / 'bench.sqlite3'}"
    prepared = _prepare(database_url, args.redis)
    token, seq = prepared["token"], prepared["seq"]
    # Throttles stay on (their cost is part of the path), with rates the load never reaches.
    env = dict(os.environ, DEBUG="false", SECRET_KEY="bench", ALLOWED_HOSTS="127.0.0.1",
               DATABASE_URL=database_url, PYTHONPATH=str(ROOT),
               THROTTLE_PLAYER="100000000/min", THROTTLE_IP="100000000/min",
               # Plain HTTP on loopback: with DEBUG off every request would be a 301 to https
               # (which wrk counts as a success).
               SECURE_SSL_REDIRECT="false")  # fmt: skip
    env.pop("REDIS_URL", None)
    if args.redis:
        env["REDIS_URL"] = args.redis
    paths = {
        "`/healthz`": "/healthz",
        "assignment (ready)": "/api/v1/players/me/assignment",
        "events, nothing new (`wait=0`)": f"/api/v1/players/me/events?after={seq}&wait=0",
        "lobby browse (page 1 of 2)": "/api/v1/lobbies",
        "lobby detail (member)": f"/api/v1/lobbies/{prepared['lobby']}",
        "assignment, unchanged (`If-None-Match`: 304)": (
            "/api/v1/players/me/assignment",
            [f"If-None-Match: {prepared['assignment_etag']}"],
            304,
        ),
        "lobby detail, unchanged (`If-None-Match`: 304)": (
            f"/api/v1/lobbies/{prepared['lobby']}",
            [f"If-None-Match: {prepared['lobby_etag']}"],
            304,
        ),
    }
    apps = {"raw": "bench.raw_asgi:app", "lean": "config.asgi:application"}
    if args.full:
        apps["full"] = "bench.full_asgi:app"
    servers = {
        name: Server(name, lambda port, app=app: _uvicorn(app, port), env, "1")
        for name, app in apps.items()
    }
    try:
        for server in servers.values():
            server.wait_ready()
        print(
            "| path | server | req/s best / median | share of raw best / median "
            "| CPU ms per request best / median | p99 ms best / median |"
        )
        print("|---|---|---|---|---|---|")
        load = os.getloadavg()
        print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
        for label, path in paths.items():
            if args.only not in label:
                continue
            path, headers, expected = path if isinstance(path, tuple) else (path, (), 200)
            cells = {name: [] for name in servers if name != "raw"}
            raw_cells = []
            for _ in range(args.repeat):
                raw = _measure(servers["raw"], f"http://127.0.0.1:{servers['raw'].port}/",
                               token, args, "0")  # fmt: skip
                raw_cells.append(raw)
                for name in cells:
                    url = f"http://127.0.0.1:{servers[name].port}{path}"
                    result = _measure(servers[name], url, token, args, "0", headers, expected)
                    cells[name].append((result[0] / raw[0], *result))
            raw_rates = [cell[0] for cell in raw_cells]
            raw_cpu = min(cell[2] for cell in raw_cells)
            raw_p99 = statistics.median(cell[1] for cell in raw_cells)
            print(
                f"| {label} | raw ASGI | {max(raw_rates):,.0f} / "
                f"{statistics.median(raw_rates):,.0f} | 1 | {raw_cpu:.3f} | {raw_p99:.1f} |",
                flush=True,
            )
            for name, results in cells.items():
                ratios = [r[0] for r in results]
                rates = [r[1] for r in results]
                p99s = [r[2] for r in results]
                cpus = [r[3] for r in results]
                print(
                    f"| {label} | {name} | {max(rates):,.0f} / {statistics.median(rates):,.0f} "
                    f"| {max(ratios):.3f} / {statistics.median(ratios):.3f} "
                    f"| {min(cpus):.3f} / {statistics.median(cpus):.3f} "
                    f"| {min(p99s):.1f} / {statistics.median(p99s):.1f} |",
                    flush=True,
                )
        if args.workers2:
            for server in servers.values():
                server.stop()
            two = Server("lean x2", lambda port: _uvicorn("config.asgi:application", port, 2),
                         env, None)  # fmt: skip
            servers = {"two": two}
            two.wait_ready()
            url = f"http://127.0.0.1:{two.port}/api/v1/players/me/assignment"
            rates = [_wrk(url, token, args.duration, args.connections, None)[0]
                     for _ in range(args.repeat)]  # fmt: skip
            print(f"| assignment, 2 web processes, wrk unpinned | {max(rates):,.0f} / "
                  f"{statistics.median(rates):,.0f} req/s |")  # fmt: skip
        load = os.getloadavg()
        print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
