"""The relay lifecycle through a real Celery worker, against the relay emulator over HTTP and UDP.

The test process records sessions (as the lobby app will) and queues tasks through the broker;
the live worker does the Edgegap side. Edgegap's side is checked through the emulator's own API.
"""

import os
import signal
import time
from pathlib import Path

import pytest

from relays import services, tasks
from relays.models import RelaySession
from relays.play import RelayError, RelayPeer
from relays.protocol import PingState
from relays.services import SeatRequest
from tests.live import wait_until

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]
Status = RelaySession.Status
LOOPBACK = "127.0.0.1"


def _status(session):
    session.refresh_from_db()
    return session.status


def _open(players=2, owner="lobby:live"):
    seats = [SeatRequest(holder=f"player:{n}", ip=LOOPBACK) for n in range(players)]
    return services.relay_session_open(owner=owner, seats=seats)


def _edgegap_sessions(live):
    with live.edgegap() as client:
        return list(client.list_sessions().sessions)


def _peer(session, seat):
    port = session.server_port if seat.role == "server" else session.client_port
    return RelayPeer(
        session.relay_ip,
        port,
        session_token=session.session_token,
        user_token=seat.user_token,
        role=seat.role,
        ping_interval=0.1,
    )


def test_lifecycle_open_ready_play_revoke_close(worker_tasks):
    live = worker_tasks
    session = _open(players=2)
    wait_until(lambda: _status(session) == Status.READY, "ready", live, timeout=15)
    host_seat, guest_seat = session.seats.order_by("ordinal")

    with _peer(session, host_seat) as host, _peer(session, guest_seat) as guest:
        host.connect_until_valid(timeout=5)
        guest.connect_until_valid(timeout=5)
        guest.send(b"hello host")
        received = host.recv(timeout=3)
        assert received is not None and received.payload == b"hello host"
        assert received.connection_id != 0
        host.send(b"hello guest", connection_id=received.connection_id)
        reply = guest.recv(timeout=3)
        assert reply is not None and reply.payload == b"hello guest"

        services.relay_seat_revoke(seat=guest_seat)
        wait_until(
            lambda: guest_seat.__class__.objects.get(pk=guest_seat.pk).revoke_sent,
            "the revoke to reach Edgegap",
            live,
            timeout=10,
        )
        with pytest.raises(RelayError) as refused:
            guest.recv(timeout=3)  # its next keepalive PING is answered Invalid
        assert refused.value.state == PingState.INVALID

    assert services.relay_session_close(session=session, reason="match over")
    wait_until(lambda: _status(session) == Status.CLOSED, "closed", live, timeout=10)
    assert _edgegap_sessions(live) == []


def test_rate_limits_server_errors_and_timeouts_still_end_ready_with_one_session(worker_tasks):
    live = worker_tasks
    # Every reply slower than the worker's 1 s timeout: the create reaches the emulator, which
    # makes the session, but the worker never hears back.
    live.emulator_config(slow=1.5)
    session = _open(players=3)
    wait_until(lambda: _status(session) == Status.CREATING, "a create attempt", live, timeout=5)
    time.sleep(2.0)
    # Then nothing but 429s, then nothing but 5xx, each until the worker has met one; then a
    # flaky but mostly answering Edgegap.
    for faults, seen in (({"slow": 0, "rate_429": 1.0}, "-> 429"),
                         ({"rate_429": 0, "rate_5xx": 1.0}, "-> 50")):  # fmt: skip
        live.emulator_config(**faults)
        wait_until(lambda seen=seen: seen in live.log_tail(5000), seen, live, timeout=20)
    live.emulator_config(rate_429=0.15, rate_5xx=0.15)
    wait_until(lambda: _status(session) == Status.READY, "ready despite faults", live, timeout=60)
    live.emulator_config(rate_429=0, rate_5xx=0)

    remote = _edgegap_sessions(live)
    assert [r.session_id for r in remote] == [session.session_id]
    assert all(seat.user_token is not None for seat in session.seats.all())
    assert "timed out waiting for the answer (ReadTimeout); retrying" in live.log_tail(5000)


def test_never_ready_session_ends_failed_and_deleted(worker_tasks, settings):
    live = worker_tasks
    live.emulator_config(never_ready=True)
    settings.RELAY_READY_TIMEOUT = 2  # the deadline is set when the session is opened
    session = _open(players=2)
    wait_until(lambda: _status(session) == Status.FAILED, "failed", live, timeout=15)
    assert "not ready within" in session.last_error
    wait_until(
        lambda: _edgegap_sessions(live) == [], "the session deleted at Edgegap", live, timeout=5
    )


def _pool_children(worker_pid):
    children = Path(f"/proc/{worker_pid}/task/{worker_pid}/children").read_text().split()
    return [int(pid) for pid in children]


def test_a_create_killed_mid_call_and_redelivered_makes_one_session(worker_tasks):
    live = worker_tasks
    live.emulator_config(slow=0.8)  # under the 1 s timeout: the create's answer does arrive...
    session = _open(players=2)
    wait_until(lambda: _status(session) == Status.CREATING, "a create attempt", live, timeout=5)
    time.sleep(0.3)  # ...but its pool process is killed while it waits for it
    worker = next(c for c in live.supervisor.children if c.name == "worker")
    for pid in _pool_children(worker.process.pid):
        os.kill(pid, signal.SIGKILL)
    live.emulator_config(slow=0)
    # acks_late + reject_on_worker_lost: the task is delivered again, waits out the dead
    # attempt's lease, then finds the session that attempt made instead of making another.
    wait_until(lambda: _status(session) == Status.READY, "ready after redelivery", live, timeout=30)
    assert [r.session_id for r in _edgegap_sessions(live)] == [session.session_id]


def test_reconcile_leaves_no_session_without_an_owner(worker_tasks):
    live = worker_tasks
    ours = _open(players=2)
    wait_until(lambda: _status(ours) == Status.READY, "ready", live, timeout=15)
    hooks = f"{live.env['PUBLIC_URL']}/hooks/relays/"
    with live.edgegap() as client:
        # Ours by their mark (creates whose answers were lost), unknown to the database.
        orphans = {
            client.create_session([LOOPBACK], webhook_url=f"{hooks}lost{n}").session_id
            for n in range(12)
        }
        staging = client.create_session([LOOPBACK], webhook_url="https://staging.test/hooks/x")
    assert len(_edgegap_sessions(live)) == 14  # more than one page of the list call

    tasks.reconcile.delay()  # first sighting: within the 1 s grace
    time.sleep(1.5)
    tasks.reconcile.delay()
    wait_until(
        lambda: (
            {r.session_id for r in _edgegap_sessions(live)} == {ours.session_id, staging.session_id}
        ),
        "orphans deleted, another environment's session left alone",
        live,
        timeout=10,
    )
    assert not orphans & {r.session_id for r in _edgegap_sessions(live)}
    assert _status(ours) == Status.READY
