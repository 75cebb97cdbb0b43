"""Start to assignment (issue 10): a hundred lobbies start at once; when does every player know?

Runs on the services stack (DATABASE_URL = PostgreSQL, REDIS_URL set). It starts its own stack
the way runstack does: the relay emulator with no ready delay (so Edgegap's own time-to-ready is
~0 and everything measured is ours), one uvicorn web process, the two Celery workers of
`config.stack.WORKERS`, all pinned to --server-cpu; this process (the players) is pinned to
--client-cpu. Then:

1. N lobbies of P players are gathered in the database (host + members, everyone ready);
2. every player either holds a socket on /ws/v1/events (--via socket) or polls
   GET /api/v1/players/me/assignment every 250 ms (--via poll);
3. every host sends POST /lobbies/{id}/start at the same moment;
4. each player's clock stops when its assignment arrives with status `ready`.

Reported: start answers by status, players without an assignment within --wait seconds, and the
time from the host's start request to each player's ready assignment (p50/p90/p99/max), split
into steps with the database's own timestamps (start -> relay row written -> relay ready -> the
player's event written -> received).

    .venv/bin/python bench/start_to_assignment.py --via socket
    .venv/bin/python bench/start_to_assignment.py --via poll
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.realtime import _django, _load, _machine, _pin, _players  # noqa: E402
from tests.crowd import request  # noqa: E402

TOKEN = "bench-emulator-token"  # the local emulator's only


def _stack(server_cpu: int, web_port: int, emulator_port: int):
    from config.stack import Supervisor, wait_for_port, worker_argv

    env = dict(
        os.environ,
        PYTHONUNBUFFERED="1",
        EDGEGAP_API_URL=f"http://127.0.0.1:{emulator_port}",
        EDGEGAP_API_TOKEN=TOKEN,
        PUBLIC_URL=f"http://127.0.0.1:{web_port}",
        THROTTLE_PLAYER="100000/min",  # every bench player polls from 127.0.0.1
        THROTTLE_IP="1000000/min",
        MATCHMAKER_INTERVAL="3600",
        # Production mode: no query log in every cursor, no debug pages.
        DEBUG="false",
        SECRET_KEY="bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        METRICS_TOKEN="bench-metrics",
        SECURE_SSL_REDIRECT="false",  # plain HTTP on loopback, as behind a TLS proxy
        SOCKETS_PER_IP="100000",  # every bench player connects from 127.0.0.1
    )
    env.pop("CHANNEL_LAYER_DROP_RATE", None)
    log = open(ROOT / "var" / "bench-start-to-assignment.log", "w")  # noqa: SIM115
    supervisor = Supervisor(env, out=log)
    pin = ["taskset", "-c", str(server_cpu)]
    py = sys.executable
    supervisor.start(
        "emulator",
        [*pin, py, "manage.py", "relay_emulator", "--port", str(emulator_port), "--token", TOKEN,
         "--ready-delay", "0"],
    )  # fmt: skip
    assert wait_for_port("127.0.0.1", emulator_port, 30)
    for name in ("relays", "worker"):
        supervisor.start(name, [*pin, *worker_argv(name, python=py)])
    supervisor.start(
        "web",
        [*pin, py, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port",
         str(web_port), "--lifespan", "off", "--log-level", "warning",
         "--ws-per-message-deflate", "false"],
    )  # fmt: skip
    assert wait_for_port("127.0.0.1", web_port, 60)
    deadline = time.monotonic() + 60
    text = ""
    while time.monotonic() < deadline:
        text = (ROOT / "var" / "bench-start-to-assignment.log").read_text(errors="replace")
        if text.count(" ready.") >= 2:
            break
        time.sleep(0.2)
    else:
        raise RuntimeError(f"the workers did not start:\n{text[-3000:]}")
    return supervisor, log


def _gather(lobbies: int, players: int) -> list[dict]:
    """Lobbies with every member ready, gathered through the lobby services."""
    from lobby import services
    from lobby.models import Lobby, Membership, Player

    tokens = _players(lobbies * players)
    # Leftovers of an earlier run: every bench player leaves whatever it is in.
    ids = [pk for pk, _ in tokens]
    stale = set(
        Membership.objects.filter(player_id__in=ids, state="active").values_list(
            "lobby_id", flat=True
        )
    )
    for lobby_id in stale:
        services.lobby_close(lobby_id=lobby_id, reason="bench reset")
    Membership.objects.filter(player_id__in=ids, state="active").update(state="left")
    made = []
    for n in range(lobbies):
        group = tokens[n * players : (n + 1) * players]
        members = [Player.objects.get(pk=pk) for pk, _ in group]
        lobby = services.lobby_create(
            player=members[0], ip="127.0.0.1", name=f"bench {n}", max_players=players
        )
        for member in members[1:]:
            services.lobby_join(lobby_id=lobby.pk, player=member, ip="127.0.0.1")
        for member in members:
            services.lobby_set_ready(lobby_id=lobby.pk, player=member, ready=True, ip="127.0.0.1")
        made.append({"id": str(lobby.pk), "players": group})
    assert Lobby.objects.filter(pk__in=[m["id"] for m in made], state="open").count() == lobbies
    return made


def _spy(directory: str, supervisor, seconds: float) -> list[subprocess.Popen]:
    Path(directory).mkdir(parents=True, exist_ok=True)
    spies = []
    for child in supervisor.children:
        if child.name in ("web", "relays"):
            out = Path(directory) / f"{child.name}.txt"
            spies.append(
                subprocess.Popen(
                    [
                        str(Path(sys.executable).parent / "py-spy"),
                        "record",
                        "--format",
                        "raw",
                        "--pid",
                        str(child.process.pid),
                        "--subprocesses",
                        "--threads",
                        "--duration",
                        str(int(seconds) + 5),
                        "-o",
                        str(out),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
    return spies


def _last_seq(player_ids) -> dict[int, int]:
    from django.db.models import Max

    from lobby.models import PlayerEvent

    rows = PlayerEvent.objects.filter(player_id__in=player_ids).values("player_id")
    return {r["player_id"]: r["last"] for r in rows.annotate(last=Max("seq"))}


async def _socket_player(base, key, after, received, player_id, ready_all):
    import websockets

    url = f"ws://{base}/ws/v1/events?after={after}"
    async with websockets.connect(
        url, additional_headers={"Authorization": f"Token {key}"}, compression=None,
        open_timeout=60,
    ) as ws:  # fmt: skip
        ready_all.release()
        async for raw in ws:
            event = json.loads(raw)
            if event.get("type") == "relay.assignment" and event["data"].get("status") in (
                "ready",
                "failed",
            ):
                received[player_id] = (time.time(), event["data"]["status"])
                return


async def _poll_player(base, key, received, player_id, stop):
    url = f"http://{base}/api/v1/players/me/assignment"
    while not stop.is_set():
        answer = await request(url, headers={"Authorization": f"Token {key}"}, timeout=10)
        if answer.status == 200 and answer.json().get("status") in ("ready", "failed"):
            received[player_id] = (time.time(), answer.json()["status"])
            return
        await asyncio.sleep(0.25)


async def _run(args, base, lobbies, after):
    received: dict[int, tuple[float, str]] = {}
    everyone = [(pk, key) for lobby in lobbies for pk, key in lobby["players"]]
    stop = asyncio.Event()
    if args.via == "socket":
        connected = asyncio.Semaphore(0)
        tasks = [
            asyncio.create_task(
                _socket_player(base, key, after.get(pk, 0), received, pk, connected)
            )
            for pk, key in everyone
        ]
        for _ in everyone:
            await asyncio.wait_for(connected.acquire(), 120)
    else:
        tasks = [
            asyncio.create_task(_poll_player(base, key, received, pk, stop)) for pk, key in everyone
        ]
    await asyncio.sleep(1.0)  # every socket subscribed, every poller in its rhythm
    started = {}

    async def start(lobby):
        host_key = lobby["players"][0][1]
        started[lobby["id"]] = time.time()
        return await request(
            f"http://{base}/api/v1/lobbies/{lobby['id']}/start",
            "POST",
            headers={"Authorization": f"Token {host_key}"},
            body={},
            timeout=60,
        )

    answers = await asyncio.gather(*(start(lobby) for lobby in lobbies))
    deadline = time.monotonic() + args.wait
    while len(received) < len(everyone) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return answers, started, received


def _steps(lobbies, started, received):
    """Per player: start -> relay row -> relay ready -> event row -> received (seconds)."""
    from lobby.models import Lobby, PlayerEvent

    rows = {
        str(lobby.pk): lobby
        for lobby in Lobby.objects.filter(pk__in=[x["id"] for x in lobbies]).select_related(
            "relay_session"
        )
    }
    steps = {"start -> relay row": [], "relay row -> ready": [], "ready -> event row": [],
             "event row -> received": [], "start -> received": []}  # fmt: skip
    for lobby in lobbies:
        row = rows[lobby["id"]]
        session = row.relay_session
        t0 = started[lobby["id"]]
        for pk, _ in lobby["players"]:
            if pk not in received or session is None or session.ready_at is None:
                continue
            got = received[pk][0]
            event = (
                PlayerEvent.objects.filter(player_id=pk, type="relay.assignment")
                .filter(data__status="ready")
                .order_by("-seq")
                .first()
            )
            steps["start -> relay row"].append(session.created_at.timestamp() - t0)
            steps["relay row -> ready"].append(
                session.ready_at.timestamp() - session.created_at.timestamp()
            )
            if event is not None:
                steps["ready -> event row"].append(
                    event.created_at.timestamp() - session.ready_at.timestamp()
                )
                steps["event row -> received"].append(got - event.created_at.timestamp())
            steps["start -> received"].append(got - t0)
    return steps


def _missing(lobbies, answers, received) -> dict[str, int]:
    """Players of lobbies whose start was accepted but who saw no ready assignment, counted by
    where their lobby is now: `ready` ones would be pushes lost on the way."""
    from lobby.models import Lobby

    ids = [x["id"] for x in lobbies]
    states = dict(Lobby.objects.filter(pk__in=ids).values_list("pk", "state"))
    missing: dict[str, int] = {}
    for lobby, answer in zip(lobbies, answers, strict=True):
        if answer.status != 200:
            continue
        for pk, _ in lobby["players"]:
            if received.get(pk, (0, ""))[1] != "ready":
                state = states[uuid.UUID(lobby["id"])]
                missing[state] = missing.get(state, 0) + 1
    return missing


def _quantiles(values):
    if not values:
        return "n/a"
    ordered = sorted(values)

    def q(p):
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    return (
        f"p50 {q(0.5):.0f} ms, p90 {q(0.9):.0f} ms, p99 {q(0.99):.0f} ms, "
        f"max {ordered[-1] * 1000:.0f} ms"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--via", choices=("socket", "poll"), default="socket")
    parser.add_argument("--lobbies", type=int, default=100)
    parser.add_argument("--players", type=int, default=4)
    parser.add_argument("--wait", type=float, default=30.0)
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument(
        "--py-spy", metavar="DIR", help="record the web process and the relay worker (collapsed"
        " stacks, py-spy from PyPI) while the lobbies start"
    )  # fmt: skip
    args = parser.parse_args()

    _django()
    from config.stack import free_port

    (ROOT / "var").mkdir(exist_ok=True)
    web_port, emulator_port = free_port(), free_port()
    supervisor, log = _stack(args.server_cpu, web_port, emulator_port)
    try:
        _pin(args.client_cpu)
        lobbies = _gather(args.lobbies, args.players)
        load_before = _load()
        after = _last_seq([pk for lobby in lobbies for pk, _ in lobby["players"]])
        spies = _spy(args.py_spy, supervisor, args.wait) if args.py_spy else []
        base = f"127.0.0.1:{web_port}"
        answers, started, received = asyncio.run(_run(args, base, lobbies, after))
        steps = _steps(lobbies, started, received)
        missing = _missing(lobbies, answers, received)
    finally:
        for spy in spies if args.py_spy else []:
            spy.send_signal(2)  # SIGINT: py-spy writes what it has
            spy.wait(30)
        supervisor.stop_all()
        log.close()

    statuses = statistics.multimode([a.status for a in answers])
    by_status: dict[int, int] = {}
    for answer in answers:
        by_status[answer.status] = by_status.get(answer.status, 0) + 1
    total = args.lobbies * args.players
    ready = sum(1 for _, status in received.values() if status == "ready")
    print(f"machine: {_machine()}; load average before: {load_before}, after: {_load()}")
    print(f"command: {' '.join(sys.argv)}")
    print(f"start answers: {by_status} (most common {statuses})")
    print(f"players with a ready assignment via {args.via} within {args.wait:g} s: "
          f"{ready} of {total}; failed: {sum(1 for _, s in received.values() if s == 'failed')}; "
          f"none: {total - len(received)}")  # fmt: skip
    print(f"  players of started lobbies without a ready assignment, by lobby state: {missing}")
    start_latency = [answer.seconds for answer in answers]
    print(f"  start request answered: {_quantiles(start_latency)}")
    for name, values in steps.items():
        print(f"  {name}: {_quantiles(values)}")


if __name__ == "__main__":
    main()
