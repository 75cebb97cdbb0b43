"""The real-time path under load: idle sockets, push latency, lost pushes, the sync sender.

Runs on the services stack (PostgreSQL + Redis; DATABASE_URL and REDIS_URL must be set, and the
database is migrated and filled with bench players here). One uvicorn web process is started,
pinned with taskset to CPU 0 (--server-cpu); this process and the socket clients it starts are
pinned to CPU 1 (--client-cpu), so the load generator does not eat the server's core.

    .venv/bin/python bench/realtime.py sender [--pushes 2000]
        per-push cost from sync code: async_to_sync (a loop, thread and Redis connection per
        call) against lobby.realtime's one sending loop per process
    .venv/bin/python bench/realtime.py idle [--sockets 5000] [--idle 60]
        memory per idle socket (RSS growth / sockets) and the web process's CPU while idle
    .venv/bin/python bench/realtime.py push [--sockets 5000] [--rate 1000] [--seconds 10]
        [--drop 0.1]
        events committed at --rate/s spread over the sockets: commit-to-receipt latency, and
        every event compared with the stored stream (what the REST replay answers); --drop
        makes this process's channel layer lose that share of pushes (the fault run)

uvicorn runs with runstack's WEB_SERVER_FLAGS (deflate off, a keepalive ping a minute; pass
--deflate to leave deflate on). bench/RESULTS.md records runs and the commands.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _django(drop: float = 0.0):
    if drop:
        os.environ["CHANNEL_LAYER_DROP_RATE"] = str(drop)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DEBUG", "true")
    if not os.environ.get("DATABASE_URL", "").startswith("postgres") or not os.environ.get(
        "REDIS_URL"
    ):
        sys.exit("set DATABASE_URL (PostgreSQL) and REDIS_URL: this bench runs on services")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _players(n: int) -> list[tuple[int, str]]:
    """n bench players with API tokens, created in bulk (reused between runs)."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from lobby.models import Player

    user_model = get_user_model()
    have = list(
        Player.objects.filter(user__username__startswith="bench-rt-")
        .order_by("pk")
        .values_list("pk", "user__auth_token__key")[:n]
    )
    missing = n - len(have)
    if missing > 0:
        start = Player.objects.filter(user__username__startswith="bench-rt-").count()
        users = user_model.objects.bulk_create(
            [user_model(username=f"bench-rt-{start + i}") for i in range(missing)]
        )
        Token.objects.bulk_create([Token(user=u, key=Token.generate_key()) for u in users])
        Player.objects.bulk_create(
            [Player(user=u, display_name=f"bench {start + i}") for i, u in enumerate(users)]
        )
        return _players(n)
    return have


def _pin(cpu: int):
    os.sched_setaffinity(0, {cpu})


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def _machine() -> str:
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{os.cpu_count()} CPUs ({model}), Python {sys.version.split()[0]}"


# --- the web process -------------------------------------------------------------------------


