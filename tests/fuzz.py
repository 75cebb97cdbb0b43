"""`make fuzz`: schemathesis against a live services stack, every operation, `--checks all`.

Starts the live-test stack (uvicorn, a Celery worker, the relay emulator) on PostgreSQL and Redis
with production-like settings (DEBUG off), makes two players and a queue, and runs schemathesis
on the served schema with the first player's token. Done means 0 server errors, 0 undocumented
statuses, 0 schema violations: any failure fails the run (exit status 1) and is listed.

Throttles are raised for the run (a fuzzer is one very busy player); everything else is as
deployed. Usage: `python -m tests.fuzz [--examples N] [--seed S]`; FUZZ_DATABASE_URL and
FUZZ_REDIS_URL choose the services (defaults: PostgreSQL `fuzz` and Redis db 14 on this machine).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.live import start_live_stack  # noqa: E402

DATABASE_URL = os.environ.get("FUZZ_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/fuzz")
REDIS_URL = os.environ.get("FUZZ_REDIS_URL", "redis://127.0.0.1:6379/14")
STACK_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "fuzz-only-" + "x" * 50,
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "SECURE_SSL_REDIRECT": "false",
    "SESSION_COOKIE_SECURE": "false",
    "METRICS_TOKEN": "fuzz",
    "THROTTLE_PLAYER": "1000000/min",
    "THROTTLE_IP": "1000000/min",
    "THROTTLE_GUEST": "1000000/hour",
    "THROTTLE_JOIN_CODE": "1000000/min",
    "THROTTLE_CHAT": "1000000/min",
    "THROTTLE_CHAT_BURST": "1000000/s",
    "THROTTLE_REPORT": "1000000/hour",
}
BASELINE = ROOT / "tests" / "fuzz-baseline.json"
QUEUE_RULES = {
    "initial": {
        "match_size": {
            "type": "player_count",
            "attributes": {"team_count": 2, "min_team_size": 1, "max_team_size": 1},
        },
        "skill": {"type": "number_difference", "attributes": {"max_difference": 100}},
    }
}


def _fresh_database(url: str) -> None:
    """Drop and create the run's database, then migrate it: every run starts empty."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise SystemExit(f"FUZZ_DATABASE_URL names an odd database: {name!r}")
    admin = parts._replace(path="/postgres").geturl().replace("postgres://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {name}")
    env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": REDIS_URL, **STACK_ENV}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env,
        check=True,
    )  # fmt: skip
    code = (
        "from matchmaking.models import Profile; import json, sys;"
        f" Profile.objects.create(name='duel', title='Duel', rules=json.loads({json.dumps(QUEUE_RULES)!r}))"  # noqa: E501
    )
    shell = [sys.executable, "manage.py", "shell", "-c", code]
    subprocess.run(shell, cwd=ROOT, env=env, check=True)


def _guest(base_url: str, name: str) -> str:
    response = requests.post(
        f"{base_url}/api/v1/players/guest", json={"display_name": name}, timeout=10
    )
    response.raise_for_status()
    return response.json()["token"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=70, help="cases per operation and phase")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--workers", default="2")
    # Anything else goes to `schemathesis run` (e.g. --include-path, --phases, --baseline-update).
    args, passthrough = parser.parse_known_args()

    _fresh_database(DATABASE_URL)
    workdir = Path(tempfile.mkdtemp(prefix="fuzz-"))
    stack = start_live_stack(
        db_url=DATABASE_URL, redis_url=REDIS_URL, workdir=workdir, extra_env=STACK_ENV
    )
    try:
        token = _guest(stack.base_url, "Fuzzer")
        _guest(stack.base_url, "Other")  # someone to kick, mute or report
        report = workdir / "report.json"
        command = [
            sys.executable, "-m", "schemathesis.cli",
            "--config-file", str(ROOT / "tests" / "fuzz.toml"), "run",
            f"{stack.base_url}/api/schema/?format=json",
            "--checks", "all",
            "--max-examples", str(args.examples),
            "--workers", args.workers,
            "--header", f"Authorization: Token {token}",
            "--request-timeout", "40",
            "--suppress-health-check", "all",
            "--report", "json", "--report-json-path", str(report),
            "--no-color",
            # Failures accepted after reading them, each with its reason in tests/fuzz.toml:
            # schemathesis' own false positives, never a server error.
            "--baseline", str(BASELINE),
            *passthrough,
        ]  # fmt: skip
        if args.seed is not None:
            command += ["--seed", str(args.seed)]
        started = time.monotonic()
        result = subprocess.run(command, cwd=ROOT)
        took = time.monotonic() - started
        log = stack.log_path.read_text(errors="replace")
        tracebacks = log.count("Traceback (most recent call last)")
        print(f"\nfuzz: {took:.0f} s, server tracebacks in the stack's log: {tracebacks}")
        if tracebacks:
            print(stack.log_tail())
        return 1 if result.returncode or tracebacks else 0
    finally:
        stack.supervisor.stop_all()


if __name__ == "__main__":
    sys.exit(main())
