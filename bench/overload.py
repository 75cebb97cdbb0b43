"""Overload (issues 10 and 12): a crowd of start and join requests against one web process.

On the services stack (PostgreSQL, Redis), with the live-test stack (one uvicorn process, one
Celery worker, the relay emulator): 100 lobbies of 4 ready players whose hosts all press start at
the same moment, then 500 players joining one lobby at the same moment (64 seats: the others must
get 409). Each phase is one burst of simultaneous requests, one TCP connection each.

Each `--tree` is a source tree to serve (e.g. the commit before the change, unpacked with
`git archive`, and the change itself); every tree gets a fresh copy of the same prepared database,
so the runs compare like with like. Usage, from the repository root:

    .venv/bin/python -m bench.overload --server postgres://postgres@127.0.0.1:5432 \\
        --redis redis://127.0.0.1:6379/14 --tree before=/tmp/before --tree after=. \\
        --tree after-10s=.:REQUEST_QUEUE_TIMEOUT=10

It prints a Markdown table; bench/RESULTS.md records a run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LOBBIES, PER_LOBBY, JOINERS = 100, 4, 500
# The throttles would answer part of a crowd from one address 429: not what is measured here.
BENCH_ENV = {"THROTTLE_PLAYER": "100000/min", "THROTTLE_IP": "100000/min"}


def _admin(server: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        for statement in statements:
            connection.execute(statement)


def _prepare(server: str, template: str) -> dict:
    """A migrated database holding the crowd: returns the tokens and ids the requests use."""
    _admin(
        server, f"DROP DATABASE IF EXISTS {template} WITH (FORCE)", f"CREATE DATABASE {template}"
    )
    os.environ["DATABASE_URL"] = f"{server}/{template}"
    os.environ.pop("REDIS_URL", None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    from lobby import services

    call_command("migrate", verbosity=0)
    ip = "203.0.113.1"
    starts = []
    for n in range(LOBBIES):
        people = [services.player_create_guest(display_name=f"p{n}-{i}") for i in range(PER_LOBBY)]
        (host, host_key), *_ = people
        lobby = services.lobby_create(player=host, ip=ip, name=f"bench {n}", max_players=PER_LOBBY)
        for player, _ in people[1:]:
            services.lobby_join(lobby_id=lobby.pk, player=player, ip=ip)
        for player, _ in people:
            services.lobby_set_ready(lobby_id=lobby.pk, player=player, ready=True, ip=ip)
        starts.append((str(lobby.pk), host_key))
    big_host, _ = services.player_create_guest(display_name="big host")
    big = services.lobby_create(player=big_host, ip=ip, name="crowded", max_players=64)
    joiners = [services.player_create_guest(display_name=f"j{n}")[1] for n in range(JOINERS)]
    for connection in connections.all(initialized_only=True):
        connection.close()
        if getattr(connection, "pool", None) is not None:
            connection.close_pool()
    return {"starts": starts, "join_lobby": str(big.pk), "joiners": joiners}


def _burst(base_url: str, path_tokens, method="POST"):
    from tests.crowd import crowd

    calls = [
        (f"{base_url}{path}", method, {"Authorization": f"Token {token}"}, None)
        for path, token in path_tokens
    ]
    started = time.monotonic()
    answers = asyncio.run(crowd(calls, timeout=120))
    return answers, time.monotonic() - started


def _run_tree(label, tree, server, template, redis_url, data, extra_env):
    from tests.crowd import summary
    from tests.live import start_live_stack

    name = template + "_" + re.sub(r"\W", "_", label)  # a database name: no dashes
    _admin(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)",
           f"CREATE DATABASE {name} TEMPLATE {template}")  # fmt: skip
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    workdir = Path(tempfile.mkdtemp(prefix=f"overload-{label}-"))
    here = os.getcwd()
    os.chdir(tree)  # the processes under test run this tree's code
    try:
        stack = start_live_stack(
            db_url=f"{server}/{name}", redis_url=redis_url, workdir=workdir,
            extra_env={**BENCH_ENV, **extra_env},
        )  # fmt: skip
    finally:
        os.chdir(here)
    rows = []
    try:
        time.sleep(2)  # let the worker and the web process settle
        load_before = os.getloadavg()
        starts = [(f"/api/v1/lobbies/{lobby}/start", key) for lobby, key in data["starts"]]
        answers, wall = _burst(stack.base_url, starts)
        rows.append((label, f"{LOBBIES} starts", summary(answers), wall, answers))
        time.sleep(5)  # the worker allocates the relays; the next burst starts from quiet
        join = f"/api/v1/lobbies/{data['join_lobby']}/join"
        answers, wall = _burst(stack.base_url, [(join, key) for key in data["joiners"]])
        rows.append((label, f"{JOINERS} joins, one lobby", summary(answers), wall, answers))
        load_after = os.getloadavg()
        time.sleep(1)
    finally:
        stack.stop()
        _admin(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    log = stack.log_path.read_text(errors="replace")
    web_log = [line for line in log.splitlines() if line.lstrip().startswith("web |")]
    counts = {
        "tracebacks": sum("Traceback (most recent call last)" in line for line in web_log),
        "pool_timeouts": sum("couldn't get a connection" in line for line in web_log),
        "overload_lines": sum("overloaded (" in line for line in web_log),
    }
    return rows, counts, load_before, load_after


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--template", default="bench_overload")
    parser.add_argument(
        "--tree", action="append", required=True, help="label=path[:NAME=value,...]"
    )
    parser.add_argument("--env", action="append", default=[], help="NAME=value for the stack")
    args = parser.parse_args()
    extra_env = dict(item.split("=", 1) for item in args.env)
    data = _prepare(args.server, args.template)
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} · Python {platform.python_version()} · "
          f"nproc {os.cpu_count()} · {platform.machine()}")  # fmt: skip
    table = [
        "| tree | burst | 2xx | 4xx | 500 | 503 (all with Retry-After) | other | p50 ms | p99 ms "
        "| max ms | burst wall s |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    notes = []
    for spec in args.tree:
        label, _, rest = spec.partition("=")
        path, _, tree_env = rest.partition(":")
        env = {**extra_env, **dict(item.split("=", 1) for item in tree_env.split(",") if item)}
        rows, counts, load_before, load_after = _run_tree(
            label, Path(path).resolve(), args.server, args.template, args.redis, data, env
        )
        for label_, burst, s, wall, _answers in rows:
            st = s["statuses"]
            ok = sum(n for code, n in st.items() if 200 <= code < 300)
            client = sum(n for code, n in st.items() if 400 <= code < 500)
            other = sum(
                n for code, n in st.items() if not (200 <= code < 500 or code in (500, 503))
            )
            flag = (
                "yes"
                if not s["503_without_retry_after"]
                else f"{s['503_without_retry_after']} without"
            )
            table.append(
                f"| {label_} | {burst} | {ok} | {client} | {st.get(500, 0)} "
                f"| {st.get(503, 0)} ({flag}) | {other} | {s['p50_ms']} | {s['p99_ms']} "
                f"| {s['max_ms']} | {wall:.1f} |"
            )  # fmt: skip
        notes.append(
            f"{label}: statuses {json.dumps({b: r['statuses'] for _, b, r, _, _ in rows})}; "
            f"web log: {counts}; load average before "
            f"{' '.join(f'{v:.2f}' for v in load_before)}, after "
            f"{' '.join(f'{v:.2f}' for v in load_after)}"
        )  # fmt: skip
    print("\n".join(table))
    print()
    for note in notes:
        print(f"- {note}")
    _admin(args.server, f"DROP DATABASE IF EXISTS {args.template} WITH (FORCE)")


if __name__ == "__main__":
    main()