class Web:
    def __init__(self, port: int, cpu: int, deflate: bool, extra: list[str]):
        import psutil

        from config.management.commands.runstack import WEB_SERVER_FLAGS

        argv = [
            "taskset", "-c", str(cpu), sys.executable, "-m", "uvicorn",
            "config.asgi:application", "--host", "127.0.0.1", "--port", str(port),
            "--lifespan", "off", "--log-level", "warning",
        ]  # fmt: skip
        # What runstack and the Procfile run (deflate off, a ping a minute), unless --deflate.
        flags = list(WEB_SERVER_FLAGS)
        if deflate:
            at = flags.index("--ws-per-message-deflate")
            del flags[at : at + 2]
        argv += flags + extra
        env = dict(os.environ)
        env.pop("CHANNEL_LAYER_DROP_RATE", None)  # the web process itself loses nothing
        # Every bench socket comes from 127.0.0.1: lift the per-address cap (lobby/socketcaps).
        env["SOCKETS_PER_IP"] = "1000000"
        self.log = open(ROOT / "var" / "bench-realtime-web.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self.log, stderr=self.log)
        self.port = port
        from config.stack import wait_for_port

        if not wait_for_port("127.0.0.1", port, 60, alive=lambda: self.proc.poll() is None):
            raise RuntimeError("uvicorn did not start; see var/bench-realtime-web.log")
        self.ps = psutil.Process(self.proc.pid)
        # taskset execs the interpreter in place: the pid is uvicorn's.

    def rss(self) -> int:
        return self.ps.memory_info().rss

    def cpu(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


# --- the socket clients (a child process) ----------------------------------------------------


def clients_main(args):
    """Child: open one socket per token, report "ready", record every message until stdin says
    stop, then write the receipts (player index, seq, time received) as JSON."""
    import websockets

    _pin(args.client_cpu)
    tokens = json.loads(Path(args.tokens).read_text())
    receipts: list[tuple[int, int, float]] = []
    opened = 0

    async def one(index, token, sem, stop):
        nonlocal opened
        url = f"ws://127.0.0.1:{args.port}/ws/v1/events?after={tokens[index][1]}"
        async with sem:
            for attempt in range(5):
                try:
                    ws = await websockets.connect(
                        url,
                        additional_headers={"Authorization": f"Token {token}"},
                        ping_interval=None,  # the server's own pings are enough for idle sockets
                        open_timeout=60,
                        max_queue=None,
                    )
                    break
                except Exception:
                    await asyncio.sleep(1 + attempt)
            else:
                return
        opened += 1
        try:
            async for frame in ws:
                event = json.loads(frame)
                receipts.append((index, event["seq"], time.time()))
        except Exception:
            pass  # closed: the receipts say what arrived

    async def main():
        stop = asyncio.Event()
        sem = asyncio.Semaphore(args.connect_concurrency)
        tasks = [
            asyncio.create_task(one(i, token, sem, stop)) for i, (token, _) in enumerate(tokens)
        ]
        while opened < len(tokens) and not all(t.done() for t in tasks):
            await asyncio.sleep(0.2)
        print(json.dumps({"ready": opened}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        stop.set()
        Path(args.receipts).write_text(json.dumps(receipts))
        print(json.dumps({"done": len(receipts)}), flush=True)
        os._exit(0)  # no polite close of thousands of sockets

    asyncio.run(main())


class Clients:
    def __init__(self, port, tokens, cpu, workdir: Path):
        self.tokens_path = workdir / "tokens.json"
        self.receipts_path = workdir / "receipts.json"
        self.tokens_path.write_text(json.dumps(tokens))
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "_clients", "--port", str(port), "--tokens",
             str(self.tokens_path), "--receipts", str(self.receipts_path),
             "--client-cpu", str(cpu)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
        )  # fmt: skip

    def wait_ready(self) -> int:
        return json.loads(self.proc.stdout.readline())["ready"]

    def finish(self) -> list:
        self.proc.stdin.write("stop\n")
        self.proc.stdin.flush()
        self.proc.stdout.readline()
        self.proc.wait(60)
        return json.loads(self.receipts_path.read_text())


# --- runs ------------------------------------------------------------------------------------


def run_sender(args):
    _django()
    _pin(args.client_cpu)
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from lobby import realtime

    layer = get_channel_layer()
    group = realtime.player_group(0)  # players_push below reaches the same group
    message = {"type": realtime.PUSH_TYPE, "message": {"type": "bench"}}
    results = {}
    for name, push in (
        ("async_to_sync per call", lambda: async_to_sync(layer.group_send)(group, message)),
        (
            "one sending loop (lobby.realtime)",
            lambda: realtime._sender().run(layer.group_send(group, message), 5),
        ),
        (
            "one sending loop + push log (players_push, with seq)",
            lambda: realtime.players_push([(0, {"seq": 1, "type": "bench"})]),
        ),
    ):
        runs = []
        for _ in range(3):
            # A fresh receiving channel per run, so no queue fills up (they expire in 60 s).
            channel = async_to_sync(layer.new_channel)()
            async_to_sync(layer.group_add)(group, channel)
            started = time.perf_counter()
            for _ in range(args.pushes):
                push()
            runs.append((time.perf_counter() - started) / args.pushes * 1000)
        results[name] = runs
    print(f"machine: {_machine()}; load average {_load()}")
    print("| sender | ms per push, best | median of 3 |\n|---|---|---|")
    for name, runs in results.items():
        print(f"| {name} | {min(runs):.3f} | {statistics.median(runs):.3f} |")


def _open(args, n):
    from config.stack import free_port

    players = _players(n)
    from lobby.models import Player

    ids = [pk for pk, _ in players]
    seqs = dict(Player.objects.filter(pk__in=ids).values_list("pk", "event_seq"))
    port = free_port()
    web = Web(port, args.server_cpu, args.deflate, args.web_arg)
    base_rss = web.rss()
    workdir = ROOT / "var" / "bench-realtime"
    workdir.mkdir(parents=True, exist_ok=True)
    clients = Clients(port, [(key, seqs[pk]) for pk, key in players], args.client_cpu, workdir)
    started = time.monotonic()
    ready = clients.wait_ready()
    print(f"{ready} of {n} sockets open in {time.monotonic() - started:.1f} s", flush=True)
    return players, seqs, web, clients, base_rss, ready


def run_idle(args):
    _django()
    _pin(args.client_cpu)
    _, _, web, clients, base_rss, ready = _open(args, args.sockets)
    try:
        time.sleep(args.settle)  # connect-time work done, a sweep passed
        rss = web.rss()
        samples = []
        for _ in range(args.windows):
            cpu0, t0 = web.cpu(), time.monotonic()
            time.sleep(args.idle / args.windows)
            samples.append((web.cpu() - cpu0) / (time.monotonic() - t0) * 100)
        print(f"machine: {_machine()}; load average {_load()}")
        per_socket = (rss - base_rss) / ready / 1024
        print(
            f"web RSS before sockets {base_rss / 2**20:.1f} MiB, with {ready} sockets "
            f"{rss / 2**20:.1f} MiB: {per_socket:.1f} KiB per socket"
        )
        print(
            f"web CPU while idle, {args.windows} windows of {args.idle / args.windows:.0f} s: "
            f"best {min(samples):.2f} %, median {statistics.median(samples):.2f} % of a core"
        )
    finally:
        clients.finish()
        web.stop()


def _cpu_seconds(web, clients) -> dict[str, float]:
    """CPU time so far of the web process, the socket clients and this (committing) process."""
    import psutil

    def used(process):
        t = process.cpu_times()
        return t.user + t.system

    return {
        "web": web.cpu(),
        "socket clients": used(psutil.Process(clients.proc.pid)),
        "committing": used(psutil.Process()),
    }


def run_push(args):
    _django(args.drop)
    _pin(args.client_cpu)
    from django.db import transaction

    from lobby.events import events_emit_each
    from lobby.models import PlayerEvent

    players, _, web, clients, _, ready = _open(args, args.sockets)
    committed: dict[tuple[int, int], float] = {}
    handed: dict[tuple[int, int], float] = {}  # when players_push returned (Redis has it)
    try:
        time.sleep(2)
        batch = max(1, args.rate // args.tx_per_second)
        total = args.rate * args.seconds
        period = batch / args.rate
        started = time.monotonic()
        started_wall = time.time()

        def emitter(k):
            # Emitter k sends transactions k, k + E, k + 2E...: together, `rate` events/s, each
            # transaction to `batch` players no other transaction in flight touches.
            from django.db import connection

            for n in range(k, total // batch, args.emitters):
                target = started + n * period
                if (delay := target - time.monotonic()) > 0:
                    time.sleep(delay)
                chosen = [players[(n * batch + i) % len(players)][0] for i in range(batch)]
                stamp: dict = {}
                with transaction.atomic():
                    # Registered first: runs right after the commit, before the push.
                    transaction.on_commit(lambda stamp=stamp: stamp.setdefault("t", time.time()))
                    events = events_emit_each({pk: {"n": n} for pk in chosen}, type="bench.push")
                pushed = time.time()  # events_emit pushed on commit, in this thread
                for event in events:
                    committed[(event.player_id, event.seq)] = stamp["t"]
                    handed[(event.player_id, event.seq)] = pushed
            connection.close()

        threads = [threading.Thread(target=emitter, args=(k,)) for k in range(args.emitters)]
        cpu0 = _cpu_seconds(web, clients)
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        sent_for = time.monotonic() - started
        time.sleep(3)  # the last repairs (GRACE + a tick) and stragglers
        cpu = {
            name: (after - cpu0[name]) / (time.monotonic() - started) * 100
            for name, after in _cpu_seconds(web, clients).items()
        }
        receipts = clients.finish()
    finally:
        web.stop()
    received: dict[tuple[int, int], float] = {}
    for index, seq, at in receipts:
        received.setdefault((players[index][0], seq), at)
    # The stored stream, which GET /players/me/events answers: every bench event must be there
    # and must have been received.
    stored = set(
        PlayerEvent.objects.filter(
            player_id__in=[pk for pk, _ in players], type="bench.push"
        ).values_list("player_id", "seq")
    )
    expected = {key for key in committed if key in stored}
    lost = [key for key in expected if key not in received]
    latencies = sorted((received[k] - committed[k]) * 1000 for k in expected if k in received)
    over_2s = sum(1 for ms in latencies if ms > 2000)

    def pct(p):
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))]

    print(f"machine: {_machine()}; load average {_load()}")
    print(
        f"{ready} sockets; {len(committed)} events committed in {sent_for:.1f} s "
        f"({len(committed) / sent_for:.0f}/s, {batch} per transaction); drop rate {args.drop}"
    )
    print(
        "CPU while pushing (% of a core): "
        + ", ".join(f"{name} {share:.0f} %" for name, share in cpu.items())
    )
    sending = sorted((handed[k] - committed[k]) * 1000 for k in expected)
    print(
        "commit to pushed (the committing side's share: the push log write and group_send): "
        f"p50 {sending[len(sending) // 2]:.1f} ms, p99 {sending[int(len(sending) * 0.99)]:.1f} ms"
    )
    by_second: dict[int, list[float]] = {}
    for key in expected:
        if key in received:
            by_second.setdefault(int(committed[key] - started_wall), []).append(
                (received[key] - committed[key]) * 1000
            )
    print(
        "worst commit to receipt per second of the run (ms): "
        + " ".join(f"{max(v):.0f}" for _, v in sorted(by_second.items()))
    )
    print(
        f"commit to receipt: p50 {pct(50):.1f} ms, p90 {pct(90):.1f} ms, p99 {pct(99):.1f} ms, "
        f"max {latencies[-1]:.1f} ms; over 2 s: {over_2s}; lost: {len(lost)} of {len(expected)}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    for name in ("sender", "idle", "push", "_clients"):
        p = sub.add_parser(name)
        p.add_argument("--server-cpu", type=int, default=0)
        p.add_argument("--client-cpu", type=int, default=1)
        p.add_argument("--deflate", action="store_true", help="leave permessage-deflate on")
        p.add_argument("--sockets", type=int, default=5000)
        p.add_argument(
            "--web-arg", action="append", default=[], help="another uvicorn argument (repeat)"
        )
        p.add_argument("--connect-concurrency", type=int, default=100)
        if name == "sender":
            p.add_argument("--pushes", type=int, default=2000)
        if name == "idle":
            p.add_argument("--idle", type=float, default=60)
            p.add_argument("--windows", type=int, default=6)
            p.add_argument("--settle", type=float, default=40)
        if name == "push":
            p.add_argument("--rate", type=int, default=1000)
            p.add_argument("--seconds", type=int, default=10)
            p.add_argument("--tx-per-second", type=int, default=100)
            p.add_argument("--drop", type=float, default=0.0)
            p.add_argument("--emitters", type=int, default=4, help="committing threads")
        if name == "_clients":
            p.add_argument("--port", type=int)
            p.add_argument("--tokens")
            p.add_argument("--receipts")
    args = parser.parse_args()
    {"sender": run_sender, "idle": run_idle, "push": run_push, "_clients": clients_main}[args.mode](
        args
    )


if __name__ == "__main__":
    main()
